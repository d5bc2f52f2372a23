"""Bringing the ledger's billed tables up to date for a window, fetching only what it lacks.

Used by the background poller and by ``report --billed``. A day counts as held once it was
fetched at least :data:`SETTLE_S` after it ended (earlier fetches of a day — today, or yesterday
fetched just after midnight — are refreshed). Missing days are fetched as one ranged query from
the first missing day to the window's end, following every page.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Callable, Protocol

import httpx

from tokentop.core.providers.keys import AdminKey
from tokentop.core.providers.paging import Fetcher, RetryPolicy, Sleep
from tokentop.core.providers.records import Fetched
from tokentop.core.providers.settings import ProviderSettings
from tokentop.core.providers.store import BilledStore

DAY = 86400
#: A bucket fetched this long after it ended is taken as final (providers report within minutes).
SETTLE_S = 3600.0


class UsageAPI(Protocol):
    name: str

    async def usage(self, start: int, end: int, width: str) -> Fetched: ...

    async def costs(self, start: int, end: int) -> Fetched: ...


def day_start(ts: float) -> int:
    return int(ts // DAY) * DAY


def window_days(days: int, now: float) -> tuple[int, int]:
    """``[start, end)`` of the last ``days`` UTC days, today included."""
    end = day_start(now) + DAY
    return end - days * DAY, end


@dataclass
class SyncResult:
    fetched_days: int = 0
    rows: int = 0
    rejected: int = 0
    first_problem: str | None = None
    kinds: list[str] = field(default_factory=list)

    def add(self, fetched: Fetched) -> None:
        self.rows += len(fetched.rows)
        self.rejected += fetched.rejected
        self.first_problem = self.first_problem or fetched.first_problem


class ProviderSync:
    def __init__(self, api: UsageAPI, store: BilledStore, *, clock: Callable[[], float] = time.time,
                 settle_s: float = SETTLE_S) -> None:
        self.api = api
        self.store = store
        self.clock = clock
        self.settle_s = settle_s

    @property
    def name(self) -> str:
        return self.api.name

    async def missing_days(self, kind: str, start: int, end: int) -> list[int]:
        held = await asyncio.to_thread(self.store.settled_starts, self.name, kind, start, end, self.settle_s)
        return [d for d in range(start, end, DAY) if d not in held]

    async def sync_days(self, days: int, now: float | None = None) -> SyncResult:
        now = self.clock() if now is None else now
        start, end = window_days(days, now)
        result = SyncResult()
        for kind in ("usage_1d", "cost_1d"):
            missing = await self.missing_days(kind, start, end)
            if not missing:
                continue
            first = missing[0]
            if kind == "usage_1d":
                fetched = await self.api.usage(first, end, "1d")
                await asyncio.to_thread(self.store.replace_usage, self.name, "1d", first, end, fetched.rows,
                                        fetched.buckets, self.clock())
            else:
                fetched = await self.api.costs(first, end)
                await asyncio.to_thread(self.store.replace_costs, self.name, first, end, fetched.rows,
                                        fetched.buckets, self.clock())
            result.add(fetched)
            result.fetched_days = max(result.fetched_days, (end - first) // DAY)
            result.kinds.append(kind)
        return result

    async def sync_minutes(self, now: float | None = None, minutes: int = 60) -> SyncResult:
        """The last ``minutes`` minutes (the current one included) at 1-minute buckets."""
        now = self.clock() if now is None else now
        end = int(now // 60) * 60 + 60
        start = end - minutes * 60
        fetched = await self.api.usage(start, end, "1m")
        await asyncio.to_thread(self.store.replace_usage, self.name, "1m", start, end, fetched.rows, fetched.buckets,
                                self.clock())
        result = SyncResult(kinds=["usage_1m"])
        result.add(fetched)
        return result


def build_api(settings: ProviderSettings, key: AdminKey, client: httpx.AsyncClient, *,
              sleep: Sleep | None = None, policy: RetryPolicy | None = None) -> UsageAPI:
    """The API object for ``settings.name`` using ``client`` (whose timeout the caller sets)."""
    from tokentop.core.providers import anthropic, openai

    module = openai if settings.name == "openai" else anthropic
    fetcher = Fetcher(settings.name, client, key, module.headers(key.value),
                      policy or RetryPolicy(max_attempts=settings.max_attempts, base_delay_s=settings.backoff_base_s))
    if sleep is not None:
        fetcher.sleep = sleep
    cls = openai.OpenAIUsageAPI if settings.name == "openai" else anthropic.AnthropicUsageAPI
    return cls(fetcher, settings.base_url, settings.group_by)
