"""Builders shared by the provider tests."""

from __future__ import annotations

import random
from decimal import Decimal
from typing import Any

import httpx

from tests.providers.fake_provider_api import Cost, FakeServer, Usage
from tokentop.core.providers.keys import AdminKey
from tokentop.core.providers.paging import RetryPolicy
from tokentop.core.providers.settings import provider_settings
from tokentop.core.providers.sync import build_api

# 2026-11-26T12:34:56Z
NOW = 1795696496
DAY = 86400
TODAY = NOW - NOW % DAY


class RecordingSleep:
    """Records backoff waits instead of sleeping them (the waits are what the tests check)."""

    def __init__(self) -> None:
        self.waits: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


def settings_for(server: FakeServer, provider: str, **table: Any):
    env = {"TOKENTOP_OPENAI_BASE_URL": server.openai_base, "TOKENTOP_ANTHROPIC_BASE_URL": server.anthropic_base}
    return provider_settings({provider: table} if table else {}, environ=env)[provider]


def make_api(server: FakeServer, provider: str, client: httpx.AsyncClient, *, key: str | None = None,
             sleep: RecordingSleep | None = None, attempts: int = 5, **table: Any):
    s = settings_for(server, provider, **table)
    data = getattr(server.api, provider)
    env_var = s.key_env
    api = build_api(s, AdminKey(key or data.key, env_var), client, sleep=sleep or RecordingSleep(),
                    policy=RetryPolicy(max_attempts=attempts, base_delay_s=0.5))
    api.fetcher.rng = random.Random(7)
    return api


def seed_days(server: FakeServer, provider: str, days: int, *, models=("model-a", "model-b"), skip_every: int = 4,
              now: int = NOW) -> None:
    """Usage and costs over ``days`` days before and including today; every ``skip_every``-th day empty."""
    data = getattr(server.api, provider)
    today = now - now % DAY
    for d in range(days):
        day = today - d * DAY
        if skip_every and d % skip_every == 3:
            continue  # an empty day: buckets present, results []
        for i, model in enumerate(models):
            for minute in (5, 600, 1300):
                if day + minute * 60 > now:
                    continue
                data.usage.append(Usage(day + minute * 60, model, uncached=1000 + d * 7 + i, cache_read=300 + i,
                                        cache_write_5m=50, cache_write_1h=10 * i, output=200 + d, requests=2 + i,
                                        project=f"proj_{i}"))
            data.costs.append(Cost(day, Decimal("0.123457") + Decimal(d) / 1000, model=model, kind="input", project=f"proj_{i}"))
            data.costs.append(Cost(day, Decimal("1.000001") * (i + 1), model=model, kind="output", project=f"proj_{i}"))
        data.costs.append(Cost(day, Decimal("0.01"), model="", kind="web search tool calls"))
