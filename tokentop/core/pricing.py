"""Turning tokens into money: ``genai-prices`` plus user overrides, cached per model.

Money is kept as integer **pico-dollars** (1e-12 USD) so sums are exact and fast; convert with
:func:`usd` (a ``Decimal``) only where a figure is shown. Every cost carries its provenance:

* ``estimated`` — priced here from the token counts,
* ``provided`` — the emitter sent ``cost_usd``,
* ``billed`` — a provider's usage/cost API (not produced by this module),
* ``unpriced`` — the model is unknown: counted and shown, never $0.

Besides tokens, two request facts change the price: ``speed == "fast"`` (the provider's fast mode)
is priced through genai-prices' price variants (``price_context={"speed": "fast"}``), and
``web_searches`` at the model's per-search rate. ``Cost.priced_as`` names the price used (the model
id, with " (fast)" when a fast rate applied).

Speed: ``genai_prices.calc_price`` costs ~70 µs a call. For each (provider, model, price period)
the library is probed once to derive exact per-token rates (a :class:`RateCard`), checked against the
library on a mixed usage, and then events are priced with integer arithmetic. Requests whose input
reaches a tier threshold (the "cliff" >200k rules), and models with time-of-day prices, go to the
library every time, so the result is always what ``genai-prices`` says.
"""

from __future__ import annotations

import dataclasses
import re
import warnings
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Final, Literal, Mapping

from tokentop.core.events import Event

PICO: Final = 10**12
CostKind = Literal["estimated", "provided", "billed", "unpriced"]
COST_KINDS: Final = ("estimated", "provided", "billed", "unpriced")

_PROBE: Final = 1000  # tokens per probe: below every tier threshold, exact in Decimal


def usd(pusd: int) -> Decimal:
    """Pico-dollars to an exact ``Decimal`` number of dollars."""
    return Decimal(pusd).scaleb(-12)


def to_pusd(amount: Decimal | float | int | str) -> int:
    """Dollars to pico-dollars, rounded half-even at the 1e-12 digit."""
    value = amount if isinstance(amount, Decimal) else Decimal(str(amount))
    return int(value.scaleb(12).to_integral_value())


@dataclass(slots=True, unsafe_hash=True)
class Cost:
    """What one event cost. Treat it as immutable (like :class:`~tokentop.core.events.Event`, it is
    not declared ``frozen``: every ingested event builds one, and frozen construction measured 3x
    slower)."""

    pusd: int | None
    kind: CostKind
    #: The model id the price was found under (``None`` when unpriced).
    priced_as: str | None = None

    @property
    def usd(self) -> Decimal | None:
        return None if self.pusd is None else usd(self.pusd)


@dataclass(frozen=True, slots=True)
class RateCard:
    """Exact per-token rates in pico-dollars for one model in one price period."""

    model_id: str
    input: int
    cache_read: int
    cache_write: int
    cache_write_1h: int
    output: int
    #: Smallest input-token count at which a tier applies (``None``: no tiers).
    tier_start: int | None = None
    #: per server-side web search
    web_search: int = 0

    def price(self, e: Event) -> int:
        read = e.cache_read_tokens
        write = e.cache_write_tokens
        write_1h = e.cache_write_1h_tokens
        total = (
            (e.input_tokens - read - write) * self.input  # uncached input
            + read * self.cache_read
            + (write - write_1h) * self.cache_write
            + write_1h * self.cache_write_1h
            + e.output_tokens * self.output
        )
        if e.web_searches:
            total += e.web_searches * self.web_search
        return total


@dataclass(frozen=True, slots=True)
class PriceOverride:
    """A user's per-million rates for one model id (``[pricing."model-id"]`` in config)."""

    input: Decimal
    output: Decimal
    cache_read: Decimal | None = None
    cache_write: Decimal | None = None
    cache_write_1h: Decimal | None = None

    def card(self, model_id: str) -> RateCard:
        def per_token(rate: Decimal) -> int:
            return to_pusd(rate / Decimal(1_000_000))

        cache_read = self.cache_read if self.cache_read is not None else self.input
        cache_write = self.cache_write if self.cache_write is not None else self.input
        cache_write_1h = self.cache_write_1h if self.cache_write_1h is not None else cache_write
        return RateCard(
            model_id=model_id,
            input=per_token(self.input),
            cache_read=per_token(cache_read),
            cache_write=per_token(cache_write),
            cache_write_1h=per_token(cache_write_1h),
            output=per_token(self.output),
        )


_SUFFIX = re.compile(r"\[[^\[\]]*\]$")


def normalise_model(model: str) -> str:
    """Safe normalisation only: trim, lower-case, drop a ``[1m]``-style suffix and ``provider/`` prefixes."""
    name = model.strip().lower()
    name = _SUFFIX.sub("", name).strip()
    if "/" in name:
        name = name.rsplit("/", 1)[1]
    return name


class _LibraryOnly:
    """Marker: this model must be priced by the library on every request."""

    __slots__ = ("model_id", "library_id")

    def __init__(self, model_id: str, library_id: str | None = None) -> None:
        #: the provenance name (:attr:`Cost.priced_as`)
        self.model_id = model_id
        #: the model id the library knows it under
        self.library_id = library_id or model_id


_UNKNOWN: Final = object()


class Pricer:
    """Prices events. Not thread-safe; one per aggregator/feed."""

    def __init__(self, overrides: Mapping[str, PriceOverride] | None = None) -> None:
        self._overrides = {normalise_model(k): v.card(normalise_model(k)) for k, v in (overrides or {}).items()}
        self._cards: dict[tuple[str | None, str, str], object] = {}
        #: cards of models whose price has a single period (no date constraint): valid on any day
        self._static_cards: dict[tuple[str | None, str], object] = {}
        self._fast: dict[tuple[str | None, str, int, str | None], object] = {}
        self._providers: dict[str | None, str | None] = {}
        import genai_prices  # deferred: ~0.3 s import, paid only when something is priced
        from genai_prices import data_snapshot, types

        self._gp = genai_prices
        self._snapshot = data_snapshot.get_snapshot()
        self._types = types

    # -- public -------------------------------------------------------------------------------
    def price(self, event: Event) -> Cost:
        if event.cost_usd is not None:
            return Cost(to_pusd(Decimal(repr(event.cost_usd))), "provided", event.model)
        if not event.model:
            return Cost(None, "unpriced")
        speed = event.speed
        fast_key = (event.provider, event.model, int(event.ts // 86400), speed)
        card = self._fast.get(fast_key)
        if card is None:
            model = normalise_model(event.model)
            card = self._overrides.get(model)
            if card is None:
                card = self._card(event.provider, model, event.ts, speed)
            if len(self._fast) > 100_000:  # bounded: endless distinct model strings cannot grow it forever
                self._fast.clear()
            self._fast[fast_key] = card
        if card is _UNKNOWN:
            return Cost(None, "unpriced")
        if isinstance(card, RateCard):
            if card.tier_start is None or event.input_tokens < card.tier_start:
                return Cost(card.price(event), "estimated", card.model_id)
            return self._library_price(event.provider, normalise_model(event.model), event, card.model_id)
        assert isinstance(card, _LibraryOnly)
        return self._library_price(event.provider, normalise_model(event.model), event, card.model_id)

    def priced_as(self, model_id: str, speed: str | None, changed: bool) -> str:
        """The provenance name of a price: the model id, and the speed when it had a rate of its own."""
        if speed is None:
            return model_id
        return f"{model_id} ({speed})" if changed else f"{model_id} ({speed}: no separate rate, standard price)"

    def known(self, model: str, provider: str | None = None, ts: float | None = None) -> bool:
        """True when ``model`` can be priced (override or library)."""
        norm = normalise_model(model)
        if norm in self._overrides:
            return True
        return self._card(provider, norm, ts if ts is not None else datetime.now(UTC).timestamp(), None) is not _UNKNOWN

    # -- internals ----------------------------------------------------------------------------
    def _provider_id(self, provider: str | None) -> str | None:
        if provider is None:
            return None
        try:
            return self._providers[provider]
        except KeyError:
            pass
        known: str | None = None
        try:
            found = self._snapshot.find_provider(None, provider.lower(), None)
            known = found.id
        except LookupError:
            known = None
        self._providers[provider] = known
        return known

    def _card(self, provider: str | None, model: str, ts: float, speed: str | None) -> object:
        pid = self._provider_id(provider)
        static = self._static_cards.get((pid, model)) if speed is None else None
        if static is not None:
            return static
        # Price periods change at UTC day boundaries (StartDateConstraint); key the cache by UTC day.
        day = datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d")
        key = (pid, model, day + (f"/{speed}" if speed else ""))
        card = self._cards.get(key)
        if card is None:
            card = self._build_card(pid, model, ts, speed)
            self._cards[key] = card
            if speed is None and self._single_period(pid, model):
                self._static_cards[(pid, model)] = card
        return card

    def _single_period(self, pid: str | None, model: str) -> bool:
        """True when the model's price does not depend on the date (one price, no constraint), so one
        card serves every day: a 30-day import then builds ~10 cards instead of ~300."""
        try:
            _, info = self._snapshot.find_provider_model(model, None, pid, None)
        except LookupError:
            return False
        return not isinstance(info.prices, list)

    def _calc(self, pid: str | None, model: str, when: datetime, speed: str | None = None, **usage: int) -> Decimal:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            result = self._gp.calc_price(
                self._gp.Usage(**usage), model, provider_id=pid, genai_request_timestamp=when,
                price_context={"speed": speed} if speed else None,
            )
        return result.total_price

    def _build_card(self, pid: str | None, model: str, ts: float, speed: str | None) -> object:
        card = self._build_standard_card(pid, model, ts, speed)
        if speed is None or not isinstance(card, (RateCard, _LibraryOnly)):
            return card
        standard = self._card(pid, model, ts, None)  # pid is already resolved: _provider_id(pid) is itself
        changed = not (isinstance(standard, RateCard) and isinstance(card, RateCard)
                       and dataclasses.replace(standard, model_id=card.model_id) == card)
        name = self.priced_as(card.model_id, speed, changed)
        if isinstance(card, RateCard):
            return dataclasses.replace(card, model_id=name)
        return _LibraryOnly(name, card.model_id)

    def _build_standard_card(self, pid: str | None, model: str, ts: float, speed: str | None) -> object:
        when = datetime.fromtimestamp(ts, UTC)
        try:
            provider, info = self._snapshot.find_provider_model(model, None, pid, None)
        except LookupError:
            if pid is None:
                return _UNKNOWN
            try:  # the event's provider may be a reseller; try the model on its own
                provider, info = self._snapshot.find_provider_model(model, None, None, None)
                pid = None
            except LookupError:
                return _UNKNOWN
        model_id = info.id
        prices = info.prices
        if isinstance(prices, list) and any(
            type(c.constraint).__name__ == "TimeOfDateConstraint" for c in prices
        ):
            return _LibraryOnly(model_id)
        try:
            base = self._calc(pid, model, when, speed)
            r_in = self._calc(pid, model, when, speed, input_tokens=_PROBE) - base
            r_cr = self._calc(pid, model, when, speed, input_tokens=_PROBE, cache_read_tokens=_PROBE) - base
            r_cw = self._calc(pid, model, when, speed, input_tokens=_PROBE, cache_write_tokens=_PROBE) - base
            r_cw1 = (
                self._calc(
                    pid, model, when, speed, input_tokens=_PROBE, cache_write_tokens=_PROBE,
                    cache_write_1h_tokens=_PROBE,
                )
                - base
            )
            r_out = self._calc(pid, model, when, speed, output_tokens=_PROBE) - base
            r_web = self._calc(pid, model, when, speed, web_searches=_PROBE) - base
        except (LookupError, ValueError, TypeError):
            return _LibraryOnly(model_id)
        if base != 0:
            return _LibraryOnly(model_id)  # a per-request fee: not linear in tokens
        rates = [r / _PROBE * PICO for r in (r_in, r_cr, r_cw, r_cw1, r_out, r_web)]
        if any(r != r.to_integral_value() for r in rates):
            return _LibraryOnly(model_id)
        card = RateCard(model_id, *(int(r) for r in rates[:5]), tier_start=_tier_start(info, when),
                        web_search=int(rates[5]))
        # Check linearity once on a mixed usage below any tier.
        sample = Event(
            id="probe", ts=ts, input_tokens=7000, cache_read_tokens=3000, cache_write_tokens=2000,
            cache_write_1h_tokens=500, output_tokens=1500, web_searches=3,
        )
        try:
            expected = self._calc(
                pid, model, when, speed, input_tokens=7000, cache_read_tokens=3000, cache_write_tokens=2000,
                cache_write_1h_tokens=500, output_tokens=1500, web_searches=3,
            )
        except (LookupError, ValueError, TypeError):
            return _LibraryOnly(model_id)
        if card.tier_start is not None and card.tier_start <= 7000:
            return _LibraryOnly(model_id)
        if to_pusd(expected) != card.price(sample):
            return _LibraryOnly(model_id)
        return card

    def _library_price(self, provider: str | None, model: str, event: Event, model_id: str) -> Cost:
        pid = self._provider_id(provider)
        usage = {
            "input_tokens": event.input_tokens,
            "output_tokens": event.output_tokens,
        }
        if event.cache_read_tokens:
            usage["cache_read_tokens"] = event.cache_read_tokens
        if event.cache_write_tokens:
            usage["cache_write_tokens"] = event.cache_write_tokens
        if event.cache_write_1h_tokens:
            usage["cache_write_1h_tokens"] = event.cache_write_1h_tokens
        if event.web_searches:
            usage["web_searches"] = event.web_searches
        speed = event.speed
        try:
            total = self._calc(pid, model, datetime.fromtimestamp(event.ts, UTC), speed, **usage)
        except LookupError:
            try:
                total = self._calc(None, model, datetime.fromtimestamp(event.ts, UTC), speed, **usage)
            except (LookupError, ValueError):
                return Cost(None, "unpriced")
        except ValueError:
            return Cost(None, "unpriced")
        return Cost(to_pusd(total), "estimated", model_id)


def _tier_start(info: object, when: datetime) -> int | None:
    """The smallest tier threshold among the model's prices (any period), or ``None``."""
    from genai_prices import types

    starts: list[int] = []

    def scan(price_obj: object) -> None:
        for value in vars(price_obj).values():
            if isinstance(value, types.TieredPrices) and value.tiers:
                starts.append(min(t.start for t in value.tiers))

    prices = getattr(info, "prices", None)
    if isinstance(prices, list):
        for conditional in prices:
            scan(conditional.prices)
    elif prices is not None:
        scan(prices)
    return min(starts) if starts else None
