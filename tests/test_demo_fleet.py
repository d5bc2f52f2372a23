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


# -- the agents and their models ----------------------------------------------------------------

def test_each_agent_runs_only_models_it_really_uses() -> None:
    from tokentop.demo.fleet import AGENT_MODELS

    assert "goose" not in AGENT_MODELS  # tokentop cannot read Goose
    assert {p for p, _ in AGENT_MODELS["claude-code"]} == {"anthropic"}
    assert {p for p, _ in AGENT_MODELS["codex"]} == {"openai"}
    for seed in range(40):
        for agent in fleet(seed):
            assert (agent.provider, agent.model) in AGENT_MODELS[agent.agent], agent


def test_no_agent_row_shows_a_model_its_agent_does_not_use() -> None:
    """Through the real aggregator: the Agents view's MODEL cell of every demo agent."""
    from tokentop.core.aggregate import Aggregator
    from tokentop.demo.fleet import AGENT_MODELS

    pricer = Pricer()
    now = time.time()
    for seed in (1, 2, 3, 7, 42):
        agg = Aggregator()
        for agent in fleet(seed):
            for n, req in enumerate(itertools.islice(schedule(agent, seed), 5)):
                event = parse_event({"id": f"{seed}-{agent.index}-{n}", "ts": now - 60 + req.at_s % 50,
                                     "agent": agent.agent, "session": session_id(agent, "t"), "model": agent.model,
                                     "provider": agent.provider, "input_tokens": req.input_tokens,
                                     "output_tokens": req.output_tokens}, now=now)
                agg.apply(event, pricer.price(event), now)
        for row in agg.snapshot(now).agents:
            used = {m for _, m in AGENT_MODELS[row.key]}
            assert {m.model for m in row.models} <= used, (row.key, row.model_names)


# -- simulated provider billing -------------------------------------------------------------------

def _billing(tmp_path, seed: int, now: float, *, local: list[dict] | None = None):  # noqa: ANN202
    from tokentop.core.ledger import Ledger
    from tokentop.demo.billing import SimulatedBilling

    ledger = Ledger(tmp_path / f"billing-{seed}-{len(local or [])}.db")
    pricer = Pricer()
    events = [parse_event(dict(e, id=f"ev-{i}"), now=now) for i, e in enumerate(local or [])]
    if events:
        ledger.append([(e, pricer.price(e)) for e in events])
    billing = SimulatedBilling(ledger, seed, clock=lambda: now)
    billing.started = now - 600  # the demo has been running ten minutes
    billing.backfill()
    billing.tick()
    return ledger, billing


def test_simulated_billing_has_30_days_and_the_last_hour_with_unattributed_spend(tmp_path) -> None:  # noqa: ANN001
    from tokentop.core.providers.panel import build_panel
    from tokentop.core.providers.report import build_report
    from tokentop.demo.billing import ELSEWHERE

    now = 1_795_694_400.0  # 2026-11-26, a Thursday, noon UTC
    local = [{"ts": now - 300 + k, "agent": "claude-code", "session": "cc-1", "provider": "anthropic",
              "model": "claude-sonnet-4-5", "input_tokens": 40_000, "output_tokens": 900, "cache_read_tokens": 20_000}
             for k in range(0, 120, 6)]
    ledger, billing = _billing(tmp_path, 5, now, local=local)
    try:
        for provider in ("anthropic", "openai"):
            report = build_report(billing.store, provider, 30, now)
            assert report.complete and len(report.by_day) == 30
            assert all(d.pusd > 0 for d in report.by_day)  # a spend figure every day
            weekdays = [d.pusd for d in report.by_day[:-1] if (d.day_start // 86400 + 3) % 7 < 5]
            weekends = [d.pusd for d in report.by_day[:-1] if (d.day_start // 86400 + 3) % 7 >= 5]
            assert min(weekdays) > max(weekends)  # a working week shows in the chart
            panel = build_panel(billing.store, provider, now, Pricer())
            assert panel.costs_fetched_today and panel.pusd_today > 0 and panel.pusd_month >= panel.pusd_today
            assert all(len(m.tokens_per_minute) == 60 for m in panel.by_model)
            u = panel.unattributed
            assert 0 < u.unattributed_pusd <= u.billed_pusd  # billed > what the watched agents explain
            elsewhere = next(m for m in panel.by_model if m.model == ELSEWHERE[provider])
            assert elsewhere.tokens > 0
        # Anthropic's usage report has no request counts; OpenAI's does
        assert build_report(billing.store, "anthropic", 30, now).requests_total is None
        assert build_report(billing.store, "openai", 30, now).requests_total > 0
        # the agents' own usage is billed too, and explained: only the usage from elsewhere is unattributed
        panel = build_panel(billing.store, "anthropic", now, Pricer())
        assert "claude-sonnet-4-5" in {m.model for m in panel.by_model}
        assert panel.unattributed.local_pusd > 0
        assert panel.unattributed.billed_pusd - panel.unattributed.unattributed_pusd == panel.unattributed.local_pusd
        status = billing.status().to_json()
        assert status["anthropic"]["enabled"] and "simulated" in status["anthropic"]["key_source"]
        assert status["openai"]["unattributed"]["unattributed_usd"] != "0"
    finally:
        ledger.close()


def test_simulated_billing_is_deterministic_by_seed(tmp_path) -> None:  # noqa: ANN001
    from tokentop.core.providers.report import build_report

    now = 1_795_694_400.0 + 9 * 3600
    runs = {}
    for name, seed in (("a", 3), ("b", 3), ("c", 4)):
        sub = tmp_path / name
        sub.mkdir()
        ledger, billing = _billing(sub, seed, now)
        try:
            runs[name] = [(d.pusd, d.input_tokens) for p in ("anthropic", "openai")
                          for d in build_report(billing.store, p, 30, now).by_day]
            runs[name].append(billing.store.minutes("openai", int(now) - 3600, int(now)))
        finally:
            ledger.close()
    assert runs["a"] == runs["b"] and runs["a"] != runs["c"]


async def test_providers_screen_in_the_demo_says_simulated_where_it_would_say_billed(tmp_path) -> None:  # noqa: ANN001
    from dataclasses import replace as dc_replace

    from tests.ui.helpers import NOW, fleet_events, make_app, snapshot_of
    from tokentop.ui.app import default_screen_views
    from tokentop.ui.screens.provider_dashboard import ProviderDashboardScreen
    from tokentop.ui.screens.providers import ProviderCard, ProvidersScreen
    from tokentop.ui.feeds import ManualFeed

    ledger, billing = _billing(tmp_path, 1, NOW)
    try:
        snap = snapshot_of(fleet_events())
        snap = dc_replace(snap, status=dict(snap.status, providers=billing.status().to_json()))
        app = make_app(feed=ManualFeed(snap, label="demo"), screen_views=default_screen_views(ledger, simulated=True))
        async with app.run_test(size=(120, 40)) as pilot:
            app.refresh_now()
            await pilot.press("5")
            await pilot.pause()
            screen = app.screen
            assert isinstance(screen, ProvidersScreen)
            assert [c.panel.provider for c in screen.query(ProviderCard)] == ["anthropic", "openai"]
            text = " ".join(str(s.render()) for s in screen.query("Static"))
            assert "SIMULATED" in text and "billed (provider API)" not in text and " billed " not in text
            assert "unattributed: $" in text
            await pilot.press("enter")
            await pilot.pause()
            assert isinstance(app.screen, ProviderDashboardScreen)
            head = str(app.screen.query_one("#dashboard-totals").render())
            assert "SIMULATED" in head and "billed" not in head
            assert app.screen.report.complete and len(app.screen.report.by_day) == 30
    finally:
        ledger.close()


def test_the_demo_feed_publishes_simulated_providers(tmp_path) -> None:  # noqa: ANN001
    """The part runs in a real feed: status["providers"] appears with both providers polled."""
    from tokentop import config as config_mod
    from tokentop.core.feed.assemble import HOST_FEED
    from tokentop.core.feed.runner import FeedRunner
    from tokentop.core.providers.status import ProvidersStatus
    from tokentop.demo import billing

    cfg = config_mod.from_mapping({"ledger": {"path": str(tmp_path / "demo.db")},
                                   "providers": {name: {"enabled": False} for name in ("openai", "anthropic")}})
    runner = FeedRunner(cfg, listen="127.0.0.1:0", host_name="demo", attachments=(*HOST_FEED, billing.attach_for(2)))
    runner.start_in_thread(require_listen=True)
    try:
        deadline = time.monotonic() + 20
        status = None
        while time.monotonic() < deadline:
            status = ProvidersStatus.of(runner.service.snapshot())
            if status is not None and status.providers:
                break
            time.sleep(0.1)
        assert status is not None and set(status.providers) == {"anthropic", "openai"}
        assert all(p.enabled and p.polls >= 1 for p in status.providers.values())
    finally:
        runner.stop()
