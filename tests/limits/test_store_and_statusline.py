"""The limits store (latest wins by time, kept across restarts) and Claude Code statusLine payloads."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tokentop.core.ledger import Ledger
from tokentop.core.limits import statusline
from tokentop.core.limits.store import LimitStore
from tokentop.core.limits.windows import Observation

FIXTURES = Path(__file__).parent / "fixtures"
NOW = 1_795_694_400.0


def fixture(name: str) -> dict:
    return json.loads((FIXTURES / name).read_text())


def obs(used: float, at: float, source: str = "codex-log", window: str = "5h", resets_at: float = NOW + 3600) -> Observation:
    return Observation("codex", "~/.codex", window, used, resets_at, 300, source, at)


def test_latest_by_observed_time_wins_whatever_the_arrival_order() -> None:
    store = LimitStore()
    assert store.observe(obs(40.0, NOW - 60))
    assert not store.observe(obs(10.0, NOW - 600))  # older, arriving later (a backfill)
    assert store.get(("codex", "~/.codex", "5h")).used_percent == 40.0  # type: ignore[union-attr]
    # the older figure of the same window still helps measure the burn
    assert [u for _, u in store.points(("codex", "~/.codex", "5h"))] == [10.0, 40.0]
    # another source, newer: it wins
    assert store.observe(obs(45.0, NOW - 30, source="claude-oauth"))
    assert store.get(("codex", "~/.codex", "5h")).source == "claude-oauth"  # type: ignore[union-attr]


def test_the_latest_figures_survive_a_restart(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path / "l.db")
    store = LimitStore(ledger)
    store.observe(obs(40.0, NOW - 60))
    store.observe(obs(12.0, NOW - 60, window="7d", resets_at=NOW + 86400))
    store.flush()
    ledger.close()
    ledger = Ledger(tmp_path / "l.db")
    try:
        again = LimitStore(ledger)
        assert {(o.window, o.used_percent, o.resets_at) for o in again.latest()} == {
            ("5h", 40.0, NOW + 3600), ("7d", 12.0, NOW + 86400)}
        # pruning forgets what is too old to show, in the ledger too
        assert again.prune(NOW + 3600 + 5 * 3600 + 1) == 1
        again.flush()
        assert [o.window for o in LimitStore(ledger).latest()] == ["7d"]
    finally:
        ledger.close()


@pytest.mark.parametrize("name, state", [
    ("statusline_1.0.88.json", statusline.ABSENT),
    ("statusline_2.1.138_no_rate_limits.json", statusline.ABSENT),
    ("statusline_2.1.141_rate_limits_null.json", statusline.NULL),
])
def test_statusline_payloads_without_quota_figures(name: str, state: str) -> None:
    report = statusline.parse(fixture(name), NOW, "~/.claude")
    assert report.observations == ()
    assert report.rate_limits == state


def test_statusline_1_0_88_still_gives_its_session_cost_and_model() -> None:
    report = statusline.parse(fixture("statusline_1.0.88.json"), NOW, "~/.claude")
    assert (report.session, report.model, report.model_name, report.version) == (
        "73cc9f9a-2775-4418-beec-bc36b62a1c6f", "claude-sonnet-4-20250514", "Sonnet 4", "1.0.88")
    assert report.cost_usd == pytest.approx(0.05626615)


def test_statusline_with_filled_rate_limits() -> None:
    report = statusline.parse(fixture("statusline_2.1.x_rate_limits_filled_COMPOSED.json"), NOW, "~/.claude")
    assert report.rate_limits == statusline.PRESENT
    got = {(o.window, o.used_percent, o.resets_at, o.window_minutes, o.source, o.account) for o in report.observations}
    assert got == {("5h", 62.0, 1795698720.0, 300, "claude-statusline", "~/.claude"),
                   ("7d", 41.0, 1795953600.0, 10080, "claude-statusline", "~/.claude")}
    assert report.model == "claude-opus-4-7[1m]" and report.cost_usd == pytest.approx(3.4172)


def test_statusline_spend_limit_and_a_null_window() -> None:
    report = statusline.parse(fixture("statusline_2.1.251_spend_limit_only_COMPOSED.json"), NOW, "~/.claude")
    assert [(o.window, o.used_percent, o.resets_at, o.window_minutes) for o in report.observations] == [
        ("spend", 37.5, None, None)]


@pytest.mark.parametrize("resets, expected", [
    (1795698720, 1795698720.0),  # documented: epoch seconds
    (1795698720123, 1795698720.123),  # milliseconds
    ("2026-11-26T13:12:00+00:00", 1795698720.0),  # ISO (the OAuth endpoint's unit)
    ("2026-11-26T13:12:00Z", 1795698720.0),
    ("soon", None),
    (None, None),
])
def test_statusline_reset_times_in_any_unit(resets: object, expected: float | None) -> None:
    payload = {"rate_limits": {"five_hour": {"used_percentage": 5, "resets_at": resets}}}
    (o,) = statusline.parse(payload, NOW, "~/.claude").observations
    assert o.resets_at == (pytest.approx(expected) if expected is not None else None)


def test_statusline_refuses_what_is_not_an_object() -> None:
    with pytest.raises(ValueError):
        statusline.parse([1, 2], NOW, "~/.claude")
