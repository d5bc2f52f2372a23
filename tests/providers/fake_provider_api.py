"""A fake OpenAI + Anthropic admin API: a real Starlette app served by uvicorn on 127.0.0.1.

It follows the documented schemas (formats.md §5–6): bucket widths 1m/1h/1d with the documented
page limits, empty buckets included, ``group_by`` (repeated keys for OpenAI, ``group_by[]`` for
Anthropic), opaque ``next_page`` cursors with ``has_more``, each provider's auth and error shape.
Data is a list of raw per-minute usage records and per-day cost records; the expected totals a
report must reproduce are computed straight from those records.

Failures are scripted: ``fail(status, retry_after=...)``, ``truncate()``, ``delay(seconds)``,
each consumed by the next matching request.
"""

from __future__ import annotations

import asyncio
import base64
import json
import re
import socket
import threading
import time
from collections import defaultdict, deque
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

WIDTH_S = {"1m": 60, "1h": 3600, "1d": 86400}
LIMITS = {"1m": (60, 1440), "1h": (24, 168), "1d": (7, 31)}  # (default, max)


@dataclass
class Usage:
    """One minute of one model's usage. Tokens are the provider-neutral parts."""

    ts: int
    model: str
    uncached: int = 0
    cache_read: int = 0
    cache_write_5m: int = 0
    cache_write_1h: int = 0
    output: int = 0
    requests: int = 1
    project: str = "proj_main"
    api_key: str = "key_main"
    service_tier: str = "standard"

    @property
    def input_total(self) -> int:
        return self.uncached + self.cache_read + self.cache_write_5m + self.cache_write_1h


@dataclass
class Cost:
    day: int  # UTC midnight
    usd: Decimal
    model: str = ""
    kind: str = "input"  # token type / line item suffix
    project: str = "proj_main"


@dataclass
class Failure:
    path: str  # substring of the request path
    status: int = 500
    retry_after: str | None = None
    truncate: bool = False
    delay_s: float = 0.0
    body: str | None = None


@dataclass
class ProviderData:
    key: str
    usage: list[Usage] = field(default_factory=list)
    costs: list[Cost] = field(default_factory=list)


def _dec(obj: Any) -> str:
    """JSON with Decimals written as exact JSON numbers."""
    marks: dict[str, str] = {}

    def default(o: Any) -> Any:
        if isinstance(o, Decimal):
            tag = f"__dec{len(marks)}__"
            marks[tag] = format(o, "f")
            return tag
        raise TypeError(type(o).__name__)

    text = json.dumps(obj, default=default)
    return re.sub(r'"(__dec\d+__)"', lambda m: marks[m.group(1)], text)


def _iso(ts: int) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _parse_iso(text: str) -> int:
    return int(datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp())


class FakeAPI:
    def __init__(self) -> None:
        self.openai = ProviderData("sk-admin-openai-TESTKEY-0123456789abcdef")
        self.anthropic = ProviderData("sk-ant-admin01-TESTKEY-0123456789abcdef")
        self.failures: deque[Failure] = deque()
        self.log: list[tuple[str, list[tuple[str, str]]]] = []
        #: Serve at most this many buckets per page whatever ``limit`` asks (forces many pages).
        self.page_cap: int | None = None
        self.app = Starlette(routes=[
            Route("/v1/organization/usage/completions", self.openai_usage),
            Route("/v1/organization/costs", self.openai_costs),
            Route("/v1/organizations/usage_report/messages", self.anthropic_usage),
            Route("/v1/organizations/cost_report", self.anthropic_costs),
        ])

    # -- scripting ------------------------------------------------------------------------------
    def fail(self, status: int = 500, *, path: str = "", retry_after: str | None = None, times: int = 1,
             body: str | None = None) -> None:
        for _ in range(times):
            self.failures.append(Failure(path, status=status, retry_after=retry_after, body=body))

    def truncate(self, *, path: str = "", times: int = 1) -> None:
        for _ in range(times):
            self.failures.append(Failure(path, status=200, truncate=True))

    def delay(self, seconds: float, *, path: str = "", times: int = 1) -> None:
        for _ in range(times):
            self.failures.append(Failure(path, status=200, delay_s=seconds))

    def requests_to(self, fragment: str) -> list[list[tuple[str, str]]]:
        return [q for p, q in self.log if fragment in p]

    # -- expected figures (straight from the raw records) -----------------------------------------
    def expected(self, provider: str, start: int, end: int) -> dict[str, Any]:
        data = getattr(self, provider)
        usage = [u for u in data.usage if start <= u.ts < end]
        costs = [c for c in data.costs if start <= c.day < end]
        return {
            "usd": sum((c.usd for c in costs), Decimal(0)),
            "requests": sum(u.requests for u in usage),
            "input_tokens": sum(u.input_total for u in usage),
            "output_tokens": sum(u.output for u in usage),
        }

    # -- plumbing -------------------------------------------------------------------------------
    async def _gate(self, request: Request, auth_ok: bool, error: Response) -> Response | Failure | None:
        self.log.append((request.url.path, list(request.query_params.multi_items())))
        if not auth_ok:
            return error
        for i, f in enumerate(self.failures):
            if f.path in request.url.path:
                del self.failures[i]
                if f.delay_s:
                    await asyncio.sleep(f.delay_s)
                if f.status != 200:
                    headers = {"retry-after": f.retry_after} if f.retry_after is not None else {}
                    return Response(f.body if f.body is not None else '{"error": {"message": "server error", "type": "server_error"}}',
                                    status_code=f.status, headers=headers, media_type="application/json")
                return f
        return None

    @staticmethod
    def _bad(provider: str, message: str, status: int = 400) -> Response:
        if provider == "openai":
            body = {"error": {"message": message, "type": "invalid_request_error", "param": None, "code": None}}
        else:
            body = {"type": "error", "error": {"type": "invalid_request_error", "message": message}}
        return Response(json.dumps(body), status_code=status, media_type="application/json")

    def _window(self, start: int, end: int, width: str, limit: int, page: str | None) -> tuple[list[int], str | None]:
        step = WIDTH_S[width]
        first = start - start % step
        if page:
            first = int(base64.b64decode(page.removeprefix("page_")).decode())
        starts = list(range(first, end, step))
        if self.page_cap:
            limit = min(limit, self.page_cap)
        if len(starts) > limit:
            nxt = "page_" + base64.b64encode(str(starts[limit]).encode()).decode()
            return starts[:limit], nxt
        return starts, None

    @staticmethod
    def _respond(payload: dict[str, Any], gate: Failure | None) -> Response:
        text = _dec(payload)
        if isinstance(gate, Failure) and gate.truncate:
            text = text[: len(text) // 2]
        return Response(text, media_type="application/json")

    @staticmethod
    def _limit(q: Any, width: str) -> int | str:
        default, top = LIMITS[width]
        raw = q.get("limit")
        if raw is None:
            return default
        if not raw.isdigit() or not 1 <= int(raw) <= top:
            return f"limit must be between 1 and {top} for bucket_width {width}"
        return int(raw)

    # -- OpenAI ---------------------------------------------------------------------------------
    def _openai_auth(self, request: Request) -> tuple[bool, Response]:
        got = request.headers.get("authorization", "")
        key = got.removeprefix("Bearer ")
        msg = f"Incorrect API key provided: {key}. You can find your API key at https://platform.openai.com/account/api-keys."
        body = {"error": {"message": msg, "type": "invalid_request_error", "param": None, "code": "invalid_api_key"}}
        return got == f"Bearer {self.openai.key}", Response(json.dumps(body), status_code=401, media_type="application/json")

    async def openai_usage(self, request: Request) -> Response:
        ok, err = self._openai_auth(request)
        gate = await self._gate(request, ok, err)
        if isinstance(gate, Response):
            return gate
        q = request.query_params
        width = q.get("bucket_width", "1d")
        if width not in WIDTH_S:
            return self._bad("openai", f"invalid bucket_width {width!r}")
        limit = self._limit(q, width)
        if isinstance(limit, str):
            return self._bad("openai", limit)
        if "start_time" not in q:
            return self._bad("openai", "start_time is required")
        start = int(q["start_time"])
        end = int(q.get("end_time") or time.time())
        group = q.getlist("group_by")
        dims = {"project_id": "project", "api_key_id": "api_key", "model": "model", "service_tier": "service_tier",
                "batch": None, "user_id": None}
        if any(g not in dims for g in group):
            return self._bad("openai", f"invalid group_by {group}")
        starts, nxt = self._window(start, end, width, limit, q.get("page"))
        step = WIDTH_S[width]
        data = []
        for b in starts:
            sums: dict[tuple, list[int]] = defaultdict(lambda: [0, 0, 0, 0, 0, 0])
            for u in self.openai.usage:
                if b <= u.ts < b + step and u.ts >= start:
                    k = tuple((g, getattr(u, dims[g]) if dims[g] else (False if g == "batch" else None)) for g in group)
                    s = sums[k]
                    s[0] += u.input_total; s[1] += u.cache_read; s[2] += u.cache_write_5m + u.cache_write_1h
                    s[3] += u.uncached; s[4] += u.output; s[5] += u.requests
            results = []
            for k, s in sums.items():
                r = {"object": "organization.usage.completions.result", "input_tokens": s[0], "input_cached_tokens": s[1],
                     "input_cache_write_tokens": s[2], "input_uncached_tokens": s[3], "output_tokens": s[4],
                     "input_audio_tokens": 0, "output_audio_tokens": 0, "num_model_requests": s[5],
                     "project_id": None, "user_id": None, "api_key_id": None, "model": None, "batch": None,
                     "service_tier": None}
                r.update(dict(k))
                results.append(r)
            data.append({"object": "bucket", "start_time": b, "end_time": b + step, "results": results})
        return self._respond({"object": "page", "data": data, "has_more": nxt is not None, "next_page": nxt}, gate)

    async def openai_costs(self, request: Request) -> Response:
        ok, err = self._openai_auth(request)
        gate = await self._gate(request, ok, err)
        if isinstance(gate, Response):
            return gate
        q = request.query_params
        if q.get("bucket_width", "1d") != "1d":
            return self._bad("openai", "costs support bucket_width 1d only")
        raw = q.get("limit")
        limit = int(raw) if raw else 7
        if not 1 <= limit <= 180:
            return self._bad("openai", "limit must be between 1 and 180")
        start = int(q["start_time"])
        end = int(q.get("end_time") or time.time())
        group = q.getlist("group_by")
        starts, nxt = self._window(start, end, "1d", limit, q.get("page"))
        data = []
        for b in starts:
            sums: dict[tuple, Decimal] = defaultdict(Decimal)
            for c in self.openai.costs:
                if c.day == b:
                    k = []
                    if "line_item" in group:
                        k.append(("line_item", f"{c.model}, {c.kind}" if c.model else c.kind))
                    if "project_id" in group:
                        k.append(("project_id", c.project))
                    sums[tuple(k)] += c.usd
            results = []
            for k, v in sums.items():
                r = {"object": "organization.costs.result", "amount": {"value": v, "currency": "usd"},
                     "line_item": None, "project_id": None, "api_key_id": None, "quantity": None, "quantity_unit": None}
                r.update(dict(k))
                results.append(r)
            data.append({"object": "bucket", "start_time": b, "end_time": b + 86400, "results": results})
        return self._respond({"object": "page", "data": data, "has_more": nxt is not None, "next_page": nxt}, gate)

    # -- Anthropic ------------------------------------------------------------------------------
    def _anthropic_auth(self, request: Request) -> tuple[bool, Response]:
        body = {"type": "error", "error": {"type": "authentication_error", "message": "invalid x-api-key"}}
        ok = request.headers.get("x-api-key") == self.anthropic.key and request.headers.get("anthropic-version") == "2023-06-01"
        return ok, Response(json.dumps(body), status_code=401, media_type="application/json")

    async def anthropic_usage(self, request: Request) -> Response:
        ok, err = self._anthropic_auth(request)
        gate = await self._gate(request, ok, err)
        if isinstance(gate, Response):
            return gate
        q = request.query_params
        width = q.get("bucket_width", "1d")
        if width not in WIDTH_S:
            return self._bad("anthropic", f"invalid bucket_width {width!r}")
        limit = self._limit(q, width)
        if isinstance(limit, str):
            return self._bad("anthropic", limit)
        if "starting_at" not in q:
            return self._bad("anthropic", "starting_at is required")
        if q.getlist("group_by"):
            return self._bad("anthropic", "use group_by[] (bracket syntax)")
        start = _parse_iso(q["starting_at"])
        end = _parse_iso(q["ending_at"]) if "ending_at" in q else int(time.time())
        group = q.getlist("group_by[]")
        dims = {"model": "model", "workspace_id": "project", "api_key_id": "api_key", "service_tier": "service_tier"}
        if any(g not in dims for g in group):
            return self._bad("anthropic", f"invalid group_by[] {group}")
        starts, nxt = self._window(start, end, width, limit, q.get("page"))
        step = WIDTH_S[width]
        data = []
        for b in starts:
            sums: dict[tuple, list[int]] = defaultdict(lambda: [0, 0, 0, 0, 0])
            for u in self.anthropic.usage:
                if b <= u.ts < b + step:
                    k = tuple((g, getattr(u, dims[g])) for g in group)
                    s = sums[k]
                    s[0] += u.uncached; s[1] += u.cache_read; s[2] += u.cache_write_5m; s[3] += u.cache_write_1h; s[4] += u.output
            results = []
            for k, s in sums.items():
                r = {"uncached_input_tokens": s[0], "cache_read_input_tokens": s[1],
                     "cache_creation": {"ephemeral_5m_input_tokens": s[2], "ephemeral_1h_input_tokens": s[3]},
                     "output_tokens": s[4], "server_tool_use": {"web_search_requests": 0},
                     "model": None, "api_key_id": None, "workspace_id": None, "account_id": None,
                     "service_account_id": None, "service_tier": None, "context_window": None, "inference_geo": None}
                r.update(dict(k))
                results.append(r)
            data.append({"starting_at": _iso(b), "ending_at": _iso(b + step), "results": results})
        return self._respond({"data": data, "has_more": nxt is not None, "next_page": nxt}, gate)

    async def anthropic_costs(self, request: Request) -> Response:
        ok, err = self._anthropic_auth(request)
        gate = await self._gate(request, ok, err)
        if isinstance(gate, Response):
            return gate
        q = request.query_params
        if q.get("bucket_width", "1d") != "1d":
            return self._bad("anthropic", "cost_report supports bucket_width 1d only")
        raw = q.get("limit")
        limit = int(raw) if raw else 7
        if not 1 <= limit <= 31:
            return self._bad("anthropic", "limit must be between 1 and 31")
        start = _parse_iso(q["starting_at"])
        end = _parse_iso(q["ending_at"]) if "ending_at" in q else int(time.time())
        group = q.getlist("group_by[]")
        starts, nxt = self._window(start, end, "1d", limit, q.get("page"))
        data = []
        for b in starts:
            sums: dict[tuple, Decimal] = defaultdict(Decimal)
            for c in self.anthropic.costs:
                if c.day == b:
                    k = []
                    if "description" in group:
                        desc = f"{c.model} Usage - {c.kind}" if c.model else c.kind
                        k += [("description", desc), ("model", c.model or None),
                              ("cost_type", "tokens" if c.model else "web_search"),
                              ("token_type", c.kind if c.model else None)]
                    if "workspace_id" in group:
                        k.append(("workspace_id", c.project))
                    sums[tuple(k)] += c.usd
            results = []
            for k, v in sums.items():
                r = {"amount": format(v * 100, "f"), "currency": "USD", "cost_type": None, "description": None,
                     "model": None, "token_type": None, "service_tier": None, "context_window": None,
                     "inference_geo": None, "workspace_id": None}
                r.update(dict(k))
                results.append(r)
            data.append({"starting_at": _iso(b), "ending_at": _iso(b + 86400), "results": results})
        return self._respond({"data": data, "has_more": nxt is not None, "next_page": nxt}, gate)


class FakeServer:
    """Runs a :class:`FakeAPI` with uvicorn on a free 127.0.0.1 port in a thread."""

    def __init__(self, api: FakeAPI) -> None:
        self.api = api
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        config = uvicorn.Config(api.app, log_level="warning", access_log=False, lifespan="off", timeout_graceful_shutdown=1)
        self.server = uvicorn.Server(config)
        self.server.install_signal_handlers = lambda: None  # type: ignore[method-assign]
        self.thread = threading.Thread(target=lambda: asyncio.run(self.server.serve(sockets=[self.sock])), daemon=True)

    @property
    def openai_base(self) -> str:
        return f"{self.url}/v1"

    @property
    def anthropic_base(self) -> str:
        return self.url

    def start(self) -> FakeServer:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if time.monotonic() > deadline:
                raise TimeoutError("fake provider server did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)
        self.sock.close()
