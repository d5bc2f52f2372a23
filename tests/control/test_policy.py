"""Budgets and runaway rules: pure evaluation, the feed's policy task with an injected clock acting on
a real process, and `tokentop check` exit codes."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid

import psutil
import pytest

from tokentop import config as config_mod
from tokentop.core.control.policy import (
    BudgetRule, PolicyEngine, PolicyError, RunawayRule, evaluate_budgets, rules_from_config, worst_level,
)
from tokentop.core.control.process import identify
from tokentop.core.events import Event
from tokentop.core.feed.runner import FeedRunner
from tests.control.helpers import proc_status, wait_for


def hot_event(session: str, ts: float, agent: str = "agent-x") -> Event:
    # gpt-4o: 1M input + 100k output ≈ $3.50 per request
    return Event(id=uuid.uuid4().hex, ts=ts, agent=agent, session=session, model="gpt-4o", provider="openai",
                 input_tokens=1_000_000, output_tokens=100_000)


class Clock:
    def __init__(self, t: float) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def make_runner(tmp_path, extra: str, clock: Clock) -> FeedRunner:
    cfg_file = tmp_path / "policy.toml"
    cfg_file.write_text(f'[ledger]\npath = "{tmp_path / "p.db"}"\n{extra}')
    return FeedRunner(config_mod.load(cfg_file), listen="127.0.0.1:0", clock=clock)


async def test_runaway_rule_pauses_exactly_once_and_alerts_exactly_once(tmp_path, children):
    alerts = tmp_path / "alerts.ndjson"
    script = tmp_path / "hook.py"
    script.write_text(f"import sys\nopen({str(alerts)!r}, 'a').write(sys.stdin.read())\n")
    extra = (
        "[control]\ndesktop_notify = false\n"
        f"alert_exec = \"{sys.executable} {script}\"\n"
        "[runaway.fast]\nusd_per_hour_above = 50.0\nfor_s = 10\naction = \"pause\"\n"
    )
    clock = Clock(time.time())
    t0 = clock.t
    runner = make_runner(tmp_path, extra, clock)
    try:
        policy = runner.parts.policy
        ctl = runner.parts.control
        child = children.start()
        ctl.register("hot", identify(child.pid), agent="agent-x")
        decisions = []
        for step in range(0, 31):  # 30 s of a session burning ~$210/h, evaluated each second
            clock.t = t0 + step
            if step % 5 == 0:
                await runner.service.ingest_events([hot_event("hot", clock.t)])
            decisions += await policy.step()
            if step == 9:
                assert decisions == [] and proc_status(child.pid) != psutil.STATUS_STOPPED  # not yet: for_s = 10
        assert [(d.rule, d.level, d.action, d.sessions) for d in decisions] == [("fast", "runaway", "pause", ("hot",))]
        assert wait_for(lambda: proc_status(child.pid) == psutil.STATUS_STOPPED)
        audit = ctl.audit.recent(50)
        assert [(a.action, a.origin, a.ok) for a in audit] == [("pause", "policy:fast", True)]
        lines = alerts.read_text().splitlines()
        assert len(lines) == 1
        payload = json.loads(lines[0])
        assert payload["v"] == 1 and payload["type"] == "tokentop.alert"
        assert payload["level"] == "runaway" and payload["key"] == "hot" and payload["value"] > 50
        status = runner.service.snapshot(clock.t).status["policy"]
        assert status["flags"] == {"sessions": {"hot": "runaway"}}
        assert status["alert_seq"] == 1
        assert runner.service.snapshot(clock.t).find("sessions", "hot").state == "paused"

        # burn stops: the rule clears only after for_s below clear_fraction x threshold (hysteresis)
        cleared = []
        for step in range(31, 200):
            clock.t = t0 + step
            cleared += await policy.step()
        assert [(d.level, d.action) for d in cleared] == [("cleared", "alert")]
        assert len(alerts.read_text().splitlines()) == 1  # clearing is not an alert to the hook
        assert len(ctl.audit.recent(50)) == 1
    finally:
        runner.ledger.close()


def snap(totals_usd_today=0.0, burn=0.0, sessions=()):
    from decimal import Decimal

    from tokentop.core.snapshot import Row, Snapshot, Totals

    rows = tuple(Row(key=k, usd_per_hour=b, usd_today=Decimal(str(u)), agent=a, state="active") for k, a, b, u in sessions)
    agents: dict[str, tuple[float, float]] = {}
    for _, a, b, u in sessions:
        x = agents.get(a, (0.0, 0.0))
        agents[a] = (x[0] + b, x[1] + u)
    agent_rows = tuple(Row(key=a, usd_per_hour=b, usd_today=Decimal(str(u))) for a, (b, u) in agents.items())
    return Snapshot(generated_at=0.0, totals=Totals(usd_per_hour=burn, usd_today=Decimal(str(totals_usd_today))),
                    sessions=rows, agents=agent_rows)


def test_budget_levels_and_hysteresis():
    rule = BudgetRule("day", usd_per_day=10.0, warn_at=0.8)
    assert worst_level(evaluate_budgets(snap(5.0), [rule])) == "ok"
    assert worst_level(evaluate_budgets(snap(8.0), [rule])) == "warning"
    assert worst_level(evaluate_budgets(snap(10.0), [rule])) == "over"
    prev = {("day", "totals", "all", "usd_per_day"): "over"}
    assert worst_level(evaluate_budgets(snap(9.7), [rule], prev)) == "over"  # within 5 %: stays
    assert worst_level(evaluate_budgets(snap(9.4), [rule], prev)) == "warning"


def test_budget_per_agent_and_per_session_and_edge_triggered_decisions():
    rules = [BudgetRule("agents", scope="agent", usd_per_hour=20.0, action="pause"),
             BudgetRule("sess", usd_per_session=3.0)]
    engine = PolicyEngine(rules)
    s = snap(sessions=[("s1", "a", 10.0, 1.0), ("s2", "a", 12.0, 3.5), ("s3", "b", 1.0, 0.1)])
    first = engine.evaluate(s, 0.0)
    got = sorted((d.rule, d.key, d.level, d.action, d.sessions) for d in first)
    assert got == [("agents", "a", "over", "pause", ("s1", "s2")), ("sess", "s2", "over", "alert", ())]
    assert engine.evaluate(s, 1.0) == []  # still over: nothing new
    assert engine.flags()["agents"] == {"a": "over"} and engine.flags()["sessions"] == {"s2": "over"}


def test_runaway_median_rule_uses_the_rows_own_history():
    rule = RunawayRule("spike", median_multiple=3.0, min_usd_per_hour=1.0, for_s=5, median_window_s=600)
    engine = PolicyEngine(runaways=[rule])
    t = 0.0
    for _ in range(60):  # a steady $2/h for a minute builds the median
        assert engine.evaluate(snap(sessions=[("s", "a", 2.0, 0)]), t) == []
        t += 1
    for _ in range(4):  # $7/h > 3 x 2: above, but not for 5 s yet
        assert engine.evaluate(snap(sessions=[("s", "a", 7.0, 0)]), t) == []
        t += 1
    d = engine.evaluate(snap(sessions=[("s", "a", 7.0, 0)]), t + 1)
    assert [(x.level, round(x.limit, 2)) for x in d] == [("runaway", 6.0)]
    assert engine.evaluate(snap(sessions=[("s", "a", 7.0, 0)]), t + 2) == []


def test_rules_need_a_limit_and_a_valid_scope():
    with pytest.raises(PolicyError, match=r"\[budget.empty\] sets no limit"):
        rules_from_config(config_mod.from_mapping({"budget": {"empty": {"scope": "agent"}}}))
    with pytest.raises(PolicyError, match="sets no condition"):
        rules_from_config(config_mod.from_mapping({"runaway": {"r": {"for_s": 3}}}))
    with pytest.raises(config_mod.ConfigError, match="runaway.r.action must be one of"):
        config_mod.from_mapping({"runaway": {"r": {"action": "nuke"}}})


@pytest.mark.parametrize("limit,code,status", [(100.0, 0, "ok"), (4.0, 10, "warning"), (3.0, 20, "over")])
def test_check_exit_codes(tmp_path, limit, code, status):
    from tokentop.core.pricing import Pricer
    from tokentop.core.ledger import Ledger

    db = tmp_path / "c.db"
    with Ledger(db) as ledger:
        e = hot_event("s1", time.time() - 5)  # ≈ $3.50 today
        ledger.append([(e, Pricer().price(e))])
    cfg_file = tmp_path / "check.toml"
    cfg_file.write_text(f'[ledger]\npath = "{db}"\n[budget.daily]\nusd_per_day = {limit}\n')
    r = subprocess.run([sys.executable, "-m", "tokentop", "check", "--json", "--config", str(cfg_file),
                        "--feed", "http://127.0.0.1:9"], capture_output=True, text=True, timeout=60)
    assert r.returncode == code, r.stderr
    out = json.loads(r.stdout)
    assert out["status"] == status and out["exit_code"] == code
    assert out["findings"][0]["measure"] == "usd_per_day" and 3.0 < out["findings"][0]["value"] < 4.0
    if status != "over":
        return
    r = subprocess.run([sys.executable, "-m", "tokentop", "check", "--config", str(cfg_file),
                        "--feed", "http://127.0.0.1:9"], capture_output=True, text=True, timeout=60)
    assert r.returncode == code and r.stdout.startswith(status.upper())


def test_policy_task_runs_with_a_serving_feed_and_flags_the_budget(tmp_path):
    import httpx

    cfg_file = tmp_path / "live.toml"
    cfg_file.write_text(
        f'[ledger]\npath = "{tmp_path / "live.db"}"\n'
        "[control]\npolicy_interval_s = 0.05\ndesktop_notify = false\n"
        '[budget.tiny]\nscope = "agent"\nusd_per_day = 1.0\n'
    )
    runner = FeedRunner(config_mod.load(cfg_file), listen="127.0.0.1:0").start_in_thread(require_listen=True)
    try:
        with httpx.Client(base_url=runner.address, timeout=10) as http:
            e = hot_event("s-live", time.time()).to_dict()
            assert http.post("/v1/events", json=e).status_code == 202
        assert wait_for(lambda: runner.snapshot().status.get("policy", {}).get("alert_seq") == 1)
        status = runner.snapshot().status["policy"]
        assert status["flags"] == {"agents": {"agent-x": "over"}}
        assert status["alerts"][0]["level"] == "over" and status["alerts"][0]["rule"] == "tiny"
        time.sleep(0.3)
        assert runner.snapshot().status["policy"]["alert_seq"] == 1  # still over: no new alert
    finally:
        runner.stop()


from hypothesis import given, settings, strategies as st


@settings(max_examples=200, deadline=None)
@given(st.lists(st.floats(min_value=0, max_value=100), min_size=1, max_size=120))
def test_runaway_decisions_alternate_trip_and_clear_and_never_repeat(burns):
    """Whatever the burn does, a rule trips at most once per episode: runaway, cleared, runaway, ..."""
    rule = RunawayRule("r", usd_per_hour_above=50.0, for_s=3, clear_fraction=0.8, action="pause")
    engine = PolicyEngine(runaways=[rule])
    levels = []
    for t, burn in enumerate(burns):
        for d in engine.evaluate(snap(sessions=[("s", "a", burn, 0)]), float(t)):
            levels.append(d.level)
            if d.level == "runaway":
                assert d.action == "pause" and d.sessions == ("s",)
                window = burns[max(0, t - 3):t + 1]
                assert all(b > 50.0 for b in window)  # held above for for_s seconds
    assert levels == ["runaway", "cleared"] * (len(levels) // 2) + (["runaway"] if len(levels) % 2 else [])
