"""What the providers view shows, as plain data: billed spend today and this month, the last hour
per minute by model, and **unattributed spend**.

Unattributed spend = what the provider billed in the last hour minus what local sources observed
for the same models in the same minutes. Costs are only reported per day, so the hour's billed
spend is the billed *tokens* priced at list prices (same pricer as local events), compared per model
against the priced local events of the ledger; a model's shortfall counts, a surplus (local data
ahead of the provider's few minutes of latency) does not offset another model. Only minutes up to
the last one the provider reported anything for are compared.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Iterable, Sequence

from tokentop.core.events import Event
from tokentop.core.pricing import Pricer, normalise_model, usd
from tokentop.core.providers.report import usd_text
from tokentop.core.providers.status import ProvidersStatus, ProviderStatus
from tokentop.core.providers.store import BilledStore

HOUR_S = 3600
_DATE_SUFFIX = re.compile(r"-(\d{4}-\d{2}-\d{2}|\d{8})$")


def usd_short(pusd: int) -> str:
    """``$12.34``; below a dollar four decimals (``$0.0042``) so small hourly figures are not ``$0.00``."""
    value = usd(pusd)
    return f"${value:,.2f}" if value >= 1 or value == 0 else f"${value:.4f}"


def match_key(model: str) -> str:
    """Model names as providers bill them and as agents log them meet here (date suffix dropped)."""
    return _DATE_SUFFIX.sub("", normalise_model(model)) if model else ""


@dataclass(frozen=True, slots=True)
class ModelMinutes:
    model: str
    tokens_per_minute: tuple[int, ...]
    #: ``None`` where the provider reports no request counts.
    requests_per_minute: tuple[int, ...] | None

    @property
    def tokens(self) -> int:
        return sum(self.tokens_per_minute)


@dataclass(frozen=True, slots=True)
class Unattributed:
    window_s: int
    billed_pusd: int  # billed tokens priced at list prices (priced models only)
    local_pusd: int
    unattributed_pusd: int
    billed_tokens: int
    unattributed_tokens: int
    #: Unattributed tokens of models no price is known for (shown loudly, never as $0).
    unpriced_tokens: int
    explanation: str

    def to_json(self) -> dict[str, Any]:
        return {
            "window_s": self.window_s,
            "billed_usd": usd_text(self.billed_pusd),
            "local_usd": usd_text(self.local_pusd),
            "unattributed_usd": usd_text(self.unattributed_pusd),
            "billed_tokens": self.billed_tokens,
            "unattributed_tokens": self.unattributed_tokens,
            "unpriced_tokens": self.unpriced_tokens,
            "explanation": self.explanation,
        }


@dataclass(frozen=True)
class ProviderPanel:
    provider: str
    pusd_today: int
    pusd_month: int
    minutes_start: int
    by_model: tuple[ModelMinutes, ...]
    unattributed: Unattributed
    #: the poller's health (``status["providers"][provider]``)
    status: ProviderStatus = field(default_factory=lambda: ProviderStatus(enabled=True))
    #: Today's cost bucket was fetched (else today's and the month's spend are unknown, not $0).
    costs_fetched_today: bool = True

    @property
    def last_error(self) -> str | None:
        return self.status.last_error

    @property
    def last_success_at(self) -> float | None:
        return self.status.last_success_at


def compute_unattributed(provider: str, billed: Sequence[tuple], local: Iterable[tuple], pricer: Pricer,
                         window_s: int = HOUR_S) -> Unattributed:
    """``billed``: store.minutes rows; ``local``: store.local_minutes rows (same window)."""
    horizon = max((row[0] for row in billed), default=None)
    per_model: dict[str, list[int]] = {}  # key -> [billed pusd, billed tokens, unpriced billed tokens, local pusd, local tokens]
    for minute, model, inp, out, cr, cw, cw1h, _req in billed:
        key = match_key(model)
        acc = per_model.setdefault(key, [0, 0, 0, 0, 0])
        tokens = int(inp) + int(out)
        event = Event(id="billed", ts=float(minute), provider=provider, model=model or None,
                      input_tokens=int(inp), output_tokens=int(out), cache_read_tokens=int(cr),
                      cache_write_tokens=int(cw), cache_write_1h_tokens=int(cw1h))
        cost = pricer.price(event)
        if cost.pusd is None and key and key != normalise_model(model):  # dated name unknown: try the undated one
            cost = pricer.price(replace(event, model=key))
        acc[1] += tokens
        if cost.pusd is None:
            acc[2] += tokens
        else:
            acc[0] += cost.pusd
    if horizon is not None:
        for minute, model, inp, out, pusd, _n in local:
            acc = per_model.get(match_key(model))
            if acc is None or minute > horizon:
                continue
            acc[3] += int(pusd or 0)
            acc[4] += int(inp) + int(out)
    billed_pusd = sum(a[0] for a in per_model.values())
    local_pusd = sum(a[3] for a in per_model.values())
    un_pusd = sum(max(0, a[0] - a[3]) for a in per_model.values())
    billed_tokens = sum(a[1] for a in per_model.values())
    un_tokens = sum(max(0, a[1] - a[4]) for a in per_model.values())
    unpriced = sum(max(0, a[2] - a[4]) if a[2] == a[1] else 0 for a in per_model.values())
    minutes = window_s // 60
    tail = "matches no local agent: a key used elsewhere or an agent tokentop does not watch"
    if not billed_tokens:
        text = f"no billed usage in the last {minutes} min"
    elif un_pusd == 0 and unpriced == 0:
        text = f"every billed token of the last {minutes} min matches a local agent's (same models, same minutes)"
    elif billed_pusd == 0:
        text = (f"{unpriced:,} billed tokens of unpriced models in the last {minutes} min match no local agent: "
                f"a key used elsewhere or an agent tokentop does not watch")
    else:
        share = Decimal(un_pusd) / Decimal(billed_pusd) * 100
        text = f"{usd_short(un_pusd)} of {usd_short(billed_pusd)} billed in the last {minutes} min ({share:.0f}%) {tail}"
        if unpriced:
            text += f"; plus {unpriced:,} tokens of unpriced models"
    return Unattributed(window_s, billed_pusd, local_pusd, un_pusd, billed_tokens, un_tokens, unpriced, text)


def month_start(now: float) -> int:
    d = datetime.fromtimestamp(now, UTC)
    return int(datetime(d.year, d.month, 1, tzinfo=UTC).timestamp())


def build_panel(store: BilledStore, provider: str, now: float, pricer: Pricer, status: ProviderStatus | None = None,
                window_s: int = HOUR_S) -> ProviderPanel:
    """Everything the providers view shows for one provider (ledger reads only; no network)."""
    today = int(now // 86400) * 86400
    end = int(now // 60) * 60 + 60
    start = end - window_s
    billed = store.minutes(provider, start, end)
    local = store.local_minutes(start, end)
    n = window_s // 60
    tokens: dict[str, list[int]] = {}
    requests: dict[str, list[int] | None] = {}
    for minute, model, inp, out, _cr, _cw, _cw1h, req in billed:
        i = (int(minute) - start) // 60
        if not 0 <= i < n:
            continue
        name = model or "(no model)"
        tokens.setdefault(name, [0] * n)[i] += int(inp) + int(out)
        if name not in requests:
            requests[name] = [0] * n
        r = requests[name]
        if req is None:
            requests[name] = None
        elif r is not None:
            r[i] += int(req)
    by_model = tuple(sorted(
        (ModelMinutes(m, tuple(t), None if requests.get(m) is None else tuple(requests[m])) for m, t in tokens.items()),
        key=lambda mm: (-mm.tokens, mm.model),
    ))
    return ProviderPanel(
        provider=provider,
        pusd_today=store.cost_total(provider, today, today + 86400),
        pusd_month=store.cost_total(provider, month_start(now), today + 86400),
        minutes_start=start,
        by_model=by_model,
        unattributed=compute_unattributed(provider, billed, local, pricer, window_s),
        status=status or ProviderStatus(enabled=True),
        costs_fetched_today=bool(store.fetched_starts(provider, "cost_1d", today, today + 86400)),
    )


def build_panels(store: BilledStore, now: float, pricer: Pricer,
                 providers_status: ProvidersStatus | None) -> tuple[list[ProviderPanel], dict[str, str]]:
    """Panels for every polled provider in ``snapshot.status["providers"]``, plus a note (why not)
    for each configured-but-not-polled one — what :class:`ProvidersScreen` takes."""
    panels: list[ProviderPanel] = []
    notes: dict[str, str] = {}
    entries = providers_status.providers if providers_status is not None else {}
    for name, st in sorted(entries.items()):
        if st.enabled:
            panels.append(build_panel(store, name, now, pricer, st))
        else:
            notes[name] = st.last_error or st.reason or "not polled"
    return panels, notes
