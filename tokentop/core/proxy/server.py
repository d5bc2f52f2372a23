"""Serving the proxy: the listening socket, uvicorn, and :class:`ProxyPart` — everything one
running proxy is (app, gate, block list, event pump), with one coroutine that runs it.

Two ways to get one:

* :func:`proxy_part` — inside a feed (``tokentop serve`` with ``[proxy] enabled = true``): events go
  straight into the feed's :class:`~tokentop.core.feed.service.FeedService` and the proxy's status
  is published in every snapshot under ``status["proxy"]``;
* :func:`build_proxy` — with any :class:`~tokentop.core.proxy.sink.EventSink` (``tokentop proxy``
  sending to a feed over HTTP, tests).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Final

import uvicorn

from tokentop.core.proxy.app import ProxyApp, UpstreamAborted
from tokentop.core.proxy.follow import FollowedBlocks
from tokentop.core.proxy.gate import BlockList, GateChain
from tokentop.core.proxy.settings import ProxySettings
from tokentop.core.proxy.sink import EventPump, EventSink, ServiceSink

if TYPE_CHECKING:
    from tokentop.core.feed.service import FeedService

log = logging.getLogger("tokentop.proxy")

#: How long a stopping proxy waits for queued events to reach the feed.
DRAIN_TIMEOUT_S: Final = 5.0
#: Seconds between status publications into the feed's snapshot.
STATUS_INTERVAL_S: Final = 1.0
#: Keep idle client connections this long (agents' pools reuse them; the connection-derived
#: session id lives as long as the connection).
KEEP_ALIVE_S: Final = 75


class _QuietAborts(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        return not isinstance(exc, UpstreamAborted)


_QUIET = _QuietAborts()


def quiet_aborts() -> None:
    """Keep :class:`UpstreamAborted` (an upstream that broke off an answer: counted, not a bug)
    out of uvicorn's error log. Idempotent."""
    logger = logging.getLogger("uvicorn.error")
    if _QUIET not in logger.filters:
        logger.addFilter(_QUIET)


class ListenError(OSError):
    pass


def bind(listen: str) -> socket.socket:
    host, _, port = listen.rpartition(":")
    host = host.strip("[]")
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    # small answers would otherwise wait for delayed ACKs (~40 ms on Linux)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        sock.bind((host, int(port)))
    except OSError as exc:
        sock.close()
        raise ListenError(exc.errno, f"cannot listen on {listen}: {exc.strerror}") from exc
    sock.listen(2048)
    sock.setblocking(False)
    return sock


@dataclass
class ProxyPart:
    """One proxy: ``await part.run()`` serves until cancelled or :meth:`stop`.

    Handles for the rest of tokentop: :attr:`blocks` (the proxy's own block list), :attr:`gates`
    (add a gate: a feed's :class:`~tokentop.core.control.blocks.BlockBook`), :attr:`follow` (a
    remote feed's blocks, read over HTTP), :meth:`status`.
    """

    settings: ProxySettings
    app: ProxyApp
    pump: EventPump
    blocks: BlockList
    gates: GateChain
    publish_status: Callable[[dict[str, Any]], None] | None = None
    follow: FollowedBlocks | None = None
    url: str | None = None
    _sock: socket.socket | None = None
    _server: uvicorn.Server | None = None
    _stopping: bool = False
    _closers: list[Callable[[], Any]] = field(default_factory=list)

    def bind(self) -> str:
        """Open the listening socket now (so the address is known before serving); returns the
        proxy's URL, e.g. ``http://127.0.0.1:7413``. Raises :class:`ListenError`."""
        if self._sock is None:
            self._sock = bind(self.settings.listen)
            name = self._sock.getsockname()
            host = name[0] if self._sock.family == socket.AF_INET else f"[{name[0]}]"
            self.url = f"http://{host}:{name[1]}"
        assert self.url is not None
        return self.url

    def status(self) -> dict[str, Any]:
        return self.app.status()

    def _status_extra(self) -> dict[str, Any]:
        """What the part adds to the app's status (``GET /_tokentop/status`` shows it too)."""
        data: dict[str, Any] = {"url": self.url}
        if self.follow is not None:
            data["feed_blocks"] = self.follow.status()
        return data

    def stop(self) -> None:
        """Ask :meth:`run` to finish (thread-safe enough: it sets a flag uvicorn polls)."""
        self._stopping = True
        if self._server is not None:
            self._server.should_exit = True

    async def run(self) -> None:
        self.bind()
        quiet_aborts()
        config = uvicorn.Config(
            self.app, log_config=None, log_level="warning", access_log=False, lifespan="off",
            server_header=False, date_header=False, timeout_keep_alive=KEEP_ALIVE_S,
            timeout_graceful_shutdown=3,
        )
        server = uvicorn.Server(config)
        # Signals belong to whoever runs the proxy (the feed, or `tokentop proxy`), which stops it by
        # cancelling run() or calling stop(); uvicorn would otherwise take SIGINT/SIGTERM on the
        # main thread and raise them again after its own shutdown.
        server.capture_signals = contextlib.nullcontext  # type: ignore[method-assign]
        self._server = server
        if self._stopping:
            server.should_exit = True
        loop = asyncio.get_running_loop()
        follow_task = None
        if self.follow is not None:
            self.follow.me = self.follow.me or (self.url or "")
            await self.follow.prime()  # the feed's blocks hold from the first request on
            follow_task = loop.create_task(self.follow.run(), name="tokentop-proxy-follow")
        pump_task = loop.create_task(self.pump.run(), name="tokentop-proxy-pump")
        status_task = loop.create_task(self._publish_loop(), name="tokentop-proxy-status") if self.publish_status else None
        serve_task = loop.create_task(server.serve(sockets=[self._sock]), name="tokentop-proxy-server")
        cancelled = False
        try:
            await asyncio.shield(serve_task)
        except asyncio.CancelledError:
            cancelled = True
            server.should_exit = True  # graceful: in-flight requests get timeout_graceful_shutdown to finish
        # From here nothing may be cut short: a second Ctrl-C (or uvicorn re-raising the signal it
        # caught) must not lose queued events without counting them.
        cancelled |= await _to_the_end(self._finish(serve_task, pump_task, status_task, follow_task))
        if cancelled:
            raise asyncio.CancelledError

    async def _finish(self, serve_task: asyncio.Task[None], pump_task: asyncio.Task[None],
                      status_task: asyncio.Task[None] | None, follow_task: asyncio.Task[None] | None) -> None:
        try:
            await asyncio.wait_for(serve_task, 10)
        except (asyncio.TimeoutError, asyncio.CancelledError):
            serve_task.cancel()
        except Exception:  # the server failed: still flush what it metered
            log.exception("proxy: the server stopped with an error")
        if status_task is not None:
            status_task.cancel()
        if follow_task is not None:
            follow_task.cancel()
            try:
                await follow_task
            except asyncio.CancelledError:
                pass
            assert self.follow is not None
            await self.follow.aclose()
        await self.pump.drain(DRAIN_TIMEOUT_S)
        pump_task.cancel()
        try:
            await pump_task
        except asyncio.CancelledError:
            pass
        self.pump.abandon()
        await self.app.aclose()
        for close in self._closers:
            result = close()
            if asyncio.iscoroutine(result):
                await result
        if self.publish_status is not None:
            self.publish_status(self.status())
        if self._sock is not None:
            self._sock.close()

    async def _publish_loop(self) -> None:
        assert self.publish_status is not None
        while True:
            try:
                self.publish_status(self.status())
            except Exception:  # a status hiccup must not stop the proxy
                log.exception("proxy: publishing status failed")
            await asyncio.sleep(STATUS_INTERVAL_S)


async def _to_the_end(coro: Any) -> bool:
    """Run ``coro`` to its end even when the caller is cancelled meanwhile; True if it was."""
    task = asyncio.get_running_loop().create_task(coro)
    cancelled = False
    while not task.done():
        try:
            await asyncio.shield(task)
        except asyncio.CancelledError:
            cancelled = True
    task.result()
    return cancelled


def build_proxy(
    settings: ProxySettings,
    sink: EventSink,
    *,
    token: str | None = None,
    host: str | None = None,
    clock: Callable[[], float] = time.time,
    publish_status: Callable[[dict[str, Any]], None] | None = None,
    follow: FollowedBlocks | None = None,
) -> ProxyPart:
    """A proxy sending its events to ``sink``. ``token`` guards the ``/_tokentop/`` routes
    (status, block, unblock); without it they answer 401. ``follow``: a feed's blocks to enforce
    (read over HTTP), asked after the proxy's own block list."""
    blocks = BlockList(clock)
    gates = GateChain([blocks])
    if follow is not None:
        gates.add(follow)
    pump = EventPump(sink, max_queue=settings.queue_max)
    app = ProxyApp(settings, pump, gate=gates, blocks=blocks, token=token, host=host, clock=clock)
    part = ProxyPart(settings, app, pump, blocks, gates, publish_status, follow=follow)
    app.status_extra = part._status_extra
    closer = getattr(sink, "aclose", None)
    if closer is not None:
        part._closers.append(closer)
    return part


def proxy_part(
    service: FeedService,
    settings: ProxySettings,
    *,
    token: str | None = None,
    loop: asyncio.AbstractEventLoop | None = None,
    clock: Callable[[], float] = time.time,
) -> ProxyPart:
    """The proxy as a part of a feed: events into ``service`` (on ``loop`` when the feed runs on
    another thread's loop), status in the feed's snapshots under ``status["proxy"]``.

    The feed assembly runs ``await part.run()`` as one of its background tasks (cancel it, or call
    ``part.stop()``, to stop; queued events are flushed for up to 5 s).
    """
    def publish(status: dict[str, Any]) -> None:
        service.set_status("proxy", status)

    return build_proxy(settings, ServiceSink(service, loop), token=token, host=service.host, clock=clock,
                       publish_status=publish)
