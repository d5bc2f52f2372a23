"""Pollers attached to a real feed; unattributed spend against local events."""

from __future__ import annotations

import json
import os
import time
from decimal import Decimal

import pytest

from tests.providers.fake_provider_api import Usage
from tests.providers.helpers import seed_days
from tokentop import config as config_mod
from tokentop.core.events import Event
from tokentop.core.ledger import Ledger
from tokentop.core.pricing import Cost, PriceOverride, Pricer, to_pusd
from tokentop.core.providers.panel import build_panel, compute_unattributed, match_key
from tokentop.core.providers.records import UsageRow
from tokentop.core.providers.store import BilledStore


def _wait(pred, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = pred()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError("condition not reached in time")


@pytest.fixture
def provider_env(fake_api, monkeypatch):
    monkeypatch.setenv("OPENAI_ADMIN_KEY", fake_api.api.openai.key)
    monkeypatch.setenv("ANTHROPIC_ADMIN_KEY", fake_api.api.anthropic.key)
    monkeypatch.setenv("TOKENTOP_OPENAI_BASE_URL", fake_api.openai_base)
    monkeypatch.setenv("TOKENTOP_ANTHROPIC_BASE_URL", fake_api.anthropic_base)
    return fake_api


def _runner(tmp_path, **providers):
    from tokentop.core.feed.runner import FeedRunner

    table = {name: {"poll_interval_s": 0.1, "timeout_s": 0.3, "max_attempts": 1, "backfill_days": 3, **values}
             for name, values in providers.items()}
    cfg = config_mod.from_mapping({"ledger": {"path": str(tmp_path / "feed.db")}, "providers": table})
    return FeedRunner(cfg, listen="127.0.0.1:0", host_name="test-host").start_in_thread(require_listen=True)


def test_a_stalled_provider_never_stalls_the_other_and_keys_stay_masked(provider_env, tmp_path):
    now = int(time.time())
    seed_days(provider_env, "openai", 3, now=now)
    # Keep the seeded history out of the last hour (its 00:05 bucket fell into the unattributed
    # window between 00:05 and 01:05 UTC and made this test fail for an hour every day).
    provider_env.api.openai.usage[:] = [u for u in provider_env.api.openai.usage if u.ts < now - 3900]
    provider_env.api.openai.usage.append(Usage(now - 60, "gpt-live", uncached=500, output=50, requests=4))
    provider_env.api.delay(1.0, path="/v1/organizations/", times=1000)  # Anthropic: every call too slow
    runner = _runner(tmp_path, openai={}, anthropic={})
    try:
        status = _wait(lambda: (s := runner.snapshot().status.get("providers", {}))
                       and s["openai"]["polls"] >= 3 and s["anthropic"]["last_error"] and s)
        assert status["openai"]["last_success_at"] and status["openai"]["last_error"] is None
        assert status["anthropic"]["last_success_at"] is None
        assert "within the timeout" in status["anthropic"]["last_error"]
        assert status["openai"]["key"] == "sk-admin-…cdef" and status["openai"]["key_source"] == "OPENAI_ADMIN_KEY"
        text = json.dumps(runner.snapshot().to_json(), ensure_ascii=False)
        assert '"key": "sk-admin-…cdef"' in text  # the masked key is what shows
        for key in (provider_env.api.openai.key, provider_env.api.anthropic.key):
            assert key not in text and key[:-4] not in text
        unattributed = status["openai"]["unattributed"]
        assert unattributed["billed_tokens"] == 550 and unattributed["unattributed_tokens"] == 550
        store = BilledStore(runner.ledger)
        today = now - now % 86400
        assert store.cost_total("openai", today, today + 86400) > 0  # daily costs fetched too
    finally:
        runner.stop()


def test_refused_key_file_is_reported_and_nothing_polls(fake_api, tmp_path):
    key_file = tmp_path / "anthropic.key"
    key_file.write_text(fake_api.api.anthropic.key)
    os.chmod(key_file, 0o640)
    runner = _runner(tmp_path, anthropic={"key_file": str(key_file)})
    try:
        status = runner.snapshot().status["providers"]
        assert "refusing key file" in status["anthropic"]["last_error"] and "chmod 600" in status["anthropic"]["last_error"]
        assert fake_api.api.anthropic.key not in json.dumps(status)
        assert runner.parts.providers == () and fake_api.api.log == []
    finally:
        runner.stop()


def _ledger_with(tmp_path, billed, local):
    led = Ledger(tmp_path / "u.db")
    store = BilledStore(led)
    store.replace_usage("openai", "1m", billed[0].start, billed[-1].end, billed, [(r.start, r.end) for r in billed], time.time())
    led.append(local)
    return led, store


def test_unattributed_is_billed_minus_local_for_the_same_models_and_minutes(tmp_path):
    pricer = Pricer({"gpt-z": PriceOverride(input=Decimal(1), output=Decimal(2)),
                     "gpt-y": PriceOverride(input=Decimal(10), output=Decimal(10))})
    now = 1795696496.0
    m = int(now // 60) * 60
    billed = [
        UsageRow("openai", "1m", m - 600, m - 540, model="gpt-z-2025-01-01", input_tokens=1_000_000, output_tokens=500_000, requests=10),
        UsageRow("openai", "1m", m - 300, m - 240, model="gpt-y", input_tokens=100_000, output_tokens=0, requests=1),
    ]
    local = [
        # same model (undated name) seen locally for 40% of its input, priced at the same rates
        (Event(id="a", ts=m - 590.0, model="gpt-z", provider="openai", input_tokens=400_000, output_tokens=500_000),
         Cost(to_pusd(Decimal("1.4")), "estimated")),
        # gpt-y fully seen locally
        (Event(id="b", ts=m - 299.0, model="gpt-y", provider="openai", input_tokens=100_000), Cost(to_pusd(Decimal(1)), "estimated")),
        # another provider's model: ignored
        (Event(id="c", ts=m - 200.0, model="claude-q", input_tokens=999), Cost(to_pusd(Decimal(5)), "estimated")),
    ]
    led, store = _ledger_with(tmp_path, billed, local)
    try:
        panel = build_panel(store, "openai", now, pricer)
    finally:
        led.close()
    u = panel.unattributed
    assert u.billed_pusd == to_pusd(Decimal("2") + Decimal("1"))  # gpt-z $1 in + $1 out; gpt-y $1
    assert u.unattributed_pusd == to_pusd(Decimal("0.6"))
    assert u.unattributed_tokens == 600_000 and u.unpriced_tokens == 0
    assert "$0.6000 of $3.00" in u.explanation and "20%" in u.explanation
    assert [mm.model for mm in panel.by_model] == ["gpt-z-2025-01-01", "gpt-y"]
    assert panel.by_model[0].tokens_per_minute[49] == 1_500_000 and panel.by_model[0].requests_per_minute[49] == 10
    assert len(panel.by_model[0].tokens_per_minute) == 60  # the last is the current minute


def test_unpriced_billed_models_are_loud_not_zero():
    u = compute_unattributed("anthropic", [(60, "mystery-model-9", 1000, 10, 0, 0, 0, None)], [], Pricer())
    assert u.unpriced_tokens == 1010 and u.billed_pusd == 0 and "unpriced" in u.explanation
    assert match_key("GPT-4o-2024-08-06") == match_key("gpt-4o") == "gpt-4o"
    assert match_key("claude-sonnet-4-20250514") == "claude-sonnet-4"
    assert "no billed usage" in compute_unattributed("openai", [], [], Pricer()).explanation


async def test_poller_backs_off_after_a_rejected_key_and_prunes_old_minutes(fake_api, ledger, caplog):
    import httpx

    from tests.providers.helpers import settings_for
    from tokentop.core.providers.keys import AdminKey
    from tokentop.core.providers.poller import AUTH_RETRY_S, ProviderPoller

    store = BilledStore(ledger)
    now = time.time()
    old = int(now // 60) * 60 - 3 * 86400
    store.replace_usage("openai", "1m", old, old + 60, [UsageRow("openai", "1m", old, old + 60, model="m", input_tokens=1)],
                        [(old, old + 60)], now)
    s = settings_for(fake_api, "openai", poll_interval_s=60, backfill_days=2)
    wrong = "sk-admin-NOPE-NOPE-NOPE-0000000000000000"
    poller = ProviderPoller(s, AdminKey(wrong, "OPENAI_ADMIN_KEY"), store, pricer=Pricer())
    caplog.set_level("DEBUG")
    async with httpx.AsyncClient(timeout=5) as client:
        assert await poller.poll_once(client) is False
        assert poller.next_delay_s() == AUTH_RETRY_S and len(fake_api.api.log) == 1  # 401: no retries
        status = poller.status().to_json()
        assert "OPENAI_ADMIN_KEY" in status["last_error"] and wrong not in json.dumps(status)
        assert "rejected the admin key" in caplog.text and wrong not in caplog.text and wrong[:-4] not in caplog.text
        poller.key = AdminKey(fake_api.api.openai.key, "OPENAI_ADMIN_KEY")
        assert await poller.poll_once(client) is True
    assert poller.next_delay_s() == 60 and poller.status().last_error is None
    assert store.minutes("openai", old, old + 60) == []  # 1-minute rows older than two days are dropped
    assert poller.status().to_json()["unattributed"]["explanation"] == "no billed usage in the last 60 min"
