"""The pollers' HTTP layer against a real fake provider server: schema, paging, retries, keys."""

from __future__ import annotations

import os
import time
from decimal import Decimal

import httpx
import pytest

from tests.providers.fake_provider_api import Cost, Usage
from tests.providers.helpers import DAY, NOW, TODAY, RecordingSleep, make_api, seed_days
from tokentop.core.pricing import to_pusd
from tokentop.core.providers.keys import AdminKeyError, load_admin_key, mask
from tokentop.core.providers.paging import ProviderAuthError, ProviderError

PROVIDERS = ["openai", "anthropic"]


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_every_page_is_followed_and_empty_buckets_are_kept(fake_api, provider):
    seed_days(fake_api, provider, 30)
    fake_api.api.page_cap = 3
    async with httpx.AsyncClient(timeout=5) as client:
        api = make_api(fake_api, provider, client)
        start = TODAY - 29 * DAY
        got = await api.usage(start, TODAY + DAY, "1d")
    path = "usage/completions" if provider == "openai" else "usage_report/messages"
    assert len(fake_api.api.requests_to(path)) == 10  # 30 buckets, 3 per page
    assert [s for s, _ in got.buckets] == list(range(start, TODAY + DAY, DAY))  # empty days included
    exp = fake_api.api.expected(provider, start, TODAY + DAY)
    assert sum(r.input_tokens for r in got.rows) == exp["input_tokens"]
    assert sum(r.output_tokens for r in got.rows) == exp["output_tokens"]
    if provider == "openai":
        assert sum(r.requests for r in got.rows) == exp["requests"]
    else:
        assert all(r.requests is None for r in got.rows)  # Anthropic reports no request counts
    empty_days = {TODAY - d * DAY for d in range(30) if d % 4 == 3}
    assert not any(r.start in empty_days for r in got.rows)
    assert got.rejected == 0


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_costs_are_exact_decimal_dollars(fake_api, provider):
    seed_days(fake_api, provider, 3)
    async with httpx.AsyncClient(timeout=5) as client:
        got = await make_api(fake_api, provider, client).costs(TODAY - 2 * DAY, TODAY + DAY)
    exp = fake_api.api.expected(provider, TODAY - 2 * DAY, TODAY + DAY)
    assert sum(r.amount_pusd for r in got.rows) == to_pusd(exp["usd"])
    models = {r.model for r in got.rows}
    assert models == {"model-a", "model-b", ""}  # the tool line item has no model


async def test_anthropic_cost_amount_is_cents(fake_api):
    fake_api.api.anthropic.costs.append(Cost(TODAY, Decimal("1.2345"), model="claude-x"))
    async with httpx.AsyncClient(timeout=5) as client:
        got = await make_api(fake_api, "anthropic", client).costs(TODAY, TODAY + DAY)
    raw = fake_api.api.requests_to("cost_report")[0]
    assert ("group_by[]", "description") in raw
    assert [r.amount_pusd for r in got.rows] == [to_pusd(Decimal("1.2345"))]  # served as "123.45" cents


@pytest.mark.parametrize("provider,dim_param,dim_value", [
    ("openai", ("group_by", "project_id"), "project_id"),
    ("anthropic", ("group_by[]", "workspace_id"), "workspace_id"),
])
async def test_group_by_sends_the_documented_array_syntax_and_splits_rows(fake_api, provider, dim_param, dim_value):
    seed_days(fake_api, provider, 2)
    async with httpx.AsyncClient(timeout=5) as client:
        api = make_api(fake_api, provider, client, group_by=[dim_value])
        got = await api.usage(TODAY - DAY, TODAY + DAY, "1h")
    sent = fake_api.api.log[-1][1]
    assert dim_param in sent
    key = "group_by" if provider == "openai" else "group_by[]"
    assert (key, "model") in sent
    assert {r.project for r in got.rows} == {"proj_0", "proj_1"}
    assert all(r.width == "1h" and r.end - r.start == 3600 for r in got.rows)
    exp = fake_api.api.expected(provider, TODAY - DAY, TODAY + DAY)
    assert sum(r.input_tokens for r in got.rows) == exp["input_tokens"]


async def test_one_minute_buckets_with_cache_tokens_normalised(fake_api):
    a = fake_api.api.anthropic
    a.usage.append(Usage(NOW - 120, "claude-x", uncached=10, cache_read=20, cache_write_5m=30, cache_write_1h=40, output=5))
    o = fake_api.api.openai
    o.usage.append(Usage(NOW - 120, "gpt-x", uncached=10, cache_read=20, cache_write_5m=30, cache_write_1h=40, output=5, requests=3))
    async with httpx.AsyncClient(timeout=5) as client:
        for provider in PROVIDERS:
            got = await make_api(fake_api, provider, client).usage(NOW - 3600, NOW + 60, "1m")
            (row,) = got.rows
            assert (row.input_tokens, row.cache_read_tokens, row.cache_write_tokens, row.output_tokens) == (100, 20, 70, 5)
            assert len(got.buckets) >= 60
    assert o.usage[0].requests == 3


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_429_waits_at_least_retry_after_then_succeeds(fake_api, provider):
    seed_days(fake_api, provider, 1)
    fake_api.api.fail(429, retry_after="7")
    sleep = RecordingSleep()
    async with httpx.AsyncClient(timeout=5) as client:
        got = await make_api(fake_api, provider, client, sleep=sleep).usage(TODAY, TODAY + DAY, "1d")
    assert got.rows
    assert len(sleep.waits) == 1 and 7 <= sleep.waits[0] <= 8


async def test_500s_back_off_exponentially_and_give_up_with_a_clear_error(fake_api):
    fake_api.api.fail(500, times=2)
    sleep = RecordingSleep()
    async with httpx.AsyncClient(timeout=5) as client:
        got = await make_api(fake_api, "openai", client, sleep=sleep).usage(TODAY, TODAY + DAY, "1d")
        assert len(got.buckets) == 1 and len(sleep.waits) == 2
        fake_api.api.fail(503, times=3)
        sleep2 = RecordingSleep()
        with pytest.raises(ProviderError) as info:
            await make_api(fake_api, "openai", client, sleep=sleep2, attempts=3).usage(TODAY, TODAY + DAY, "1d")
    assert "HTTP 503" in str(info.value) and "gave up after 3 attempts" in str(info.value)
    assert len(sleep2.waits) == 2
    # full jitter below a doubling cap: 0.5s then 1s
    assert 0 <= sleep2.waits[0] <= 0.5 and 0 <= sleep2.waits[1] <= 1.0


async def test_truncated_json_is_retried_then_reported(fake_api):
    seed_days(fake_api, "anthropic", 1)
    fake_api.api.truncate()
    async with httpx.AsyncClient(timeout=5) as client:
        got = await make_api(fake_api, "anthropic", client).usage(TODAY, TODAY + DAY, "1d")
        assert got.rows
        fake_api.api.truncate(times=2)
        with pytest.raises(ProviderError, match="invalid JSON"):
            await make_api(fake_api, "anthropic", client, attempts=2).usage(TODAY, TODAY + DAY, "1d")


async def test_slow_responses_time_out_and_are_retried(fake_api):
    seed_days(fake_api, "openai", 1)
    fake_api.api.delay(0.5)
    async with httpx.AsyncClient(timeout=0.2) as client:
        api = make_api(fake_api, "openai", client)
        got = await api.usage(TODAY, TODAY + DAY, "1d")
        assert got.rows and api.fetcher.retries == 1
        fake_api.api.delay(0.5, times=2)
        with pytest.raises(ProviderError, match="no answer .* within the timeout"):
            await make_api(fake_api, "openai", client, attempts=2).usage(TODAY, TODAY + DAY, "1d")


@pytest.mark.parametrize("provider,env_var", [("openai", "OPENAI_ADMIN_KEY"), ("anthropic", "ANTHROPIC_ADMIN_KEY")])
async def test_wrong_key_names_the_env_var_and_never_shows_the_key(fake_api, provider, env_var):
    wrong = "sk-admin-WRONGWRONGWRONG-1234567890abcd"
    sleep = RecordingSleep()
    async with httpx.AsyncClient(timeout=5) as client:
        with pytest.raises(ProviderAuthError) as info:
            await make_api(fake_api, provider, client, key=wrong, sleep=sleep).usage(TODAY, TODAY + DAY, "1d")
    text = str(info.value)
    assert env_var in text and "401" in text and mask(wrong) in text
    assert wrong not in text and wrong[:-4] not in text  # the fake OpenAI echoes the key back in full
    assert sleep.waits == []  # a wrong key is not retried


def test_key_file_readable_by_others_is_refused(tmp_path):
    path = tmp_path / "openai.key"
    path.write_text("sk-admin-from-file-0123456789abcdef\n")
    os.chmod(path, 0o644)
    with pytest.raises(AdminKeyError) as info:
        load_admin_key("OPENAI_ADMIN_KEY", str(path), environ={})
    assert "chmod 600" in str(info.value) and "0644" in str(info.value)
    assert "sk-admin-from-file" not in str(info.value)
    os.chmod(path, 0o600)
    key = load_admin_key("OPENAI_ADMIN_KEY", str(path), environ={})
    assert key.value == "sk-admin-from-file-0123456789abcdef"
    assert key.value not in repr(key) and key.value not in str(key) and key.value not in f"{key}"
    assert load_admin_key("OPENAI_ADMIN_KEY", str(path), environ={"OPENAI_ADMIN_KEY": "sk-env"}).source == "OPENAI_ADMIN_KEY"
    with pytest.raises(AdminKeyError, match="OPENAI_ADMIN_KEY"):
        load_admin_key("OPENAI_ADMIN_KEY", "", environ={})


async def test_base_urls_follow_sdk_semantics(fake_api):
    """OpenAI's base includes /v1; Anthropic's does not — the same fake answers both only if joined right."""
    from tokentop.core.providers.settings import provider_settings

    defaults = provider_settings({}, environ={})
    assert defaults["openai"].base_url == "https://api.openai.com/v1"
    assert defaults["anthropic"].base_url == "https://api.anthropic.com"
    s = provider_settings({"openai": {"base_url": "http://proxy.local/v1/"}}, environ={})
    assert s["openai"].base_url == "http://proxy.local/v1"
    s = provider_settings({"openai": {"base_url": "http://proxy.local/v1"}}, environ={"TOKENTOP_OPENAI_BASE_URL": "http://env/v1"})
    assert s["openai"].base_url == "http://env/v1"
    async with httpx.AsyncClient(timeout=5) as client:
        for provider in PROVIDERS:
            got = await make_api(fake_api, provider, client).usage(TODAY, TODAY + DAY, "1d")
            assert len(got.buckets) == 1


async def test_malformed_rows_are_counted_and_the_rest_kept(fake_api):
    fake_api.api.openai.usage += [Usage(TODAY + 60, "good", uncached=10, output=1), Usage(TODAY + 120, "bad", uncached=10, output=-5)]
    async with httpx.AsyncClient(timeout=5) as client:
        got = await make_api(fake_api, "openai", client).usage(TODAY, TODAY + DAY, "1m")
    assert [r.model for r in got.rows] == ["good"]
    assert got.rejected == 1 and "output_tokens must be a non-negative integer" in got.first_problem


async def test_retry_after_beyond_the_limit_fails_at_once_and_http_dates_are_understood(fake_api):
    from email.utils import formatdate

    from tokentop.core.providers.paging import retry_after_s

    assert retry_after_s("12") == 12 and retry_after_s(None) is None and retry_after_s("soon") is None
    assert 55 <= retry_after_s(formatdate(time.time() + 60, usegmt=True)) <= 61
    fake_api.api.fail(429, retry_after="3600")
    sleep = RecordingSleep()
    async with httpx.AsyncClient(timeout=5) as client:
        with pytest.raises(ProviderError, match=r"HTTP 429 .*retry after 3600s"):
            await make_api(fake_api, "anthropic", client, sleep=sleep).usage(TODAY, TODAY + DAY, "1d")
    assert sleep.waits == [] and len(fake_api.api.log) == 1


async def test_has_more_without_a_cursor_is_an_error_not_a_loop(fake_api):
    fake_api.api.page_cap = 1
    real = fake_api.api._window

    def broken(*a, **kw):
        starts, nxt = real(*a, **kw)
        return starts, ("" if nxt else None)

    fake_api.api._window = broken
    async with httpx.AsyncClient(timeout=5) as client:
        with pytest.raises(ProviderError, match="has_more without a new next_page"):
            await make_api(fake_api, "openai", client).usage(TODAY - DAY, TODAY + DAY, "1d")
