"""OpenAI organization Usage and Costs APIs (admin key) → billed rows.

``GET {base}/organization/usage/completions`` (base includes ``/v1``, as in the official SDK),
grouped by model (plus configured dimensions), and ``GET {base}/organization/costs`` grouped by
line item. Array parameters are repeated keys (``group_by=model&group_by=project_id``). Costs are
JSON numbers in dollars, parsed as ``Decimal`` (never float) and kept as pico-dollars. Cost line
items read ``"<model>, <kind>"`` (e.g. ``"gpt-4o-2024-08-06, input"``): the model is the part
before the last comma; items without one (tools, storage) have no model.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Any

from tokentop.core.pricing import to_pusd
from tokentop.core.providers.paging import Fetcher
from tokentop.core.providers.records import WIDTH_S, CostRow, Fetched, RowProblem, UsageRow, collect_buckets, count, dim

NAME = "openai"
#: Buckets per page we ask for (the API's maximum for each width).
PAGE_LIMIT = {"1m": 1440, "1h": 168, "1d": 31}
COSTS_PAGE_LIMIT = 180


def headers(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}", "User-Agent": "tokentop"}


def usage_row(bucket_start: int, bucket_end: int, width: str, r: dict[str, Any]) -> UsageRow:
    input_tokens = count(r, "input_tokens", required=True)
    cached = count(r, "input_cached_tokens")
    written = count(r, "input_cache_write_tokens")
    if cached + written > input_tokens:
        raise RowProblem(f"cached+cache-write tokens ({cached}+{written}) exceed input_tokens ({input_tokens})")
    return UsageRow(
        NAME, width, bucket_start, bucket_end,
        model=dim(r, "model"), project=dim(r, "project_id"), api_key=dim(r, "api_key_id"),
        service_tier=dim(r, "service_tier"), batch=dim(r, "batch"),
        input_tokens=input_tokens, output_tokens=count(r, "output_tokens", required=True),
        cache_read_tokens=cached, cache_write_tokens=written,
        requests=count(r, "num_model_requests", required=True),
    )


def line_item_model(line_item: str) -> str:
    head, sep, _ = line_item.rpartition(",")
    return head.strip() if sep else ""


def cost_row(bucket_start: int, bucket_end: int, r: dict[str, Any]) -> CostRow:
    amount = r.get("amount")
    if not isinstance(amount, dict):
        raise RowProblem("missing amount")
    value = amount.get("value")
    if isinstance(value, bool) or not isinstance(value, (int, Decimal, str)):
        raise RowProblem(f"amount.value must be a number, got {value!r}")
    try:
        usd_value = Decimal(value) if not isinstance(value, Decimal) else value
    except InvalidOperation:
        raise RowProblem(f"amount.value is not a number: {value!r}") from None
    currency = str(amount.get("currency") or "usd").lower()
    if currency != "usd":
        raise RowProblem(f"currency {currency!r} is not usd")
    line_item = dim(r, "line_item")
    return CostRow(NAME, bucket_start, bucket_end, to_pusd(usd_value), currency, line_item,
                   line_item_model(line_item), dim(r, "project_id"))


def _span(b: dict[str, Any]) -> tuple[int, int]:
    start, end = b.get("start_time"), b.get("end_time")
    if not isinstance(start, int) or not isinstance(end, int) or end <= start:
        raise RowProblem(f"bucket times must be integers with end > start, got {start!r}..{end!r}")
    return start, end


def _buckets(raw: list[dict[str, Any]], make: Any) -> Fetched:
    return collect_buckets(raw, _span, make)


class OpenAIUsageAPI:
    name = NAME

    def __init__(self, fetcher: Fetcher, base_url: str, group_by: tuple[str, ...] = ()) -> None:
        self.fetcher = fetcher
        self.base_url = base_url.rstrip("/")
        self.group_by = ("model", *[g for g in group_by if g != "model"])

    async def usage(self, start: int, end: int, width: str) -> Fetched:
        params: list[tuple[str, str | int]] = [
            ("start_time", start), ("end_time", end), ("bucket_width", width),
            ("limit", min(PAGE_LIMIT[width], max(1, -(-(end - start) // WIDTH_S[width])))),
        ]
        params += [("group_by", g) for g in self.group_by]
        raw = await self.fetcher.get_pages(f"{self.base_url}/organization/usage/completions", params)
        return _buckets(raw, lambda s, e, r: usage_row(s, e, width, r))

    async def costs(self, start: int, end: int) -> Fetched:
        params: list[tuple[str, str | int]] = [
            ("start_time", start), ("end_time", end), ("bucket_width", "1d"),
            ("limit", min(COSTS_PAGE_LIMIT, max(1, -(-(end - start) // 86400)))), ("group_by", "line_item"),
        ]
        if "project_id" in self.group_by:
            params.append(("group_by", "project_id"))
        raw = await self.fetcher.get_pages(f"{self.base_url}/organization/costs", params)
        return _buckets(raw, cost_row)
