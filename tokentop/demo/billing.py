"""Simulated provider billing for ``tokentop demo``: the Providers screen (key ``5``) and its 30-day
dashboard work without admin keys, through the same code path as the real pollers.

Nothing here calls a provider. A part of the demo's feed (:func:`attach`) writes what the OpenAI
and Anthropic admin APIs *would* answer into the feed's ledger, with
:class:`~tokentop.core.providers.store.BilledStore` — the store the real pollers write and the
Providers screen reads — and publishes ``status["providers"]`` as the pollers do, with the key
source ``simulated (tokentop demo)``. The screens say "simulated" wherever they would say "billed".

What is simulated, per provider:

* **30 days of daily usage and cost** (``1d`` usage rows and cost rows): before today, a seeded
  history (weekdays busier than weekends, a slow upward trend); today, the seeded day's share up to
  the demo's start, plus everything billed since.
* **The last hour at 1-minute buckets**: exactly what the demo's agents sent (read from the
  ledger's events), plus a seeded stream of usage from *elsewhere* — a key used by a job no agent
  tokentop watches — which is the **unattributed spend** the screen reports. Minutes are reported
  one minute after they end, as a provider's usage API lags.

Anthropic's usage report has no request counts, so its requests stay unknown here too. The history
and the usage from elsewhere depend only on ``--seed`` and the date; the live part follows the
demo's own (seeded) traffic.
"""

from __future__ import annotations

import asyncio
import random
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Final, Iterable

from tokentop.core.events import Event
from tokentop.core.feed.parts import Attached, FeedBase
from tokentop.core.pricing import Pricer
from tokentop.core.providers.panel import build_panel
from tokentop.core.providers.records import CostRow, UsageRow
from tokentop.core.providers.status import ProvidersStatus, ProviderStatus
from tokentop.core.providers.store import BilledStore
from tokentop.demo.fleet import MODELS

if TYPE_CHECKING:
    from tokentop.core.ledger import Ledger

DAY: Final = 86400
MINUTE: Final = 60
#: days of daily history, today included (what the 30-day dashboard shows)
HISTORY_DAYS: Final = 30
#: seconds between two simulated polls (the real pollers fetch the last hour once a minute)
TICK_S: Final = 15.0
#: a minute is reported this long after it ended
LATENCY_S: Final = 60
KEY_SOURCE: Final = "simulated (tokentop demo)"
#: the providers whose admin APIs tokentop reads
PROVIDERS: Final = ("anthropic", "openai")
#: per provider: the model a job tokentop does not watch runs on a shared key (the unattributed part)
ELSEWHERE: Final = {"anthropic": "claude-haiku-4-5", "openai": "gpt-4.1"}
#: the providers' usage APIs: OpenAI counts requests, Anthropic's usage report does not
REPORTS_REQUESTS: Final = {"anthropic": False, "openai": True}


@dataclass(frozen=True, slots=True)
class Usage:
    """Tokens of one model in one bucket (``input_tokens`` includes cache reads, as in events)."""

    model: str
    input_tokens: int
    output_tokens: int
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    cache_write_1h_tokens: int = 0
    requests: int = 0

    def plus(self, other: Usage) -> Usage:
        return Usage(self.model, self.input_tokens + other.input_tokens, self.output_tokens + other.output_tokens,
                     self.cache_read_tokens + other.cache_read_tokens, self.cache_write_tokens + other.cache_write_tokens,
                     self.cache_write_1h_tokens + other.cache_write_1h_tokens, self.requests + other.requests)

    def scaled(self, share: float) -> Usage:
        return Usage(self.model, int(self.input_tokens * share), int(self.output_tokens * share),
                     int(self.cache_read_tokens * share), int(self.cache_write_tokens * share),
                     int(self.cache_write_1h_tokens * share), int(self.requests * share))


def provider_models(provider: str) -> tuple[str, ...]:
    """The models billed to ``provider``: those the demo's agents run, and the one used elsewhere."""
    return tuple(dict.fromkeys([m for p, m in MODELS if p == provider] + [ELSEWHERE[provider]]))


def day_usage(seed: int, provider: str, day_start: int) -> list[Usage]:
    """A whole simulated day of ``provider``'s usage, per model: the same for a seed and a date."""
    weekday = (day_start // DAY + 3) % 7  # 1970-01-01 was a Thursday; 5, 6 = Saturday, Sunday
    busy = 0.35 if weekday >= 5 else 1.0
    trend = 1.0 + ((day_start // DAY) % 365) * 0.002
    out = []
    for model in provider_models(provider):
        rng = random.Random(f"tokentop-demo-billing:{seed}:{provider}:{model}:{day_start}")
        base = random.Random(f"tokentop-demo-billing:{seed}:{provider}:{model}").uniform(600, 2600)
        requests = int(base * busy * trend * rng.uniform(0.75, 1.25))
        per_request = rng.uniform(12_000, 30_000)
        inp = int(requests * per_request)
        out.append(Usage(model, inp, int(requests * rng.uniform(500, 1_200)),
                         cache_read_tokens=int(inp * rng.uniform(0.4, 0.7)), requests=requests))
    return out


def elsewhere_minute(seed: int, provider: str, minute: int) -> Usage | None:
    """Usage from a key no watched agent uses, in the minute starting at ``minute`` (or none)."""
    rng = random.Random(f"tokentop-demo-elsewhere:{seed}:{provider}:{minute}")
    if rng.random() < 0.3:
        return None  # a quiet minute
    requests = rng.randint(3, 16)
    inp = requests * rng.randint(9_000, 20_000)
    return Usage(ELSEWHERE[provider], inp, requests * rng.randint(300, 900),
                 cache_read_tokens=int(inp * rng.uniform(0.0, 0.3)), requests=requests)


def local_minutes(ledger: Ledger, start: int, end: int) -> dict[tuple[int, str, str], Usage]:
    """What the demo's agents sent in ``[start, end)``, per (minute, provider, model), from the
    ledger's events (the events are the demo's own: its ledger is private)."""
    q = ("SELECT CAST(ts / 60 AS INTEGER) * 60, COALESCE(provider, ''), COALESCE(model, ''), SUM(input_tokens), "
         "SUM(output_tokens), SUM(cache_read_tokens), SUM(cache_write_tokens), SUM(cache_write_1h_tokens), COUNT(*) "
         "FROM events WHERE ts >= ? AND ts < ? GROUP BY 1, 2, 3")
    rows = ledger.call(lambda c: c.execute(q, (start, end)).fetchall())
    return {(int(m), p, model): Usage(model, int(i), int(o), int(cr), int(cw), int(cw1), int(n))
            for m, p, model, i, o, cr, cw, cw1, n in rows}


class SimulatedBilling:
    """Writes simulated billed rows for :data:`PROVIDERS` into ``ledger`` (see the module doc)."""

    def __init__(self, ledger: Ledger, seed: int, *, clock: Callable[[], float], pricer: Pricer | None = None,
                 publish: Callable[[ProvidersStatus], None] | None = None) -> None:
        self.ledger = ledger
        self.store = BilledStore(ledger)
        self.seed = seed
        self.clock = clock
        self.pricer = pricer or Pricer()
        self.publish = publish
        self.started = clock()
        self.polls = 0
        self.last_success_at: float | None = None
        self.unattributed: dict[str, dict] = {}
        #: one simulated poll at a time (a tick runs on a worker thread)
        self._lock = threading.Lock()

    # -- the rows ----------------------------------------------------------------------------------
    def _price(self, provider: str, u: Usage) -> int:
        event = Event(id="demo-billing", ts=0.0, provider=provider, model=u.model, input_tokens=u.input_tokens,
                      output_tokens=u.output_tokens, cache_read_tokens=u.cache_read_tokens,
                      cache_write_tokens=u.cache_write_tokens, cache_write_1h_tokens=u.cache_write_1h_tokens)
        return self.pricer.price(event).pusd or 0

    def _usage_rows(self, provider: str, width: str, start: int, end: int, usage: Iterable[Usage]) -> list[UsageRow]:
        counts = REPORTS_REQUESTS[provider]
        return [UsageRow(provider, width, start, end, model=u.model, input_tokens=u.input_tokens,
                         output_tokens=u.output_tokens, cache_read_tokens=u.cache_read_tokens,
                         cache_write_tokens=u.cache_write_tokens, cache_write_1h_tokens=u.cache_write_1h_tokens,
                         requests=u.requests if counts else None) for u in usage]

    def _cost_rows(self, provider: str, start: int, end: int, usage: Iterable[Usage]) -> list[CostRow]:
        return [CostRow(provider, start, end, self._price(provider, u), line_item=u.model, model=u.model)
                for u in usage]

    def backfill(self) -> None:
        """The days before today, once (they never change)."""
        now = self.clock()
        today = int(now // DAY) * DAY
        first = today - (HISTORY_DAYS - 1) * DAY
        for provider in PROVIDERS:
            usage_rows: list[UsageRow] = []
            cost_rows: list[CostRow] = []
            days = [(d, d + DAY) for d in range(first, today, DAY)]
            for start, end in days:
                usage = day_usage(self.seed, provider, start)
                usage_rows += self._usage_rows(provider, "1d", start, end, usage)
                cost_rows += self._cost_rows(provider, start, end, usage)
            self.store.replace_usage(provider, "1d", first, today, usage_rows, days, now)
            self.store.replace_costs(provider, first, today, cost_rows, days, now)

    def tick(self) -> None:
        """One simulated poll: the last hour per minute, and today's totals."""
        with self._lock:
            now = self.clock()
            end = int((now - LATENCY_S) // MINUTE) * MINUTE  # minutes that ended a minute ago or more
            start = end - 3600
            today = int(now // DAY) * DAY
            since = max(today, int(self.started // MINUTE) * MINUTE)  # the live part of today
            local = local_minutes(self.ledger, min(start, since), end)
            for provider in PROVIDERS:
                minutes: dict[int, dict[str, Usage]] = {}
                for (minute, p, model), u in local.items():
                    if p == provider:
                        bucket = minutes.setdefault(minute, {})
                        bucket[model] = bucket[model].plus(u) if model in bucket else u
                for minute in range(min(start, since), end, MINUTE):
                    extra = elsewhere_minute(self.seed, provider, minute)
                    if extra is not None:
                        bucket = minutes.setdefault(minute, {})
                        bucket[extra.model] = bucket[extra.model].plus(extra) if extra.model in bucket else extra
                rows: list[UsageRow] = []
                for minute in range(start, end, MINUTE):
                    rows += self._usage_rows(provider, "1m", minute, minute + MINUTE, minutes.get(minute, {}).values())
                self.store.replace_usage(provider, "1m", start, end, rows,
                                         [(m, m + MINUTE) for m in range(start, end, MINUTE)], now)
                # today: the seeded day's share before the demo started, plus every minute billed since
                share = max(0.0, min(1.0, (since - today) / DAY))
                totals = {u.model: u.scaled(share) for u in day_usage(self.seed, provider, today)}
                for minute, bucket in minutes.items():
                    if minute >= since:
                        for model, u in bucket.items():
                            totals[model] = totals[model].plus(u) if model in totals else u
                day = [(today, today + DAY)]
                self.store.replace_usage(provider, "1d", today, today + DAY,
                                         self._usage_rows(provider, "1d", today, today + DAY, totals.values()), day, now)
                self.store.replace_costs(provider, today, today + DAY,
                                         self._cost_rows(provider, today, today + DAY, totals.values()), day, now)
                panel = build_panel(self.store, provider, now, self.pricer)
                self.unattributed[provider] = panel.unattributed.to_json()
            self.store.prune_minutes(int(now) - 2 * DAY)
            self.polls += 1
            self.last_success_at = now
        if self.publish is not None:
            self.publish(self.status())

    def status(self) -> ProvidersStatus:
        """``status["providers"]`` as the real pollers publish it, with the key source saying where the
        figures come from (there is no key)."""
        return ProvidersStatus({
            name: ProviderStatus(enabled=True, key_source=KEY_SOURCE, base_url="simulated",
                                 last_success_at=self.last_success_at, polls=self.polls,
                                 unattributed=self.unattributed.get(name))
            for name in PROVIDERS
        })

    async def run(self) -> None:
        """The feed's background job: history once, then a poll every :data:`TICK_S` seconds."""
        await asyncio.to_thread(self.backfill)
        while True:
            await asyncio.to_thread(self.tick)
            await asyncio.sleep(TICK_S)


def attach_for(seed: int) -> Callable[[FeedBase], Attached]:
    """The demo feed's part that simulates provider billing for ``seed`` (see the module doc)."""

    def attach(feed: FeedBase) -> Attached:
        service = feed.service

        def publish(status: ProvidersStatus) -> None:
            service.set_status(ProvidersStatus.KEY, status.to_json())

        billing = SimulatedBilling(feed.ledger, seed, clock=service.clock,
                                   pricer=Pricer(feed.config.price_overrides()), publish=publish)
        return Attached(background=(billing.run,))

    return attach
