"""Codex ``rate_limits`` read from real-shaped rollouts by the real Codex reader and tailer."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.sources.helpers import NOW, Harness, iso, write_lines
from tokentop.core.limits.codex import RateLimitLog, account_of, observations
from tokentop.core.limits.store import LimitStore
from tokentop.core.limits.windows import window_at
from tokentop.core.sources.backfill import parse_share
from tokentop.core.sources.codex import CodexShared

FIXTURES = Path(__file__).parent / "fixtures"
SID = "019c8bfe-ec25-79e0-97d7-bda6a9c575ff"  # the 0.104 fixture's session


def rollout(home: Path, sid: str, day: str = "2026/02/23") -> Path:
    return home / "sessions" / day / f"rollout-2026-02-23T20-34-25-{sid}.jsonl"


def copy_fixture(name: str, dest: Path) -> Path:
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_bytes((FIXTURES / name).read_bytes())
    return dest


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return tmp_path / "codex-home"


@pytest.fixture
def h(tmp_path: Path, home: Path):
    harness = Harness(tmp_path, codex=[home], backfill_days=400)
    yield harness
    harness.close()


def rate_log(h: Harness) -> RateLimitLog:
    log = h.sources.shared["codex"].rate_limits  # type: ignore[attr-defined]
    assert isinstance(log, RateLimitLog)
    return log


def latest(h: Harness) -> dict[str, tuple[float, float | None]]:
    return {o.window: (o.used_percent, o.resets_at) for o in rate_log(h).latest.values()}


def test_a_repeat_with_no_new_usage_still_updates_the_window(h: Harness, home: Path) -> None:
    """0.104: every response's token_count comes twice; the repeat carries refreshed rate_limits."""
    copy_fixture("codex_0.104_token_count_pairs.jsonl", rollout(home, SID))
    h.read()
    # the usage of the repeat is not counted twice ...
    stored = h.stored()
    assert len(stored) == 2
    assert h.sources.stats.counters.get("reemits", 0) >= 2
    # ... but its windows are the newest: primary 4 -> 7 %, secondary 10 -> 11 %
    assert latest(h) == {"5h": (7.0, 1771890497.0), "7d": (11.0, 1772355702.0)}
    assert all(o.plan is None and o.account == account_of(rollout(home, SID)) for o in rate_log(h).latest.values())
    assert rate_log(h).seen == 5  # every token_count line, info:null and repeats included


def test_the_latest_figure_wins_by_its_time_not_by_the_order_files_are_read(h: Harness, home: Path) -> None:
    newer = "019c8bfe-0000-7000-8000-00000000000a"
    older = "019c8bfe-0000-7000-8000-00000000000b"
    rl = {"limit_id": "codex", "primary": {"used_percent": 50.0, "window_minutes": 300, "resets_at": NOW + 3600},
          "secondary": {"used_percent": 20.0, "window_minutes": 10080, "resets_at": NOW + 86400}, "plan_type": "plus"}
    old = dict(rl, primary={"used_percent": 5.0, "window_minutes": 300, "resets_at": NOW - 7200})
    # "a..." sorts (and is read) before "b...", but holds the newer figure
    write_lines(home / "sessions/2026/11/26" / f"rollout-a-{newer}.jsonl",
                [json.dumps({"timestamp": iso(NOW - 60), "type": "event_msg",
                             "payload": {"type": "token_count", "info": None, "rate_limits": rl}})])
    write_lines(home / "sessions/2026/11/25" / f"rollout-b-{older}.jsonl",
                [json.dumps({"timestamp": iso(NOW - 86400), "type": "event_msg",
                             "payload": {"type": "token_count", "info": None, "rate_limits": old}})])
    h.read()
    assert latest(h)["5h"][0] == 50.0
    assert {o.plan for o in rate_log(h).latest.values()} == {"plus"}


def test_plan_go_has_only_a_weekly_window_and_it_sits_in_primary(h: Harness, home: Path) -> None:
    copy_fixture("codex_0.130_go_weekly_only.jsonl", rollout(home, "00000000-0000-7000-8000-000000000001", "2026/05/14"))
    h.read()
    found = list(rate_log(h).latest.values())
    assert [(o.window, o.window_minutes, o.used_percent, o.plan) for o in found] == [("7d", 10080, 3.0, "go")]


def test_another_limit_id_is_a_window_of_its_own(h: Harness, home: Path) -> None:
    copy_fixture("codex_premium_limit_id_COMPOSED.jsonl", rollout(home, "019ee4a1-5b2c-7d3e-8f40-a1b2c3d4e5f6", "2026/08/25"))
    h.read()
    assert latest(h) == {"5h": (12.0, 1787663520.0), "7d": (30.0, 1788134400.0), "7d-premium": (55.0, 1788134400.0)}


@pytest.mark.parametrize("rate_limits, expected", [
    (None, []),
    ("garbage", []),
    ({"primary": None, "secondary": None}, []),
    ({"primary": {"used_percent": None, "window_minutes": 300, "resets_at": 1}}, []),
    ({"primary": {"used_percent": 7.0, "window_minutes": None, "resets_at": None}}, [("5h", 300, 7.0, None)]),
    ({"secondary": {"used_percent": 9.0, "window_minutes": None, "resets_at": 2}}, [("7d", 10080, 9.0, 2.0)]),
    # older builds: resets_in_seconds, relative to the line's time
    ({"primary": {"used_percent": 1.0, "window_minutes": 300, "resets_in_seconds": 600}}, [("5h", 300, 1.0, 1600.0)]),
    ({"limit_id": "Spark Model", "primary": {"used_percent": 2.0, "window_minutes": 300}}, [("5h-spark-model", 300, 2.0, None)]),
])
def test_null_and_odd_fields_are_tolerated(rate_limits: object, expected: list) -> None:
    got = observations(rate_limits, 1000.0, "~/.codex")
    assert [(o.window, o.window_minutes, o.used_percent, o.resets_at) for o in got] == expected


def test_a_malformed_rate_limits_never_costs_the_usage(h: Harness, home: Path) -> None:
    sid = "019c8bfe-0000-7000-8000-00000000000c"
    usage = {"input_tokens": 100, "cached_input_tokens": 0, "output_tokens": 10, "reasoning_output_tokens": 0}
    write_lines(home / "sessions/2026/11/26" / f"rollout-x-{sid}.jsonl", [
        json.dumps({"timestamp": iso(NOW - 60), "type": "event_msg", "payload": {
            "type": "token_count", "info": {"total_token_usage": usage, "last_token_usage": usage},
            "rate_limits": {"primary": {"used_percent": "lots"}, "secondary": [1, 2]}}}),
    ])
    h.read()
    assert len(h.stored()) == 1
    assert rate_log(h).latest == {}


def test_a_window_reset_starts_a_new_window(h: Harness, home: Path) -> None:
    sid = "019c8bfe-0000-7000-8000-00000000000d"
    first_reset = NOW - 1800

    def line(t: float, used: float, resets: float) -> str:
        return json.dumps({"timestamp": iso(t), "type": "event_msg", "payload": {
            "type": "token_count", "info": None, "rate_limits": {
                "limit_id": "codex", "primary": {"used_percent": used, "window_minutes": 300, "resets_at": resets}}}})

    path = write_lines(home / "sessions/2026/11/26" / f"rollout-r-{sid}.jsonl",
                       [line(first_reset - 3000, 80.0, first_reset), line(first_reset - 60, 97.0, first_reset)])
    store = LimitStore()
    rate_log(h).attach(store.observe)
    h.read()
    (obs,) = store.latest()
    # past the reset with no newer figure: 0 %, awaiting data
    assert window_at(obs, NOW).state == "reset"
    # the next figure is of the new window (its reset 5 hours on): the old window's figures are gone
    write_lines(path, [line(NOW - 30, 2.0, first_reset + 5 * 3600)], mode="a")
    h.read()
    (obs,) = store.latest()
    assert (obs.used_percent, obs.resets_at) == (2.0, first_reset + 5 * 3600)
    assert store.points(obs.key) == [(pytest.approx(NOW - 30, abs=0.01), 2.0)]
    assert window_at(obs, NOW).state == "current"


def uuid7(ms: float, tail: str) -> str:
    h = f"{int(ms):012x}"
    return f"{h[:8]}-{h[8:12]}-7000-8000-{tail:0>12}"


def test_a_forks_replay_of_its_parents_figures_is_skipped(h: Harness, home: Path) -> None:
    """A fork (Codex Desktop) replays its parent's history restamped to the fork's time: those
    rate_limits are the parent's older figures under a new time, and must not win."""
    fork_t = NOW - 120
    parent = uuid7((fork_t - 3600) * 1000, "a1")
    child = uuid7(fork_t * 1000, "c41d")
    parent_turn = uuid7((fork_t - 3000) * 1000, "7a")
    own_turn = uuid7((fork_t + 30) * 1000, "7b")
    parent_rl = {"limit_id": "codex", "primary": {"used_percent": 3.0, "window_minutes": 300, "resets_at": NOW + 600}}
    own_rl = {"limit_id": "codex", "primary": {"used_percent": 44.0, "window_minutes": 300, "resets_at": NOW + 600}}
    usage = {"input_tokens": 100, "cached_input_tokens": 0, "output_tokens": 10, "reasoning_output_tokens": 0}
    usage2 = {"input_tokens": 300, "cached_input_tokens": 0, "output_tokens": 30, "reasoning_output_tokens": 0}

    def task(t: float, turn: str) -> str:
        return json.dumps({"timestamp": iso(t), "type": "event_msg", "payload": {"type": "task_started", "turn_id": turn}})

    write_lines(home / "sessions/2026/11/26" / f"rollout-f-{child}.jsonl", [
        json.dumps({"timestamp": iso(fork_t), "type": "session_meta",
                    "payload": {"id": child, "forked_from_id": parent, "cwd": "/p"}}),
        # the parent's lines, restamped to the fork instant: an old figure under a new time
        task(fork_t, parent_turn),
        json.dumps({"timestamp": iso(fork_t), "type": "event_msg",
                    "payload": {"type": "token_count", "info": None, "rate_limits": parent_rl}}),
        json.dumps({"timestamp": iso(fork_t), "type": "event_msg", "payload": {
            "type": "token_count", "info": {"total_token_usage": usage, "last_token_usage": usage},
            "rate_limits": parent_rl}}),
        # the child's own turn and request
        task(NOW - 70, own_turn),
        json.dumps({"timestamp": iso(NOW - 60), "type": "event_msg", "payload": {
            "type": "token_count", "info": {"total_token_usage": usage2, "last_token_usage": usage2},
            "rate_limits": own_rl}}),
    ])
    store = LimitStore()
    rate_log(h).attach(store.observe)
    h.read()
    (obs,) = store.latest()
    assert obs.used_percent == 44.0
    assert [u for _, u in store.points(obs.key)] == [44.0]
    assert h.sources.stats.counters.get("fork_replays_attributed", 0) == 1  # the parent's request, counted once


def test_windows_read_by_a_backfill_worker_reach_the_parent(tmp_path: Path, home: Path, h: Harness) -> None:
    """A large backlog is parsed in another process; its figures come back with the shared state."""
    copy_fixture("codex_0.104_token_count_pairs.jsonl", rollout(home, SID))
    path = str(rollout(home, SID))
    _, _, _, shared = parse_share(h.settings, None, NOW, [("codex", path, None)])
    parent = CodexShared()
    store = LimitStore()
    parent.rate_limits.attach(store.observe)
    parent.merge(shared["codex"])
    assert {(o.window, o.used_percent) for o in store.latest()} == {("5h", 7.0), ("7d", 11.0)}


def test_two_codex_homes_are_two_accounts(tmp_path: Path) -> None:
    a, b = tmp_path / "work", tmp_path / "personal"
    rl = {"limit_id": "codex", "primary": {"used_percent": 10.0, "window_minutes": 300, "resets_at": NOW + 600}}
    for home, used in ((a, 10.0), (b, 70.0)):
        sid = "019c8bfe-0000-7000-8000-0000000000" + ("a1" if home is a else "b2")
        write_lines(home / "sessions/2026/11/26" / f"rollout-h-{sid}.jsonl", [json.dumps(
            {"timestamp": iso(NOW - 60), "type": "event_msg", "payload": {"type": "token_count", "info": None,
             "rate_limits": dict(rl, primary=dict(rl["primary"], used_percent=used))}})])
    harness = Harness(tmp_path, codex=[a, b])
    try:
        harness.read()
        got = {o.account.rsplit("/", 1)[-1]: o.used_percent
               for o in harness.sources.shared["codex"].rate_limits.latest.values()}  # type: ignore[attr-defined]
        assert got == {"work": 10.0, "personal": 70.0}
    finally:
        harness.close()
