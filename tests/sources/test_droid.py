"""Factory Droid's cumulative session files → events: deltas of snapshots, read by the real source."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.sources.test_agents_end_to_end import BENCH, report
from tests.sources.test_live import requests, start_feed, wait_for
from tokentop import cli
from tokentop.core.events import Event
from tokentop.core.ledger import Ledger
from tokentop.core.sources import droid
from tokentop.core.sources.droid import DroidSource, normalise_model
from tokentop.core.sources.protocol import SourceContext

# The shape ccusage's and tokscale's fixtures use (cumulative per session, rewritten in place).
FIXTURE = {"model": "Claude-Sonnet-4-[Anthropic]", "providerLock": "anthropic",
           "providerLockTimestamp": "2026-05-01T01:02:03.000Z",
           "tokenUsage": {"inputTokens": 100, "outputTokens": 50, "cacheCreationTokens": 20, "cacheReadTokens": 10,
                          "thinkingTokens": 5}}


def write(path: Path, obj: dict, mtime: float | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(obj))
    os.replace(tmp, path)
    if mtime is not None:
        os.utime(path, (mtime, mtime))
    return path


def source(root: Path, ledger: Ledger | None = None) -> DroidSource:
    return DroidSource(SourceContext(ledger, (root,), 30.0, "h", time.time, 5000))


def poll(src: DroidSource) -> list[Event]:
    got: list[Event] = []
    src.poll(got.extend)
    return got


def test_a_session_file_counts_whole_then_each_rewrite_counts_its_growth(tmp_path: Path) -> None:
    root = tmp_path / "sessions"
    f = write(root / "-home-dev-web" / "s-1.settings.json", FIXTURE)
    (root / "-home-dev-web" / "s-1.jsonl").write_text(json.dumps({"cwd": "/home/dev/web"}) + "\n")
    ledger = Ledger(tmp_path / "l.db")
    try:
        src = source(root, ledger)
        (e,) = poll(src)
        assert (e.input_tokens, e.cache_read_tokens, e.cache_write_tokens, e.output_tokens, e.reasoning_tokens) == (
            130, 10, 20, 55, 5)
        assert (e.id, e.session, e.model, e.provider, e.project, e.source) == (
            "droid:s-1:100:50:20:10:5", "s-1", "claude-sonnet-4", "anthropic", "web", "droid-settings")
        assert poll(src) == []  # unchanged
        grown = json.loads(json.dumps(FIXTURE))
        grown["tokenUsage"].update(inputTokens=160, outputTokens=90, cacheReadTokens=5000)
        write(f, grown, time.time() + 1)
        src = source(root, ledger)  # after a restart: the last snapshot is in the ledger
        (d,) = poll(src)
        assert (d.input_tokens, d.output_tokens, d.cache_read_tokens) == (60 + 4990, 40, 4990)
    finally:
        ledger.close()


def test_a_session_older_than_the_window_sets_the_baseline_only(tmp_path: Path) -> None:
    root = tmp_path / "sessions"
    f = write(root / "s-old.settings.json", FIXTURE, time.time() - 40 * 86400)
    src = source(root)
    assert poll(src) == [] and src.stats.too_old == 1
    grown = json.loads(json.dumps(FIXTURE))
    grown["tokenUsage"]["outputTokens"] = 80
    write(f, grown, time.time())
    (e,) = poll(src)
    assert (e.input_tokens, e.output_tokens) == (0, 30)  # only what the session added since


def test_a_total_that_went_down_adds_nothing_negative(tmp_path: Path) -> None:
    root = tmp_path / "sessions"
    f = write(root / "s-1.settings.json", FIXTURE)
    src = source(root)
    poll(src)
    smaller = json.loads(json.dumps(FIXTURE))
    smaller["tokenUsage"].update(inputTokens=10, outputTokens=70)
    write(f, smaller, time.time() + 1)
    (e,) = poll(src)
    assert (e.input_tokens, e.output_tokens) == (0, 20) and src.stats.counters["decreased_totals"] == 1


def test_model_labels_and_the_transcript_fallback(tmp_path: Path) -> None:
    assert normalise_model("custom:Claude-Opus-4.5-Thinking-[Anthropic]-0") == "claude-opus-4.5"
    assert normalise_model("Claude-Sonnet-4-[Anthropic]") == "claude-sonnet-4"
    assert normalise_model("custom:gpt-5.5 (high)") == "gpt-5.5"
    assert normalise_model("gpt-5.4-medium") == "gpt-5.4"
    assert normalise_model("opus-4.5") == "claude-opus-4.5"
    assert normalise_model("custom:glm-5.1") == "glm-5.1"
    root = tmp_path / "sessions"
    no_model = {k: v for k, v in FIXTURE.items() if k != "model"}
    write(root / "s-2.settings.json", no_model)
    (root / "s-2.jsonl").write_text(json.dumps({"text": "<system-reminder>Model: Claude Opus 4.5 Thinking [Anthropic]"}) + "\n")
    (e,) = poll(source(root))
    assert e.model == "claude-opus-4.5"


def test_a_file_caught_mid_rewrite_is_read_again_when_complete(tmp_path: Path) -> None:
    root = tmp_path / "sessions"
    f = root / "s-1.settings.json"
    f.parent.mkdir(parents=True)
    f.write_text('{"tokenUsage": {"inputTokens": 1')
    src = source(root)
    assert poll(src) == [] and src.stats.counters["malformed"] == 1
    write(f, FIXTURE, time.time() + 1)
    assert len(poll(src)) == 1


def test_a_generated_droid_store_imports_to_its_ground_truth(isolated_dirs: Path) -> None:
    home = Path(os.environ["HOME"])
    subprocess.run([sys.executable, str(BENCH / "gen_droid.py"), "--out", str(home), "--sessions", "60", "--seed", "4"],
                   check=True, capture_output=True)
    gt = json.loads((home / "ground_truth.json").read_text())
    assert cli.main(["import", "--source", "droid"]) == 0
    rows = [r for r in report("--by", "agent")["by_agent"] if r["agent"] == "droid"]
    assert sum(r["requests"] for r in rows) == gt["requests"]
    for field in ("input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens"):
        assert sum(r[field] for r in rows) == gt[field], field
    assert sum(r["usd"] for r in rows) == pytest.approx(gt["cost_usd"], abs=1e-6)


@pytest.mark.parametrize("watch", [True, False], ids=["watchfiles", "polling"])
def test_a_rewrite_reaches_the_snapshot_within_one_second(tmp_path: Path, isolated_dirs: Path, watch: bool) -> None:
    f = write(Path(os.environ["HOME"]) / ".factory" / "sessions" / "p" / "s-1.settings.json", FIXTURE)
    runner = start_feed(tmp_path, watch=watch, poll_interval_s=0.25)
    try:
        wait_for(lambda: requests(runner) == 1, 5)
        wait_for(lambda: runner.snapshot().status.get("sources", {}).get("state") in ("watching", "polling"), 5)
        time.sleep(0.3)
        grown = json.loads(json.dumps(FIXTURE))
        grown["tokenUsage"]["outputTokens"] = 500
        write(f, grown, time.time())
        assert wait_for(lambda: requests(runner) == 2, 1.0) < 1.0
    finally:
        runner.stop()


def test_declared_once() -> None:
    assert droid.FORMAT.roots({"factory_home": ""}, {"HOME": "/h"}) == (Path("/h/.factory/sessions"),)


def test_the_transcript_model_ends_at_a_tag(tmp_path: Path) -> None:
    root = tmp_path / "sessions"
    write(root / "s-3.settings.json", {k: v for k, v in FIXTURE.items() if k != "model"})
    (root / "s-3.jsonl").write_text(json.dumps({"text": "<system-reminder>Model: gpt-5.4-medium</system-reminder>"}) + "\n")
    (e,) = poll(source(root))
    assert e.model == "gpt-5.4"
