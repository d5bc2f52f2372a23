"""The OAuth usage poller against a fake endpoint served over loopback by a real uvicorn server."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time
from pathlib import Path
from typing import Iterator

import pytest

from tests.limits.fake_oauth import FakeOAuth, FakeServer
from tokentop import config as config_mod
from tokentop.core.ledger import Ledger
from tokentop.core.limits.oauth import MIN_INTERVAL_S, OAuthPoller, parse_usage, read_credentials, retry_after
from tokentop.core.limits.store import LimitStore
from tokentop.core.limits.windows import Observation

FIXTURES = Path(__file__).parent / "fixtures"
TOKEN = "sk-ant-oat01-" + "x" * 40 + "-SECRET"
NOW = 1_795_694_400.0


@pytest.fixture
def fake() -> Iterator[FakeServer]:
    server = FakeServer(FakeOAuth(TOKEN)).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def claude_dir(tmp_path: Path) -> Path:
    d = tmp_path / "home" / ".claude"
    write_credentials(d, TOKEN)
    return d


def write_credentials(directory: Path, token: str, expires_at_ms: float | None = None) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / ".credentials.json"
    body = {"claudeAiOauth": {"accessToken": token, "refreshToken": "sk-ant-ort01-refresh",
                              "expiresAt": expires_at_ms if expires_at_ms is not None else (NOW + 86400) * 1000,
                              "scopes": ["user:inference", "user:profile"], "subscriptionType": "max"}}
    path.write_text(json.dumps(body))
    os.chmod(path, 0o600)
    return path


def poller(store: LimitStore, claude_dir: Path, fake: FakeServer, ledger: Ledger | None = None) -> OAuthPoller:
    return OAuthPoller(store, clock=lambda: NOW, directory=claude_dir, base_url=fake.url, ledger=ledger)


def step(p: OAuthPoller, now: float) -> str:
    return asyncio.run(p.step(now))


def windows(store: LimitStore) -> dict[str, tuple[float, float | None]]:
    return {o.window: (o.used_percent, o.resets_at) for o in store.latest()}


def test_the_old_flat_shape(fake: FakeServer, claude_dir: Path) -> None:
    fake.fake.script(200, json.loads((FIXTURES / "oauth_usage_2026-03-08_flat.json").read_text()))
    store = LimitStore()
    p = poller(store, claude_dir, fake)
    assert step(p, NOW) == "ok"
    got = windows(store)
    assert set(got) == {"5h", "7d", "7d-sonnet"}
    assert got["5h"][0] == 45.0 and got["7d"][0] == 62.0 and got["7d-sonnet"][0] == 2.0
    assert got["5h"][1] == pytest.approx(1772982000.123456)
    (req,) = fake.fake.requests
    assert req["headers"]["authorization"] == f"Bearer {TOKEN}"
    assert req["headers"]["anthropic-beta"] == "oauth-2025-04-20"
    assert all(o.source == "claude-oauth" and o.plan == "max" for o in store.latest())


def test_the_newer_limits_array_shape_and_codename_buckets(fake: FakeServer, claude_dir: Path) -> None:
    fake.fake.script(200, json.loads((FIXTURES / "oauth_usage_2026-09-29_limits_array.json").read_text()))
    store = LimitStore()
    assert step(poller(store, claude_dir, fake), NOW) == "ok"
    got = windows(store)
    # session / weekly_all / a model-scoped week known only by its display name; the empty
    # codename buckets (utilization 0, no reset) are not windows
    assert set(got) == {"5h", "7d", "7d-fable"}
    assert got["5h"][0] == 11.0 and got["7d"][0] == 70.0 and got["7d-fable"][0] == 0.0


def test_a_max_answer_with_empty_codename_buckets() -> None:
    found = parse_usage(json.loads((FIXTURES / "oauth_usage_2026-04-18_max.json").read_text()), NOW, "~/.claude")
    assert {(o.window, o.used_percent) for o in found} == {("5h", 22.0), ("7d", 33.0), ("7d-sonnet", 0.0)}


def test_at_most_one_call_per_five_minutes(fake: FakeServer, claude_dir: Path) -> None:
    p = poller(LimitStore(), claude_dir, fake)
    step(p, NOW)
    step(p, NOW + 60)
    step(p, NOW + MIN_INTERVAL_S - 1)
    assert len(fake.fake.requests) == 1
    step(p, NOW + MIN_INTERVAL_S)
    assert len(fake.fake.requests) == 2
    # a configured interval below 5 minutes is raised to 5 minutes
    assert OAuthPoller(LimitStore(), clock=time.time, directory=claude_dir, interval_s=10).interval_s == MIN_INTERVAL_S


def test_429_honours_retry_after(fake: FakeServer, claude_dir: Path) -> None:
    fake.fake.script(429, retry_after="1200")
    p = poller(LimitStore(), claude_dir, fake)
    assert step(p, NOW) == "blocked"
    for t in (NOW + 300, NOW + 600, NOW + 1199):
        step(p, t)
    assert len(fake.fake.requests) == 1
    assert step(p, NOW + 1200) == "ok"
    assert len(fake.fake.requests) == 2


def test_a_persistent_429_with_retry_after_zero_backs_off_anyway(fake: FakeServer, claude_dir: Path) -> None:
    for _ in range(3):
        fake.fake.script(429, retry_after="0")
    p = poller(LimitStore(), claude_dir, fake)
    step(p, NOW)
    assert p.next_call_at() == NOW + 300  # 0 does not mean "now"
    step(p, NOW + 1)
    assert len(fake.fake.requests) == 1
    step(p, NOW + 300)
    assert p.next_call_at() == NOW + 300 + 600  # doubling while it repeats
    step(p, NOW + 900)
    assert p.next_call_at() == NOW + 900 + 1200
    assert len(fake.fake.requests) == 3
    assert "429" in (p.message or "")


def test_401_stops_and_says_to_run_claude_until_the_credentials_change(fake: FakeServer, claude_dir: Path) -> None:
    write_credentials(claude_dir, "sk-ant-oat01-revoked")
    p = poller(LimitStore(), claude_dir, fake)
    assert step(p, NOW) == "stopped"
    assert "`claude`" in (p.message or "") and "401" in (p.message or "")
    for t in (NOW + 3600, NOW + 86400):
        step(p, t)
    assert len(fake.fake.requests) == 1
    # the user ran `claude`: a new token in the file, and calls resume
    write_credentials(claude_dir, TOKEN, expires_at_ms=(NOW + 30 * 86400) * 1000)
    assert step(p, NOW + 86400 + 1) == "ok"
    assert len(fake.fake.requests) == 2


def test_an_expired_token_is_reported_and_never_used(fake: FakeServer, claude_dir: Path) -> None:
    write_credentials(claude_dir, TOKEN, expires_at_ms=(NOW - 60) * 1000)
    p = poller(LimitStore(), claude_dir, fake)
    assert step(p, NOW) == "stopped"
    assert fake.fake.requests == []
    assert "expired" in (p.message or "") and "`claude`" in (p.message or "")


def test_no_call_while_the_statusline_reports(fake: FakeServer, claude_dir: Path) -> None:
    store = LimitStore()
    store.observe(Observation("claude-code", "~/.claude", "5h", 30.0, NOW + 3600, 300, "claude-statusline", NOW - 60))
    p = poller(store, claude_dir, fake)
    p.account = "~/.claude"
    assert step(p, NOW) == "skipped"
    assert fake.fake.requests == []
    assert step(p, NOW + 3600) == "ok"  # the statusline went quiet: now a call is due
    assert len(fake.fake.requests) == 1


def test_the_token_is_never_logged_shown_or_written(fake: FakeServer, claude_dir: Path, caplog: pytest.LogCaptureFixture,
                                                    tmp_path: Path) -> None:
    path = claude_dir / ".credentials.json"
    before = (path.read_bytes(), path.stat().st_mtime_ns)
    ledger = Ledger(tmp_path / "l.db")
    try:
        fake.fake.script(429, retry_after="0")
        fake.fake.script(500)
        fake.fake.script(200, {"five_hour": {"utilization": 5.0, "resets_at": "2026-11-26T15:00:00Z"}})
        with caplog.at_level(logging.DEBUG):
            p = poller(LimitStore(), claude_dir, fake, ledger)
            for t in (NOW, NOW + 300, NOW + 900):
                step(p, t)
        shown = json.dumps(p.status()) + caplog.text + repr(read_credentials(path))
        assert TOKEN not in shown and "SECRET" not in shown
        dump = ledger.call(lambda c: c.execute("SELECT * FROM limit_polls").fetchall())
        assert TOKEN not in repr(dump)
    finally:
        ledger.close()
    assert (path.read_bytes(), path.stat().st_mtime_ns) == before  # read-only: never refreshed or rewritten


def test_the_call_schedule_survives_a_restart(fake: FakeServer, claude_dir: Path, tmp_path: Path) -> None:
    ledger = Ledger(tmp_path / "l.db")
    try:
        step(poller(LimitStore(), claude_dir, fake, ledger), NOW)
        again = poller(LimitStore(), claude_dir, fake, ledger)
        step(again, NOW + 10)  # a restart 10 s later does not call again
        assert len(fake.fake.requests) == 1
        assert again.next_call_at() == NOW + MIN_INTERVAL_S
    finally:
        ledger.close()


def test_retry_after_forms() -> None:
    assert retry_after("120", NOW) == 120
    assert retry_after("0", NOW) == 0
    assert retry_after("Thu, 26 Nov 2026 12:10:00 GMT", NOW) == pytest.approx(600)
    assert retry_after(None, NOW) is None and retry_after("soon", NOW) is None


def test_the_feed_polls_only_when_asked_and_publishes_the_windows(fake: FakeServer, tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    from tokentop.core.feed.runner import FeedRunner

    claude = tmp_path / "claude-config"
    write_credentials(claude, TOKEN, expires_at_ms=(time.time() + 86400) * 1000)
    # the recorded answer, its reset times moved into the future (stale windows are not shown)
    body = (FIXTURES / "oauth_usage_2026-09-29_limits_array.json").read_text()
    for old, new in (("2026-09-29T13:49:59", time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(time.time() + 3600))),
                     ("2026-09-30T23:59:59", time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(time.time() + 86400)))):
        body = body.replace(old, new)
    fake.fake.script(200, json.loads(body))
    monkeypatch.setenv("TOKENTOP_NO_SOURCES", "1")
    off = FeedRunner(config_mod.from_mapping({"ledger": {"path": str(tmp_path / "a.db")},
                                              "limits": {"claude_config_dir": str(claude)}}), listen="127.0.0.1:0")
    assert off.parts.limits is not None and off.parts.limits.oauth is None  # off by default
    off.ledger.close()
    cfg = config_mod.from_mapping({"ledger": {"path": str(tmp_path / "b.db")}, "limits": {
        "claude_oauth": True, "claude_oauth_url": fake.url, "claude_config_dir": str(claude)}})
    runner = FeedRunner(cfg, listen="127.0.0.1:0").start_in_thread(require_listen=True)
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            snap = runner.snapshot()
            if any(w.source == "claude-oauth" for w in snap.limits):
                break
            time.sleep(0.1)
        got = {w.window: w for w in snap.limits if w.agent == "claude-code"}
        assert got["5h"].source == "claude-oauth" and got["5h"].used_percent == 11.0
        assert snap.to_json()["limits"][0]["source"] == "claude-oauth"
    finally:
        runner.stop()
