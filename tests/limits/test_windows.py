"""The window record and its math, travelling in time (the clock is always an argument)."""

from __future__ import annotations

import pytest

from tokentop.core.limits.windows import (
    Observation, Share, Window, average_burn, exhausts_at, expected_percent, minutes_of, observed_burn, pace,
    session_points, agent_points, window_at, window_name, windows_from_json,
)

T0 = 1_795_680_000.0  # a window that started here ...
FIVE_H = 5 * 3600.0
RESET = T0 + FIVE_H  # ... resets 5 hours later


def obs(used: float, at: float, resets_at: float | None = RESET, minutes: int | None = 300, window: str = "5h",
        source: str = "codex-log") -> Observation:
    return Observation("codex", "~/.codex", window, used, resets_at, minutes, source, at)


def test_windows_are_named_by_length_and_position_only_when_the_length_is_missing() -> None:
    assert window_name(300, "secondary") == ("5h", 300)
    assert window_name(10080, "primary") == ("7d", 10080)  # plan go: the weekly window sits in primary
    assert window_name(None, "primary") == ("5h", 300)
    assert window_name(None, "secondary") == ("7d", 10080)
    assert window_name(1440) == ("1d", 1440)
    assert window_name(120) == ("2h", 120)
    assert window_name(90) == ("90m", 90)
    assert window_name(None) == ("window", None)
    assert minutes_of("7d-opus") == 10080 and minutes_of("5h") == 300 and minutes_of("spend") is None


def test_pace_is_used_minus_the_even_pace_while_the_window_runs() -> None:
    # one hour into five: an even pace has used 20 %
    now = T0 + 3600
    assert expected_percent(now, RESET, 300) == pytest.approx(20.0)
    assert pace(28.0, now, RESET, 300) == pytest.approx(8.0)
    assert pace(15.0, now, RESET, 300) == pytest.approx(-5.0)
    # four and a half hours in
    assert pace(80.0, T0 + 4.5 * 3600, RESET, 300) == pytest.approx(-10.0)
    # outside 0 < resets_at - now <= duration there is no pace
    assert pace(10.0, RESET, RESET, 300) is None
    assert pace(10.0, T0 - 60, RESET, 300) is None
    assert pace(10.0, T0 + 60, None, 300) is None


def test_exhaustion_at_the_current_burn_and_lasting_until_the_reset() -> None:
    now = T0 + 3600
    # 40 % used, burning 1 point a minute: 60 points left, empty in an hour (before the reset)
    assert exhausts_at(40.0, now, RESET, 1 / 60) == pytest.approx(now + 3600)
    # burning slowly: it lasts until the reset
    assert exhausts_at(40.0, now, RESET, 0.001) is None
    assert exhausts_at(40.0, now, RESET, 0.0) is None
    assert exhausts_at(40.0, now, RESET, None) is None
    # already exhausted: now
    assert exhausts_at(100.0, now, RESET, None) == now
    # the average rate since the start (CodexBar's): 20 % in the first hour
    assert average_burn(20.0, now, RESET, 300) == pytest.approx(20.0 / 3600)
    assert average_burn(20.0, T0, RESET, 300) is None


def test_the_burn_from_a_windows_own_figures() -> None:
    now = T0 + 3600
    points = [(now - 1200, 30.0), (now - 600, 35.0), (now - 60, 40.0)]
    assert observed_burn(points, now) == pytest.approx(10.0 / 1140)
    # too close together to say (percentages come in whole steps)
    assert observed_burn([(now - 120, 30.0), (now - 60, 31.0)], now) is None
    # one point: nothing to say
    assert observed_burn([(now - 60, 40.0)], now) is None
    # the newest figure is old: nothing burns it here now
    assert observed_burn([(now - 1700, 30.0), (now - 1000, 35.0)], now) == 0.0
    assert observed_burn([(now - 7200, 30.0), (now - 5000, 35.0)], now) == 0.0
    # a figure that went down (another source's rounding) never makes a negative burn
    assert observed_burn([(now - 900, 36.0), (now - 60, 35.0)], now) == 0.0


def test_a_window_past_its_reset_is_zero_awaiting_data() -> None:
    o = obs(62.0, T0 + 3600)
    before = window_at(o, RESET - 1, burn=1 / 60)
    assert before.state == "current" and before.used_percent == 62.0
    after = window_at(o, RESET, burn=1 / 60)
    assert after.state == "reset"
    assert after.used_percent == 0.0
    assert after.pace_percent is None and after.exhausts_at is None
    # too old to show at all once a whole window has passed since the reset
    assert not o.stale(RESET + FIVE_H - 1)
    assert o.stale(RESET + FIVE_H + 1)


def test_the_weekly_window_keeps_showing_its_reset_for_a_week() -> None:
    week = obs(40.0, T0, resets_at=T0 + 3600, minutes=10080, window="7d")
    assert not week.stale(T0 + 3600 + 6 * 86400)
    assert week.stale(T0 + 3600 + 8 * 86400)
    # no reset time: stale a window's length (at least a day) after it was seen
    spend = obs(30.0, T0, resets_at=None, minutes=None, window="spend")
    assert not spend.stale(T0 + 86400 - 1) and spend.stale(T0 + 8 * 86400)


def test_same_window_tolerates_the_one_second_wobble_of_resets_at() -> None:
    a = obs(10.0, T0, resets_at=1772355702)
    assert a.same_window(obs(11.0, T0 + 5, resets_at=1772355703))
    assert not a.same_window(obs(1.0, T0 + 5, resets_at=1772355702 + FIVE_H))


def test_json_round_trip_and_tolerance() -> None:
    w = window_at(obs(62.0, T0 + 3600), T0 + 3600, burn=1 / 60, tokens=1000,
                  eaten_by=[Share("s1", 700, 0.7), Share("s2", 300, 0.3)])
    back = Window.from_json(w.to_json())
    assert back == w
    assert back.points() == pytest.approx({"s1": 0.7 * 62, "s2": 0.3 * 62})
    # unknown keys ignored, missing optional ones defaulted, unreadable entries skipped
    got = windows_from_json([{**w.to_json(), "new_field": 1}, {"agent": "x"}, "nonsense",
                             {"agent": "a", "window": "5h", "source": "estimated", "used_percent": 5,
                              "observed_at": 1.0}])
    assert len(got) == 2 and got[1].resets_at is None and got[1].eaten_by == ()
    assert windows_from_json(None) == ()


def test_session_and_agent_points_come_from_each_agents_5h_window() -> None:
    cc = Window("claude-code", "~/.claude", "5h", 60.0, RESET, 300, "claude-statusline", T0,
                eaten_by=(Share("a", 75, 0.75), Share("b", 25, 0.25)))
    cx = Window("codex", "~/.codex", "5h", 10.0, RESET, 300, "codex-log", T0, eaten_by=(Share("c", 10, 1.0),))
    week = Window("codex", "~/.codex", "7d", 50.0, RESET, 10080, "codex-log", T0, eaten_by=(Share("c", 10, 1.0),))
    assert session_points([cc, cx, week]) == pytest.approx({"a": 45.0, "b": 15.0, "c": 10.0})
    assert agent_points([cc, cx, week]) == {"claude-code": 60.0, "codex": 10.0}
