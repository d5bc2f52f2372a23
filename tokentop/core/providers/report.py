"""Billed figures for a window of days, per provider, from the ledger's billed tables.

One plain object (:class:`ProviderReport`) feeds ``report --billed`` (JSON/CSV/text) and the
30-day dashboard screen. Spend comes from the providers' cost endpoints (exact, pico-dollars),
tokens and requests from their usage endpoints; ``requests`` is ``None`` where a provider does
not report request counts (Anthropic). Every figure here is *billed*, never estimated.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from tokentop.core.pricing import usd
from tokentop.core.providers.store import BilledStore
from tokentop.core.providers.sync import DAY, window_days

NO_MODEL = "(no model)"


@dataclass(frozen=True, slots=True)
class DayFigures:
    date: str
    day_start: int
    pusd: int
    requests: int | None
    input_tokens: int
    output_tokens: int


@dataclass(frozen=True, slots=True)
class ModelFigures:
    model: str
    pusd: int
    requests: int | None
    input_tokens: int
    output_tokens: int
    #: This model's part of the window's spend, 0..1 (``None`` when nothing was spent).
    share: Decimal | None


@dataclass(frozen=True)
class ProviderReport:
    provider: str
    days: int
    start: int
    end: int
    pusd_total: int
    requests_total: int | None
    input_tokens_total: int
    output_tokens_total: int
    by_day: tuple[DayFigures, ...]
    by_model: tuple[ModelFigures, ...]
    #: Every day of the window was fetched from the provider at least once.
    complete: bool
    error: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "provider": self.provider,
            "source": "billed",
            "start": _date(self.start),
            "end": _date(self.end - DAY),
            "complete": self.complete,
            "error": self.error,
            "usd_total": usd(self.pusd_total),
            "requests_total": self.requests_total,
            "input_tokens_total": self.input_tokens_total,
            "output_tokens_total": self.output_tokens_total,
            "by_day": [{"date": d.date, "usd": usd(d.pusd), "requests": d.requests, "input_tokens": d.input_tokens,
                        "output_tokens": d.output_tokens} for d in self.by_day],
            "by_model": [{"model": m.model, "usd": usd(m.pusd), "requests": m.requests, "input_tokens": m.input_tokens,
                          "output_tokens": m.output_tokens} for m in self.by_model],
        }


def usd_text(pusd: int) -> str:
    """Dollars as plain decimal text without trailing zeros: ``"1.5"``, ``"0"``."""
    value = usd(pusd)
    return format(value.normalize(), "f") if value else "0"


def _date(ts: int) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d")


def _sum_optional(values: list[int | None]) -> int | None:
    return None if any(v is None for v in values) else sum(v for v in values if v is not None)


def build_report(store: BilledStore, provider: str, days: int, now: float, *, error: str | None = None) -> ProviderReport:
    start, end = window_days(days, now)
    day_rows = store.days(provider, start, end)
    by_day = tuple(DayFigures(_date(d.day_start), d.day_start, d.pusd, d.requests, d.input_tokens, d.output_tokens)
                   for d in day_rows)
    total = sum(d.pusd for d in by_day)
    by_model = tuple(
        ModelFigures(m.model or NO_MODEL, m.pusd, m.requests, m.input_tokens, m.output_tokens,
                     (Decimal(m.pusd) / Decimal(total)) if total else None)
        for m in store.models(provider, start, end)
    )
    fetched = (store.fetched_starts(provider, "usage_1d", start, end), store.fetched_starts(provider, "cost_1d", start, end))
    complete = all(len(f) == days for f in fetched)
    return ProviderReport(
        provider, days, start, end, total, _sum_optional([d.requests for d in by_day]),
        sum(d.input_tokens for d in by_day), sum(d.output_tokens for d in by_day), by_day, by_model, complete, error,
    )


def dumps_exact(obj: Any, indent: int | None = 2) -> str:
    """JSON where ``Decimal`` values are written as exact JSON numbers (no float rounding)."""
    marks: dict[str, str] = {}

    def default(o: Any) -> Any:
        if isinstance(o, Decimal):
            tag = f"\x00dec{len(marks)}\x00"
            text = format(o.normalize(), "f") if o else "0"
            marks[tag] = text
            return tag
        raise TypeError(f"{type(o).__name__} is not JSON serialisable")

    out = json.dumps(obj, default=default, indent=indent)
    return re.sub(r'"(\\u0000dec\d+\\u0000)"', lambda m: marks[m.group(1).replace("\\u0000", "\x00")], out)
