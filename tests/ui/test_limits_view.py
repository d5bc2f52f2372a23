"""The subscription windows in the live view: the lines under the header at 80x24 and 160x45, the
``5H%`` column and its sort, and a Codex rollout appended live reaching the screen."""

from __future__ import annotations

import json
import time
from dataclasses import replace
from pathlib import Path

import pytest

from tests.sources.helpers import iso, write_lines
from tests.ui.helpers import NOW, fleet_events, make_app, names_in_order, snapshot_of, table_lines
from tokentop.core.limits.windows import Share, Window
from tokentop.core.snapshot import Snapshot
from tokentop.ui.limits_bar import LimitsBar
from tokentop.ui.limits_line import window_parts
from tokentop.ui.plain import plain_frame

FULL_5H = "Claude 5h  62 % ▕██████▎   ▏ resets 1h12m · pace +8 · empty in ~38m at this burn · Claude Code"


def windows() -> tuple[Window, ...]:
    five = Window("claude-code", "~/.claude", "5h", 62.0, NOW + 72 * 60 + 20, 300, "claude-statusline", NOW - 30,
                  pace_percent=8.0, exhausts_at=NOW + 38 * 60 + 20, tokens=100_000,
                  eaten_by=(Share("cc-1", 75_000, 0.75),))
    week = Window("claude-code", "~/.claude", "7d", 41.0, NOW + 3 * 86400 + 20, 10080, "claude-statusline", NOW - 30,
                  pace_percent=-16.1)
    return (five, week)


def with_windows(snap: Snapshot, ws: tuple[Window, ...] | None = None) -> Snapshot:
    return replace(snap, limits=windows() if ws is None else ws)


def words(line: str) -> list[str]:
    return line.split()


@pytest.mark.parametrize("size", [(80, 24), (160, 45)])
async def test_one_line_per_window_fitting_the_pane_and_never_cut_mid_word(size: tuple[int, int]) -> None:
    app = make_app(with_windows(snapshot_of(fleet_events())))
    async with app.run_test(size=size) as pilot:
        await pilot.pause()
        bar = app.query_one(LimitsBar)
        assert bar.display and bar.region.height == 2
        lines = bar.plain()
        assert len(lines) == 2
        full = [FULL_5H, "Claude 7d  41 % ▕████▏     ▏ resets 3d · pace -16 · Claude Code"]
        for line, whole in zip(lines, full):
            assert len(line) <= bar.content_size.width
            # only whole fields are shed: every word shown is a word of the full line (or its short form)
            assert set(words(line)) <= set(words(whole)) | {"empty", "~38m", "official"} | set(bar_words(whole))
        if size[0] >= 100:
            assert lines[0] == FULL_5H
        else:
            assert lines[0].startswith("Claude 5h  62 % ▕") and "resets 1h12m" in lines[0] and "pace +8" in lines[0]
        # the header above is unchanged, the table below starts after the two lines
        assert app.query_one("#table").region.y == bar.region.y + 2


def bar_words(line: str) -> list[str]:
    return ["▕███▊", "▏", "▕██▌", "▕████▎"]  # the short bars, as split into words


async def test_the_lines_shed_fields_in_order_when_narrow() -> None:
    w = windows()[0]
    from tokentop.ui.limits_line import fit

    def text(width: int) -> str:
        return "".join(t for t, _ in fit(window_parts(w, NOW, "Claude 5h"), width))

    assert text(200) == FULL_5H
    assert text(80) == "Claude 5h  62 % ▕██████▎   ▏ resets 1h12m · pace +8 · empty ~38m · Claude Code"
    assert text(70) == "Claude 5h  62 % ▕███▊  ▏ ↻1h12m · pace +8 · empty ~38m · official"
    assert text(60) == "Claude 5h  62 % ▕███▊  ▏ ↻1h12m · empty ~38m · official"
    assert text(40) == "Claude 5h  62 % ↻1h12m · empty ~38m"
    assert text(25) == "Claude 5h  62 % ↻1h12m"


async def test_an_estimate_is_marked_and_a_reset_window_awaits_data() -> None:
    est = Window("claude-code", "local", "5h", 40.0, NOW + 3600, 300, "estimated", NOW, pace_percent=-40.0,
                 limit_tokens=88_000)
    reset = Window("codex", "~/.codex", "5h", 0.0, NOW - 60, 300, "codex-log", NOW - 4000, state="reset")
    app = make_app(with_windows(snapshot_of(fleet_events()), (est, reset)))
    async with app.run_test(size=(120, 30)) as pilot:
        await pilot.pause()
        lines = app.query_one(LimitsBar).plain()
        assert lines[0].startswith("Claude 5h  ~40 % ▕") and lines[0].endswith("· estimated")
        assert lines[1] == "Codex 5h    0 % reset, awaiting data · Codex log · seen 1h06m ago"


async def test_hidden_without_subscription_data_and_condensed_in_a_small_pane() -> None:
    app = make_app(snapshot_of(fleet_events()))
    async with app.run_test(size=(120, 30)) as pilot:
        await pilot.pause()
        assert not app.query_one(LimitsBar).display
    app = make_app(with_windows(snapshot_of(fleet_events())))
    async with app.run_test(size=(60, 15)) as pilot:
        await pilot.pause()
        assert app.query_one(LimitsBar).plain() == ["Claude 5h 62% ↻1h12m 7d 41%"]


async def test_the_5h_column_shows_who_ate_the_window_and_sorts() -> None:
    app = make_app(with_windows(snapshot_of(fleet_events())), view="sessions")
    async with app.run_test(size=(160, 40)) as pilot:
        await pilot.pause()
        header = table_lines(app)[0]
        assert "5H%" in header
        row = next(line for line in table_lines(app) if line.lstrip().startswith("cc-1"))
        # 75 % of the window's tokens x 62 % used = 46.5 points of the window
        assert " 46 " in row or " 47 " in row
        await pilot.press("W")
        assert names_in_order(app)[0] == "cc-1"
        assert app.sort_key == "window"
        await pilot.press("1")
        agents = next(line for line in table_lines(app) if line.lstrip().startswith("claude-code"))
        assert " 62 " in agents
    # no window: no column
    app = make_app(snapshot_of(fleet_events()), view="sessions")
    async with app.run_test(size=(160, 40)) as pilot:
        await pilot.pause()
        assert "5H%" not in table_lines(app)[0]


def test_plain_frame_lists_the_windows_and_the_column() -> None:
    text = plain_frame(with_windows(snapshot_of(fleet_events())), view="sessions", sort="window", now=NOW)
    lines = text.splitlines()
    at = lines.index("Claude 5h  62 % resets 1h12m · pace +8 · empty in ~38m at this burn · Claude Code")
    assert lines[at + 1] == "Claude 7d  41 % resets 3d · pace -16 · Claude Code"
    assert "5H%" in lines[at + 2] and lines[at + 3].startswith("cc-1")


async def test_a_codex_rollout_appended_live_and_a_statusline_show_in_the_header(tmp_path: Path) -> None:
    """End to end: a real feed embedded in the app reads ~/.codex; a line with rate_limits appended
    to a live rollout reaches the lines under the header, and so does a statusLine payload piped to
    a real ``tokentop statusline`` process."""
    from tokentop import config as config_mod
    from tokentop.core.feed.runner import FeedRunner
    from tokentop.ui.source import EmbeddedSource

    day = Path.home() / ".codex" / "sessions" / "2026" / "12" / "06"
    day.mkdir(parents=True)
    sid = "019c8bfe-0000-7000-8000-0000000000e2"
    path = write_lines(day / f"rollout-2026-12-06T10-00-00-{sid}.jsonl", [json.dumps(
        {"timestamp": iso(time.time()), "type": "session_meta", "payload": {"id": sid, "cwd": "/p"}})])
    runner = FeedRunner(config_mod.from_mapping({"ledger": {"path": str(tmp_path / "f.db")}}), listen="127.0.0.1:0")
    runner.start_in_thread(require_listen=True)
    try:
        app = make_app(source=EmbeddedSource(runner), clock=time.time)
        async with app.run_test(size=(120, 30)) as pilot:
            deadline = time.monotonic() + 10
            while (runner.snapshot().status.get("sources") or {}).get("state") != "watching" and time.monotonic() < deadline:
                await pilot.pause(0.05)
            now = time.time()
            write_lines(path, [json.dumps({"timestamp": iso(now), "type": "event_msg", "payload": {
                "type": "token_count", "info": None, "rate_limits": {
                    "limit_id": "codex", "primary": {"used_percent": 23.0, "window_minutes": 300, "resets_at": now + 3000},
                    "secondary": None, "plan_type": "plus"}}})], mode="a")
            t0 = time.monotonic()
            lines: list[str] = []
            while time.monotonic() - t0 < 10:
                app.refresh_now()
                await pilot.pause(0.05)
                lines = app.query_one(LimitsBar).plain()
                if lines:
                    break
            elapsed = time.monotonic() - t0
            assert lines and lines[0].startswith("Codex 5h  23 % ▕██▎"), lines
            assert "Codex log" in lines[0]
            assert elapsed < 5  # ~0.1 s here: the watcher's debounce; a stall would take the 30 s rescan
            # Claude Code runs its statusLine command: the figures reach the same lines
            import asyncio
            import os
            import subprocess
            import sys

            script = Path(sys.executable).with_name("tokentop")
            argv = [str(script)] if script.exists() else [sys.executable, "-m", "tokentop"]
            data = json.loads((Path(__file__).parents[1] / "limits" / "fixtures" /
                               "statusline_2.1.x_rate_limits_filled_COMPOSED.json").read_text())
            data["rate_limits"]["five_hour"]["resets_at"] = int(time.time()) + 4000
            data["rate_limits"]["seven_day"]["resets_at"] = int(time.time()) + 86400
            done = await asyncio.to_thread(
                subprocess.run, [*argv, "statusline"], input=json.dumps(data).encode(), capture_output=True,
                env=dict(os.environ, TOKENTOP_FEED=str(runner.url), NO_COLOR="1"), timeout=30)
            assert done.stdout.decode().startswith("Opus 4.7 (1M context) · 5h 62%")
            app.refresh_now()
            await pilot.pause()
            lines = app.query_one(LimitsBar).plain()
            assert [line.split("  ")[0] for line in lines] == ["Claude 5h", "Claude 7d", "Codex 5h"]
            assert lines[0].startswith("Claude 5h  62 % ▕") and lines[0].endswith("Claude Code")
    finally:
        runner.stop()


def test_snapshot_two_windows_at_80x24(snap_compare) -> None:  # noqa: ANN001
    from tokentop.ui.source import ManualSource

    app = make_app(source=ManualSource(with_windows(snapshot_of(fleet_events())), label="feed http://127.0.0.1:7411"))
    assert snap_compare(app, terminal_size=(80, 24))
