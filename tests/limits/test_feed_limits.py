"""Subscription windows through a real feed: the Codex log live, the statusline route, snapshots over
HTTP and the stream, ``--once --json`` / ``--plain``, window rules in the feed and ``tokentop check``."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Iterator

import httpx
import pytest
import websockets

from tests.sources.helpers import iso, write_lines
from tokentop import config as config_mod
from tokentop.cli import main as cli_main
from tokentop.core.control.policy import PolicyEngine, WindowRule, evaluate_windows
from tokentop.core.feed.auth import read_token
from tokentop.core.feed.runner import FeedRunner
from tokentop.core.limits.status import LimitsStatus
from tokentop.core.limits.windows import Window
from tokentop.core.snapshot import Row, Snapshot, Totals

FIXTURES = Path(__file__).parent / "fixtures"
SID = "019c8bfe-0000-7000-8000-0000000000f1"


def rate_line(t: float, used5: float, used7: float, reset5: float, reset7: float) -> str:
    return json.dumps({"timestamp": iso(t), "type": "event_msg", "payload": {
        "type": "token_count", "info": None, "rate_limits": {
            "limit_id": "codex", "limit_name": None,
            "primary": {"used_percent": used5, "window_minutes": 300, "resets_at": reset5},
            "secondary": {"used_percent": used7, "window_minutes": 10080, "resets_at": reset7},
            "credits": None, "plan_type": None}}})


def usage_line(t: float, total_in: int, total_out: int) -> str:
    usage = {"input_tokens": total_in, "cached_input_tokens": 0, "output_tokens": total_out,
             "reasoning_output_tokens": 0}
    return json.dumps({"timestamp": iso(t), "type": "event_msg", "payload": {
        "type": "token_count", "info": {"total_token_usage": usage, "last_token_usage": usage}, "rate_limits": None}})


def statusline_payload(used5: float = 62, used7: float = 41, reset5: float | None = None) -> dict:
    now = time.time()
    payload = json.loads((FIXTURES / "statusline_2.1.x_rate_limits_filled_COMPOSED.json").read_text())
    payload["rate_limits"]["five_hour"] = {"used_percentage": used5, "resets_at": int(reset5 or now + 72 * 60)}
    payload["rate_limits"]["seven_day"] = {"used_percentage": used7, "resets_at": int(now + 3 * 86400)}
    return payload


@pytest.fixture
def live_feed(tmp_path: Path) -> Iterator[FeedRunner]:
    """A feed reading ~/.codex (the test's HOME) from the start. The day's directory exists before the
    watcher starts: a directory created later can hide its first file from the watcher until the
    next full scan (30 s), which is the tailer's business, not this test's."""
    (Path.home() / ".codex" / "sessions" / "2026" / "12" / "06").mkdir(parents=True)
    cfg = config_mod.from_mapping({"ledger": {"path": str(tmp_path / "feed.db")}})
    runner = FeedRunner(cfg, listen="127.0.0.1:0", host_name="test-host").start_in_thread(require_listen=True)
    try:
        yield runner
    finally:
        runner.stop()


def wait_for(predicate, timeout: float = 10.0):  # noqa: ANN001, ANN201
    deadline = time.monotonic() + timeout
    while True:
        got = predicate()
        if got or time.monotonic() > deadline:
            return got
        time.sleep(0.02)


def test_a_codex_window_appended_live_reaches_the_snapshot(live_feed: FeedRunner) -> None:
    assert wait_for(lambda: (live_feed.snapshot().status.get("sources") or {}).get("state") in ("watching", "polling"))
    now = time.time()
    path = Path.home() / ".codex" / "sessions" / "2026" / "12" / "06" / f"rollout-2026-12-06T10-00-00-{SID}.jsonl"
    write_lines(path, [json.dumps({"timestamp": iso(now - 5), "type": "session_meta", "payload": {"id": SID, "cwd": "/p"}}),
                       usage_line(now - 4, 50_000, 1_000)])
    assert wait_for(lambda: live_feed.snapshot().totals.requests_today == 1)
    t0 = time.monotonic()
    write_lines(path, [rate_line(time.time(), 37.0, 12.0, now + 3600, now + 5 * 86400)], mode="a")
    got = wait_for(lambda: {w.window: w for w in live_feed.snapshot().limits if w.agent == "codex"})
    elapsed = time.monotonic() - t0
    assert set(got) == {"5h", "7d"}, got
    assert got["5h"].used_percent == 37.0 and got["5h"].source == "codex-log" and got["5h"].account == "~/.codex"
    assert elapsed < 5.0  # typically ~0.1 s (watcher debounce); the bound only catches a stall
    # the session that used the window is named, with its share (read from the ledger within a second)
    w5 = wait_for(lambda: next((w for w in live_feed.snapshot().limits if w.window == "5h" and w.tokens), None))
    assert w5.tokens == 51_000 and [(s.session, s.share) for s in w5.eaten_by] == [(SID, 1.0)]
    # and a repeat that adds no usage still moves the window
    write_lines(path, [rate_line(time.time(), 39.0, 12.0, now + 3601, now + 5 * 86400)], mode="a")
    assert wait_for(lambda: any(w.used_percent == 39.0 for w in live_feed.snapshot().limits))
    assert live_feed.snapshot().totals.requests_today == 1


def test_windows_are_kept_across_a_restart(tmp_path: Path, feed: FeedRunner) -> None:
    r = httpx.post(f"{feed.address}/v1/limits/statusline", json=statusline_payload())
    assert r.status_code == 200
    ledger_path = feed.ledger.path
    feed.stop()
    again = FeedRunner(config_mod.from_mapping({"ledger": {"path": ledger_path}}), listen="127.0.0.1:0")
    try:
        assert {(w.agent, w.window, w.used_percent) for w in again.service.snapshot().limits} == {
            ("claude-code", "5h", 62.0), ("claude-code", "7d", 41.0)}
    finally:
        again.ledger.close()


def test_the_statusline_route(feed: FeedRunner) -> None:
    url = f"{feed.address}/v1/limits/statusline"
    token = read_token(feed.token_dir)
    r = httpx.post(url, json=statusline_payload(), headers={"Authorization": f"Bearer {token}",
                                                            "X-Tokentop-Claude-Config-Dir": "/home/me/.claude-work"})
    assert r.status_code == 200
    answer = r.json()
    assert answer["ok"] is True
    assert {w["window"]: w["used_percent"] for w in answer["windows"]} == {"5h": 62.0, "7d": 41.0}
    snap = feed.snapshot()
    assert {w.account for w in snap.limits} == {"/home/me/.claude-work"}
    assert {w.source for w in snap.limits} == {"claude-statusline"}
    # a loopback client without the token is taken too (the route is local; browsers are refused)
    assert httpx.post(url, json=statusline_payload(70)).status_code == 200
    assert httpx.post(url, json=statusline_payload(70), headers={"Origin": "https://evil.example"}).status_code == 403
    assert httpx.post(url, content=b"{not json").status_code == 400
    assert httpx.post(url, content=b"[1, 2]").status_code == 400
    assert httpx.post(url, content=b" " * 70_000).status_code == 413
    # a payload without quota figures is counted, and the status says why there is no window
    httpx.post(url, content=(FIXTURES / "statusline_2.1.141_rate_limits_null.json").read_bytes())
    feed.run_coroutine(feed.parts.limits.maintain(time.time() + 10))  # type: ignore[union-attr]
    status = LimitsStatus.of(feed.snapshot())
    assert status is not None
    assert status.statusline["received"] == 3 and status.statusline["refused"] == 3
    assert status.statusline["rate_limits"] == "null" and status.statusline["version"] == "2.1.141"
    assert status.statusline["sessions"][0]["cost_usd"] == pytest.approx(3.4172)
    # GET /v1/limits lists the windows
    listed = httpx.get(f"{feed.address}/v1/limits").json()["limits"]
    assert {(w["account"], w["window"], w["used_percent"]) for w in listed} == {
        ("/home/me/.claude-work", "5h", 62.0), ("/home/me/.claude-work", "7d", 41.0),
        ("~/.claude", "5h", 70.0), ("~/.claude", "7d", 41.0)}


def test_no_quota_figures_from_claude_code_is_said_not_shown_as_zero(feed: FeedRunner) -> None:
    url = f"{feed.address}/v1/limits/statusline"
    httpx.post(url, content=(FIXTURES / "statusline_2.1.138_no_rate_limits.json").read_bytes())
    feed.run_coroutine(feed.parts.limits.maintain(time.time() + 10))  # type: ignore[union-attr]
    snap = feed.snapshot()
    assert [w for w in snap.limits if w.agent == "claude-code"] == []
    (note,) = LimitsStatus.of(snap).notes  # type: ignore[union-attr]
    assert "2.1.138" in note and "rate_limits absent" in note


def test_limits_travel_in_the_snapshot_json_and_the_stream(feed: FeedRunner) -> None:
    httpx.post(f"{feed.address}/v1/limits/statusline", json=statusline_payload())
    data = httpx.get(f"{feed.address}/v1/snapshot").json()
    assert {w["window"] for w in data["limits"]} == {"5h", "7d"}
    remote = Snapshot.from_json(data)
    assert {(w.window, w.used_percent, w.source, w.resets_at) for w in remote.limits} == {
        (w.window, w.used_percent, w.source, w.resets_at) for w in feed.snapshot().limits}

    async def first_frame() -> dict:
        async with websockets.connect(feed.address.replace("http", "ws") + "/v1/stream?views=agents&series=compact") as ws:
            return json.loads(await ws.recv())

    frame = asyncio.run(first_frame())
    assert {w["window"] for w in frame["limits"]} == {"5h", "7d"}
    # a snapshot from a feed without limits (older, or a fleet) reads as none
    del data["limits"]
    assert Snapshot.from_json(data).limits == ()


def test_once_json_and_plain(feed: FeedRunner, capsys: pytest.CaptureFixture[str]) -> None:
    httpx.post(f"{feed.address}/v1/limits/statusline", json=statusline_payload())
    assert cli_main(["--feed", str(feed.address), "--once", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert {w["window"]: w["source"] for w in data["limits"]} == {"5h": "claude-statusline", "7d": "claude-statusline"}
    assert cli_main(["--feed", str(feed.address), "--once", "--plain"]) == 0
    out = capsys.readouterr().out
    assert "Claude 5h  62 %" in out and "Claude 7d  41 %" in out and "Claude Code" in out
    assert "▕" not in out  # no bar in plain text


# -- window rules -----------------------------------------------------------------------------------------

def snap_with(*windows: Window, sessions: tuple[Row, ...] = ()) -> Snapshot:
    return Snapshot(generated_at=0.0, totals=Totals(), sessions=sessions, limits=windows)


def window(used: float, source: str = "claude-statusline", agent: str = "claude-code") -> Window:
    return Window(agent, "~/.claude", "5h", used, 10_000.0, 300, source, 0.0)


def test_window_rules_are_edge_triggered_with_hysteresis_and_escalate() -> None:
    rule = WindowRule("claude-5h", window="5h", agent="claude-code", warn_at=80, pause_at=95, kill_at=99)
    engine = PolicyEngine(windows=[rule])
    active = (Row("s1", agent="claude-code", state="active"), Row("s2", agent="codex", state="active"),
              Row("s3", agent="claude-code", state="idle"))
    assert engine.evaluate(snap_with(window(50.0), sessions=active), 0) == []
    (d,) = engine.evaluate(snap_with(window(81.0), sessions=active), 1)
    assert (d.kind, d.level, d.action, d.sessions) == ("window", "warning", "alert", ())
    assert "Claude 5h window is at 81 %" in d.message
    assert engine.evaluate(snap_with(window(85.0), sessions=active), 2) == []  # still warning: nothing new
    assert engine.evaluate(snap_with(window(77.0), sessions=active), 3) == []  # within 5 % of 80: stays warning
    (d,) = engine.evaluate(snap_with(window(96.0), sessions=active), 4)
    assert (d.level, d.action, d.sessions) == ("over", "pause", ("s1",))  # the agent's active sessions only
    (d,) = engine.evaluate(snap_with(window(99.5), sessions=active), 5)
    assert (d.level, d.action) == ("over", "kill")
    # the window resets: back to ok, and the next climb alerts again
    assert engine.evaluate(snap_with(window(0.0), sessions=active), 6) == []
    (d,) = engine.evaluate(snap_with(window(82.0), sessions=active), 7)
    assert d.level == "warning"


def test_an_estimated_window_alerts_but_acts_only_when_the_rule_says_so() -> None:
    rows = (Row("s1", agent="claude-code", state="active"),)
    (d,) = PolicyEngine(windows=[WindowRule("r", pause_at=90)]).evaluate(snap_with(window(92.0, "estimated"), sessions=rows), 0)
    assert (d.level, d.action, d.sessions) == ("over", "alert", ())
    assert "(estimated)" in d.message
    (d,) = PolicyEngine(windows=[WindowRule("r", pause_at=90, estimated=True)]).evaluate(
        snap_with(window(92.0, "estimated"), sessions=rows), 0)
    assert (d.action, d.sessions) == ("pause", ("s1",))


def test_an_exhausted_window_is_over_even_without_pause_or_kill() -> None:
    (f,) = evaluate_windows(snap_with(window(100.0)), [WindowRule("r", warn_at=80)])
    assert (f.level, f.limit) == ("over", 100.0)
    assert evaluate_windows(snap_with(window(100.0)), [WindowRule("r", agent="codex")]) == []


def _write_config(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "cfg" / "config.toml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_check_exits_10_and_20_on_window_thresholds(tmp_path: Path, feed: FeedRunner,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    _write_config(tmp_path, '[limits.claude-5h]\nwindow = "5h"\nagent = "claude-code"\nwarn_at = 60\npause_at = 90\n')
    base = ["--feed", str(feed.address), "check"]
    assert cli_main(base) == 0  # no window with data yet
    assert "no subscription window with data" in capsys.readouterr().out
    httpx.post(f"{feed.address}/v1/limits/statusline", json=statusline_payload(62))
    assert cli_main(base) == 10
    assert "claude-5h: window claude-code 5h ~/.claude at 62.0 %" in capsys.readouterr().out
    httpx.post(f"{feed.address}/v1/limits/statusline", json=statusline_payload(93))
    assert cli_main(base + ["--json"]) == 20
    out = json.loads(capsys.readouterr().out)
    assert out["status"] == "over" and out["window_rules"] == 1
    assert out["findings"][0]["view"] == "limits" and out["findings"][0]["limit"] == 90


def test_check_without_a_feed_reads_the_last_known_windows(tmp_path: Path, feed: FeedRunner,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    httpx.post(f"{feed.address}/v1/limits/statusline", json=statusline_payload(97))
    ledger_path = feed.ledger.path
    feed.stop()  # writes the windows to the ledger
    _write_config(tmp_path, f'[ledger]\npath = "{ledger_path}"\n\n[limits.claude-5h]\nwindow = "5h"\nwarn_at = 80\n')
    assert cli_main(["--feed", "http://127.0.0.1:9", "check"]) == 10  # 97 % ≥ warn_at 80, not exhausted
    out = capsys.readouterr().out
    assert out.startswith("WARNING") and "ledger" in out and "at 97.0 %" in out


def test_window_rules_in_config_are_validated(tmp_path: Path) -> None:
    with pytest.raises(config_mod.ConfigError, match="limits.claude-5h.pause"):
        config_mod.from_mapping({"limits": {"claude-5h": {"pause": 90}}})
    with pytest.raises(config_mod.ConfigError, match="limits.claude-5h.warn_at must be a number"):
        config_mod.from_mapping({"limits": {"claude-5h": {"warn_at": "high"}}})
    from tokentop.core.control.policy import PolicyError, window_rules_from_config

    cfg = config_mod.from_mapping({"limits": {"claude_oauth": False, "w": {"window": "7d", "kill_at": 99}}})
    (rule,) = window_rules_from_config(cfg)
    assert (rule.name, rule.window, rule.warn_at, rule.kill_at) == ("w", "7d", 80, 99)
    with pytest.raises(PolicyError, match="warn_at must be below"):
        window_rules_from_config(config_mod.from_mapping({"limits": {"w": {"warn_at": 95, "pause_at": 90}}}))
    # `config show` prints the rule back as written
    import tomli_w

    assert "[limits.w]" in tomli_w.dumps(cfg.as_dict())


def test_a_window_rule_alerts_from_the_feeds_policy_task(tmp_path: Path) -> None:
    cfg = config_mod.from_mapping({"ledger": {"path": str(tmp_path / "p.db")}, "control": {"desktop_notify": False},
                                   "limits": {"claude-5h": {"window": "5h", "agent": "claude-code", "warn_at": 50}}})
    runner = FeedRunner(cfg, listen="127.0.0.1:0").start_in_thread(require_listen=True)
    try:
        assert runner.parts.policy is not None  # window rules alone start the policy task
        httpx.post(f"{runner.url}/v1/limits/statusline", json=statusline_payload(62))
        alerts = wait_for(lambda: (runner.snapshot().status.get("policy") or {}).get("alerts"))
        (alert,) = alerts
        assert (alert["kind"], alert["level"], alert["view"], alert["key"]) == (
            "window", "warning", "limits", "claude-code 5h ~/.claude")
        assert alert["message"].startswith("Claude 5h window is at 62 %")
        budgets = runner.snapshot().status["policy"]["budgets"]
        assert any(f["view"] == "limits" and f["level"] == "warning" for f in budgets)
    finally:
        runner.stop()


def test_the_statusline_route_needs_the_token_when_ingest_does(tmp_path: Path) -> None:
    cfg = config_mod.from_mapping({"ledger": {"path": str(tmp_path / "t.db")}, "feed": {"ingest_requires_token": True}})
    runner = FeedRunner(cfg, listen="127.0.0.1:0").start_in_thread(require_listen=True)
    try:
        url = f"{runner.url}/v1/limits/statusline"
        assert httpx.post(url, json=statusline_payload()).status_code == 401
        ok = httpx.post(url, json=statusline_payload(), headers={"Authorization": f"Bearer {runner.token}"})
        assert ok.status_code == 200
    finally:
        runner.stop()
