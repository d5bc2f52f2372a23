"""The OTLP/HTTP receiver against a real feed: JSON, protobuf, gzip, partial success, dedupe rules."""

from __future__ import annotations

import gzip
import json
from decimal import Decimal
import os
import time
from pathlib import Path

import httpx
import pytest
from google.protobuf.json_format import ParseDict
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2

from tests.sources.helpers import claude_line, write_lines
from tokentop import config as config_mod
from tokentop.core.feed.runner import FeedRunner

NOW_NS = str(int(time.time() * 1e9))
SESSION = "4f6c0c1e-6a43-4c1e-9d7e-2b1f0f7c9a10"


def kv(key: str, value) -> dict:
    if isinstance(value, int):
        return {"key": key, "value": {"intValue": str(value)}}
    return {"key": key, "value": {"stringValue": str(value)}}


def api_request(req: str = "req_011CaggwfaCLxM1Jdpaa0001", session: str = SESSION, out: str = "527",
                seq: int = 42) -> dict:
    return {"timeUnixNano": NOW_NS, "body": {"stringValue": "claude_code.api_request"}, "attributes": [
        kv("event.name", "api_request"), kv("event.sequence", seq), kv("session.id", session),
        kv("model", "claude-sonnet-4-5-20250929"), kv("input_tokens", "3"), kv("output_tokens", out),
        kv("cache_read_tokens", "9493"), kv("cache_creation_tokens", "2849"), kv("cost_usd", "0.0278559"),
        kv("request_id", req), kv("duration_ms", "4210")]}


def logs(*records: dict) -> dict:
    return {"resourceLogs": [{"resource": {"attributes": [kv("service.name", "claude-code")]},
                              "scopeLogs": [{"scope": {"name": "com.anthropic.claude_code.events"},
                                             "logRecords": list(records)}]}]}


def token_metrics(session: str = SESSION, temporality: int = 1, values=(3, 527, 9493, 2849), start: str = "1") -> dict:
    points = [{"startTimeUnixNano": start, "timeUnixNano": NOW_NS, "asDouble": v,
               "attributes": [kv("session.id", session), kv("model", "claude-sonnet-4-5-20250929"), kv("type", t)]}
              for t, v in zip(("input", "output", "cacheRead", "cacheCreation"), values)]
    return {"resourceMetrics": [{"resource": {"attributes": [kv("service.name", "claude-code")]}, "scopeMetrics": [
        {"scope": {"name": "com.anthropic.claude_code"}, "metrics": [
            {"name": "claude_code.token.usage", "unit": "tokens",
             "sum": {"aggregationTemporality": temporality, "isMonotonic": True, "dataPoints": points}},
            {"name": "claude_code.cost.usage", "unit": "USD", "sum": {"aggregationTemporality": temporality,
             "isMonotonic": True, "dataPoints": [{"timeUnixNano": NOW_NS, "asDouble": 0.0278559,
                                                  "attributes": [kv("session.id", session)]}]}}]}]}]}


def post(feed, path: str, payload: dict, **kw) -> httpx.Response:
    return httpx.post(feed.address + path, json=payload, timeout=5, **kw)


def today(feed) -> tuple[int, int]:
    t = feed.snapshot().totals
    return t.requests_today, t.output_tokens_today


def test_claude_api_request_event_json_counts_with_contract_tokens(feed) -> None:
    r = post(feed, "/v1/logs", logs(api_request()))
    assert r.status_code == 200 and r.json() == {} and r.headers["content-type"].startswith("application/json")
    t = feed.snapshot().totals
    assert (t.requests_today, t.input_tokens_today, t.output_tokens_today, t.cache_read_tokens_today,
            t.cache_write_tokens_today) == (1, 3 + 9493 + 2849, 527, 9493, 2849)


def test_protobuf_gzip_request_gets_a_protobuf_answer(feed) -> None:
    msg = ParseDict(logs(api_request()), logs_service_pb2.ExportLogsServiceRequest())
    body = gzip.compress(msg.SerializeToString())
    r = httpx.post(feed.address + "/v1/logs", content=body, timeout=5,
                   headers={"content-type": "application/x-protobuf", "content-encoding": "gzip"})
    assert r.status_code == 200 and r.headers["content-type"] == "application/x-protobuf"
    answer = logs_service_pb2.ExportLogsServiceResponse.FromString(r.content)
    assert answer.partial_success.rejected_log_records == 0
    assert today(feed) == (1, 527)


def test_bad_records_are_rejected_as_partial_success_and_good_ones_kept(feed) -> None:
    r = post(feed, "/v1/logs", logs(api_request("req_a"), api_request("req_b", out="lots")))
    assert r.status_code == 200
    ps = r.json()["partialSuccess"]
    assert ps["rejectedLogRecords"] == "1" and "output_tokens" in ps["errorMessage"]
    assert today(feed) == (1, 527)


def test_retried_export_counts_once(feed) -> None:
    for _ in range(2):
        assert post(feed, "/v1/logs", logs(api_request())).status_code == 200
    assert today(feed) == (1, 527)


def test_undecodable_bodies_get_400_and_wrong_types_415(feed) -> None:
    r = httpx.post(feed.address + "/v1/logs", content=b"{nope", headers={"content-type": "application/json"})
    assert r.status_code == 400 and r.json()["code"] == 3
    r = httpx.post(feed.address + "/v1/logs", content=b"\xff\xff\xff", headers={"content-type": "application/x-protobuf"})
    assert r.status_code == 400
    r = httpx.post(feed.address + "/v1/logs", content=b"x", headers={"content-type": "text/plain"})
    assert r.status_code == 415
    r = httpx.post(feed.address + "/v1/logs", content=b"not gzip", headers={"content-type": "application/json",
                                                                            "content-encoding": "gzip"})
    assert r.status_code == 400
    assert today(feed) == (0, 0)


def test_metrics_count_when_no_events_arrive_for_the_session(feed) -> None:
    r = post(feed, "/v1/metrics", token_metrics())
    assert r.status_code == 200
    t = feed.snapshot().totals
    assert (t.requests_today, t.input_tokens_today, t.output_tokens_today) == (1, 3 + 9493 + 2849, 527)
    # cost.usage is never added on top of the priced tokens
    assert t.usd_today == pytest.approx(t.usd_estimated_today)


def test_metrics_are_ignored_when_events_already_counted_the_session(feed) -> None:
    post(feed, "/v1/logs", logs(api_request()))
    post(feed, "/v1/metrics", token_metrics())
    assert today(feed) == (1, 527)


def test_cumulative_metrics_add_the_difference(feed) -> None:
    msg = ParseDict(token_metrics(temporality=2, values=(1, 100, 0, 0)), metrics_service_pb2.ExportMetricsServiceRequest())
    r = httpx.post(feed.address + "/v1/metrics", content=msg.SerializeToString(),
                   headers={"content-type": "application/x-protobuf"})
    assert r.status_code == 200
    later = token_metrics(temporality=2, values=(1, 160, 0, 0))
    later["resourceMetrics"][0]["scopeMetrics"][0]["metrics"][0]["sum"]["dataPoints"][0]["timeUnixNano"] = str(int(NOW_NS) + 10**9)
    for p in later["resourceMetrics"][0]["scopeMetrics"][0]["metrics"][0]["sum"]["dataPoints"]:
        p["timeUnixNano"] = str(int(NOW_NS) + 10**9)
    post(feed, "/v1/metrics", later)
    assert feed.snapshot().totals.output_tokens_today == 160


def test_same_request_through_transcript_and_otlp_counts_once(feed) -> None:
    home = Path(os.environ["HOME"])
    post(feed, "/v1/logs", logs(api_request(req="req_same")))
    write_lines(home / ".claude" / "projects" / "p" / "s.jsonl", [claude_line("msg_x", "req_same", out=527, session=SESSION)])
    # the sources watcher waits for ~/.claude to appear; read the file through the same feed service
    from tokentop.core.sources.settings import SourceSettings
    from tokentop.core.sources.tailer import LogSources

    src = LogSources(feed.ledger, SourceSettings(roots={"claude-code": (home / ".claude" / "projects",)}))
    assert src.poll(feed.service.ingest_events_threadsafe) == 1  # handed over ...
    assert today(feed) == (1, 527)  # ... and recognised as the request OTLP already counted


def test_genai_semconv_span_becomes_an_event(feed) -> None:
    span = {"traceId": "5b8efff798038103d269b633813fc60c", "spanId": "eee19b7ec3c1b174", "name": "chat gpt-5",
            "startTimeUnixNano": NOW_NS, "endTimeUnixNano": NOW_NS, "attributes": [
                kv("gen_ai.operation.name", "chat"), kv("gen_ai.provider.name", "openai"),
                kv("gen_ai.request.model", "gpt-5"), kv("gen_ai.usage.input_tokens", 10000),
                kv("gen_ai.usage.cache_read.input_tokens", 8000), kv("gen_ai.usage.output_tokens", 2000),
                kv("gen_ai.agent.name", "my-agent"), kv("gen_ai.conversation.id", "conv-1")]}
    payload = {"resourceSpans": [{"resource": {"attributes": [kv("service.name", "app")]},
                                  "scopeSpans": [{"scope": {"name": "x"}, "spans": [span]}]}]}
    assert post(feed, "/v1/traces", payload).status_code == 200
    snap = feed.snapshot()
    assert [r.key for r in snap.agents] == ["my-agent"]
    assert snap.totals.usd_today == Decimal("0.0235")  # formats.md §7.2: gpt-5, 10k in (8k cached), 2k out


def genai_span(trace: str, span_id: str, op: str, inp: int, out: int, name: str | None = None) -> dict:
    return {"traceId": trace, "spanId": span_id, "name": name or f"{op} claude-sonnet-4",
            "startTimeUnixNano": NOW_NS, "endTimeUnixNano": NOW_NS, "attributes": [
                kv("gen_ai.operation.name", op), kv("gen_ai.provider.name", "anthropic"),
                kv("gen_ai.request.model", "claude-sonnet-4"), kv("gen_ai.usage.input_tokens", inp),
                kv("gen_ai.usage.output_tokens", out), kv("gen_ai.conversation.id", "conv-1")]}


def traces(*spans: dict) -> dict:
    return {"resourceSpans": [{"resource": {"attributes": [kv("service.name", "github-copilot")]},
                               "scopeSpans": [{"scope": {"name": "github.copilot"}, "spans": list(spans)}]}]}


def test_an_agent_span_summing_its_calls_is_not_counted_again(feed) -> None:
    # GitHub Copilot CLI exports each call as a `chat` span and the turn as an `invoke_agent` span whose
    # usage is the sum of its calls: counting both doubled the turn's tokens and cost.
    calls = [genai_span("t1", "c1", "chat", 1000, 100), genai_span("t1", "c2", "chat", 2000, 200)]
    turn = genai_span("t1", "a1", "invoke_agent", 3000, 300)
    assert post(feed, "/v1/traces", traces(turn, *calls)).status_code == 200  # the parent first in the batch
    assert today(feed) == (2, 300)
    # children in an earlier batch than their parent (they end first, so exporters usually send them first)
    assert post(feed, "/v1/traces", traces(genai_span("t2", "c3", "chat", 500, 50))).status_code == 200
    assert post(feed, "/v1/traces", traces(genai_span("t2", "a2", "invoke_agent", 500, 50, name="invoke_agent"))).status_code == 200
    assert today(feed) == (3, 350)
    # an agent span with no calls of its own trace seen is the only record of them: it counts
    assert post(feed, "/v1/traces", traces(genai_span("t3", "a3", "invoke_agent", 700, 70))).status_code == 200
    assert today(feed) == (4, 420)
    # a subagent's turn nested in its caller's (Copilot Chat's documented trace tree): both are sums
    nested = [genai_span("t4", "c4", "chat", 100, 10), genai_span("t4", "c5", "chat", 200, 20),
              genai_span("t4", "a4", "invoke_agent", 200, 20, name="invoke_agent Explore"),
              genai_span("t4", "a5", "invoke_agent", 300, 30, name="invoke_agent copilot")]
    assert post(feed, "/v1/traces", traces(*nested)).status_code == 200
    assert today(feed) == (6, 450)
    counters = feed.snapshot().status["otlp"]
    assert counters["genai_agent_rollups_skipped"] == 4


def test_codex_otel_events_are_left_to_the_rollout_reader(feed, tmp_path) -> None:
    rec = {"timeUnixNano": NOW_NS, "attributes": [
        kv("event.name", "codex.sse_event"), kv("event.kind", "response.completed"), kv("conversation.id", "c1"),
        kv("model", "gpt-5-codex"), kv("input_token_count", "100"), kv("output_token_count", "10")]}
    payload = {"resourceLogs": [{"resource": {"attributes": [kv("service.name", "codex_cli_rs")]},
                                 "scopeLogs": [{"logRecords": [rec]}]}]}
    assert post(feed, "/v1/logs", payload).status_code == 200
    assert today(feed) == (0, 0)
    # sources.enabled without "codex": OTel is the only way in, so the same events count
    cfg = config_mod.from_mapping({"ledger": {"path": str(tmp_path / "no-codex.db")}, "sources": {"enabled": ["claude-code"]}})
    no_codex = FeedRunner(cfg, listen="127.0.0.1:0", host_name="test-host").start_in_thread(require_listen=True)
    try:
        assert post(no_codex, "/v1/logs", payload).status_code == 200
        assert today(no_codex) == (1, 10)
    finally:
        no_codex.stop()


def test_empty_request_is_a_success(feed) -> None:
    r = httpx.post(feed.address + "/v1/metrics", content=b"", headers={"content-type": "application/json"})
    assert r.status_code == 200
    assert json.loads(r.content or b"{}") == {}


def test_body_limit_is_enforced_at_the_edge(feed, monkeypatch: pytest.MonkeyPatch) -> None:
    from tokentop.core.feed import otlp

    body = json.dumps(logs(api_request())).encode()
    monkeypatch.setattr(otlp, "MAX_BODY_BYTES", len(body))
    ok = httpx.post(feed.address + "/v1/logs", content=body, headers={"content-type": "application/json"})
    assert ok.status_code == 200
    big = httpx.post(feed.address + "/v1/logs", content=body + b" ", headers={"content-type": "application/json"})
    assert big.status_code == 413
    bomb = gzip.compress(body + b" " * 1000)  # small on the wire, too large once decompressed
    r = httpx.post(feed.address + "/v1/logs", content=bomb,
                   headers={"content-type": "application/json", "content-encoding": "gzip"})
    assert r.status_code == 413 and "decompressed" in r.json()["message"]


def test_token_required_when_ingest_requires_it(feed) -> None:
    feed.app.settings.ingest_requires_token = True
    assert post(feed, "/v1/logs", logs(api_request())).status_code == 401
    r = post(feed, "/v1/logs", logs(api_request()), headers={"authorization": f"Bearer {feed.token}"})
    assert r.status_code == 200
    assert today(feed) == (1, 527)


def test_otlp_status_reads_back_the_receivers_counters(feed, status_snapshots) -> None:
    from tokentop.core.feed.otlp import OtlpStatus

    assert post(feed, "/v1/logs", logs(api_request())).status_code == 200
    status = OtlpStatus.of(feed.snapshot())
    assert status is not None and status.counters["claude_api_request"] == 1
    embedded, remote = status_snapshots("otlp", status.to_json())
    assert OtlpStatus.of(embedded) == status == OtlpStatus.of(remote)
    assert OtlpStatus.from_json({"rejected": 2, "odd": "x"}) == OtlpStatus({"rejected": 2})
