"""The same Claude Code request through OTLP and the transcript counts once, at the right price.

On a real 2.1.294 OTLP/HTTP JSON body (``tests/fixtures/real``): ``intValue`` token counts, a
``doubleValue`` ``cost_usd`` of $0.00276519 and no 5-minute/1-hour cache-write split. Priced from its
tokens alone (every write at the 5-minute rate) the request would be $0.00176349; Claude Code's own
cost knows its writes were 1-hour ones. The transcript line of the same request (built on a real
2.1.263 line, with this request's ids and usage) states the split.
"""

from __future__ import annotations

import copy
import json
import os
import time
from decimal import Decimal
from pathlib import Path
from typing import Any, Callable

import httpx
import pytest

from tests.sources.helpers import iso, write_lines
from tokentop import config as config_mod
from tokentop.core.feed.runner import FeedRunner

REAL = Path(__file__).resolve().parents[1] / "fixtures" / "real"
REQUEST_ID = "req_011CfpSK96NthX9vPNsW9X2b"
SESSION = "eec3945a-5a85-4c3c-9aa2-39e4b8445cef"
PROVIDED = Decimal("0.00276519")  # Claude Code's cost_usd (0.0027651900000000003 as a double)
ALL_5M = Decimal("0.00176349")  # the same tokens with every cache write at the 5-minute rate


def otlp_body(ts: float) -> dict[str, Any]:
    """The real body, re-stamped to ``ts`` (the feed's today); nothing else changed."""
    body = json.loads((REAL / "claude-code-2.1.294-otlp-logs-api-request.json").read_text())
    for res in body["resourceLogs"]:
        for scope in res["scopeLogs"]:
            for rec in scope["logRecords"]:
                rec["timeUnixNano"] = rec["observedTimeUnixNano"] = str(int(ts * 1e9))
                for kv in rec["attributes"]:
                    if kv["key"] == "event.timestamp":
                        kv["value"]["stringValue"] = iso(ts)
    return body


def transcript_line(ts: float) -> str:
    """A real 2.1.263 assistant line carrying this request: its ids, model, usage and 1-hour split."""
    line = json.loads((REAL / "v2.1.263_final_usage_on_block_lines_apiBlockIndex.jsonl").read_text().splitlines()[0])
    line = copy.deepcopy(line)
    line["requestId"] = REQUEST_ID
    line["sessionId"] = SESSION
    line["timestamp"] = iso(ts)
    msg = line["message"]
    msg["model"] = "claude-haiku-5-5"
    msg["id"] = "msg_011CfpSK9ZzBgN8hz5n7s1qE"
    usage = msg["usage"]
    usage.update(input_tokens=2, output_tokens=4, cache_read_input_tokens=9179, cache_creation_input_tokens=13356,
                 cache_creation={"ephemeral_1h_input_tokens": 13356, "ephemeral_5m_input_tokens": 0})
    usage["output_tokens_details"] = {"thinking_tokens": 0}
    usage["iterations"] = []
    return json.dumps(line)


def wait_for(cond: Callable[[], Any], timeout: float = 10.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = cond()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError(f"not within {timeout} s")


@pytest.fixture
def start(tmp_path: Path):
    runners: list[FeedRunner] = []

    def make(name: str) -> FeedRunner:
        (tmp_path / name / "claude" / "projects").mkdir(parents=True)  # watched from the start
        cfg = config_mod.from_mapping({"ledger": {"path": str(tmp_path / f"{name}.db")},
                                       "sources": {"claude_roots": [str(tmp_path / name / "claude")],
                                                   "enabled": ["claude-code"]}})
        runner = FeedRunner(cfg, listen="127.0.0.1:0", host_name="test-host").start_in_thread(require_listen=True)
        runners.append(runner)
        return runner

    yield make
    for r in runners:
        r.stop()


def post_otlp(runner: FeedRunner, ts: float) -> None:
    r = httpx.post(runner.address + "/v1/logs", json=otlp_body(ts), timeout=10)
    assert r.status_code == 200 and r.json() == {}


def write_transcript(tmp_path: Path, name: str, ts: float) -> None:
    write_lines(tmp_path / name / "claude" / "projects" / "-home-user-project" / f"{SESSION}.jsonl",
                [transcript_line(ts)])


def request_record(runner: FeedRunner) -> dict[str, Any]:
    (item,) = httpx.get(runner.address + "/v1/requests", timeout=5).json()["requests"]
    return item


def money(runner: FeedRunner) -> tuple[int, Decimal, Decimal, Decimal]:
    t = runner.snapshot().totals
    return t.requests_today, t.usd_today, t.usd_estimated_today, t.usd_provided_today


def test_otlp_alone_uses_claude_codes_provided_cost_not_a_price_without_the_split(start) -> None:
    feed = start("otlp")
    post_otlp(feed, time.time() - 5)
    requests, usd, estimated, provided = money(feed)
    assert (requests, usd, provided, estimated) == (1, PROVIDED, PROVIDED, 0)  # $0.00277, not $0.00176
    item = request_record(feed)
    assert item["id"] == f"claude:{REQUEST_ID}" and item["cost_kind"] == "provided"
    assert (item["input_tokens"], item["output_tokens"], item["cache_read_tokens"], item["cache_write_tokens"]) == \
        (2 + 9179 + 13356, 4, 9179, 13356)  # intValue numbers read as numbers
    assert item["cost_usd"] == pytest.approx(float(PROVIDED)) and "speed" not in item  # "normal" is the standard speed


def test_otlp_then_transcript_equals_transcript_alone_to_the_micro_dollar(start, tmp_path: Path) -> None:
    ts = time.time() - 5
    alone = start("alone")
    write_transcript(tmp_path, "alone", ts)
    wait_for(lambda: money(alone)[0] == 1)
    both = start("both")
    post_otlp(both, ts + 0.3)
    assert money(both)[3] == PROVIDED
    write_transcript(tmp_path, "both", ts)  # the transcript arrives later and revises the OTLP record
    wait_for(lambda: money(both)[3] == 0)
    assert money(both) == money(alone) == (1, PROVIDED, PROVIDED, 0)  # now estimated, from the 1-hour split
    a, b = request_record(alone), request_record(both)
    assert b == a and b["cache_write_1h_tokens"] == 13356 and b["source"] == "claude-code-log"
    assert both.snapshot().status["ingest"]["revised"] == 1
    stored = both.ledger.get(f"claude:{REQUEST_ID}")
    assert stored is not None and stored.revisions == 1 and stored.cost.kind == "estimated"
    assert stored.cost.pusd == alone.ledger.get(f"claude:{REQUEST_ID}").cost.pusd == 2_765_190_000
    # and the other way round: the OTLP record after the transcript changes nothing
    post_otlp(alone, ts + 0.3)
    assert money(alone) == (1, PROVIDED, PROVIDED, 0) and request_record(alone) == a
    assert alone.snapshot().status["ingest"] == {"accepted": 1, "revised": 0, "duplicates": 1, "rejected": 0}


def test_priced_without_the_split_the_request_would_be_the_issue_figure(start, tmp_path: Path) -> None:
    """The figure the provided cost replaces: the OTLP tokens priced with every write at 5 minutes."""
    feed = start("no-cost")
    body = otlp_body(time.time() - 5)
    for kv in body["resourceLogs"][0]["scopeLogs"][0]["logRecords"][0]["attributes"]:
        if kv["key"] in ("cost_usd", "cost_usd_micros"):
            kv["key"] = "x_" + kv["key"]
    assert httpx.post(feed.address + "/v1/logs", json=body, timeout=10).status_code == 200
    assert money(feed) == (1, ALL_5M, ALL_5M, 0)
    assert os.environ.get("HOME")  # (isolated dirs: no real logs read)
