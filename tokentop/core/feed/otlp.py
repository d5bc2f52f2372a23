"""OTLP/HTTP receiver on the feed: ``POST /v1/logs``, ``/v1/metrics``, ``/v1/traces``.

Bodies are OTLP protobuf (``application/x-protobuf``) or OTLP JSON (``application/json``), plain
or ``Content-Encoding: gzip``. Answers follow the OTLP spec: 200 with an ``Export*ServiceResponse``
in the request's encoding (``partialSuccess`` when some records were rejected), 400 with a
``google.rpc.Status`` for undecodable bodies (not retryable), 413 above the size limit, 415 for
other content types. What Claude Code and Codex send, and the counting rules: ``docs/sources.md``
(§ OTLP receiver).

What becomes an event (everything else is accepted and ignored):

* Claude Code ``claude_code.api_request`` log events (numbers arrive as strings, or, from 2.1.2xx,
  as ``intValue`` numbers with a ``doubleValue`` ``cost_usd``). Event id ``claude:<request_id>`` —
  the same id the transcript reader gives the same request, so a request seen through both counts
  once. The event carries Claude Code's ``cost_usd`` (*provided*: it knows the 5-minute/1-hour
  cache-write split, which the event's token attributes lack) and ``revision`` 0, so the
  transcript's record of the same request, with its split, replaces it (``docs/events.md``).
* Claude Code ``claude_code.llm_request`` spans (beta traces): same mapping and id.
* ``claude_code.token.usage`` metrics, **only for sessions with no per-request data**: the rule is
  "events win". A datapoint is ignored when its ``session.id`` was already seen through an
  ``api_request`` event or a transcript (any accepted Claude Code event), or, without a
  ``session.id``, when any Claude Code per-request data was accepted by this feed. Otherwise each
  datapoint group (session, model, interval) becomes one event. ``claude_code.cost.usage`` is
  never counted (tokentop prices tokens itself; counting both would double the money).
  Delta and cumulative temporality are both handled.
* Codex ``codex.sse_event`` with ``event.kind = response.completed``: counted only when the Codex
  log source is disabled — rollouts carry the same requests and no shared request id.
* Any GenAI-instrumented app (``gen_ai.usage.*`` on spans or log records): one event per span or
  record, except an agent span (``invoke_agent``) whose calls of the same trace were seen: it sums
  them; ``gen_ai.client.token.usage`` histograms only for services that sent no such
  per-request data.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import zlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, ClassVar, Final, Mapping, Sequence

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from tokentop.core.events import Event, EventError, MAX_TOKENS, normalise_speed, parse_timestamp
from tokentop.core.feed.parts import Attached, FeedBase
from tokentop.core.feed.server import BodyTooLarge, FeedSettings, TokenGate, read_body
from tokentop.core.feed.service import FeedService
from tokentop.core.pricing import Cost
from tokentop.core.sources import codex
from tokentop.core.sources.settings import sources_off

if TYPE_CHECKING:
    from tokentop.core.snapshot import Snapshot

log = logging.getLogger("tokentop.otlp")

#: Largest accepted body, compressed or not (the OTLP spec recommends 20 MiB).
MAX_BODY_BYTES: Final = 20 * 1024 * 1024
JSON_TYPE: Final = "application/json"
PROTO_TYPE: Final = "application/x-protobuf"
CLAUDE_AGENT: Final = "claude-code"


class BadRequest(Exception):
    pass


class DecompressedTooLarge(BadRequest):
    pass


# -- AnyValue / attributes ----------------------------------------------------------------------

def any_value(v: Any) -> Any:
    if not isinstance(v, dict):
        return None
    for key in ("stringValue", "intValue", "doubleValue", "boolValue"):
        if key in v:
            return v[key]
    if "arrayValue" in v:
        return [any_value(x) for x in (v["arrayValue"] or {}).get("values", []) or []]
    if "kvlistValue" in v:
        return attrs((v["kvlistValue"] or {}).get("values"))
    return None


def attrs(kvs: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if isinstance(kvs, list):
        for kv in kvs:
            if isinstance(kv, dict) and isinstance(kv.get("key"), str):
                out[kv["key"]] = any_value(kv.get("value"))
    return out


def _int(value: Any, name: str) -> int:
    if value is None or value == "":
        return 0
    if isinstance(value, bool):
        raise BadRecord(f"{name} must be a number, got {value!r}")
    try:
        number = float(value) if isinstance(value, str) else value
    except ValueError:
        raise BadRecord(f"{name} must be a number, got {str(value)[:40]!r}") from None
    if not isinstance(number, (int, float)) or number != number or number < 0 or number > MAX_TOKENS:
        raise BadRecord(f"{name} must be a non-negative number, got {str(value)[:40]!r}")
    return int(number)


def _cost(a: dict[str, Any]) -> float | None:
    """Claude Code's own cost of a request: ``cost_usd`` (a double, or a string in older builds),
    else ``cost_usd_micros``; ``None`` when absent or unreadable (then tokentop prices the tokens)."""
    for name, scale in (("cost_usd", 1.0), ("cost_usd_micros", 1e-6)):
        value = a.get(name)
        if value is None or value == "" or isinstance(value, bool):
            continue
        try:
            number = float(value) * scale
        except (TypeError, ValueError):
            continue
        if number == number and 0 <= number < 1e9:
            return number
    return None


def _str(value: Any) -> str | None:
    if value is None:
        return None
    text = str(value).strip()
    return text[:512] or None


class BadRecord(ValueError):
    pass


def _ts(attributes: dict[str, Any], nanos: Any, fallback: float) -> float:
    stamp = attributes.get("event.timestamp")
    if isinstance(stamp, str):
        try:
            return parse_timestamp(stamp)
        except EventError:
            pass
    try:
        n = int(nanos)
        if n > 0:
            return n / 1e9
    except (TypeError, ValueError):
        pass
    return fallback


def _hash_id(prefix: str, *parts: Any) -> str:
    h = hashlib.sha1(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:32]
    return f"{prefix}:{h}"


# -- the receiver -------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class OtlpStatus:
    """``status["otlp"]``: the receiver's counters since the feed started (records of each kind
    seen, ``rejected``, ``bad_requests``, metrics ignored because events won, ...)."""

    KEY: ClassVar[str] = "otlp"

    counters: Mapping[str, int] = field(default_factory=dict)

    def to_json(self) -> dict[str, int]:
        return dict(self.counters)

    @classmethod
    def from_json(cls, obj: object) -> OtlpStatus | None:
        if not isinstance(obj, dict):
            return None
        return cls({str(k): v for k, v in obj.items() if isinstance(v, int) and not isinstance(v, bool)})

    @classmethod
    def of(cls, snapshot: Snapshot | None) -> OtlpStatus | None:
        return None if snapshot is None else cls.from_json(snapshot.status.get(cls.KEY))


class OtlpReceiver:
    """Converts OTLP payloads to events and ingests them into the feed's service."""

    def __init__(self, service: FeedService, *, settings: FeedSettings | None = None, gate: TokenGate | None = None,
                 codex_logs_enabled: bool = True) -> None:
        self.service = service
        self.settings = settings or FeedSettings()
        self.gate = gate or TokenGate(None)
        #: this feed reads Codex rollout files, which carry the same requests as Codex's OTel events
        #: (with no shared id): those events are then left to the rollout reader
        self.codex_logs_enabled = codex_logs_enabled
        #: sessions with per-request Claude Code data (metrics for them are ignored)
        self.claude_sessions: set[str] = set()
        self.claude_seen = False
        #: services that sent per-request GenAI data (their histograms are ignored)
        self.genai_services: set[str] = set()
        #: traces with per-call GenAI spans: an agent span of such a trace sums calls already counted
        self.call_traces: set[str] = set()
        #: while :meth:`convert` reads a trace export: its agent spans, decided after its call spans
        self._rollups: list[tuple[dict[str, Any], dict[str, Any], dict[str, Any]]] | None = None
        #: cumulative series: key -> (start_nanos, last value)
        self.cumulative: dict[tuple[Any, ...], tuple[str, float]] = {}
        self.counters: dict[str, int] = {}
        self.service.listeners.append(self._on_accepted)

    def _count(self, key: str, n: int = 1) -> None:
        self.counters[key] = self.counters.get(key, 0) + n

    def _on_accepted(self, items: Sequence[tuple[Event, Cost]]) -> None:
        prefix = CLAUDE_AGENT + "/"
        for event, _cost in items:
            agent = event.agent
            if agent == CLAUDE_AGENT or agent.startswith(prefix):
                if event.source != "otlp-metrics":
                    self.claude_seen = True
                    if event.session:
                        if len(self.claude_sessions) > 200_000:
                            self.claude_sessions.clear()
                        self.claude_sessions.add(event.session)

    # -- HTTP --------------------------------------------------------------------------------
    def routes(self) -> list[BaseRoute]:
        return [
            Route("/v1/logs", self._endpoint("logs"), methods=["POST"]),
            Route("/v1/metrics", self._endpoint("metrics"), methods=["POST"]),
            Route("/v1/traces", self._endpoint("traces"), methods=["POST"]),
        ]

    def _endpoint(self, signal: str) -> Callable[[Request], Any]:
        async def handle(request: Request) -> Response:
            return await self.handle(signal, request)

        return handle

    async def handle(self, signal: str, request: Request) -> Response:
        ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
        proto = ctype in (PROTO_TYPE, "application/protobuf")
        if not proto and ctype != JSON_TYPE:
            return Response(f"unsupported content type {ctype!r}: use {JSON_TYPE} or {PROTO_TYPE}\n", 415,
                            media_type="text/plain")
        if self.settings.ingest_requires_token:
            denied = self.gate.refusal(request)
            if denied is not None:
                return denied
        try:
            body = await read_body(request, MAX_BODY_BYTES)
        except BodyTooLarge:
            return self._status(proto, 413, f"body larger than {MAX_BODY_BYTES} bytes")
        try:
            enc = request.headers.get("content-encoding", "").strip().lower()
            if enc == "gzip":
                body = _gunzip(body, MAX_BODY_BYTES)
            elif enc not in ("", "identity"):
                return self._status(proto, 415, f"unsupported content encoding {enc!r} (gzip or none)")
            payload = _decode(signal, body, proto)
        except DecompressedTooLarge as exc:
            return self._status(proto, 413, str(exc))
        except BadRequest as exc:
            self._count("bad_requests")
            return self._status(proto, 400, str(exc))
        try:
            events, rejected, errors = self.convert(signal, payload)
        except RecursionError:  # attribute values (arrayValue / kvlistValue) nested past what can be read
            self._count("bad_requests")
            return self._status(proto, 400, "an attribute value is nested too deeply to read")
        if events:
            await self.service.ingest_events(events)
        self.service.set_status(OtlpStatus.KEY, OtlpStatus(self.counters).to_json())
        message = "; ".join(errors[:5])
        return self._answer(signal, proto, rejected, message)

    def _answer(self, signal: str, proto: bool, rejected: int, message: str) -> Response:
        field = {"logs": "rejectedLogRecords", "metrics": "rejectedDataPoints", "traces": "rejectedSpans"}[signal]
        if proto:
            from opentelemetry.proto.collector.logs.v1 import logs_service_pb2
            from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2
            from opentelemetry.proto.collector.trace.v1 import trace_service_pb2

            cls = {"logs": logs_service_pb2.ExportLogsServiceResponse,
                   "metrics": metrics_service_pb2.ExportMetricsServiceResponse,
                   "traces": trace_service_pb2.ExportTraceServiceResponse}[signal]
            msg = cls()
            if rejected or message:
                ps = msg.partial_success
                setattr(ps, {"logs": "rejected_log_records", "metrics": "rejected_data_points",
                             "traces": "rejected_spans"}[signal], rejected)
                ps.error_message = message
            return Response(msg.SerializeToString(), 200, media_type=PROTO_TYPE)
        out: dict[str, Any] = {}
        if rejected or message:
            out["partialSuccess"] = {field: str(rejected), "errorMessage": message}
        return Response(json.dumps(out), 200, media_type=JSON_TYPE)

    @staticmethod
    def _status(proto: bool, code: int, message: str) -> Response:
        grpc_code = 3 if code == 400 else 8 if code == 413 else 3
        if proto:
            data = message.encode()
            body = b"\x08" + _varint(grpc_code) + b"\x12" + _varint(len(data)) + data
            return Response(body, code, media_type=PROTO_TYPE)
        return Response(json.dumps({"code": grpc_code, "message": message}), code, media_type=JSON_TYPE)

    # -- conversion ----------------------------------------------------------------------------
    def convert(self, signal: str, payload: dict[str, Any]) -> tuple[list[Event], int, list[str]]:
        """Events from one decoded request, the count of rejected records and their errors."""
        now = self.service.clock()
        events: list[Event] = []
        errors: list[str] = []
        rejected = 0
        convert_one = {"logs": self._log_record, "metrics": None, "traces": self._span}[signal]
        if signal == "metrics":
            for res in _list(payload.get("resourceMetrics")):
                rattrs = attrs((res.get("resource") or {}).get("attributes"))
                for scope in _list(res.get("scopeMetrics")):
                    for metric in _list(scope.get("metrics")):
                        try:
                            events.extend(self._metric(rattrs, metric, now))
                        except BadRecord as exc:
                            points = metric.get("sum") or metric.get("histogram") or {}
                            rejected += max(1, len(_list(points.get("dataPoints"))))
                            errors.append(f"{metric.get('name')}: {exc}")
            return events, rejected, errors
        outer, inner, items = {"logs": ("resourceLogs", "scopeLogs", "logRecords"),
                               "traces": ("resourceSpans", "scopeSpans", "spans")}[signal]
        rollups: list[tuple[dict[str, Any], dict[str, Any], dict[str, Any]]] = []
        self._rollups = rollups
        try:
            for res in _list(payload.get(outer)):
                rattrs = attrs((res.get("resource") or {}).get("attributes"))
                for scope in _list(res.get(inner)):
                    sname = str((scope.get("scope") or {}).get("name") or "")
                    for rec in _list(scope.get(items)):
                        try:
                            e = convert_one(rattrs, sname, rec, now)  # type: ignore[misc]
                        except BadRecord as exc:
                            rejected += 1
                            errors.append(str(exc))
                            self._count("rejected")
                            continue
                        if e is not None:
                            events.append(e)
        finally:
            self._rollups = None
        for rattrs, rec, a in rollups:  # agent spans, decided once the batch's calls are known
            if str(rec.get("traceId") or "") in self.call_traces:
                self._count("genai_agent_rollups_skipped")
                continue
            try:
                events.append(self._genai_span(rattrs, rec, a, now))
            except BadRecord as exc:
                rejected += 1
                errors.append(str(exc))
                self._count("rejected")
        return events, rejected, errors

    def _log_record(self, rattrs: dict[str, Any], scope: str, rec: dict[str, Any], now: float) -> Event | None:
        a = attrs(rec.get("attributes"))
        body = any_value(rec.get("body"))
        name = rec.get("eventName") or a.get("event.name") or (body if isinstance(body, str) else "")
        name = str(name)
        if name in ("claude_code.api_request", "api_request") and (
                "claude" in scope or "claude" in str(rattrs.get("service.name", "")) or name.startswith("claude_code")):
            self._count("claude_api_request")
            return self._claude_request(rattrs, a, rec.get("timeUnixNano"), now, "otlp")
        if name in ("codex.sse_event", "sse_event") and a.get("event.kind") == "response.completed":
            self._count("codex_sse_event")
            if self.codex_logs_enabled:
                self._count("codex_ignored_rollouts_cover_it")
                return None
            return self._codex(rattrs, a, rec.get("timeUnixNano"), now)
        if any(k.startswith("gen_ai.usage.") for k in a):
            self._count("genai_log")
            return self._genai(rattrs, a, rec.get("timeUnixNano"), now,
                               _hash_id("otel-log", rec.get("timeUnixNano"), a.get("gen_ai.response.id"), sorted(a.items())))
        return None

    def _span(self, rattrs: dict[str, Any], scope: str, span: dict[str, Any], now: float) -> Event | None:
        a = attrs(span.get("attributes"))
        name = str(span.get("name") or "")
        end = span.get("endTimeUnixNano")
        if name == "claude_code.llm_request" or ("input_tokens" in a and "request_id" in a and "claude" in name):
            self._count("claude_span")
            return self._claude_request(rattrs, a, end, now, "otlp-trace")
        if any(k.startswith("gen_ai.usage.") for k in a):
            if _is_agent_span(a, name) and self._rollups is not None:
                self._rollups.append((rattrs, span, a))
                return None
            trace = str(span.get("traceId") or "")
            if trace:
                if len(self.call_traces) > 200_000:
                    self.call_traces.clear()
                self.call_traces.add(trace)
            return self._genai_span(rattrs, span, a, now)
        return None

    def _genai_span(self, rattrs: dict[str, Any], span: dict[str, Any], a: dict[str, Any], now: float) -> Event:
        self._count("genai_span")
        end = span.get("endTimeUnixNano")
        span_id = f"{span.get('traceId', '')}:{span.get('spanId', '')}"
        return self._genai(rattrs, a, end, now, f"otel-span:{span_id}" if span_id != ":" else
                           _hash_id("otel-span", end, sorted(a.items())))

    def _claude_request(self, rattrs: dict[str, Any], a: dict[str, Any], nanos: Any, now: float, source: str) -> Event:
        inp = _int(a.get("input_tokens"), "input_tokens")
        out = _int(a.get("output_tokens"), "output_tokens")
        read = _int(a.get("cache_read_tokens"), "cache_read_tokens")
        write = _int(a.get("cache_creation_tokens"), "cache_creation_tokens")
        req = _str(a.get("request_id"))
        session = _str(a.get("session.id"))
        run_session = _str(rattrs.get("tokentop.session"))  # set by `tokentop run` in OTEL_RESOURCE_ATTRIBUTES
        if session and run_session:
            self.service.alias_session(session, run_session)
        if req:
            event_id = f"claude:{req}"
        elif session and a.get("event.sequence") is not None:
            event_id = f"claude-otel:{session}:{a.get('event.sequence')}"
        else:
            event_id = _hash_id("claude-otel", nanos, sorted(a.items()))
        model = _str(a.get("model") or a.get("gen_ai.request.model"))
        latency = a.get("duration_ms")
        try:
            latency_ms = float(latency) if latency not in (None, "") else None
        except (TypeError, ValueError):
            latency_ms = None
        return Event(
            id=event_id, ts=_ts(a, nanos, now), agent=CLAUDE_AGENT, session=session,
            host=self.service.host, provider="anthropic", model=model,
            input_tokens=inp + read + write, output_tokens=out, cache_read_tokens=read, cache_write_tokens=write,
            cost_usd=_cost(a), latency_ms=latency_ms, source=source, speed=normalise_speed(_str(a.get("speed"))),
        )

    def _codex(self, rattrs: dict[str, Any], a: dict[str, Any], nanos: Any, now: float) -> Event:
        inp = _int(a.get("input_token_count"), "input_token_count")
        cached = min(inp, _int(a.get("cached_token_count"), "cached_token_count"))
        out = _int(a.get("output_token_count"), "output_token_count")
        reasoning = min(out, _int(a.get("reasoning_token_count"), "reasoning_token_count"))
        session = _str(a.get("conversation.id"))
        return Event(
            id=_hash_id("codex-otel", session, a.get("event.timestamp"), nanos, inp, cached, out),
            ts=_ts(a, nanos, now), agent="codex", session=session, host=self.service.host, provider="openai",
            model=_str(a.get("model") or a.get("slug")), input_tokens=inp, output_tokens=out,
            cache_read_tokens=cached, reasoning_tokens=reasoning, source="otlp",
        )

    def _genai(self, rattrs: dict[str, Any], a: dict[str, Any], nanos: Any, now: float, event_id: str) -> Event:
        inp = _int(a.get("gen_ai.usage.input_tokens", a.get("gen_ai.usage.prompt_tokens")), "gen_ai.usage.input_tokens")
        out = _int(a.get("gen_ai.usage.output_tokens", a.get("gen_ai.usage.completion_tokens")), "gen_ai.usage.output_tokens")
        read = _int(a.get("gen_ai.usage.cache_read.input_tokens"), "gen_ai.usage.cache_read.input_tokens")
        write = _int(a.get("gen_ai.usage.cache_creation.input_tokens"), "gen_ai.usage.cache_creation.input_tokens")
        reasoning = min(out, _int(a.get("gen_ai.usage.reasoning.output_tokens"), "gen_ai.usage.reasoning.output_tokens"))
        if read + write > inp:  # an emitter that reports input without its cache (not semconv): add it
            inp += read + write
        service = _str(rattrs.get("service.name")) or "unknown"
        self.genai_services.add(service)
        return Event(
            id=event_id, ts=_ts(a, nanos, now), agent=_str(a.get("gen_ai.agent.name")) or service,
            session=_str(a.get("gen_ai.conversation.id")), host=self.service.host,
            provider=_str(a.get("gen_ai.provider.name") or a.get("gen_ai.system")),
            model=_str(a.get("gen_ai.response.model") or a.get("gen_ai.request.model")),
            input_tokens=inp, output_tokens=out, cache_read_tokens=read, cache_write_tokens=write,
            reasoning_tokens=reasoning, source="otlp",
        )

    # -- metrics -------------------------------------------------------------------------------
    def _value(self, series: tuple[Any, ...], point: dict[str, Any], temporality: int, value: float) -> float:
        if temporality != 2:  # delta (1) or unspecified: the point is the increment
            return value
        start = str(point.get("startTimeUnixNano", ""))
        prev = self.cumulative.get(series)
        self.cumulative[series] = (start, value)
        if prev is None or prev[0] != start or value < prev[1]:
            return value  # first sight or a reset: the whole value is new
        return value - prev[1]

    def _metric(self, rattrs: dict[str, Any], metric: dict[str, Any], now: float) -> list[Event]:
        name = metric.get("name")
        if name == "claude_code.token.usage":
            return self._claude_tokens(rattrs, metric, now)
        if name == "gen_ai.client.token.usage":
            return self._genai_histogram(rattrs, metric, now)
        return []

    def _claude_tokens(self, rattrs: dict[str, Any], metric: dict[str, Any], now: float) -> list[Event]:
        data = metric.get("sum") or {}
        temporality = int(data.get("aggregationTemporality") or 1)
        groups: dict[tuple[Any, ...], dict[str, Any]] = {}
        for p in _list(data.get("dataPoints")):
            a = attrs(p.get("attributes"))
            merged = {**rattrs, **a}
            session = _str(merged.get("session.id"))
            if (session and session in self.claude_sessions) or (not session and self.claude_seen):
                self._count("claude_metric_points_ignored_events_win")
                continue
            kind = str(a.get("type", ""))
            raw = p.get("asDouble", p.get("asInt", 0))
            try:
                value = float(raw)
            except (TypeError, ValueError):
                raise BadRecord(f"datapoint value is not a number: {str(raw)[:40]!r}") from None
            if value < 0 or value != value:
                raise BadRecord(f"datapoint value must be >= 0, got {value}")
            rest = tuple(sorted((k, str(v)) for k, v in a.items() if k != "type"))
            series = ("claude", rest, kind, tuple(sorted((k, str(v)) for k, v in rattrs.items())))
            inc = self._value(series, p, temporality, value)
            key = (session, _str(a.get("model")), str(p.get("timeUnixNano", "")), rest)
            g = groups.setdefault(key, {"input": 0, "output": 0, "cacheRead": 0, "cacheCreation": 0,
                                        "nanos": p.get("timeUnixNano"), "start": p.get("startTimeUnixNano")})
            if kind in g:
                g[kind] += int(round(inc))
        out = []
        for (session, model, nanos, rest), g in groups.items():
            if not any(g[k] for k in ("input", "output", "cacheRead", "cacheCreation")):
                continue
            self._count("claude_metric_events")
            out.append(Event(
                id=_hash_id("claude-metric", session, model, nanos, g["start"], rest),
                ts=_ts({}, g["nanos"], now), agent=CLAUDE_AGENT, session=session, host=self.service.host,
                provider="anthropic", model=model,
                input_tokens=g["input"] + g["cacheRead"] + g["cacheCreation"], output_tokens=g["output"],
                cache_read_tokens=g["cacheRead"], cache_write_tokens=g["cacheCreation"], source="otlp-metrics",
            ))
        return out

    def _genai_histogram(self, rattrs: dict[str, Any], metric: dict[str, Any], now: float) -> list[Event]:
        service = _str(rattrs.get("service.name")) or "unknown"
        if service in self.genai_services:
            self._count("genai_metric_points_ignored_events_win")
            return []
        data = metric.get("histogram") or {}
        temporality = int(data.get("aggregationTemporality") or 1)
        groups: dict[tuple[Any, ...], dict[str, Any]] = {}
        for p in _list(data.get("dataPoints")):
            a = attrs(p.get("attributes"))
            kind = str(a.get("gen_ai.token.type", ""))
            try:
                value = float(p.get("sum", 0) or 0)
            except (TypeError, ValueError):
                raise BadRecord("histogram sum is not a number") from None
            rest = tuple(sorted((k, str(v)) for k, v in a.items() if k != "gen_ai.token.type"))
            inc = self._value(("genai", service, rest, kind), p, temporality, value)
            key = (str(p.get("timeUnixNano", "")), rest)
            g = groups.setdefault(key, {"input": 0, "output": 0, "a": a, "nanos": p.get("timeUnixNano")})
            if kind in ("input", "output"):
                g[kind] += int(round(inc))
        out = []
        for (nanos, rest), g in groups.items():
            if not (g["input"] or g["output"]):
                continue
            a = g["a"]
            out.append(Event(
                id=_hash_id("genai-metric", service, nanos, rest), ts=_ts({}, g["nanos"], now),
                agent=_str(a.get("gen_ai.agent.name")) or service, host=self.service.host,
                provider=_str(a.get("gen_ai.provider.name") or a.get("gen_ai.system")),
                model=_str(a.get("gen_ai.response.model") or a.get("gen_ai.request.model")),
                input_tokens=g["input"], output_tokens=g["output"], source="otlp-metrics",
            ))
        return out


# -- decoding -----------------------------------------------------------------------------------

#: GenAI operations whose span sums the calls made under it (the semantic conventions' agent spans)
AGENT_OPERATIONS: Final = frozenset({"invoke_agent", "create_agent"})


def _is_agent_span(a: dict[str, Any], name: str) -> bool:
    """An agent span: its usage is the sum of its ``chat`` children's, which are counted themselves
    when they are exported (GitHub Copilot CLI sends both)."""
    op = a.get("gen_ai.operation.name")
    if op is not None:
        return op in AGENT_OPERATIONS
    return name.startswith(("invoke_agent", "create_agent"))


def _list(v: Any) -> list[Any]:
    return [x for x in v if isinstance(x, dict)] if isinstance(v, list) else []


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def _gunzip(body: bytes, limit: int) -> bytes:
    d = zlib.decompressobj(16 + zlib.MAX_WBITS)
    try:
        data = d.decompress(body, limit + 1)
    except zlib.error as exc:
        raise BadRequest(f"body is not valid gzip: {exc}") from None
    if len(data) > limit:
        raise DecompressedTooLarge(f"decompressed body larger than {limit} bytes")
    return data


def _decode(signal: str, body: bytes, proto: bool) -> dict[str, Any]:
    if not body:
        return {}
    if not proto:
        try:
            obj = json.loads(body)
        except (ValueError, UnicodeDecodeError) as exc:
            raise BadRequest(f"body is not valid JSON: {exc}") from None
        except RecursionError:
            raise BadRequest("body is not valid JSON: nested too deeply (deeper than any OTLP export)") from None
        if not isinstance(obj, dict):
            raise BadRequest("body must be a JSON object (an OTLP Export*ServiceRequest)")
        return obj
    from google.protobuf.json_format import MessageToDict
    from google.protobuf.message import DecodeError
    from opentelemetry.proto.collector.logs.v1 import logs_service_pb2
    from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2
    from opentelemetry.proto.collector.trace.v1 import trace_service_pb2

    cls = {"logs": logs_service_pb2.ExportLogsServiceRequest,
           "metrics": metrics_service_pb2.ExportMetricsServiceRequest,
           "traces": trace_service_pb2.ExportTraceServiceRequest}[signal]
    msg = cls()
    try:
        msg.ParseFromString(body)
    except DecodeError as exc:
        raise BadRequest(f"body is not a valid {cls.__name__} protobuf: {exc}") from None
    obj = MessageToDict(msg, use_integers_for_enums=True)
    if signal == "traces":  # protobuf ids are bytes (base64 in the dict); OTLP JSON uses hex
        for res in _list(obj.get("resourceSpans")):
            for scope in _list(res.get("scopeSpans")):
                for span in _list(scope.get("spans")):
                    for k in ("traceId", "spanId"):
                        if k in span:
                            span[k] = base64.b64decode(span[k]).hex()
    return obj


def attach(feed: FeedBase) -> Attached:
    """The OTLP receiver's part of a feed: its three routes. Codex's OTel events count only when
    this machine's tokentop does not read Codex rollouts (``[sources] enabled``)."""
    receiver = OtlpReceiver(feed.service, settings=feed.settings, gate=feed.gate,
                            codex_logs_enabled=not sources_off() and codex.rollouts_enabled(feed.config))
    return Attached(routes=tuple(receiver.routes()), otlp=receiver)
