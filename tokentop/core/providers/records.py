"""Billed records as the pollers hand them to the store: plain, provider-neutral, exact.

Token fields follow the event contract (OTel GenAI): ``input_tokens`` INCLUDES cache reads and
writes, whatever the provider's own convention. Money is integer pico-dollars. Dimensions a query
did not group by are ``""`` (so they can be part of a primary key).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

Width = Literal["1m", "1h", "1d"]
WIDTH_S: dict[str, int] = {"1m": 60, "1h": 3600, "1d": 86400}


@dataclass(frozen=True, slots=True)
class UsageRow:
    provider: str
    width: str
    start: int
    end: int
    model: str = ""
    project: str = ""  # OpenAI project_id / Anthropic workspace_id
    api_key: str = ""
    service_tier: str = ""
    batch: str = ""
    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    cache_write_1h_tokens: int = 0
    #: ``None`` where the provider does not report request counts (Anthropic's usage report).
    requests: int | None = None


@dataclass(frozen=True, slots=True)
class CostRow:
    provider: str
    start: int
    end: int
    amount_pusd: int
    currency: str = "usd"
    line_item: str = ""
    model: str = ""
    project: str = ""


@dataclass(frozen=True, slots=True)
class Fetched:
    """One query's answer: rows, every bucket the provider returned (empty ones too), rows rejected."""

    rows: list
    buckets: list[tuple[int, int]]
    rejected: int = 0
    first_problem: str | None = None


class RowProblem(ValueError):
    pass


def count(obj: dict, name: str, *, required: bool = False) -> int:
    value = obj.get(name)
    if value is None:
        if required:
            raise RowProblem(f"missing {name}")
        return 0
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise RowProblem(f"{name} must be a non-negative integer, got {value!r}")
    return value


def dim(obj: dict, name: str) -> str:
    value = obj.get(name)
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)[:200]


def iso(ts: int) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_iso(value: object) -> int:
    if not isinstance(value, str):
        raise RowProblem(f"expected an RFC 3339 time, got {value!r}")
    try:
        dt = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise RowProblem(f"not an RFC 3339 time: {value!r}") from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return int(dt.timestamp())


def collect_buckets(raw: list[Any], bucket_span: Any, make: Any, label: Any = str) -> Fetched:
    """Rows from a provider's list of time buckets, each holding ``results``.

    ``bucket_span(bucket) -> (start, end)`` reads a bucket's times (raising :class:`RowProblem`);
    ``make(start, end, result)`` builds one row; ``label(start)`` names a bucket in messages. A bad
    bucket or result is counted and skipped; its neighbours are kept.
    """
    rows: list[Any] = []
    buckets: list[tuple[int, int]] = []
    rejected = 0
    first: str | None = None
    for b in raw:
        try:
            if not isinstance(b, dict):
                raise RowProblem("bucket is not an object")
            start, end = bucket_span(b)
        except RowProblem as exc:
            rejected += 1
            first = first or f"bucket: {exc}"
            continue
        buckets.append((start, end))
        for r in b.get("results") or []:
            try:
                if not isinstance(r, dict):
                    raise RowProblem("result is not an object")
                rows.append(make(start, end, r))
            except RowProblem as exc:
                rejected += 1
                first = first or f"bucket {label(start)}: {exc}"
    return Fetched(rows, buckets, rejected, first)
