"""The proxy itself: a plain ASGI app that forwards each request to its upstream with httpx.

Per metered request (``POST`` to a model endpoint, see :mod:`.routes`):

1. read the body (at most ``max_request_bytes``: the model and ``stream`` flag are in it);
2. identify agent / session / project (:mod:`.identity`) and ask the gate (:mod:`.gate`); a block
   is answered here with the provider's own 429 and recorded;
3. forward: the client's headers as sent (keys included — they authorise the request upstream and
   are never stored, logged or shown) minus hop-by-hop headers and the proxy's own
   ``X-Tokentop-*`` ones, with ``Accept-Encoding: identity`` so the answer can be read as it passes;
4. pass the answer back chunk by chunk as it arrives while a meter (:mod:`.meters`) reads usage
   from it; a client that goes away cancels the upstream request at once;
5. put one :class:`~tokentop.core.events.Event` on the pump (:mod:`.sink`) — never waiting for it.

Anything else passes through untouched (body streamed both ways, no event) and is counted.

Failures are answered in the client's protocol's error shape: unreachable upstream 502, upstream
timeout 504, all upstream connections busy or too many requests in flight 503, body too large
413, unknown upstream name 404. Upstream errors (4xx/5xx) pass through as the upstream sent them.
An upstream that breaks off a response mid-stream makes the proxy break off the client's too (the
client sees the same failure it would have seen directly), never a silently truncated answer.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import time
import uuid
import zlib
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable, Final, MutableMapping

import httpx

from tokentop.core.events import Event, EventError, parse_event
from tokentop.core.proxy.errors import error_body, error_headers
from tokentop.core.proxy.gate import BlockList, Gate, GateChain, GateRequest
from tokentop.core.proxy.identity import identify
from tokentop.core.proxy.meters import Meter, loads, make_meter
from tokentop.core.proxy.routes import Family, Route, UnknownUpstream, resolve
from tokentop.core.proxy.settings import ProxySettings
from tokentop.core.proxy.sink import EventPump
from tokentop.core.proxy.upstream import Upstreams

log = logging.getLogger("tokentop.proxy")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

SOURCE: Final = "proxy"
#: See :class:`_Watch`.
WATCH_AFTER_S: Final = 0.05
ADMIN_PREFIX: Final = "/_tokentop/"

#: Never forwarded upstream: hop-by-hop (RFC 9110 7.6.1), set by the HTTP client itself, or ours.
_DROP_REQUEST: Final = frozenset({
    b"connection", b"keep-alive", b"proxy-connection", b"proxy-authorization", b"proxy-authenticate",
    b"te", b"trailer", b"transfer-encoding", b"upgrade", b"host", b"content-length", b"expect",
})
#: Never passed back to the client: hop-by-hop, or framing the proxy's server sets itself.
_DROP_RESPONSE: Final = frozenset({
    b"connection", b"keep-alive", b"proxy-connection", b"proxy-authenticate", b"te", b"trailer",
    b"transfer-encoding", b"upgrade",
})
_OWN_PREFIX: Final = b"x-tokentop-"
_IDENTITY: Final = (b"accept-encoding", b"identity")
_STREAMING_PROTOCOLS: Final = frozenset({"chat", "completions", "responses", "messages"})


class _ClientGone(Exception):
    """The client disconnected while its request body was being streamed upstream."""


class UpstreamAborted(Exception):
    """Raised after the upstream broke off a response that had started: uvicorn then closes the
    client's connection mid-body, as the upstream did. (Filtered out of uvicorn's error log by
    :func:`tokentop.core.proxy.server.quiet_aborts`: it is an outcome, not a bug.)"""


@dataclass
class ProxyCounters:
    """Counters since start (the proxy's status; see docs/proxy.md)."""

    requests: int = 0
    metered: int = 0
    passthrough: int = 0
    blocked: int = 0
    upstream_errors: int = 0
    upstream_failures: int = 0
    aborted: int = 0
    cancelled: int = 0
    too_large: int = 0
    busy: int = 0
    unknown_upstream: int = 0
    usage_missing: int = 0
    invalid_events: int = 0
    by_upstream: dict[str, int] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {k: (dict(v) if isinstance(v, dict) else v) for k, v in self.__dict__.items()}


@dataclass(slots=True)
class _Outcome:
    """What happened to one metered request; becomes its event."""

    route: Route
    t0: float
    agent: str
    session: str | None
    project: str | None
    requested_model: str | None
    status_code: int = 0
    request_id: str | None = None
    meter: Meter | None = None
    failed: bool = False


class _Watch:
    """Notices the client going away (``http.disconnect``) while the proxy waits on the upstream,
    and cancels the request's task so the upstream connection is closed at once.

    The watching task starts only after :data:`WATCH_AFTER_S`: most answers that finish sooner
    never need one (a task per request measured ~5 % of the proxy's CPU), and a client leaving is
    then noticed at most that much later."""

    __slots__ = ("receive", "task", "gone", "armed", "_watcher", "_timer")

    def __init__(self, receive: Receive) -> None:
        self.receive = receive
        self.task = asyncio.current_task()
        self.gone = False
        self.armed = True
        self._watcher: asyncio.Task[None] | None = None
        self._timer = asyncio.get_running_loop().call_later(WATCH_AFTER_S, self._start)

    def _start(self) -> None:
        if self.armed:
            self._watcher = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        while (await self.receive())["type"] != "http.disconnect":
            pass
        if self.armed:  # the response is still being sent: the client left early
            self.gone = True
            if self.task is not None:
                self.task.cancel()

    def disarm(self) -> None:
        self.armed = False
        self._timer.cancel()
        if self._watcher is not None:
            self._watcher.cancel()


def _decoder(encoding: bytes) -> Callable[[bytes], bytes] | None:
    """A streaming decoder for a ``Content-Encoding`` (``None`` when unsupported)."""
    enc = encoding.strip().lower()
    if enc in (b"gzip", b"x-gzip"):
        return zlib.decompressobj(16 + zlib.MAX_WBITS).decompress
    if enc == b"deflate":
        obj = zlib.decompressobj(zlib.MAX_WBITS)
        return obj.decompress
    if enc == b"zstd":
        try:
            import zstandard
        except ImportError:  # pragma: no cover - a dependency
            return None
        return zstandard.ZstdDecompressor().decompressobj().decompress
    if enc == b"br":
        try:
            import brotli  # type: ignore[import-not-found]
        except ImportError:
            return None
        return brotli.Decompressor().process  # pragma: no cover - optional
    return None


def _clip(value: bytes | str | None, limit: int = 200) -> str | None:
    if value is None:
        return None
    text = value.decode("latin-1") if isinstance(value, bytes) else value
    text = "".join(ch for ch in text if ch.isprintable()).strip()[:limit]
    return text or None


class ProxyApp:
    """The ASGI app. ``gate`` defaults to a :class:`GateChain` holding one :class:`BlockList`."""

    def __init__(
        self,
        settings: ProxySettings,
        pump: EventPump,
        *,
        gate: Gate | None = None,
        blocks: BlockList | None = None,
        token: str | None = None,
        host: str | None = None,
        clock: Callable[[], float] = time.time,
        status_extra: Callable[[], dict[str, Any]] | None = None,
    ) -> None:
        self.settings = settings
        self.pump = pump
        self.blocks = blocks or BlockList(clock)
        self.gate: Gate = gate if gate is not None else GateChain([self.blocks])
        self.token = token
        self.host = host
        self.clock = clock
        self.status_extra = status_extra
        self.counters = ProxyCounters()
        #: requests refused, by the rule that refused them (every gate's, not only the block list's)
        self.refused: dict[str, int] = {}
        self.inflight = 0
        self.started_at = clock()
        self.upstreams = Upstreams(settings)

    async def aclose(self) -> None:
        await self.upstreams.aclose()

    # -- ASGI ------------------------------------------------------------------------------------
    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http":
            if scope["path"].startswith(ADMIN_PREFIX):
                await self._admin(scope, receive, send)
                return
            await self._http(scope, receive, send)
        elif kind == "websocket":  # e.g. OpenAI's Realtime API: not proxied (docs/proxy.md)
            await send({"type": "websocket.close", "code": 1008, "reason": "tokentop proxy does not proxy WebSockets"})
        elif kind == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        counters = self.counters
        counters.requests += 1
        headers: dict[bytes, bytes] = dict(scope["headers"])
        try:
            route = resolve(
                scope["method"], scope["path"], (scope.get("raw_path") or scope["path"].encode()).decode("latin-1"),
                scope.get("query_string", b"").decode("latin-1"), self.settings.upstreams,
                b"anthropic-version" in headers,
            )
        except UnknownUpstream as exc:
            counters.unknown_upstream += 1
            await self._answer(send, "openai", 404, str(exc))
            return
        counters.by_upstream[route.upstream] = counters.by_upstream.get(route.upstream, 0) + 1
        if self.inflight >= self.settings.max_inflight:
            counters.busy += 1
            await self._answer(send, route.family, 503, f"tokentop proxy: {self.inflight} requests in flight, "
                               f"the limit ([proxy] max_inflight = {self.settings.max_inflight}); try again shortly")
            return
        self.inflight += 1
        try:
            if route.metered:
                counters.metered += 1
                await self._metered(scope, receive, send, route, headers)
            else:
                counters.passthrough += 1
                await self._passthrough(scope, receive, send, route, headers)
        finally:
            self.inflight -= 1

    # -- metered requests -------------------------------------------------------------------------
    async def _metered(self, scope: Scope, receive: Receive, send: Send, route: Route, headers: dict[bytes, bytes]) -> None:
        t0 = time.perf_counter()
        limit = self.settings.max_request_bytes
        length = headers.get(b"content-length")
        if length is not None and length.isdigit() and int(length) > limit:
            self.counters.too_large += 1
            await self._answer(send, route.family, 413, self._too_large(int(length)))
            return
        body = await self._read_body(receive, limit)
        if body is None:  # client went away before sending its request: nothing reached the upstream
            self.counters.cancelled += 1
            return
        if isinstance(body, int):
            self.counters.too_large += 1
            await self._answer(send, route.family, 413, self._too_large(body))
            return
        obj = loads(body) if body[:1] in (b"{", b" ", b"\n", b"\t", b"\r") else None
        if not isinstance(obj, dict):
            obj = None
        requested = _clip(obj.get("model"), 512) if obj is not None and isinstance(obj.get("model"), str) else None
        streaming = obj is not None and obj.get("stream") is True and route.protocol in _STREAMING_PROTOCOLS
        strip = False
        if streaming and route.protocol in ("chat", "completions") and self.settings.include_usage:
            body, strip = _with_include_usage(body, obj)
        agent, session, project = identify(headers, obj if route.protocol == "messages" else None, route.upstream, scope.get("client"))
        out = _Outcome(route, t0, agent, session, project, requested)

        block = self.gate.check(GateRequest(agent, session, requested, route.upstream, project))
        if block is not None:
            self.counters.blocked += 1
            self.refused[block.rule] = self.refused.get(block.rule, 0) + 1
            out.status_code = block.status
            out.failed = True
            self._record(out)
            await self._answer(send, route.family, block.status, block.text(), retry=block.retry)
            return

        forward = [(k, v) for k, v in scope["headers"] if k not in _DROP_REQUEST and not k.startswith(_OWN_PREFIX) and k != b"accept-encoding"]
        _drop_connection_tokens(forward, headers)
        forward.append(_IDENTITY)
        watch = _Watch(receive)
        response: httpx.Response | None = None
        try:
            try:
                response = await self.upstreams.send(route.upstream, scope["method"], route.url, forward, body)
            except httpx.HTTPError as exc:
                watch.disarm()
                status, message = self._failure(route, exc)
                out.status_code = status
                out.failed = True
                self.counters.upstream_failures += 1
                self._record(out)
                await self._answer(send, route.family, status, message, retry=True)
                return
            out.status_code = response.status_code
            out.request_id = _request_id(response, route)
            if response.status_code >= 400:
                self.counters.upstream_errors += 1
            await self._relay(send, response, route, out, strip, watch)
        except asyncio.CancelledError:
            if not watch.gone:
                out.failed = True
                self._record(out)
                raise
            asyncio.current_task().uncancel()  # type: ignore[union-attr]
            self.counters.cancelled += 1
            out.failed = True
            if response is not None:
                await response.aclose()
            self._record(out)
        finally:
            watch.disarm()

    async def _relay(self, send: Send, response: httpx.Response, route: Route, out: _Outcome, strip: bool, watch: _Watch) -> None:
        """Pass the upstream's answer back as it comes, metering it; record the outcome."""
        ctype = response.headers.get("content-type", "")
        sse = ctype.startswith("text/event-stream")
        encoding = response.headers.get("content-encoding", "").encode("latin-1")
        decode = None
        decode_for_client = False
        if encoding and encoding.lower() != b"identity":
            decode = _decoder(encoding)
            # the proxy rewrites this stream, so the client gets it decoded; otherwise as sent
            decode_for_client = decode is not None and strip and sse
        meter = make_meter(route.protocol, sse, self.settings.max_parse_bytes, strip=strip and sse)
        out.meter = meter
        drop = _DROP_RESPONSE
        changes_length = decode_for_client or (strip and sse)
        resp_headers = [
            (k, v) for k, v in response.headers.raw
            if k.lower() not in drop and not (changes_length and k.lower() in (b"content-length", b"content-encoding"))
        ]
        await send({"type": "http.response.start", "status": response.status_code, "headers": resp_headers})
        meterable = decode is not None or not encoding or encoding.lower() == b"identity"
        try:
            async for chunk in response.stream:  # type: ignore[union-attr]
                if not meterable:
                    await send({"type": "http.response.body", "body": chunk, "more_body": True})
                    continue
                plain = decode(chunk) if decode is not None else chunk
                forwarded = meter.feed(plain)
                data = forwarded if decode_for_client or decode is None else chunk
                if data:
                    await send({"type": "http.response.body", "body": data, "more_body": True})
        except httpx.HTTPError as exc:  # the upstream broke off (or went silent) mid-answer
            await response.aclose()
            out.failed = True
            self.counters.aborted += 1
            watch.disarm()
            meter.finish()
            self._record(out)
            log.info("proxy: %s answer broke off: %s", route.upstream, type(exc).__name__)
            raise UpstreamAborted(f"upstream {route.upstream} broke off the response ({type(exc).__name__})") from None
        if meterable:
            rest = meter.finish()
        else:  # an encoding the proxy cannot read (brotli without the module): passed, not metered
            rest = b""
            meter.complete = True
            meter.unreadable += 1
        watch.disarm()
        await send({"type": "http.response.body", "body": rest if (decode_for_client or decode is None) else b"", "more_body": False})
        await response.aclose()
        self._record(out)

    # -- passthrough -------------------------------------------------------------------------------
    async def _passthrough(self, scope: Scope, receive: Receive, send: Send, route: Route, headers: dict[bytes, bytes]) -> None:
        first = await receive()
        if first["type"] == "http.disconnect":
            self.counters.cancelled += 1
            return
        content: bytes | Any
        keep_length = False
        if not first.get("more_body"):
            content = first.get("body", b"")
        else:
            keep_length = b"content-length" in headers

            async def stream_body() -> Any:
                yield first.get("body", b"")
                while True:
                    message = await receive()
                    if message["type"] == "http.disconnect":
                        raise _ClientGone
                    yield message.get("body", b"")
                    if not message.get("more_body"):
                        return

            content = stream_body()
        forward = [(k, v) for k, v in scope["headers"]
                   if (k not in _DROP_REQUEST or (keep_length and k == b"content-length")) and not k.startswith(_OWN_PREFIX)]
        _drop_connection_tokens(forward, headers)
        try:
            response = await self.upstreams.send(route.upstream, scope["method"], route.url, forward, content)
        except _ClientGone:
            self.counters.cancelled += 1
            return
        except httpx.HTTPError as exc:
            status, message = self._failure(route, exc)
            self.counters.upstream_failures += 1
            await self._answer(send, route.family, status, message, retry=True)
            return
        watch = _Watch(receive)
        try:
            await send({"type": "http.response.start", "status": response.status_code,
                        "headers": [(k, v) for k, v in response.headers.raw if k.lower() not in _DROP_RESPONSE]})
            try:
                async for chunk in response.stream:  # type: ignore[union-attr]
                    await send({"type": "http.response.body", "body": chunk, "more_body": True})
            except httpx.HTTPError:
                self.counters.aborted += 1
                watch.disarm()
                raise UpstreamAborted(f"upstream {route.upstream} broke off the response") from None
            watch.disarm()
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        except asyncio.CancelledError:
            if not watch.gone:
                raise
            asyncio.current_task().uncancel()  # type: ignore[union-attr]
            self.counters.cancelled += 1
        finally:
            watch.disarm()
            await response.aclose()

    # -- helpers ----------------------------------------------------------------------------------
    async def _read_body(self, receive: Receive, limit: int) -> bytes | int | None:
        """The whole body; its size so far (an ``int``) once it passes ``limit``; ``None`` when the
        client disconnected."""
        parts: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return None
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                return size
            parts.append(chunk)
            if not message.get("more_body"):
                return parts[0] if len(parts) == 1 else b"".join(parts)

    def _too_large(self, size: int) -> str:
        return (f"tokentop proxy: request body of {size} bytes or more is over the limit of "
                f"{self.settings.max_request_bytes} bytes ([proxy] max_request_bytes)")

    def _failure(self, route: Route, exc: httpx.HTTPError) -> tuple[int, str]:
        """Status and message for an upstream that could not be asked. The message names the
        upstream and the failure, never a header."""
        where = f"upstream {route.upstream!r} ({self.settings.upstreams[route.upstream]})"
        if isinstance(exc, httpx.PoolTimeout):
            return 503, (f"tokentop proxy: all {self.settings.max_upstream_connections} upstream connections are busy "
                         f"([proxy] max_upstream_connections); waited {self.settings.pool_timeout_s:g} s")
        if isinstance(exc, httpx.ConnectTimeout):
            return 504, f"tokentop proxy: timed out connecting to {where} after {self.settings.connect_timeout_s:g} s"
        if isinstance(exc, httpx.TimeoutException):
            return 504, f"tokentop proxy: {where} did not answer within {self.settings.read_timeout_s:g} s ([proxy] read_timeout_s)"
        reason = str(exc) or type(exc).__name__
        return 502, f"tokentop proxy: cannot reach {where}: {reason}"

    async def _answer(self, send: Send, family: Family, status: int, message: str, *, retry: bool = True) -> None:
        body = error_body(family, status, message)
        await send({"type": "http.response.start", "status": status, "headers": error_headers(body, retry=retry)})
        await send({"type": "http.response.body", "body": body, "more_body": False})

    def _record(self, out: _Outcome) -> None:
        """Turn one outcome into an event on the pump (never raises, never waits)."""
        meter = out.meter
        usage = meter.usage if meter is not None else None
        status = "ok"
        if out.failed or out.status_code >= 400 or out.status_code == 0:
            status = "error"
        elif meter is not None and (meter.error or not meter.complete):
            status = "error"
        if meter is not None and usage is None and out.status_code < 400:
            self.counters.usage_missing += 1
        route = out.route
        if out.request_id:
            if route.protocol == "messages":
                event_id = f"claude:{out.request_id}"
            else:
                event_id = f"{route.upstream}:{out.request_id}"
        else:
            event_id = uuid.uuid4().hex
        # ts = when the answer ended: a long stream's tokens then count in the live rates the moment
        # they are known (stamped with its start, a 5-minute stream would land outside every window)
        now = self.clock()
        obj: dict[str, Any] = {
            "id": event_id, "ts": now, "agent": out.agent, "session": out.session, "project": out.project,
            "host": self.host, "provider": route.upstream,
            "model": (meter.model if meter is not None and meter.model else None) or out.requested_model,
            "latency_ms": round((time.perf_counter() - out.t0) * 1000.0, 3), "status": status, "source": SOURCE,
        }
        if usage is not None:
            obj.update(usage.fields())
        try:
            event = parse_event(obj, now=now)
        except EventError as exc:
            self.counters.invalid_events += 1
            log.error("proxy: could not record a %s request: %s", route.upstream, exc)
            return
        self.pump.put(event)

    # -- the proxy's own routes ---------------------------------------------------------------------
    def status(self) -> dict[str, Any]:
        data = {
            "listen": self.settings.listen,
            "started_at": self.started_at,
            "inflight": self.inflight,
            "upstreams": dict(self.settings.upstreams),
            "counters": self.counters.to_json(),
            "events": self.pump.status(),
            "blocks": [e.to_json() for e in self.blocks.entries()],
            "refused_by_rule": dict(self.refused),
        }
        if self.status_extra is not None:
            data.update(self.status_extra())
        return data

    async def _admin(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = dict(scope["headers"])
        path = scope["path"][len(ADMIN_PREFIX):].rstrip("/")
        method = scope["method"]
        body = await self._read_body(receive, 64 * 1024)

        async def reply(status: int, data: Any) -> None:
            raw = json.dumps(data).encode()
            await send({"type": "http.response.start", "status": status,
                        "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(raw)).encode())]})
            await send({"type": "http.response.body", "body": raw, "more_body": False})

        if b"origin" in headers:
            await reply(403, {"error": "requests from browsers (an Origin header) are refused"})
            return
        if path == "healthz" and method == "GET":
            await reply(200, {"ok": True, "service": "tokentop-proxy"})
            return
        given = headers.get(b"x-tokentop-token", b"")
        if self.token is None or not given or not hmac.compare_digest(given, self.token.encode()):
            await reply(401, {"error": "send the local token as X-Tokentop-Token (see `tokentop config path`: the state dir's token file)"})
            return
        if path == "status" and method == "GET":
            await reply(200, self.status())
        elif path == "blocks" and method == "GET":
            await reply(200, {"blocks": [e.to_json() for e in self.blocks.entries()]})
        elif path in ("block", "unblock") and method == "POST":
            data = loads(body) if isinstance(body, bytes) and body else None
            if not isinstance(data, dict):
                await reply(400, {"error": "send a JSON object: {\"scope\": \"session\", \"key\": \"...\"}"})
                return
            scope_name = data.get("scope")
            key = data.get("key") or ""
            if not isinstance(scope_name, str) or not isinstance(key, str):
                await reply(400, {"error": "scope and key must be strings"})
                return
            try:
                if path == "block":
                    until = data.get("until")
                    message = data.get("message")
                    entry = self.blocks.block(
                        scope_name, key,  # type: ignore[arg-type]
                        rule=str(data.get("rule") or "block-list"),
                        message=message if isinstance(message, str) and message else None,
                        until=float(until) if isinstance(until, (int, float)) else None,
                    )
                    await reply(200, {"blocked": entry.to_json()})
                else:
                    await reply(200, {"lifted": self.blocks.unblock(scope_name, key)})  # type: ignore[arg-type]
            except ValueError as exc:
                await reply(400, {"error": str(exc)})
        else:
            await reply(404, {"error": f"no route {method} {ADMIN_PREFIX}{path}"})


def _drop_connection_tokens(forward: list[tuple[bytes, bytes]], headers: dict[bytes, bytes]) -> None:
    """Remove headers the client named in ``Connection`` (they were for the proxy, not upstream)."""
    listed = headers.get(b"connection")
    if not listed:
        return
    names = {n.strip().lower() for n in listed.split(b",")} - {b"keep-alive", b"close"}
    if names:
        forward[:] = [(k, v) for k, v in forward if k not in names]


def _request_id(response: httpx.Response, route: Route) -> str | None:
    h = response.headers
    raw = h.get("request-id") or h.get("x-request-id") if route.family == "anthropic" else h.get("x-request-id") or h.get("request-id")
    return _clip(raw, 400)


_INCLUDE_USAGE: Final = b'"stream_options":{"include_usage":true},'


def _with_include_usage(body: bytes, obj: dict[str, Any]) -> tuple[bytes, bool]:
    """The request with ``stream_options.include_usage`` set, and whether the proxy added it
    (then the client did not ask for the usage chunk, and it is stripped again)."""
    options = obj.get("stream_options")
    if isinstance(options, dict) and options.get("include_usage") is True:
        return body, False
    if "stream_options" not in obj:
        i = body.find(b"{")
        return body[: i + 1] + _INCLUDE_USAGE + body[i + 1:], True
    obj["stream_options"] = {**(options if isinstance(options, dict) else {}), "include_usage": True}
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode(), True
