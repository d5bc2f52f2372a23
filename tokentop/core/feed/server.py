"""The feed's HTTP and WebSocket surface (Starlette on uvicorn). Contract: ``docs/api.md``.

Routes here: ``POST /v1/events``, ``GET /v1/snapshot``, ``GET /v1/requests``, ``WS /v1/stream``,
``WS /v1/publish``, ``GET /healthz``. The feed's other parts (OTLP receiver, control API) hand theirs
to :class:`FeedApp` as arguments; :mod:`tokentop.core.feed.assemble` lists which parts a feed has.

Security: any request with an ``Origin`` header is refused with 403 (no browser may post here);
any request over TCP whose ``Host`` is not this machine's loopback, an IP address or a configured
name is refused with 403 too (DNS rebinding, :class:`HostGuard`); the local token guards control
routes, and ingest too when ``ingest_requires_token`` is set.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Awaitable, Callable, Coroutine, Final, Iterable, Iterator, Mapping, Sequence

import orjson

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route, WebSocketRoute
from starlette.types import ASGIApp, Receive, Scope, Send
from starlette.websockets import WebSocket, WebSocketDisconnect

from tokentop.core.feed.auth import token_matches
from tokentop.core.feed.service import FeedService, IngestResult
from tokentop.core.feed.stream import DEFAULT_SHAPE, StreamFrame, StreamShape, StreamShapeError, encode_snapshot

if TYPE_CHECKING:
    from tokentop.config import Config

log = logging.getLogger("tokentop.feed")

#: A task the feed runs while it serves (started with the app, cancelled when it stops).
BackgroundJob = Callable[[], Coroutine[Any, Any, None]]
#: Answers a ``WS /v1/publish`` message that carries a ``"type"`` (hello, control acks); ``None``: not mine.
PublishMetaHook = Callable[[WebSocket, dict[str, Any]], Awaitable[dict[str, Any] | None]]
#: Told when a publish socket closes.
PublishCloseHook = Callable[[WebSocket], Awaitable[None]]


@dataclass
class FeedSettings:
    max_body_bytes: int = 1024 * 1024
    ingest_requires_token: bool = False
    stream_interval_s: float = 1.0
    max_stream_rows: int = 2000
    #: a subscriber that cannot take a snapshot within this many seconds is dropped
    send_timeout_s: float = 10.0
    #: frames one publish socket may send before it is answered with an error and closed
    max_ws_message_bytes: int = 1024 * 1024
    #: ``Host`` names answered besides loopback names and IP addresses (:class:`HostGuard`)
    allowed_hosts: tuple[str, ...] = ()

    @classmethod
    def from_config(cls, cfg: Config) -> FeedSettings:
        """The ``[feed]`` section (the other fields keep their defaults)."""
        s = cfg.feed
        return cls(max_body_bytes=s.max_body_bytes, ingest_requires_token=s.ingest_requires_token,
                   stream_interval_s=float(s.stream_interval_s), max_stream_rows=s.max_stream_rows,
                   allowed_hosts=tuple(s.allowed_hosts))


@dataclass(frozen=True)
class TokenGate:
    """The local-token check every guarded route makes (control routes; ingest when required)."""

    token: str | None

    def authorised(self, headers: Mapping[str, str], query: Mapping[str, str] | None = None) -> bool:
        return self.token is not None and token_matches(self.token, headers, query)

    def refusal(self, request: Request) -> Response | None:
        """``None`` when the request carries the local token, else the 401/403 answer to send."""
        if self.token is None:
            return JSONResponse({"error": "control is disabled: this feed has no local token"}, 403)
        if not self.authorised(request.headers, request.query_params):
            return JSONResponse({"error": "missing or wrong local token (Authorization: Bearer <token>)"}, 401)
        return None


class BodyTooLarge(Exception):
    pass


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, refusing (``BodyTooLarge``) as soon as it exceeds ``limit`` bytes."""
    declared = request.headers.get("content-length")
    if declared is not None:
        try:
            if int(declared) > limit:
                raise BodyTooLarge
        except ValueError:
            pass
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge
        chunks.append(chunk)
    return b"".join(chunks)


def split_payload(body: bytes | str) -> Iterator[tuple[int | None, Any]]:
    """One JSON object, a JSON array, or NDJSON → (line, parsed) pairs; a bad line yields an error."""
    return iter(split_payload_list(body))


#: bytes → "0" for ASCII digits, " " for everything else: a run of 20 "0"s marks an integer that
#: may not fit 64 bits (see :func:`_orjson_safe`)
_DIGIT_MAP: Final = bytes(48 if 48 <= i < 58 else 32 for i in range(256))
_TWENTY_DIGITS: Final = b"0" * 20


def _orjson_safe(raw: bytes) -> bool:
    """True when orjson gives exactly what ``json`` would for this payload.

    orjson refuses what only the standard library accepts (NaN, 1e400, lone surrogates: those
    fall back per line), but reads an integer beyond 64 bits as a float, where ``json`` keeps the
    exact int (a numeric id must stay itself). Such a number has 20 or more digits in a row; a
    payload with any run that long (even inside a string) is parsed by ``json`` alone."""
    return _TWENTY_DIGITS not in raw.translate(_DIGIT_MAP)


def split_payload_list(body: bytes | str) -> list[tuple[int | None, Any]]:
    """:func:`split_payload` as a list (the ingest hot path: no generator step per event)."""
    raw = body if isinstance(body, bytes) else body.encode("utf-8", errors="surrogatepass")
    text = body.decode("utf-8", errors="replace") if isinstance(body, bytes) else body
    stripped = text.strip()
    if not stripped:
        return []
    fast = _orjson_safe(raw)
    if stripped[0] in "[{":
        try:
            if not fast:
                raise orjson.JSONDecodeError("not attempted", "", 0)
            whole = orjson.loads(stripped)
        except orjson.JSONDecodeError:
            try:
                whole = json.loads(stripped)
            except (json.JSONDecodeError, RecursionError):
                # NDJSON (several objects), broken JSON or a line nested too deeply: line by line
                whole = _NOT_ONE_DOCUMENT
        if whole is not _NOT_ONE_DOCUMENT:
            if isinstance(whole, list):
                return list(enumerate(whole, 1))
            return [(1, whole)]
    out: list[tuple[int | None, Any]] = []
    append = out.append
    loads = orjson.loads if fast else json.loads
    decode_error = json.JSONDecodeError  # orjson's error is a subclass
    # Each line is parsed on its own (never joined with its neighbours), so a line's number is
    # always its own; orjson first, then the standard library for any line orjson refuses (for
    # its error message, or for the values only it accepts).
    for i, line in enumerate(text.splitlines(), 1):
        try:
            append((i, loads(line)))
            continue
        except decode_error:
            pass
        line = line.strip()
        if not line:
            continue
        try:
            append((i, json.loads(line)))
        except json.JSONDecodeError as exc:
            append((i, _BadLine(f"not valid JSON: {exc.msg} at column {exc.colno}")))
        except RecursionError:
            append((i, _BadLine(NESTED_TOO_DEEPLY)))
    return out


#: The answer to JSON nested deeper than the parsers go (orjson stops at 1024 levels, the standard
#: library at Python's recursion limit): a 400 / a rejected line, never a crash of the request.
NESTED_TOO_DEEPLY: Final = "not valid JSON: nested too deeply (events are flat objects)"


_NOT_ONE_DOCUMENT: Final = object()


class _BadLine:
    __slots__ = ("error",)

    def __init__(self, error: str) -> None:
        self.error = error


async def ingest_payload(service: FeedService, body: bytes | str) -> IngestResult:
    result = IngestResult()
    good = split_payload_list(body)
    if any(type(obj) is _BadLine for _, obj in good):
        bad = [(line, obj) for line, obj in good if type(obj) is _BadLine]
        good = [(line, obj) for line, obj in good if type(obj) is not _BadLine]
        for line, obj in bad:
            result.reject(line, obj.error)
    service.counters.rejected += result.rejected
    if good:
        try:
            result.merge(await service.ingest_objects(good))
        except RecursionError:  # a value nested so deep that checking it recursed too far
            result.merge(await _ingest_one_by_one(service, good))
    return result


async def _ingest_one_by_one(service: FeedService, objs: list[tuple[int | None, Any]]) -> IngestResult:
    """:meth:`FeedService.ingest_objects` for a body where one object's check hit the recursion
    limit (nothing of the body was stored yet: checks come before storage): each object is checked
    on its own, the ones that cannot be are rejected, the rest ingested."""
    result = IngestResult()
    events = []
    for line, obj in objs:
        try:
            events.extend(service.parse_objects([(line, obj)], result))
        except RecursionError:
            result.reject(line, NESTED_TOO_DEEPLY)
    service.counters.rejected += result.rejected
    if events:
        result.merge(await service.ingest_events(events))
    return result


class SnapshotHub:
    """Latest frame plus a wake-up for subscribers; slow ones simply skip frames.

    A frame is serialised once per subscription shape (see :mod:`tokentop.core.feed.stream`),
    not once per subscriber."""

    def __init__(self) -> None:
        self.seq = 0
        self.latest: StreamFrame | None = None
        self._changed = asyncio.Condition()
        self.subscribers = 0

    async def publish(self, payload: StreamFrame) -> None:
        async with self._changed:
            self.seq += 1
            payload.seq = self.seq
            self.latest = payload
            self._changed.notify_all()

    async def wait_newer(self, seq: int) -> tuple[int, StreamFrame]:
        async with self._changed:
            await self._changed.wait_for(lambda: self.seq > seq)
            return self.seq, self.latest  # type: ignore[return-value]


class OriginGuard:
    """403 for any HTTP or WebSocket request that carries an ``Origin`` header."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket"):
            for name, _ in scope.get("headers", ()):
                if name == b"origin":
                    if scope["type"] == "http":
                        resp = JSONResponse({"error": "requests from browsers (Origin header) are refused"}, 403)
                        await resp(scope, receive, send)
                    else:
                        await send({"type": "websocket.http.response.start", "status": 403, "headers": []})
                        await send({"type": "websocket.http.response.body", "body": b"Origin refused"})
                    return
        await self.app(scope, receive, send)


#: ``Host`` names that are this machine whatever DNS says (IP addresses are always answered too)
LOOPBACK_NAMES: Final = frozenset({"localhost"})


def host_name(header: str) -> str:
    """The name in a ``Host`` header: no port, no IPv6 brackets, lower case, no trailing dot."""
    value = header.strip().lower()
    if value.startswith("["):
        return value[1 : value.find("]")] if "]" in value else value[1:]
    if value.count(":") == 1:
        value = value.split(":", 1)[0]
    return value.rstrip(".")


def is_ip_address(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


class HostGuard:
    """403 for any HTTP or WebSocket request over TCP whose ``Host`` names neither this machine's
    loopback (``localhost``), an IP address, nor one of ``allowed`` names.

    DNS rebinding: a web page at ``http://evil.example:7411`` re-points its own name at 127.0.0.1
    and reads the feed as a same-origin page (the ``Origin`` rule does not see a same-origin
    ``GET``). Its requests still carry ``Host: evil.example:7411``: a name only the page's owner
    controls. An IP address cannot be rebound, so ``Host: 127.0.0.1:7411`` or the address of a
    feed listening on the network is always answered; other names must be configured
    (``[feed] allowed_hosts``: exact names, ``*.example.com`` for a domain's hosts, ``*`` for any).
    Requests over a Unix socket (no TCP address) are not checked: browsers cannot reach them.
    """

    def __init__(self, app: ASGIApp, allowed: Iterable[str] = ()) -> None:
        self.app = app
        names = [host_name(a) for a in allowed]
        self.any = "*" in names
        self.names = frozenset(n for n in names if not n.startswith("*.")) | LOOPBACK_NAMES
        #: ``.example.com`` for each ``*.example.com``
        self.suffixes = tuple(n[1:] for n in names if n.startswith("*."))

    def allows(self, header: str) -> bool:
        name = host_name(header)
        return self.any or name in self.names or name.endswith(self.suffixes) or is_ip_address(name)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        # uvicorn gives a Unix socket's requests ``server = (path, None)``, a TCP socket's ``(host, port)``
        server = scope.get("server")
        if scope["type"] in ("http", "websocket") and server is not None and server[1] is not None and not self.any:
            for name, value in scope.get("headers", ()):
                if name == b"host":
                    host = value.decode("latin-1")
                    if not self.allows(host):
                        await self._refuse(scope, receive, send, host)
                        return
        await self.app(scope, receive, send)

    @staticmethod
    async def _refuse(scope: Scope, receive: Receive, send: Send, host: str) -> None:
        message = (f"Host {host[:200]!r} is not allowed: this feed answers requests for localhost, an IP "
                   "address or a name in [feed] allowed_hosts (a web page whose name points at this machine "
                   "must not read it)")
        if scope["type"] == "http":
            await JSONResponse({"error": message}, 403)(scope, receive, send)
        else:
            await send({"type": "websocket.http.response.start", "status": 403,
                        "headers": [(b"content-type", b"text/plain; charset=utf-8")]})
            await send({"type": "websocket.http.response.body", "body": message.encode()})


class FeedApp:
    """The ASGI application around one :class:`FeedService`.

    ``routes`` are added after the feed's own; ``background`` jobs run while it serves;
    ``publish_meta`` hooks answer typed messages on ``WS /v1/publish`` (the first non-``None``
    answer wins) and ``publish_closed`` hooks hear of each publish socket that closes.
    """

    def __init__(
        self,
        service: FeedService,
        settings: FeedSettings | None = None,
        token: str | None = None,
        *,
        routes: Sequence[BaseRoute] = (),
        background: Sequence[BackgroundJob] = (),
        publish_meta: Sequence[PublishMetaHook] = (),
        publish_closed: Sequence[PublishCloseHook] = (),
    ) -> None:
        self.service = service
        self.settings = settings or FeedSettings()
        self.gate = TokenGate(token)
        self.hub = SnapshotHub()
        self._ticker: asyncio.Task[None] | None = None
        self.background: tuple[BackgroundJob, ...] = tuple(background)
        self.publish_meta: tuple[PublishMetaHook, ...] = tuple(publish_meta)
        self.publish_closed: tuple[PublishCloseHook, ...] = tuple(publish_closed)
        self._tasks: list[asyncio.Task[Any]] = []
        own: list[BaseRoute] = [
            Route("/healthz", self.healthz, methods=["GET"]),
            Route("/v1/events", self.post_events, methods=["POST"]),
            Route("/v1/snapshot", self.get_snapshot, methods=["GET"]),
            Route("/v1/requests", self.get_requests, methods=["GET"]),
            WebSocketRoute("/v1/stream", self.ws_stream),
            WebSocketRoute("/v1/publish", self.ws_publish),
        ]
        self.starlette = Starlette(routes=[*own, *routes], lifespan=self._lifespan)
        self.asgi: ASGIApp = HostGuard(OriginGuard(self.starlette), self.settings.allowed_hosts)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.asgi(scope, receive, send)

    # -- lifecycle -------------------------------------------------------------------------------
    def _lifespan(self, app: Starlette):  # noqa: ANN202
        feed = self

        class _Ctx:
            async def __aenter__(self) -> None:
                await feed.start()

            async def __aexit__(self, *exc: object) -> None:
                await feed.stop()

        return _Ctx()

    async def start(self) -> None:
        self.service.bind_loop(asyncio.get_running_loop())
        self._ticker = asyncio.create_task(self._tick(), name="tokentop-snapshot-ticker")
        for job in self.background:
            self._tasks.append(asyncio.create_task(job()))

    async def stop(self) -> None:
        for task in [self._ticker, *self._tasks]:
            if task is not None:
                task.cancel()
        for task in [self._ticker, *self._tasks]:
            if task is not None:
                try:
                    await task
                except (asyncio.CancelledError, Exception):
                    pass
        self._tasks.clear()

    async def _tick(self) -> None:
        evict_every = 30.0
        last_evict = 0.0
        while True:
            now = self.service.clock()
            if now - last_evict >= evict_every:
                self.service.aggregator.evict(now)
                last_evict = now
            if self.hub.subscribers:
                frame = StreamFrame(self.service.snapshot(now), self.settings.max_stream_rows)
                await self.hub.publish(frame)
            await asyncio.sleep(self.settings.stream_interval_s)

    def snapshot_json(self, now: float | None = None, shape: StreamShape = DEFAULT_SHAPE) -> str:
        return encode_snapshot(self.service.snapshot(now), shape, self.settings.max_stream_rows)

    # -- routes ----------------------------------------------------------------------------------
    async def healthz(self, request: Request) -> Response:
        return JSONResponse({"ok": True, "service": "tokentop", "host": self.service.host})

    async def post_events(self, request: Request) -> Response:
        if self.settings.ingest_requires_token:
            denied = self.gate.refusal(request)
            if denied is not None:
                return denied
        try:
            body = await read_body(request, self.settings.max_body_bytes)
        except BodyTooLarge:
            return JSONResponse(
                {"error": f"request body exceeds {self.settings.max_body_bytes} bytes; send smaller batches"}, 413
            )
        result = await ingest_payload(self.service, body)
        headers = {}
        if "x-request-id" in request.headers:
            headers["x-request-id"] = request.headers["x-request-id"][:128]
        status = 202 if result.taken else 400
        if status == 400 and not result.errors:
            result.errors.append({"line": None, "error": "empty body: send a JSON object, a JSON array or NDJSON"})
        return JSONResponse(result.to_json(), status, headers=headers)

    async def get_snapshot(self, request: Request) -> Response:
        return Response(self.snapshot_json(), media_type="application/json")

    async def get_requests(self, request: Request) -> Response:
        q = request.query_params
        dim, key = q.get("view"), q.get("key")
        try:
            limit = max(1, min(int(q.get("limit", "50")), 1000))
            requests = self.service.recent_requests_json(dim, key, limit)
        except ValueError as exc:
            return JSONResponse({"error": str(exc)}, 400)
        return JSONResponse({"requests": requests})

    async def ws_stream(self, ws: WebSocket) -> None:
        await ws.accept()
        try:
            shape = StreamShape.from_query(ws.query_params)
        except StreamShapeError as exc:  # accepted first so the client can read why
            await ws.close(code=4400, reason=str(exc).encode()[:120].decode(errors="ignore"))
            return
        self.hub.subscribers += 1
        try:
            seq = self.hub.seq
            # the first frame is built now (the hub's may be a second old, or not there yet); a delta
            # stream's next frames are each the difference from the frame this subscriber got last
            base = StreamFrame(self.service.snapshot(), self.settings.max_stream_rows, seq)
            await ws.send_text(base.text(shape))
            while True:
                seq, frame = await self.hub.wait_newer(seq)
                text = frame.delta_text(shape, base) if shape.delta else frame.text(shape)
                await asyncio.wait_for(ws.send_text(text), self.settings.send_timeout_s)
                base = frame
        except (WebSocketDisconnect, asyncio.TimeoutError, RuntimeError, OSError):
            pass
        finally:
            self.hub.subscribers -= 1
            try:
                await ws.close()
            except Exception:
                pass

    async def ws_publish(self, ws: WebSocket) -> None:
        if self.settings.ingest_requires_token and not self.gate.authorised(ws.headers, ws.query_params):
            await ws.close(code=4401, reason="missing or wrong local token")
            return
        await ws.accept()
        seq = 0
        try:
            while True:
                message = await ws.receive()
                if message["type"] == "websocket.disconnect":
                    break
                data = message.get("text")
                if data is None:
                    raw = message.get("bytes") or b""
                    data = raw.decode("utf-8", errors="replace")
                seq += 1
                if len(data) > self.settings.max_ws_message_bytes:
                    await ws.send_json({"type": "error", "seq": seq, "error": f"message exceeds {self.settings.max_ws_message_bytes} bytes"})
                    continue
                meta = _meta_message(data)
                if meta is not None:
                    reply = await self.on_publish_meta(ws, meta)
                    if reply is not None:
                        await ws.send_json(reply)
                    continue
                result = await ingest_payload(self.service, data)
                await ws.send_json(dict(result.to_json(), type="ack", seq=seq))
        except WebSocketDisconnect:
            pass
        finally:
            await self.on_publish_closed(ws)

    # Typed messages on the publish socket (emitters that register a session and receive control
    # messages): answered by the hooks the feed was built with.
    async def on_publish_meta(self, ws: WebSocket, message: dict[str, Any]) -> dict[str, Any] | None:
        for hook in self.publish_meta:
            reply = await hook(ws, message)
            if reply is not None:
                return reply
        return {"type": "error", "error": f"unknown message type {message.get('type')!r}"}

    async def on_publish_closed(self, ws: WebSocket) -> None:
        for hook in self.publish_closed:
            try:
                await hook(ws)
            except Exception:
                log.exception("publish close hook failed")


def _meta_message(data: str) -> dict[str, Any] | None:
    """A publish frame that is one JSON object with a string ``type`` is a meta message, not an event."""
    s = data.lstrip()
    if not s.startswith("{") or '"type"' not in s[:200]:
        return None
    try:
        obj = json.loads(s)
    except (json.JSONDecodeError, RecursionError):
        return None  # not a meta message; as events it gets the precise answer
    if isinstance(obj, dict) and isinstance(obj.get("type"), str):
        return obj
    return None

