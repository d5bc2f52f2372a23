"""Background polling of one provider: the last hour at 1-minute buckets every ``poll_interval_s``,
today's (and any missing day's) 1-day usage and costs every ``daily_interval_s``.

Each provider runs as its own task with its own HTTP client, so one provider's failure, rate limit
or slow answer never stalls the other, the feed or the UI. A failed poll records the error (key
masked) and the next tick tries again; :meth:`ProviderPoller.status` is what snapshots show (its entry
of ``status["providers"]``).
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any, Callable

import httpx

from tokentop.core.pricing import Pricer
from tokentop.core.providers.keys import AdminKey
from tokentop.core.providers.panel import build_panel
from tokentop.core.providers.paging import ProviderAuthError, ProviderError, Sleep
from tokentop.core.providers.settings import ProviderSettings
from tokentop.core.providers.status import ProviderStatus
from tokentop.core.providers.store import BilledStore
from tokentop.core.providers.sync import ProviderSync, build_api

log = logging.getLogger("tokentop.providers")

#: After the provider rejects the key, wait at least this long before asking again (not every minute).
AUTH_RETRY_S = 600.0
#: 1-minute rows older than this are dropped (they only serve the last hour's view).
KEEP_MINUTES_S = 2 * 86400


class ProviderPoller:
    def __init__(self, settings: ProviderSettings, key: AdminKey, store: BilledStore, *,
                 clock: Callable[[], float] = time.time, sleep: Sleep = asyncio.sleep,
                 pricer: Pricer | None = None, on_change: Callable[[], None] | None = None) -> None:
        self.settings = settings
        self.key = key
        self.store = store
        self.clock = clock
        self.sleep = sleep
        self.pricer = pricer
        self.on_change = on_change
        self.last_success_at: float | None = None
        self.last_error: str | None = None
        self.last_error_at: float | None = None
        self.last_daily_at: float | None = None
        self.rows_rejected = 0
        self.polls = 0
        self.unattributed: dict[str, Any] | None = None
        self.auth_failed = False

    @property
    def name(self) -> str:
        return self.settings.name

    def status(self) -> ProviderStatus:
        return ProviderStatus(
            enabled=True,
            key=self.key.masked,
            key_source=self.key.source,
            base_url=self.settings.base_url,
            last_success_at=self.last_success_at,
            last_error=self.last_error,
            last_error_at=self.last_error_at,
            rows_rejected=self.rows_rejected,
            polls=self.polls,
            unattributed=self.unattributed,
        )

    async def poll_once(self, client: httpx.AsyncClient) -> bool:
        """One tick. Returns True on success; errors are recorded, never raised."""
        sync = ProviderSync(build_api(self.settings, self.key, client, sleep=self.sleep), self.store, clock=self.clock)
        self.polls += 1
        try:
            result = await sync.sync_minutes()
            self.rows_rejected += result.rejected
            now = self.clock()
            if self.last_daily_at is None or now - self.last_daily_at >= self.settings.daily_interval_s:
                daily = await sync.sync_days(self.settings.backfill_days)
                self.rows_rejected += daily.rejected
                self.last_daily_at = now
                await asyncio.to_thread(self.store.prune_minutes, int(now - KEEP_MINUTES_S))
            problem = result.first_problem
        except ProviderAuthError as exc:
            self.auth_failed = True
            self._failed(str(exc))
            return False
        except ProviderError as exc:
            self._failed(str(exc))
            return False
        except Exception as exc:  # a bug here must not kill polling; message cannot hold the key
            log.exception("%s poll failed", self.name)
            self._failed(f"{self.name}: internal error {type(exc).__name__}")
            return False
        self.auth_failed = False
        self.last_success_at = self.clock()
        self.last_error = f"{result.rejected} malformed row(s) skipped: {problem}" if problem else None
        await self._refresh_unattributed()
        return True

    async def _refresh_unattributed(self) -> None:
        if self.pricer is None:
            return
        try:
            panel = await asyncio.to_thread(build_panel, self.store, self.name, self.clock(), self.pricer)
        except Exception:
            log.exception("%s: unattributed spend failed", self.name)
            return
        self.unattributed = panel.unattributed.to_json()

    def _failed(self, message: str) -> None:
        self.last_error = message
        self.last_error_at = self.clock()
        log.warning("%s", message)

    async def run(self) -> None:
        async with httpx.AsyncClient(timeout=self.settings.timeout_s) as client:
            while True:
                await self.poll_once(client)
                if self.on_change is not None:
                    self.on_change()
                await asyncio.sleep(self.next_delay_s())

    def next_delay_s(self) -> float:
        """Seconds to the next poll: the interval, or :data:`AUTH_RETRY_S` after a rejected key."""
        interval = self.settings.poll_interval_s
        return max(interval, AUTH_RETRY_S) if self.auth_failed else interval
