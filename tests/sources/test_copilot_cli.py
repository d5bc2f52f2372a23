"""Copilot CLI → events: real-shaped OTel export lines and session logs, read by the real tailer; the
peers' miscounts (underscore cache attributes, agent roll-ups, totals counted twice) as regressions."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.sources.helpers import write_lines
from tokentop.core.events import Event
from tokentop.core.ledger import Ledger
from tokentop.core.sources import copilot_cli
from tokentop.core.sources.settings import SourceSettings
from tokentop.core.sources.tailer import LogSources

NOW = time.time()


def span(attrs: dict[str, Any], *, name: str = "chat claude-sonnet-4", trace: str = "trace-1", span_id: str = "span-1",
         end: float | None = None, **extra: Any) -> str:
    end = NOW - 60 if end is None else end
    obj = {"type": "span", "traceId": trace, "spanId": span_id, "name": name,
           "startTime": [int(end) - 4, 133000000], "endTime": [int(end), 967317833], "attributes": attrs, **extra}
    return json.dumps(obj)


# The tokscale test's span (a Copilot CLI chat span): cache-inclusive input 19,452 of which 123 cached.
TOKSCALE_SPAN = {"gen_ai.operation.name": "chat", "gen_ai.request.model": "claude-sonnet-4",
                 "gen_ai.response.model": "claude-sonnet-4", "gen_ai.conversation.id": "conv-1",
                 "gen_ai.usage.input_tokens": 19452, "gen_ai.usage.output_tokens": 281,
                 "gen_ai.usage.cache_read.input_tokens": 123, "gen_ai.usage.reasoning.output_tokens": 128,
                 "github.copilot.interaction_id": "interaction-1"}


def record(kind: str, ts: float, data: dict[str, Any], rid: str) -> str:
    return json.dumps({"type": kind, "data": data, "id": rid,
                       "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ts)) + ".000Z", "parentId": None})


def start(sid: str, ts: float, cwd: str = "/home/dev/webshop") -> str:
    return record("session.start", ts, {"sessionId": sid, "version": 1, "producer": "copilot-agent",
                                        "copilotVersion": "1.0.88", "context": {"cwd": cwd, "branch": "main"}}, "e0")


def shutdown(ts: float, metrics: dict[str, Any], rid: str = "e9") -> str:
    return record("session.shutdown", ts, {"shutdownType": "routine", "totalPremiumRequests": 2,
                                           "totalApiDurationMs": 5000, "modelMetrics": metrics}, rid)


def usage(inp: int, out: int, read: int = 0, write: int = 0) -> dict[str, Any]:
    return {"requests": {"count": 3, "cost": 1}, "usage": {"inputTokens": inp, "outputTokens": out,
                                                          "cacheReadTokens": read, "cacheWriteTokens": write}}


class Reader:
    def __init__(self, home: Path, ledger: Ledger | None = None, env: dict[str, str] | None = None) -> None:
        roots = copilot_cli.FORMAT.roots({"copilot_home": ""}, {"COPILOT_HOME": str(home), **(env or {})})
        self.settings = SourceSettings(enabled=("copilot-cli",), roots={"copilot-cli": roots})
        self.ledger = ledger
        self.src = LogSources(ledger, self.settings)

    def poll(self) -> list[Event]:
        got: list[Event] = []
        self.src.poll(got.extend)
        return got


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return tmp_path / ".copilot"


def test_a_chat_span_is_one_call_with_cache_inclusive_input(home: Path) -> None:
    write_lines(home / "otel" / "cli.jsonl", [span(TOKSCALE_SPAN)])
    (e,) = Reader(home).poll()
    assert (e.input_tokens, e.cache_read_tokens, e.output_tokens, e.reasoning_tokens) == (19452, 123, 281, 128)
    assert e.uncached_input_tokens == 19329
    assert (e.id, e.agent, e.session, e.provider, e.model, e.source) == (
        "otel-span:trace-1:span-1", "copilot-cli", "conv-1", "github-copilot", "claude-sonnet-4", "copilot-cli-otel")
    assert e.latency_ms == pytest.approx(4834.3, abs=0.1)


def test_the_clis_underscore_cache_attributes_are_read(home: Path) -> None:
    # ccusage reads only the dotted names: the CLI's underscore spelling then counts cached input as new
    attrs = {"gen_ai.operation.name": "chat", "gen_ai.request.model": "claude-sonnet-4.6",
             "gen_ai.usage.input_tokens": 23000, "gen_ai.usage.output_tokens": 120,
             "gen_ai.usage.cache_read_input_tokens": 21881, "gen_ai.usage.cache_creation_input_tokens": 1097}
    write_lines(home / "otel" / "cli.jsonl", [span(attrs)])
    (e,) = Reader(home).poll()
    assert (e.input_tokens, e.cache_read_tokens, e.cache_write_tokens) == (23000, 21881, 1097)


def test_agent_rollups_metrics_and_tool_spans_are_not_calls(home: Path) -> None:
    rollup = {"gen_ai.operation.name": "invoke_agent", "gen_ai.conversation.id": "conv-1",
              "gen_ai.usage.input_tokens": 19452 * 2, "gen_ai.usage.output_tokens": 562}
    lines = [
        json.dumps({"type": "metric", "name": "gen_ai.client.token.usage", "dataPoints": [{"sum": 19452}]}),
        span(TOKSCALE_SPAN),
        span(dict(TOKSCALE_SPAN, **{"gen_ai.usage.input_tokens": 19452}), span_id="span-2"),
        span({"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "bash"}, name="execute_tool bash",
             span_id="span-3"),
        span(rollup, name="invoke_agent copilot", span_id="span-root"),
        '{"type":"span","traceId":"x","attributes":{"gen_ai.usage.input_tokens":',  # torn write at the end
    ]
    write_lines(home / "otel" / "cli.jsonl", lines)
    r = Reader(home)
    got = r.poll()
    assert [e.id for e in got] == ["otel-span:trace-1:span-1", "otel-span:trace-1:span-2"]
    assert r.src.stats.counters == {"agent_rollups_skipped": 1, "malformed": 1}


def test_the_exporter_path_from_the_environment_is_read(home: Path, tmp_path: Path) -> None:
    export = write_lines(tmp_path / "exports" / "copilot-otel.jsonl", [span(TOKSCALE_SPAN)])
    write_lines(tmp_path / "exports" / "unrelated.jsonl", [span(TOKSCALE_SPAN, span_id="other")])
    r = Reader(home, env={"COPILOT_OTEL_FILE_EXPORTER_PATH": str(export)})
    assert [e.id for e in r.poll()] == ["otel-span:trace-1:span-1"]
    assert str(export) in {str(d) for d in r.src.watch_dirs()}  # the file itself is watched
    assert [lf.path for lf, _ in r.src.files_at({str(export), str(tmp_path / "exports" / "unrelated.jsonl")})] == [
        str(export)]


def test_session_totals_one_per_model_per_lifetime(home: Path) -> None:
    t0 = NOW - 7200
    lines = [start("s-1", t0), record("user.message", t0 + 5, {"content": "hi"}, "e1"),
             shutdown(t0 + 600, {"claude-sonnet-4.6": usage(21583, 1064, 21187, 100), "gpt-5-mini": usage(5000, 300)}, "e2"),
             record("session.resume", t0 + 3600, {"sessionId": "s-1"}, "e3"),
             shutdown(t0 + 4000, {"claude-sonnet-4.6": usage(9000, 500, 8000)}, "e4"),
             shutdown(t0 + 4100, {}, "e5")]  # a lifetime the CLI recorded only in AI units
    write_lines(home / "session-state" / "s-1" / "events.jsonl", lines)
    r = Reader(home)
    got = sorted(r.poll(), key=lambda e: (e.ts, e.model or ""))
    assert [(e.model, e.input_tokens, e.cache_read_tokens, e.cache_write_tokens, e.output_tokens) for e in got] == [
        ("claude-sonnet-4.6", 21583, 21187, 100, 1064), ("gpt-5-mini", 5000, 0, 0, 300),
        ("claude-sonnet-4.6", 9000, 8000, 0, 500)]
    assert {(e.source, e.session, e.project, e.branch) for e in got} == {
        ("copilot-cli-session-total", "s-1", "webshop", "main")}
    assert r.src.stats.counters["shutdowns_without_metrics"] == 1


def test_a_lifetime_the_otel_export_covers_is_not_counted_again(home: Path, tmp_path: Path) -> None:
    t0 = NOW - 3600
    write_lines(home / "otel" / "cli.jsonl", [span(dict(TOKSCALE_SPAN, **{"gen_ai.conversation.id": "s-otel"}),
                                                   end=t0 + 100)])
    write_lines(home / "session-state" / "s-otel" / "events.jsonl",
                [start("s-otel", t0), shutdown(t0 + 300, {"claude-sonnet-4": usage(19452, 281, 123)})])
    write_lines(home / "session-state" / "s-plain" / "events.jsonl",
                [start("s-plain", t0), shutdown(t0 + 300, {"claude-sonnet-4": usage(1000, 10)})])
    ledger = Ledger(tmp_path / "l.db")
    try:
        r = Reader(home, ledger)
        got = r.poll()
        assert sorted((e.session, e.source) for e in got) == [("s-otel", "copilot-cli-otel"),
                                                              ("s-plain", "copilot-cli-session-total")]
        assert got[0].project == "webshop"  # the span's session, found through its session log
        assert r.src.stats.counters["session_totals_covered_by_otel"] == 1
        # after a restart, a resumed lifetime's shutdown: the spans read before the restart still count
        write_lines(home / "otel" / "cli.jsonl", [span(dict(TOKSCALE_SPAN, **{"gen_ai.conversation.id": "s-otel"}),
                                                       span_id="span-9", end=t0 + 1000)], mode="a")
        r2 = Reader(home, ledger)
        write_lines(home / "session-state" / "s-otel" / "events.jsonl",
                    [record("session.resume", t0 + 900, {"sessionId": "s-otel"}, "e5"),
                     shutdown(t0 + 1100, {"claude-sonnet-4": usage(19452, 281, 123)}, "e6")], mode="a")
        assert [e.source for e in r2.poll()] == ["copilot-cli-otel"]
    finally:
        ledger.close()


def test_a_span_sent_over_otlp_and_written_to_the_file_counts_once(home: Path, feed) -> None:  # noqa: ANN001
    # The CLI can export to tokentop's OTLP receiver and to a file: both give the span the same id.
    write_lines(home / "otel" / "cli.jsonl", [span(TOKSCALE_SPAN)])
    (from_file,) = Reader(home).poll()
    otlp = {"resourceSpans": [{"resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "github-copilot"}}]},
            "scopeSpans": [{"spans": [{"traceId": "trace-1", "spanId": "span-1", "name": "chat claude-sonnet-4",
                                       "endTimeUnixNano": str(int((NOW - 60) * 1e9)),
                                       "attributes": [{"key": k, "value": {"intValue": str(v)} if isinstance(v, int)
                                                       else {"stringValue": v}} for k, v in TOKSCALE_SPAN.items()]}]}]}]}
    assert httpx.post(feed.address + "/v1/traces", json=otlp, timeout=5).status_code == 200
    r = httpx.post(feed.address + "/v1/events", json=[from_file.to_dict()], timeout=5)
    assert r.status_code == 202 and r.json()["duplicates"] == 1 and r.json()["accepted"] == 0
    deadline = time.monotonic() + 5
    while feed.snapshot().totals.requests_today != 1:
        assert time.monotonic() < deadline
        time.sleep(0.02)


def test_home_from_the_environment_and_only_session_logs_under_session_state(tmp_path: Path) -> None:
    env = {"HOME": str(tmp_path)}
    assert copilot_cli.FORMAT.roots({"copilot_home": ""}, env) == (tmp_path / ".copilot",)
    assert copilot_cli.FORMAT.roots({"copilot_home": str(tmp_path / "c")}, env) == (tmp_path / "c",)
    assert copilot_cli.FORMAT.roots({"copilot_home": str(tmp_path / "c")}, {**env, "COPILOT_HOME": "/x"})[0] == Path("/x")
    home = tmp_path / ".copilot"
    write_lines(home / "session-state" / "s-1" / "events.jsonl", [start("s-1", NOW - 100), shutdown(NOW - 50, {"m": usage(10, 5)})])
    write_lines(home / "session-state" / "s-1" / "checkpoints.jsonl", [span(TOKSCALE_SPAN)])
    assert [e.source for e in Reader(home).poll()] == ["copilot-cli-session-total"]
    assert os.path.basename(copilot_cli.FORMAT.find(home)[0][0]) == "events.jsonl"
