"""Anthropic Admin API usage report and cost report (admin key) → billed rows.

``GET {base}/v1/organizations/usage_report/messages`` (base WITHOUT ``/v1``, as in the official SDK)
grouped by model and service tier (plus configured dimensions), and
``GET {base}/v1/organizations/cost_report`` grouped by description (which fills ``model``).
Times are RFC 3339; array parameters use brackets (``group_by[]=model``). Token input is normalised
to the event contract: uncached + cache read + 5m write + 1h write. Cost ``amount`` is a decimal
string in **cents** — divided by 100, exactly. The usage report has no request counts: ``requests``
stays ``None`` and is shown as unknown, never 0.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Any

from tokentop.core.pricing import to_pusd
from tokentop.core.providers.paging import Fetcher
from tokentop.core.providers.records import (
    WIDTH_S, CostRow, Fetched, RowProblem, UsageRow, collect_buckets, count, dim, iso, parse_iso,
)

NAME = "anthropic"
API_VERSION = "2023-06-01"
PAGE_LIMIT = {"1m": 1440, "1h": 168, "1d": 31}
COSTS_PAGE_LIMIT = 31


def headers(key: str) -> dict[str, str]:
    return {"x-api-key": key, "anthropic-version": API_VERSION, "User-Agent": "tokentop"}


def usage_row(start: int, end: int, width: str, r: dict[str, Any]) -> UsageRow:
    uncached = count(r, "uncached_input_tokens", required=True)
    read = count(r, "cache_read_input_tokens")
    creation = r.get("cache_creation") or {}
    if not isinstance(creation, dict):
        raise RowProblem("cache_creation must be an object")
    w5, w1h = count(creation, "ephemeral_5m_input_tokens"), count(creation, "ephemeral_1h_input_tokens")
    return UsageRow(
        NAME, width, start, end,
        model=dim(r, "model"), project=dim(r, "workspace_id"), api_key=dim(r, "api_key_id"),
        service_tier=dim(r, "service_tier"),
        input_tokens=uncached + read + w5 + w1h, output_tokens=count(r, "output_tokens", required=True),
        cache_read_tokens=read, cache_write_tokens=w5 + w1h, cache_write_1h_tokens=w1h, requests=None,
    )


def cost_row(start: int, end: int, r: dict[str, Any]) -> CostRow:
    amount = r.get("amount")
    if not isinstance(amount, (str, Decimal, int)) or isinstance(amount, bool):
        raise RowProblem(f"amount must be a decimal string, got {amount!r}")
    try:
        cents = Decimal(amount)
    except InvalidOperation:
        raise RowProblem(f"amount is not a decimal: {amount!r}") from None
    if not cents.is_finite():
        raise RowProblem(f"amount is not finite: {amount!r}")
    currency = str(r.get("currency") or "USD")
    if currency.upper() != "USD":
        raise RowProblem(f"currency {currency!r} is not USD")
    return CostRow(NAME, start, end, to_pusd(cents / 100), "usd", dim(r, "description") or dim(r, "cost_type"),
                   dim(r, "model"), dim(r, "workspace_id"))


def _span(b: dict[str, Any]) -> tuple[int, int]:
    start, end = parse_iso(b.get("starting_at")), parse_iso(b.get("ending_at"))
    if end <= start:
        raise RowProblem("bucket ends before it starts")
    return start, end


def _buckets(raw: list[dict[str, Any]], make: Any) -> Fetched:
    return collect_buckets(raw, _span, make, iso)


class AnthropicUsageAPI:
    name = NAME

    def __init__(self, fetcher: Fetcher, base_url: str, group_by: tuple[str, ...] = ()) -> None:
        self.fetcher = fetcher
        self.base_url = base_url.rstrip("/")
        self.group_by = ("model", "service_tier", *[g for g in group_by if g not in ("model", "service_tier")])

    async def usage(self, start: int, end: int, width: str) -> Fetched:
        params: list[tuple[str, str | int]] = [
            ("starting_at", iso(start)), ("ending_at", iso(end)), ("bucket_width", width),
            ("limit", min(PAGE_LIMIT[width], max(1, -(-(end - start) // WIDTH_S[width])))),
        ]
        params += [("group_by[]", g) for g in self.group_by]
        raw = await self.fetcher.get_pages(f"{self.base_url}/v1/organizations/usage_report/messages", params)
        return _buckets(raw, lambda s, e, r: usage_row(s, e, width, r))

    async def costs(self, start: int, end: int) -> Fetched:
        params: list[tuple[str, str | int]] = [
            ("starting_at", iso(start)), ("ending_at", iso(end)), ("bucket_width", "1d"),
            ("limit", min(COSTS_PAGE_LIMIT, max(1, -(-(end - start) // 86400)))), ("group_by[]", "description"),
        ]
        if "workspace_id" in self.group_by:
            params.append(("group_by[]", "workspace_id"))
        raw = await self.fetcher.get_pages(f"{self.base_url}/v1/organizations/cost_report", params)
        return _buckets(raw, cost_row)
