"""The demo fleet: deterministic for a seed, priced on real model ids, one runaway whose burn ramps,
and every simulated agent a real process posting events with its own pid."""

from __future__ import annotations

import itertools
import time

from tokentop.core.events import parse_event
from tokentop.core.pricing import Pricer
from tokentop.demo.fleet import fleet, schedule, session_id


def test_same_seed_same_fleet_and_traffic_other_seed_differs() -> None:
    assert fleet(7) == fleet(7)
    assert fleet(7) != fleet(8)
    a = list(itertools.islice(schedule(fleet(7)[3], 7), 200))
    b = list(itertools.islice(schedule(fleet(7)[3], 7), 200))
    assert a == b
    c = list(itertools.islice(schedule(fleet(8)[3], 8), 200))
    assert a != c


def test_a_dozen_agents_on_real_priced_models_with_exactly_one_runaway() -> None:
    pricer = Pricer()
    for seed in (1, 2, 3, 42):
        agents = fleet(seed)
        assert len(agents) == 12
        profiles = [a.profile for a in agents]
        assert profiles.count("runaway") == 1
        assert "steady" in profiles
        for agent in agents:
            event = parse_event({"model": agent.model, "provider": agent.provider, "input_tokens": 1000,
                                 "output_tokens": 100}, now=time.time())
            assert pricer.price(event).kind == "estimated", agent.model
    assert any("bursty" in [a.profile for a in fleet(s)] for s in (1, 2, 3))


def test_runaway_burn_ramps_up() -> None:
    pricer = Pricer()
    agent = next(a for a in fleet(1) if a.profile == "runaway")
    per_minute = [0.0] * 8
    for req in schedule(agent, 1):
        if req.at_s >= 8 * 60:
            break
        event = parse_event({"model": agent.model, "provider": agent.provider, "input_tokens": req.input_tokens,
                             "output_tokens": req.output_tokens, "cache_read_tokens": req.cache_read_tokens},
                            now=time.time())
        per_minute[int(req.at_s // 60)] += float(pricer.price(event).usd or 0)
    assert per_minute[5] > 3 * per_minute[0]
    for before, after in zip(per_minute, per_minute[1:]):
        assert after > 0.8 * before  # it keeps burning at least as hard: no cool-down


def test_bursty_agents_have_quiet_spells_and_quick_runs() -> None:
    agent = next(a for s in (1, 2, 3) for a in fleet(s) if a.profile == "bursty")
    times = [r.at_s for r in itertools.islice(schedule(agent, 1), 300)]
    gaps = [b - a for a, b in zip(times, times[1:])]
    assert max(gaps) >= 15 and min(gaps) < 1.5


def test_each_simulated_agent_is_a_process_posting_with_its_own_pid(feed) -> None:  # noqa: ANN001
    from tokentop.commands.demo import spawn_fleet, stop_fleet

    # history is sent without a pid (the process did not exist then); live requests carry it
    children = spawn_fleet(feed.address, seed=3, size=2, run_tag="t1", backfill_s=30.0)
    try:
        deadline = time.monotonic() + 20
        while True:
            sessions = {r.key: r for r in feed.snapshot().sessions}
            if (len(sessions) == 2 and all(r.pid for r in sessions.values())) or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        expected = {session_id(a, "t1"): child.pid for a, child in zip(fleet(3, 2), children)}
        assert {k: r.pid for k, r in sessions.items()} == expected
        for row in sessions.values():
            assert row.usd_today > 0
    finally:
        stop_fleet(children)
    assert all(child.poll() is not None for child in children)


def test_demo_sessions_are_controllable_before_their_first_live_request(feed) -> None:  # noqa: ANN001
    """Regression: a bursty demo agent showed "pid unknown" (not killable) until its first live
    request; the demo now registers each child as `tokentop run` would."""
    from tokentop.commands.demo import register_fleet, spawn_fleet, stop_fleet

    children = spawn_fleet(feed.address, seed=3, size=2, run_tag="t2", backfill_s=30.0)
    try:
        assert register_fleet(feed.address, feed.token, 3, 2, "t2", children) == 2
        expected = {session_id(a, "t2"): child.pid for a, child in zip(fleet(3, 2), children)}
        bound = feed.service.aggregator.session_processes
        assert {k: bound[k]["pid"] for k in expected} == expected  # bound at once, no live request needed
        deadline = time.monotonic() + 20
        while True:
            rows = {r.key: r for r in feed.snapshot().sessions}
            if all(k in rows for k in expected) or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        assert {k: rows[k].pid for k in expected} == expected
    finally:
        stop_fleet(children)
