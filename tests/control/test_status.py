"""The control layer's snapshot status, typed: ``status.policy`` (PolicyStatus) and ``status.control``
(ControlStatus). What the feed writes is what the live view reads back, from an embedded feed's
snapshot and from a remote feed's JSON alike; a remote feed's odd or partial JSON never breaks it."""

from __future__ import annotations

import asyncio
import time
import uuid
from decimal import Decimal

from tokentop import config as config_mod
from tokentop.core.control.policy import Finding
from tokentop.core.control.policy_task import PolicyAlert, PolicyStatus
from tokentop.core.control.service import ControlStatus
from tokentop.core.events import Event
from tokentop.core.feed.runner import FeedRunner
from tokentop.core.snapshot import Row


def test_the_policy_tasks_status_reads_back_the_same_embedded_and_remote(tmp_path) -> None:
    cfg_file = tmp_path / "policy.toml"
    cfg_file.write_text(f'[ledger]\npath = "{tmp_path / "p.db"}"\n[control]\ndesktop_notify = false\n'
                        '[budget.daily]\nusd_per_day = 5.0\n[budget.per-session]\nusd_per_session = 2.0\n')
    now = time.time()
    runner = FeedRunner(config_mod.load(cfg_file), listen="127.0.0.1:0", clock=lambda: now)
    try:
        # gpt-4o: 1M input + 100k output is about $3.50 a request: two of them break both budgets
        events = [Event(id=uuid.uuid4().hex, ts=now, agent="a", session="s1", model="gpt-4o", provider="openai",
                        input_tokens=1_000_000, output_tokens=100_000) for _ in range(2)]
        asyncio.run(runner.service.ingest_events(events))
        policy = runner.parts.policy
        assert policy is not None
        asyncio.run(policy.step(now))
        written = policy.status()
        snap = runner.service.snapshot(now)
    finally:
        runner.ledger.close()
    for read in (PolicyStatus.of(snap), PolicyStatus.from_json(written.to_json())):
        assert read is not None
        assert read.to_json() == written.to_json() == snap.status["policy"]
        assert read.flags == {"totals": {"all": "over"}, "sessions": {"s1": "over"}}
        assert read.daily_budget_usd == 5.0
        assert read.sessions_over == 1
        assert read.alert_seq == 2 and [a.rule for a in read.alerts] == ["daily", "per-session"]
        assert all(a.level == "over" and a.message for a in read.alerts)


def test_policy_status_over_the_wire(status_snapshots) -> None:
    status = PolicyStatus(
        flags={"sessions": {"s1": "runaway", "s2": "warning"}, "models": {"gpt-5": "over"}},
        budgets=(Finding("daily", "totals", "totals", "usd_per_day", 12.5, 50.0, "ok"),
                 Finding("tight", "totals", "totals", "usd_per_day", 12.5, 20.0, "warning"),
                 Finding("hourly", "totals", "totals", "usd_per_hour", 3.0, 10.0, "ok")),
        alerts=(PolicyAlert(7, "runaway", "fast", "session s1 burns $80/h", {"seq": 7, "level": "runaway", "rule": "fast",
                                                                             "message": "session s1 burns $80/h", "v": 1}),),
        alert_seq=7, hook_failures=1, error=None,
    )
    embedded, remote = status_snapshots("policy", status.to_json())
    for snap in (embedded, remote):
        read = PolicyStatus.of(snap)
        assert read is not None and read.to_json() == status.to_json()
        assert read.daily_budget_usd == 20.0  # the tightest global daily budget
        assert read.sessions_over == 1  # runaway counts, a warning does not
        assert [a.seq for a in read.alerts_after(6)] == [7] and read.alerts_after(7) == []


def test_policy_status_of_a_feed_without_rules_or_with_broken_rules() -> None:
    assert PolicyStatus.of(None) is None
    assert PolicyStatus.from_json(None) is None and PolicyStatus.from_json("policy") is None
    failed = PolicyStatus.failed("[budget.x] sets no limit")
    assert failed.to_json() == {"error": "[budget.x] sets no limit"}  # the documented error-only form
    read = PolicyStatus.from_json(failed.to_json())
    assert read is not None and read.alert_seq is None and read.error == "[budget.x] sets no limit"
    assert read.flags == {} and read.daily_budget_usd == 0.0 and read.sessions_over == 0


def test_policy_status_reader_skips_what_it_cannot_read() -> None:
    read = PolicyStatus.from_json({
        "flags": {"sessions": {"s1": "over", "s2": 3}, "agents": "not a map"},
        "budgets": [{"view": "totals", "measure": "usd_per_day", "limit": "lots"}, "junk",
                    {"view": "totals", "measure": "usd_per_day", "limit": 30}],
        "alerts": [{"seq": "one", "level": "over"}, None, {"seq": 4, "level": "warning", "rule": "r"}],
        "alert_seq": True,
        "hook_failures": "x",
    })
    assert read is not None
    assert read.flags == {"sessions": {"s1": "over"}}
    assert read.daily_budget_usd == 30.0  # the unreadable limit is left out, not taken as 0
    assert [(a.seq, a.level) for a in read.alerts] == [(0, "over"), (4, "warning")]
    assert read.alert_seq is None and read.hook_failures == 0


def test_row_flags_carry_a_flagged_sessions_level_to_its_agent_row() -> None:
    status = PolicyStatus(flags={"sessions": {"s1": "warning", "s2": "runaway", "s3": "ok"}, "agents": {"b": "over"}})
    sessions = [Row(key="s1", agent="a", usd_today=Decimal(0)), Row(key="s2", agent="a", usd_today=Decimal(0)),
                Row(key="s3", agent="c", usd_today=Decimal(0)), Row(key="s4", agent=None, usd_today=Decimal(0))]
    assert status.row_flags("agents", sessions) == {"a": "runaway", "b": "over"}
    assert status.row_flags("sessions", sessions) == {"s1": "warning", "s2": "runaway"}
    assert status.row_flags("models", sessions) == {"(none)": "runaway"}  # sessions with no model


def test_control_status_over_the_wire(status_snapshots) -> None:
    status = ControlStatus(processes=2, emitters=1, refused_event_pids=3,
                           outcomes=({"session": "s1", "action": "pause", "ok": True, "message": "paused", "code": None,
                                      "pid": 42, "ts": 1.5, "origin": "ui"},))
    embedded, remote = status_snapshots("control", status.to_json())
    for snap in (embedded, remote):
        assert ControlStatus.of(snap) == status
    assert ControlStatus.from_json({"processes": "2", "outcomes": [1, {"ok": False}]}) == ControlStatus(outcomes=({"ok": False},))
    assert ControlStatus.of(None) is None and ControlStatus.from_json([]) is None
