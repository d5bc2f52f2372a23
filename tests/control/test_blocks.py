"""The budget stop's state: model names, the gate's index, the feed's block book (a person's blocks
kept across restarts, lifts of rule blocks, ends), the rules' block states with their hysteresis,
the config keys, the audit table's migration, the control API routes, `tokentop check` and the
typed status."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time
from decimal import Decimal
from pathlib import Path

import httpx
import pytest

from tokentop import config as config_mod
from tokentop.cli import main as cli_main
from tokentop.core.control.audit import AuditLog
from tokentop.core.control.blocks import ApiBlock, BlockBook, BlockError, BlocksStatus, Enforcer, MAX_BLOCKS
from tokentop.core.control.policy import (
    BudgetRule, PolicyEngine, PolicyError, RunawayRule, WindowRule, evaluate_budgets, rules_from_config,
    window_rules_from_config,
)
from tokentop.core.feed.runner import FeedRunner
from tokentop.core.ledger import Ledger
from tokentop.core.limits.windows import Window
from tokentop.core.proxy.gate import Block, BlockIndex, BlockList, GateRequest, model_family
from tokentop.core.snapshot import Row, Snapshot, Totals


class Clock:
    def __init__(self, t: float) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


# -- model names -------------------------------------------------------------------------------------

@pytest.mark.parametrize("name,family", [
    ("claude-sonnet-4-5-20250929", "claude-sonnet-4-5"),
    ("claude-sonnet-4-5", "claude-sonnet-4-5"),
    ("claude-sonnet-4-5@20250929", "claude-sonnet-4-5"),  # Vertex
    ("Claude-Sonnet-4-5-20250929", "claude-sonnet-4-5"),
    ("claude-3-5-sonnet-latest", "claude-3-5-sonnet"),
    ("claude-opus-4-1", "claude-opus-4-1"),  # a version, not a date
    ("claude-opus-4-1-20250805", "claude-opus-4-1"),
    ("gpt-5-2025-08-07", "gpt-5"),
    ("gpt-4o-2024-08-06", "gpt-4o"),
    ("gpt-4-0613", "gpt-4"),
    ("gpt-5", "gpt-5"),
    ("text-embedding-3-small", "text-embedding-3-small"),
    ("gemini-2.5-pro", "gemini-2.5-pro"),
])
def test_model_family_drops_only_date_pins(name: str, family: str) -> None:
    assert model_family(name) == family


def test_a_model_blocked_by_its_answered_id_refuses_the_alias_the_client_asks_for() -> None:
    index = BlockIndex([("model", "claude-sonnet-4-5-20250929", Block("budget.x", "over", "lift"), None)])
    assert index.check(GateRequest("a", None, "claude-sonnet-4-5", "anthropic")) is not None
    assert index.check(GateRequest("a", None, "claude-sonnet-4-5-20250929", "anthropic")) is not None
    assert index.check(GateRequest("a", None, "claude-haiku-4-5", "anthropic")) is None
    assert index.check(GateRequest("a", None, None, "anthropic")) is None
    blocks = BlockList()  # the proxy's own block list matches the same way
    blocks.block("model", "gpt-5")
    assert blocks.check(GateRequest("a", None, "gpt-5-2025-08-07", "openai")) is not None
    assert blocks.unblock("model", "gpt-5-2025-08-07")


def test_block_index_scopes_first_wins_and_until() -> None:
    clock = Clock(100.0)
    a, b = Block("r1", "m1", "l1"), Block("r2", "m2", "l2")
    index = BlockIndex([("agent", "codex", a, None), ("agent", "codex", b, None), ("session", "s", b, 110.0)], clock)
    assert index.check(GateRequest("codex", None, None, "openai")) is a
    assert index.check(GateRequest("other", "s", None, "openai")) is b
    clock.t = 110.0
    assert index.check(GateRequest("other", "s", None, "openai")) is None  # lapsed by itself
    assert BlockIndex().check(GateRequest("x", "y", "z", "u", "p")) is None
    everything = BlockIndex([("global", "ignored", a, None)])
    assert everything.check(GateRequest("x", None, None, "u")) is a


# -- the block book ----------------------------------------------------------------------------------

def test_a_persons_blocks_survive_a_restart_and_unblock_removes_them(tmp_path: Path) -> None:
    clock = Clock(time.time())
    ledger = Ledger(tmp_path / "b.db")
    book = BlockBook(ledger, clock=clock)
    entry = book.block("session", "s-1", origin="cli", message="stop, please")
    asyncio.run(book.save_block(entry))
    timed = book.block("agent", "codex", origin="ui", until=clock.t + 60)
    asyncio.run(book.save_block(timed))
    assert book.check(GateRequest("x", "s-1", None, "openai")).message == "stop, please"  # type: ignore[union-attr]
    ledger.close()

    ledger = Ledger(tmp_path / "b.db")
    again = BlockBook(ledger, clock=clock)
    assert [(b.scope, b.key, b.origin, b.until) for b in again.active()] == [("session", "s-1", "cli", None),
                                                                          ("agent", "codex", "ui", clock.t + 60)]
    block = again.check(GateRequest("codex", None, None, "openai"))
    assert block is not None and "run `tokentop unblock --agent codex` (or press b on its row in tokentop), or wait until" \
        in block.how_to_lift
    lifted = again.unblock("session", "s-1")
    asyncio.run(again.delete_blocks(lifted))
    clock.t += 61
    assert [b.key for b in again.expire()] == ["codex"]
    assert again.active() == [] and again.check(GateRequest("codex", "s-1", None, "openai")) is None
    ledger.close()
    ledger = Ledger(tmp_path / "b.db")
    try:
        assert BlockBook(ledger, clock=clock).active() == []
    finally:
        ledger.close()


def test_block_targets_are_checked_and_bounded(monkeypatch) -> None:
    from tokentop.core.control import blocks as blocks_mod

    book = BlockBook(None)
    with pytest.raises(BlockError, match="scope must be one of"):
        book.block("team", "x", origin="api")
    with pytest.raises(BlockError, match="needs its name"):
        book.block("agent", "  ", origin="api")
    with pytest.raises(BlockError, match="printable"):
        book.block("session", "a\nb", origin="api")
    with pytest.raises(BlockError, match="in the past"):
        book.block("session", "s", origin="api", until=1.0)
    assert book.block("model", "Claude-Sonnet-4-5-20250929", origin="api").key == "claude-sonnet-4-5"
    assert book.block("global", "whatever", origin="api").key == ""
    monkeypatch.setattr(blocks_mod, "MAX_BLOCKS", 3)
    book.block("session", "c", origin="api")
    with pytest.raises(BlockError, match="at most 3 blocks"):
        book.block("session", "d", origin="api")
    assert MAX_BLOCKS == 10_000


def _rb(rule: str = "daily", scope: str = "global", key: str = "", message: str = "over") -> object:
    from tokentop.core.control.policy import RuleBlock

    return RuleBlock(rule, "budget", scope, key, message, "raise it", "totals", "all")


def test_rule_blocks_appear_and_go_and_a_persons_lift_holds_until_the_rule_clears(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path / "r.db")
    try:
        book = BlockBook(ledger)
        appeared, gone, dropped = book.set_rule_blocks([_rb()])
        assert [(b.rule, b.scope, b.origin) for b in appeared] == [("budget.daily", "global", "policy:daily")]
        seq = book.seq
        assert book.set_rule_blocks([_rb()]) == ([], [], []) and book.seq == seq  # unchanged: no new version
        book.set_rule_blocks([_rb(message="over, more")])
        assert book.seq == seq + 1 and book.check(GateRequest("a", None, None, "o")).message == "over, more"  # type: ignore[union-attr]
        lifted = book.unblock("global", "")
        asyncio.run(book.save_lifts(lifted, "ui"))
        assert book.check(GateRequest("a", None, None, "o")) is None and [b.rule for b in book.lifted()] == ["budget.daily"]
        assert book.set_rule_blocks([_rb()]) == ([], [], [])  # still over: stays lifted
        assert book.check(GateRequest("a", None, None, "o")) is None
        # a restarted feed remembers the lift
        assert BlockBook(ledger).set_rule_blocks([_rb()])[0] == []
        appeared, gone, dropped = book.set_rule_blocks([])  # the rule clears: the lift is forgotten
        assert (appeared, gone, dropped) == ([], [], [("budget.daily", "global", "")])
        asyncio.run(book.delete_lifts(dropped))
        assert [b.rule for b in book.set_rule_blocks([_rb()])[0]] == ["budget.daily"]  # and it blocks anew
        assert BlockBook(ledger).set_rule_blocks([_rb()])[0] != []
    finally:
        ledger.close()


def test_enforcers_are_the_in_feed_proxy_and_recent_followers() -> None:
    clock = Clock(1000.0)
    book = BlockBook(None, clock=clock)
    assert not book.status().enforced
    book.saw_follower("http://127.0.0.1:7413")
    assert [(e.url, e.how) for e in book.enforcers()] == [("http://127.0.0.1:7413", "following")]
    clock.t += 6
    assert book.enforcers() == []
    book.add_enforcer("http://127.0.0.1:7500")
    assert [(e.url, e.how) for e in book.status().proxies] == [("http://127.0.0.1:7500", "in-feed")]
    book.remove_enforcer("http://127.0.0.1:7500")
    assert not book.status().enforced


# -- the rules ---------------------------------------------------------------------------------------

def snap(usd_today: float = 0.0, burn: float = 0.0, sessions=(), limits=()) -> Snapshot:  # noqa: ANN001
    rows = tuple(Row(key=k, usd_per_hour=b, usd_today=Decimal(str(u)), agent=a, state="active") for k, a, b, u in sessions)
    return Snapshot(generated_at=0.0, totals=Totals(usd_per_hour=burn, usd_today=Decimal(str(usd_today))),
                    sessions=rows, limits=tuple(limits))


def test_a_budget_blocks_at_block_at_and_lifts_5_percent_under_it() -> None:
    engine = PolicyEngine([BudgetRule("burn", usd_per_hour=20.0, block_at=1.0)])
    engine.evaluate(snap(burn=19.9), 0)
    assert engine.blocks == []
    engine.evaluate(snap(burn=20.0), 1)
    [block] = engine.blocks
    assert (block.rule_id, block.scope, block.key) == ("budget.burn", "global", "")
    assert block.message == 'budget "burn": burning $20.00/h, limit $20.00/h'
    assert block.how_to_lift == ("raise [budget.burn] usd_per_hour (or block_at) and restart the feed, wait until the "
                                 "burn falls under $19.00/h, or run `tokentop unblock --all`")
    engine.evaluate(snap(burn=19.2), 2)
    assert len(engine.blocks) == 1  # within 5 %: still blocked
    engine.evaluate(snap(burn=18.9), 3)
    assert engine.blocks == []


def test_block_at_below_warn_at_and_per_key_figures() -> None:
    rule = BudgetRule("sess", usd_per_session=10.0, warn_at=0.9, block_at=0.5)
    engine = PolicyEngine([rule])
    engine.evaluate(snap(sessions=[("s1", "a", 0.0, 5.0), ("s2", "a", 0.0, 4.0)]), 0)
    assert [(b.scope, b.key) for b in engine.blocks] == [("session", "s1")]
    assert engine.blocks[0].message == 'budget "sess" for session s1: $5.00 of $10.00 today (blocks at 50% of it)'
    assert "`tokentop unblock s1`" in engine.blocks[0].how_to_lift
    # stateless (tokentop check): the figure says it is blocked, though only at "ok"
    [f1, f2] = evaluate_budgets(snap(sessions=[("s1", "a", 0.0, 5.0), ("s2", "a", 0.0, 4.0)]), [rule])
    assert (f1.level, f1.blocked, f2.blocked) == ("ok", True, False)
    assert f1.to_json()["blocked"] is True and "blocked" not in f2.to_json()


def test_agent_scoped_budget_blocks_each_agent_separately() -> None:
    from tokentop.core.snapshot import Snapshot as S

    agents = (Row(key="codex", usd_today=Decimal("12")), Row(key="claude-code", usd_today=Decimal("3")))
    engine = PolicyEngine([BudgetRule("per-agent", scope="agent", usd_per_day=10.0, block_at=1.0)])
    engine.evaluate(S(generated_at=0.0, totals=Totals(), agents=agents), 0)
    assert [(b.scope, b.key, b.message) for b in engine.blocks] == [
        ("agent", "codex", 'budget "per-agent" for agent codex: $12.00 of $10.00 today')]


def test_a_runaway_rule_with_action_block_blocks_while_tripped() -> None:
    engine = PolicyEngine(runaways=[RunawayRule("hot", usd_per_hour_above=50.0, for_s=2, clear_fraction=0.8,
                                                action="block")])
    for t in range(3):
        decisions = engine.evaluate(snap(sessions=[("s", "a", 80.0, 0)]), t)
    assert [(d.level, d.action) for d in decisions] == [("runaway", "block")]
    assert [(b.scope, b.key) for b in engine.blocks] == [("session", "s")]
    engine.evaluate(snap(sessions=[("s", "a", 45.0, 0)]), 3)  # under the threshold, not under 0.8 x it
    engine.evaluate(snap(sessions=[("s", "a", 45.0, 0)]), 10)
    assert len(engine.blocks) == 1
    engine.evaluate(snap(sessions=[("s", "a", 10.0, 0)]), 11)
    engine.evaluate(snap(sessions=[("s", "a", 10.0, 0)]), 13)
    assert engine.blocks == []
    assert PolicyEngine(runaways=[RunawayRule("x", usd_per_hour_above=1.0, action="pause")]).may_block is False


def _window(used: float, source: str = "claude-statusline", state: str = "current") -> Window:
    return Window("claude-code", "~/.claude", "5h", used, 10_000.0, 300, source, 0.0, state=state)


def test_a_window_rule_blocks_the_agent_at_block_at_on_official_figures_only() -> None:
    rule = WindowRule("c5", agent="claude-code", warn_at=50, block_at=90)
    engine = PolicyEngine(windows=[rule])
    engine.evaluate(snap(limits=[_window(89)]), 0)
    assert engine.blocks == []
    engine.evaluate(snap(limits=[_window(91)]), 6400)
    [block] = engine.blocks
    assert (block.rule_id, block.scope, block.key) == ("limits.c5", "agent", "claude-code")
    assert block.message == 'subscription window rule "c5": Claude 5h window at 91 % (blocks at 90 %), resets in 1h00m'
    engine.evaluate(snap(limits=[_window(86)]), 6500)
    assert len(engine.blocks) == 1  # hysteresis: 86 >= 90 x 0.95
    engine.evaluate(snap(limits=[_window(0, state="reset")]), 10_001)
    assert engine.blocks == []
    engine.evaluate(snap(limits=[_window(99, source="estimated")]), 0)
    assert engine.blocks == []  # an estimate does not block ...
    est = PolicyEngine(windows=[WindowRule("c5", agent="claude-code", warn_at=50, block_at=90, estimated=True)])
    est.evaluate(snap(limits=[_window(99, source="estimated")]), 0)
    assert len(est.blocks) == 1 and "(estimated)" in est.blocks[0].message  # ... unless the rule says so


# -- config ----------------------------------------------------------------------------------------

def test_block_keys_in_config() -> None:
    cfg = config_mod.from_mapping({"budget": {"daily": {"usd_per_day": 100.0, "block_at": 1.0}},
                                   "runaway": {"hot": {"usd_per_hour_above": 50.0, "action": "block"}},
                                   "limits": {"c5": {"window": "5h", "warn_at": 80, "block_at": 95}}})
    budgets, runaways = rules_from_config(cfg)
    assert budgets[0].block_at == 1.0 and runaways[0].action == "block"
    assert window_rules_from_config(cfg)[0].block_at == 95
    with pytest.raises(config_mod.ConfigError, match=r"block_at is a fraction of the limit.*\(for 'at the limit' write 1.0\)"):
        config_mod.from_mapping({"budget": {"daily": {"usd_per_day": 100.0, "block_at": 100}}})
    with pytest.raises(config_mod.ConfigError, match="action must be one of"):
        config_mod.from_mapping({"budget": {"daily": {"usd_per_day": 100.0, "action": "block"}}})
    with pytest.raises(PolicyError, match="warn_at must be below pause_at, kill_at and block_at"):
        window_rules_from_config(config_mod.from_mapping({"limits": {"c5": {"warn_at": 96, "block_at": 95}}}))


# -- the audit table ---------------------------------------------------------------------------------

def test_an_audit_table_from_before_blocks_gets_its_scope_column(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    ledger = Ledger(path)
    ledger.call(lambda c: c.executescript("""
        CREATE TABLE control_audit (seq INTEGER PRIMARY KEY AUTOINCREMENT, ts REAL NOT NULL, session TEXT NOT NULL,
            action TEXT NOT NULL, origin TEXT NOT NULL, pid INTEGER, signal TEXT, ok INTEGER NOT NULL, code TEXT,
            message TEXT NOT NULL);
        INSERT INTO control_audit (ts, session, action, origin, pid, signal, ok, code, message)
            VALUES (1.0, 's-old', 'pause', 'cli', 42, 'STOP', 1, NULL, 'STOP sent');"""))
    try:
        audit = AuditLog(ledger)
        [old] = audit.recent()
        assert (old.session, old.scope, old.target, old.requested) == ("s-old", None, "s-old", "pause")
        from tokentop.core.control.audit import AuditRecord

        audit.record(AuditRecord(2.0, "codex", "block", "ui", None, None, True, None, "blocked", scope="agent"))
        audit.record(AuditRecord(3.0, "", "block", "policy:daily", None, None, True, None, "blocked", scope="global"))
        assert [(r.target, r.requested) for r in audit.recent()] == [("s-old", "pause"), ("agent codex", "block"),
                                                                     ("every request", "block")]
        assert [r.session for r in audit.recent(session="codex")] == []  # an agent's block is not a session's record
        assert AuditRecord.from_json(audit.recent()[1].to_json()).scope == "agent"
    finally:
        ledger.close()


# -- the feed: routes, status, check ------------------------------------------------------------------

def test_block_routes_need_the_token_and_check_their_body(feed) -> None:
    auth = {"authorization": f"Bearer {feed.token}"}
    assert httpx.post(feed.address + "/v1/block", json={"scope": "session", "key": "s"}).status_code == 401
    r = httpx.post(feed.address + "/v1/block", json={"scope": "team", "key": "s"}, headers=auth)
    assert r.status_code == 400 and r.json()["message"].startswith("scope must be one of")
    assert httpx.post(feed.address + "/v1/block", json={"scope": "session"}, headers=auth).status_code == 400
    assert httpx.post(feed.address + "/v1/block", json={"scope": "session", "key": "s", "for_s": -1},
                      headers=auth).status_code == 400
    r = httpx.post(feed.address + "/v1/block", json={"scope": "project", "key": "web", "for_s": 60,
                                                      "message": "freeze"}, headers=auth)
    assert r.status_code == 200 and r.json()["ok"] and not r.json()["enforced"]
    assert "no tokentop proxy enforces this feed's blocks now" in r.json()["message"]
    r = httpx.post(feed.address + "/v1/sessions/s%2F1/block", json={}, headers=auth)
    assert r.status_code == 200 and r.json()["key"] == "s/1"
    r = httpx.post(feed.address + "/v1/unblock", json={"scope": "agent", "key": "nobody"}, headers=auth)
    assert r.status_code == 409 and r.json()["code"] == "not_blocked"

    status = BlocksStatus.of(feed.snapshot())
    assert status is not None and status.count == 2 and not status.enforced
    assert [(b.scope, b.key, b.message) for b in status.active] == [("project", "web", "freeze"),
                                                                    ("session", "s/1", "session s/1 is blocked by hand "
                                                                     + status.active[1].message.split("by hand ")[1])]


def test_blocks_status_reads_the_same_embedded_and_remote(status_snapshots) -> None:
    written = BlocksStatus(
        active=(ApiBlock("global", "", "budget.daily", "policy:daily", "over", "lift", 5.0),
                ApiBlock("session", "s-1", "user-block", "ui", "by hand", "unblock", 6.0, until=99.0)),
        count=2, lifted=(ApiBlock("agent", "codex", "runaway.hot", "policy:hot", "hot", "wait", 7.0, lifted=True),),
        proxies=(Enforcer("http://127.0.0.1:7413", "in-feed", 8.0),))
    for snap in status_snapshots(BlocksStatus.KEY, written.to_json()):
        read = BlocksStatus.of(snap)
        assert read == written and read.enforced
    junk = BlocksStatus.from_json({"active": [{"scope": "nope"}, None, {"scope": "agent", "key": "", "rule": "r"}],
                                   "proxies": [{"url": 3}], "count": "x"})
    assert junk == BlocksStatus()


def test_check_exits_20_while_a_block_holds(tmp_path: Path, capsys) -> None:
    cfg_path = tmp_path / "c.toml"
    cfg_path.write_text(f'[ledger]\npath = "{tmp_path / "l.db"}"\n[feed]\nurl = "http://127.0.0.1:9"\n')
    assert cli_main(["--config", str(cfg_path), "check"]) == 0
    capsys.readouterr()
    # no feed answers: a person's block kept in the ledger still counts
    assert cli_main(["--config", str(cfg_path), "block", "--agent", "codex", "--message", "enough"]) == 0
    out = capsys.readouterr()
    assert "no feed answers" in out.err and out.out.startswith("blocked agent codex at the API")
    assert cli_main(["--config", str(cfg_path), "check"]) == 20
    text = capsys.readouterr().out
    assert "  blocked  user-block: agent codex at the API (enough); to lift it: run `tokentop unblock --agent codex`" in text
    assert cli_main(["--config", str(cfg_path), "check", "--json"]) == 20
    data = json.loads(capsys.readouterr().out)
    assert data["status"] == "over" and [b["key"] for b in data["blocks"]] == ["codex"]
    assert cli_main(["--config", str(cfg_path), "block"]) == 0
    assert capsys.readouterr().out.startswith("agent codex: rule user-block (by cli, since ")
    assert cli_main(["--config", str(cfg_path), "unblock", "--agent", "codex"]) == 0
    assert cli_main(["--config", str(cfg_path), "check"]) == 0
    assert cli_main(["--config", str(cfg_path), "unblock"]) == 2
    assert cli_main(["--config", str(cfg_path), "block", "s-1", "--agent", "x"]) == 2
    capsys.readouterr()
    assert cli_main(["--config", str(cfg_path), "log"]) == 0
    log = capsys.readouterr().out.splitlines()
    assert [line.split()[3:6] for line in log] == [["block", "agent", "codex"], ["unblock", "agent", "codex"]]


def test_check_counts_a_budget_at_block_at_below_its_limit(tmp_path: Path, capsys) -> None:
    from tokentop.core.events import Event
    from tokentop.core.pricing import Pricer

    cfg_path = tmp_path / "c.toml"
    cfg_path.write_text(f'[ledger]\npath = "{tmp_path / "l.db"}"\n[feed]\nurl = "http://127.0.0.1:9"\n'
                        '[budget.daily]\nusd_per_day = 10.0\nwarn_at = 0.9\nblock_at = 0.3\n')
    ledger = Ledger(tmp_path / "l.db")
    event = Event(id="e1", ts=time.time(), agent="a", session="s", model="gpt-4o", provider="openai",
                  input_tokens=1_000_000, output_tokens=100_000)  # ~$3.50
    ledger.append([(event, Pricer().price(event))])
    ledger.close()
    assert cli_main(["--config", str(cfg_path), "check"]) == 20
    assert "(block_at reached)" in capsys.readouterr().out


async def test_the_policy_task_audits_and_alerts_each_block_once(tmp_path: Path) -> None:
    from tokentop.core.events import Event

    clock = Clock(time.time())
    cfg = tmp_path / "p.toml"
    cfg.write_text(f'[ledger]\npath = "{tmp_path / "p.db"}"\n[sources]\nenabled = []\n[control]\ndesktop_notify = false\n'
                   '[budget.daily]\nusd_per_day = 6.0\nblock_at = 1.2\n')
    runner = FeedRunner(config_mod.load(cfg), listen="127.0.0.1:0", clock=clock)
    try:
        policy, ctl = runner.parts.policy, runner.parts.control
        assert policy is not None and ctl is not None

        ids = iter(range(1000))

        async def spend(n: int) -> None:
            for _ in range(n):
                await runner.service.ingest_events([Event(
                    id=f"e{next(ids)}", ts=clock.t, agent="a", session="s", model="gpt-4o", provider="openai",
                    input_tokens=1_000_000, output_tokens=100_000)])

        await spend(2)  # ~$7: over the limit, under block_at (120 %)
        decisions = await policy.step()
        assert [(d.level, d.action) for d in decisions] == [("over", "alert")] and ctl.blocks.active() == []
        await spend(1)  # ~$10.5: over 120 %
        assert await policy.step() == []
        [block] = ctl.blocks.active()
        assert block.message.endswith("today (blocks at 120% of it)")
        status = runner.service.snapshot(clock.t).status["policy"]
        last = status["alerts"][-1]
        assert last["action"] == "block" and last["message"].startswith("blocked at the API: every request (budget")
        assert status["budgets"][0]["blocked"] is True
        for _ in range(3):
            await policy.step()
        assert [(a.requested, a.origin) for a in ctl.audit.recent()] == [("block", "policy:daily")]
        assert len(runner.service.snapshot(clock.t).status["policy"]["alerts"]) == 2
        clock.t += 86400
        await policy.step()
        assert [(a.requested, a.origin) for a in ctl.audit.recent()] == [("block", "policy:daily"),
                                                                        ("unblock", "policy:daily")]
        assert runner.service.snapshot(clock.t).status["policy"]["alerts"][-1]["level"] == "cleared"
    finally:
        runner.ledger.close()


async def test_the_remote_controller_blocks_through_the_feeds_api(feed) -> None:
    from tokentop.core.control.controller import RemoteController, build_controller
    from tokentop.core.control.port import Blocker, BlockTarget

    controller = RemoteController(feed.address, feed.token)
    assert isinstance(controller, Blocker) and controller.block_unavailable() is None
    done = await controller.block(BlockTarget("agent", "codex"))
    assert done.ok and done.action == "block" and done.session == "agent codex"
    assert [(b.scope, b.key, b.origin) for b in BlocksStatus.of(feed.snapshot()).active] == [("agent", "codex", "ui")]
    again = await controller.unblock(BlockTarget("agent", "codex"))
    assert again.ok and again.message == "lifted agent codex: user-block"
    nothing = await controller.unblock(BlockTarget("agent", "codex"))
    assert not nothing.ok and nothing.message == "nothing blocked agent codex itself"
    wrong = await RemoteController(feed.address, "wrong").block(BlockTarget("global"))
    assert not wrong.ok and wrong.message.startswith("the feed refused: missing or wrong local token")
    no_token = build_controller(url=feed.address, token="")
    assert isinstance(no_token, Blocker) and "no local token found" in (no_token.block_unavailable() or "")
