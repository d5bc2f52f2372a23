"""Log sources inside a real feed: zero set-up backfill, import status, live lines within 1 s, restart."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Callable

import pytest

from tests.sources.helpers import claude_line, write_lines
from tokentop import config as config_mod
from tokentop.core.feed.runner import FeedRunner
from tokentop.core.sources.settings import KNOWN_SOURCES


def wait_for(cond: Callable[[], bool], timeout: float) -> float:
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if cond():
            return time.monotonic() - t0
        time.sleep(0.02)
    raise AssertionError(f"not within {timeout} s")


def start_feed(tmp_path: Path, **sources) -> FeedRunner:
    cfg = config_mod.from_mapping({"ledger": {"path": str(tmp_path / "feed.db")}, "sources": sources})
    return FeedRunner(cfg, listen="127.0.0.1:0", host_name="test-host").start_in_thread(require_listen=True)


@pytest.fixture
def session_file(isolated_dirs: Path) -> Path:
    home = Path(os.environ["HOME"])
    return write_lines(home / ".claude" / "projects" / "-home-dev-proj" / "s1.jsonl",
                       [claude_line("m1", "r1", out=100), claude_line("m2", "r2", out=200)])


def requests(runner: FeedRunner) -> int:
    return runner.snapshot().totals.requests_today


def test_feed_backfills_existing_logs_with_zero_setup(tmp_path: Path, session_file: Path) -> None:
    cfg = config_mod.from_mapping({"ledger": {"path": str(tmp_path / "feed.db")}})
    runner = FeedRunner(cfg, listen="127.0.0.1:0", host_name="test-host")
    seen: list[dict] = []
    set_status = runner.service.set_status
    runner.service.set_status = lambda key, value: (seen.append(value) if key == "import" else None,  # type: ignore[method-assign]
                                                    set_status(key, value))
    runner.start_in_thread(require_listen=True)
    try:
        wait_for(lambda: requests(runner) == 2, 5)
        wait_for(lambda: runner.snapshot().status.get("import", {}).get("state") == "done", 5)
        status = runner.snapshot().status
        assert status["import"]["percent"] == 100
        assert status["sources"]["enabled"] == list(KNOWN_SOURCES)
        # the live view shows "importing NN %" while the backfill runs
        assert seen[0] == {"state": "importing", "percent": 0, "text": "importing 0 %"}
        assert any(v["state"] == "importing" and v["percent"] == 100 for v in seen)
    finally:
        runner.stop()


@pytest.mark.parametrize("watch", [True, False], ids=["watchfiles", "polling"])
def test_appended_line_reaches_the_snapshot_within_one_second(tmp_path: Path, session_file: Path, watch: bool) -> None:
    runner = start_feed(tmp_path, watch=watch, poll_interval_s=0.25)
    try:
        wait_for(lambda: requests(runner) == 2, 5)
        wait_for(lambda: runner.snapshot().status.get("sources", {}).get("state") in ("watching", "polling"), 5)
        write_lines(session_file, [claude_line("m3", "r3", out=7, stop=None, ts=time.time()),
                                   claude_line("m3", "r3", out=300, ts=time.time())], mode="a")
        elapsed = wait_for(lambda: requests(runner) == 3, 1.0)
        assert elapsed < 1.0
        assert runner.snapshot().totals.output_tokens_today == 600  # the final streaming line, once
    finally:
        runner.stop()


@pytest.mark.parametrize("watch", [True, False], ids=["watchfiles", "polling"])
def test_a_streaming_response_is_on_screen_at_first_sight_and_shows_its_final_usage_within_a_second(
        tmp_path: Path, session_file: Path, watch: bool) -> None:
    """Claude Code 2.x: no stop_reason on any line, block lines far apart. The first line is shown at
    once; the line with the final count, written 40 s of transcript time later, revises it."""
    runner = start_feed(tmp_path, watch=watch, poll_interval_s=0.25)
    try:
        wait_for(lambda: requests(runner) == 2, 5)
        wait_for(lambda: runner.snapshot().status.get("sources", {}).get("state") in ("watching", "polling"), 5)
        t0 = time.time()
        write_lines(session_file, [claude_line("m3", "r3", out=2, stop=None, ts=t0 - 40)], mode="a")
        assert wait_for(lambda: requests(runner) == 3, 1.0) < 1.0
        assert runner.snapshot().totals.output_tokens_today == 300 + 2
        write_lines(session_file, [claude_line("m3", "r3", out=2701, stop=None, ts=t0)], mode="a")
        assert wait_for(lambda: runner.snapshot().totals.output_tokens_today == 300 + 2701, 1.0) < 1.0
        assert requests(runner) == 3 and runner.snapshot().status["ingest"]["revised"] == 1
    finally:
        runner.stop()


def test_an_import_during_a_live_session_equals_a_later_quiet_import(tmp_path: Path, monkeypatch) -> None:
    """``tokentop import`` run while a response streams stores what it read; the next import revises
    it. The ledger then holds what one import of the finished files gives."""
    from tokentop import cli
    from tokentop.core.ledger import Ledger

    home = Path(os.environ["HOME"])
    path = home / ".claude" / "projects" / "-home-dev-proj" / "s1.jsonl"
    t = time.time() - 300
    done = [claude_line("m1", "r1", out=100, ts=t)]
    streaming = [claude_line("m2", "r2", out=3, stop=None, ts=t + 10),  # block lines of a response
                 claude_line("m2", "r2", out=3, stop=None, ts=t + 12)]
    rest = [claude_line("m2", "r2", out=812, stop=None, ts=t + 80),  # its final count, 70 s later
            claude_line("m3", "r3", out=5, ts=t + 90)]

    def stored(ledger_path: Path) -> list[tuple]:
        with Ledger(ledger_path) as ledger:
            return sorted((s.event.id, s.event.ts, s.event.tokens, s.event.output_tokens, s.cost.pusd, s.cost.kind)
                          for s in ledger.events_since(0))

    live = tmp_path / "live.db"
    monkeypatch.setenv("TOKENTOP_DATA_DIR", str(tmp_path / "live"))
    write_lines(path, done + streaming)
    assert cli.main(["import", "--quiet"]) == 0  # while the session is being written
    write_lines(path, rest, mode="a")
    assert cli.main(["import", "--quiet"]) == 0
    live = next((tmp_path / "live").rglob("tokentop.db"))
    monkeypatch.setenv("TOKENTOP_DATA_DIR", str(tmp_path / "quiet"))
    assert cli.main(["import", "--quiet"]) == 0  # a fresh ledger, the finished file
    quiet = next((tmp_path / "quiet").rglob("tokentop.db"))
    assert stored(live) == stored(quiet)
    assert [row[3] for row in stored(live)] == [100, 812, 5]


def test_restart_counts_nothing_twice(tmp_path: Path, session_file: Path) -> None:
    runner = start_feed(tmp_path)
    try:
        wait_for(lambda: requests(runner) == 2, 5)
    finally:
        runner.stop()
    runner = start_feed(tmp_path)
    try:
        wait_for(lambda: runner.snapshot().status.get("import", {}).get("state") == "done", 5)
        assert requests(runner) == 2
        assert runner.snapshot().status["import"]["events"] == 0  # the cursor said: nothing new
    finally:
        runner.stop()


def test_disabled_sources_read_nothing(tmp_path: Path, session_file: Path) -> None:
    runner = start_feed(tmp_path, enabled=[])
    try:
        time.sleep(0.3)
        assert requests(runner) == 0 and runner.parts.sources is None
    finally:
        runner.stop()
