"""OpenCode, Kilo and Copilot CLI end to end: a generated store imported with ``tokentop import``
equals its ground truth (tokens exact, cost as priced), and a record a running agent writes reaches
a real feed's snapshot within 1 s."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import time
from contextlib import redirect_stdout
from pathlib import Path

import pytest

from tests.sources.opencode_store import STEP_A, STEP_CLAUDE, Store
from tests.sources.test_live import requests, start_feed, wait_for
from tokentop import cli

BENCH = Path(__file__).resolve().parents[2] / "bench"


def report(*args: str) -> dict:
    buf = io.StringIO()
    with redirect_stdout(buf):
        assert cli.main(["report", "--json", "--utc", "--days", "31", *args]) == 0
    return json.loads(buf.getvalue())


def generate(script: str, out: Path, *args: str) -> dict:
    subprocess.run([sys.executable, str(BENCH / script), "--out", str(out), "--seed", "5", *args], check=True,
                   capture_output=True)
    return json.loads((out / "ground_truth.json").read_text())


def check_totals(rows: list[dict], gt: dict) -> None:
    assert sum(r["requests"] for r in rows) == gt["requests"]
    for field in ("input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens"):
        assert sum(r[field] for r in rows) == gt[field], field
    # cost: genai-prices for the priced requests (+ the agent's own figure where it is the only one)
    assert sum(r["usd"] for r in rows) == pytest.approx(gt["cost_usd"], abs=1e-6)
    assert sum(r.get("unpriced_requests", 0) for r in rows) == gt["unpriced_requests"]


@pytest.mark.parametrize("app", ["opencode", "kilo"])
def test_a_generated_opencode_store_imports_to_its_ground_truth(isolated_dirs: Path, app: str, capsys) -> None:
    home = Path(os.environ["HOME"])
    gt = generate("gen_opencode.py", home, "--app", app, "--steps", "1500", "--sessions", "30")
    assert gt["traps"]["forks"] and gt["traps"]["json_only_sessions"] and gt["traps"]["v2_sessions"]
    before = sorted(os.listdir(home / ".local" / "share" / app))
    assert cli.main(["import", "--source", app]) == 0
    assert "imported" in capsys.readouterr().err
    assert sorted(os.listdir(home / ".local" / "share" / app)) == before  # nothing created beside the db
    rows = [r for r in report("--by", "agent")["by_agent"] if r["agent"] == app]
    check_totals(rows, gt)
    assert cli.main(["import", "--source", app]) == 0  # again: nothing new, nothing counted twice
    check_totals([r for r in report("--by", "agent")["by_agent"] if r["agent"] == app], gt)


def test_a_generated_copilot_store_imports_to_its_ground_truth(isolated_dirs: Path) -> None:
    home = Path(os.environ["HOME"])
    gt = generate("gen_copilot.py", home, "--calls", "1500", "--sessions", "40")
    assert gt["by_source"]["copilot-cli-otel"] and gt["by_source"]["copilot-cli-session-total"]
    assert cli.main(["import", "--source", "copilot-cli"]) == 0
    rows = [r for r in report("--by", "agent")["by_agent"] if r["agent"] == "copilot-cli"]
    check_totals(rows, gt)


# -- live --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("watch", [True, False], ids=["watchfiles", "polling"])
def test_a_call_opencode_writes_reaches_the_snapshot_within_one_second(tmp_path: Path, isolated_dirs: Path,
                                                                       watch: bool) -> None:
    store = Store(Path(os.environ["HOME"]) / ".local" / "share" / "opencode")
    store.call(STEP_A)
    runner = start_feed(tmp_path, watch=watch, poll_interval_s=0.25)
    try:
        wait_for(lambda: requests(runner) == 1, 5)
        wait_for(lambda: runner.snapshot().status.get("sources", {}).get("state") in
                 ("watching", "polling", "waiting for log dirs"), 5)
        store.call(STEP_CLAUDE, created=int(time.time() * 1000) - 8000)  # (its step ends 5 s later)
        assert wait_for(lambda: requests(runner) == 2, 1.0) < 1.0
        # a 2.x row, inserted at the call's start and completed in place
        store.session("ses_v2")
        now = int(time.time() * 1000)
        row = {"agent": "build", "model": {"id": "gpt-5", "providerID": "openai"}, "content": [], "time": {"created": now}}
        rid = store.v2(row)
        time.sleep(0.3)
        assert requests(runner) == 2
        store.update_v2(rid, dict(row, tokens={"input": 10, "output": 5, "reasoning": 0, "cache": {"read": 0, "write": 0}},
                                  time={"created": now, "completed": now + 200}))
        assert wait_for(lambda: requests(runner) == 3, 1.0) < 1.0
    finally:
        runner.stop()
        store.exit()


def test_an_opencode_database_created_after_the_feed_started_is_followed(tmp_path: Path, isolated_dirs: Path) -> None:
    data = Path(os.environ["HOME"]) / ".local" / "share" / "opencode"
    data.mkdir(parents=True)
    runner = start_feed(tmp_path)
    try:
        wait_for(lambda: runner.snapshot().status.get("import", {}).get("state") == "done", 5)
        store = Store(data)  # a first run of OpenCode
        store.call(STEP_A)
        assert wait_for(lambda: requests(runner) == 1, 1.5) < 1.5
        store.exit()
    finally:
        runner.stop()


@pytest.mark.parametrize("watch", [True, False], ids=["watchfiles", "polling"])
def test_a_copilot_otel_span_reaches_the_snapshot_within_one_second(tmp_path: Path, isolated_dirs: Path,
                                                                    watch: bool) -> None:
    otel = Path(os.environ["HOME"]) / ".copilot" / "otel"
    otel.mkdir(parents=True)
    path = otel / "copilot.jsonl"
    path.write_text(span("t1", "s1", time.time() - 60) + "\n")
    runner = start_feed(tmp_path, watch=watch, poll_interval_s=0.25)
    try:
        wait_for(lambda: requests(runner) == 1, 5)
        wait_for(lambda: runner.snapshot().status.get("sources", {}).get("state") in ("watching", "polling"), 5)
        time.sleep(0.3)  # the watches are set up just after the state is published
        with open(path, "a") as fh:
            fh.write(span("t2", "s2", time.time()) + "\n")
        assert wait_for(lambda: requests(runner) == 2, 1.0) < 1.0
    finally:
        runner.stop()


def span(trace: str, span_id: str, end: float) -> str:
    return json.dumps({"type": "span", "traceId": trace, "spanId": span_id, "name": "chat claude-sonnet-4.6",
                       "startTime": [int(end) - 3, 0], "endTime": [int(end), int((end % 1) * 1e9)],
                       "attributes": {"gen_ai.operation.name": "chat", "gen_ai.request.model": "claude-sonnet-4.6",
                                      "gen_ai.conversation.id": "conv-1", "gen_ai.usage.input_tokens": 1000,
                                      "gen_ai.usage.output_tokens": 50, "gen_ai.usage.cache_read.input_tokens": 800}})
