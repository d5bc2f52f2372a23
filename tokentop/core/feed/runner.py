"""Running a feed: config → ledger, pricer, aggregator, service; its parts (attachments); the app;
serving with uvicorn.

Which parts a feed has is the ``attachments`` argument: :data:`~tokentop.core.feed.assemble.HOST_FEED`
by default, :data:`~tokentop.core.feed.assemble.FLEET_FEED` for a fleet view. ``tokentop serve`` runs
:meth:`FeedRunner.serve` in the foreground. Every command that needs a feed
and finds none answering runs one embedded with :meth:`FeedRunner.start_in_thread` — on its own
thread and event loop, so the UI never blocks ingest and vice versa; read it through
:meth:`FeedRunner.snapshot`, which hops onto the feed's loop.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import stat
import threading
import time
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Coroutine, Sequence, TypeVar

import uvicorn

from tokentop.config import Config, state_dir
from tokentop.core.aggregate import Aggregator, AggregatorConfig
from tokentop.core.feed.assemble import HOST_FEED
from tokentop.core.feed.auth import load_or_create_token
from tokentop.core.feed.parts import Attach, Attached, FeedBase
from tokentop.core.feed.server import FeedApp, FeedSettings, TokenGate, is_ip_address
from tokentop.core.feed.service import FeedService
from tokentop.core.ledger import Ledger
from tokentop.core.pricing import Pricer
from tokentop.core.retention import RetentionStatus, apply_retention
from tokentop.core.snapshot import Snapshot

if TYPE_CHECKING:
    from tokentop.core.team.settings import NatsSettings

log = logging.getLogger("tokentop.feed")

T = TypeVar("T")


class ListenError(OSError):
    pass


def parse_listen(listen: str) -> tuple[str, str | int]:
    """``HOST:PORT`` → ("tcp", host, port); ``unix:/path`` → ("unix", path)."""
    if listen.startswith("unix:"):
        path = listen[5:]
        if not path:
            raise ValueError("unix: needs a path, e.g. unix:/run/user/1000/tokentop.sock")
        return ("unix", path)  # type: ignore[return-value]
    host, sep, port = listen.rpartition(":")
    if not sep or not port.isdigit():
        raise ValueError(f"listen address must be HOST:PORT or unix:/path, got {listen!r}")
    host = host.strip("[]") or "127.0.0.1"
    return (host, int(port))


def bind_socket(listen: str) -> socket.socket:
    target = parse_listen(listen)
    if target[0] == "unix":
        path = str(target[1])
        try:
            if stat.S_ISSOCK(os.stat(path).st_mode):
                os.unlink(path)  # a stale socket of an earlier run
        except FileNotFoundError:
            pass
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        old = os.umask(0o177)
        try:
            sock.bind(path)
        except OSError as exc:
            sock.close()
            raise ListenError(exc.errno, f"cannot listen on {listen}: {exc.strerror}") from exc
        finally:
            os.umask(old)
        os.chmod(path, 0o600)
    else:
        host, port = target
        family = socket.AF_INET6 if ":" in str(host) else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        # Accepted sockets inherit this on Linux: without it small answers wait ~40 ms for
        # delayed ACKs (measured: 44 ms per /healthz round trip, 0.6 ms with it).
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            sock.close()
            raise ListenError(exc.errno, f"cannot listen on {listen}: {exc.strerror}") from exc
    sock.listen(2048)
    sock.setblocking(False)
    return sock


def listen_name_allowed(settings: FeedSettings, listen: str) -> FeedSettings:
    """A feed listening on a name (``--listen myhost.lan:7411``) answers requests for that name too
    (the DNS-rebinding guard, :class:`~tokentop.core.feed.server.HostGuard`, answers IP addresses
    and loopback names already)."""
    try:
        target = parse_listen(listen)
    except ValueError:
        return settings  # reported when the feed binds
    if target[0] == "unix" or is_ip_address(str(target[0])):
        return settings
    return replace(settings, allowed_hosts=(*settings.allowed_hosts, str(target[0])))


class FeedRunner:
    """One feed: its parts, its server, its thread (when embedded).

    ``attachments`` are the feed's parts, run in order once the service exists (see
    :mod:`tokentop.core.feed.assemble`); what they return is :attr:`parts`. ``nats`` are the team
    settings to use instead of the config's ``[nats]`` (``serve --nats URL``, a fleet view).
    """

    def __init__(
        self,
        config: Config,
        *,
        listen: str | None = None,
        ledger: Ledger | None = None,
        clock: Callable[[], float] = time.time,
        host_name: str | None = None,
        token_dir: Path | None = None,
        nats: NatsSettings | None = None,
        attachments: Sequence[Attach] = HOST_FEED,
    ) -> None:
        self.config = config
        self.listen = listen if listen is not None else config.feed.listen
        self.ledger = ledger or Ledger(config.ledger_path, retention_days=float(config.ledger.retention_days))
        self.service = FeedService(
            self.ledger,
            Pricer(config.price_overrides()),
            Aggregator(AggregatorConfig.from_config(config)),
            clock=clock,
            max_future_s=float(config.feed.max_future_s),
            host=host_name or config.host_name,
        )
        self.token_dir = token_dir or state_dir()
        self.token = load_or_create_token(self.token_dir)
        settings = listen_name_allowed(FeedSettings.from_config(config), self.listen)
        #: run by :meth:`stop` once the feed's thread is done (release locks, files, ...); idempotent
        self.stop_callbacks: list[Callable[[], None]] = []
        self.address: str | None = None
        self.listen_error: str | None = None
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self._started = threading.Event()
        self._start_error: BaseException | None = None
        #: what ``[ledger] retention_days`` deleted at start (``None``: no retention, nothing deleted)
        self.pruned = apply_retention(self.ledger, float(config.ledger.retention_days), clock())
        if self.pruned is not None:
            self.service.set_status(RetentionStatus.KEY, RetentionStatus(self.pruned).to_json())
        self.replayed = self.service.rebuild()
        #: what the feed's attachments provided: handles on its parts (``parts.control``, ...)
        self.parts = Attached()
        base = FeedBase(config, self.service, self.ledger, settings, TokenGate(self.token), nats, self.parts)
        for attach in attachments:
            self.parts = self.parts.merge(attach(replace(base, parts=self.parts)))
        self.stop_callbacks.extend(self.parts.on_stop)
        self.app = FeedApp(
            self.service, settings, token=self.token, routes=self.parts.routes, background=self.parts.background,
            publish_meta=self.parts.publish_meta, publish_closed=self.parts.publish_closed,
        )

    @property
    def url(self) -> str | None:
        return self.address

    async def serve(self, *, require_listen: bool = True) -> None:
        """Serve until cancelled or :meth:`stop`. Without a socket (``require_listen=False`` and the
        address taken) the feed still runs in-process: lifespan tasks, sources, snapshots."""
        self.loop = asyncio.get_running_loop()
        sock: socket.socket | None = None
        unix_path: str | None = None
        try:
            sock = bind_socket(self.listen)
        except (ListenError, ValueError) as exc:
            if require_listen:
                raise
            self.listen_error = str(exc)
            self.service.set_status("feed_listen_error", self.listen_error)
        if sock is not None:
            name = sock.getsockname()
            if sock.family == socket.AF_UNIX:
                unix_path = name
                self.address = f"unix:{name}"
            else:
                host = name[0] if sock.family == socket.AF_INET else f"[{name[0]}]"
                self.address = f"http://{host}:{name[1]}"
            self.service.set_status("feed", self.address)
        uv_config = uvicorn.Config(
            self.app, log_level="warning", access_log=False, lifespan="on", ws="websockets-sansio",
            ws_max_size=self.app.settings.max_ws_message_bytes + 1024, timeout_graceful_shutdown=2,
        )
        server = uvicorn.Server(uv_config)
        server.install_signal_handlers = lambda: None  # type: ignore[method-assign]
        self._server = server
        try:
            if sock is not None:
                self._started.set()
                await server.serve(sockets=[sock])
            else:
                await self.app.start()
                self._started.set()
                try:
                    while not server.should_exit:
                        await asyncio.sleep(0.2)
                finally:
                    await self.app.stop()
        finally:
            if unix_path is not None:
                try:
                    os.unlink(unix_path)
                except OSError:
                    pass

    def start_in_thread(self, *, require_listen: bool = False, timeout: float = 10.0) -> FeedRunner:
        """Run the feed on a background thread; returns once it accepts connections."""

        def main() -> None:
            try:
                asyncio.run(self.serve(require_listen=require_listen))
            except BaseException as exc:  # surfaced to the starting thread
                self._start_error = exc
                self._started.set()

        self._thread = threading.Thread(target=main, name="tokentop-feed", daemon=True)
        self._thread.start()
        if not self._started.wait(timeout):
            raise TimeoutError("the embedded feed did not start in time")
        if self._start_error is not None:
            raise self._start_error
        # uvicorn sets `started` once the socket is serving
        deadline = time.monotonic() + timeout
        while self._server is not None and self.address and not self._server.started:
            if time.monotonic() > deadline or self._start_error is not None:
                break
            time.sleep(0.01)
        return self

    def run_coroutine(self, coro: Coroutine[Any, Any, T], timeout: float | None = 10.0) -> T:
        """Run ``coro`` on the feed's loop from another thread and return its result."""
        assert self.loop is not None, "feed is not running"
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def snapshot(self, now: float | None = None) -> Snapshot:
        if self.loop is None or self._thread is None:
            return self.service.snapshot(now)

        async def take() -> Snapshot:
            return self.service.snapshot(now)

        return self.run_coroutine(take())

    def stop(self) -> None:
        """Stop serving, wait for the feed's thread, run :attr:`stop_callbacks`, close the ledger."""
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None
        for callback in self.stop_callbacks:
            try:
                callback()
            except Exception:
                log.exception("stop callback %r failed", callback)
        self.ledger.close()

