"""Billed rows in the ledger: tables of their own, apart from local events, idempotent on re-fetch.

A fetch of ``[start, end)`` at one width *replaces* what the ledger held for that provider, width
and window, in one transaction: re-fetching a day (as its numbers settle) never double counts, and
a grouping that changed between fetches cannot leave stale rows behind. ``billed_buckets`` records
every bucket the provider answered for (empty ones too) and when, so callers can tell "no usage"
from "never fetched" and re-fetch buckets that were still open when they were fetched.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from typing import Final, Iterable, Sequence

from tokentop.core.ledger import Ledger
from tokentop.core.providers.records import CostRow, UsageRow

DDL: Final = """
CREATE TABLE IF NOT EXISTS billed_usage (
    provider TEXT NOT NULL, width TEXT NOT NULL, start INTEGER NOT NULL, "end" INTEGER NOT NULL,
    model TEXT NOT NULL, project TEXT NOT NULL, api_key TEXT NOT NULL, service_tier TEXT NOT NULL, batch TEXT NOT NULL,
    input_tokens INTEGER NOT NULL, output_tokens INTEGER NOT NULL, cache_read_tokens INTEGER NOT NULL,
    cache_write_tokens INTEGER NOT NULL, cache_write_1h_tokens INTEGER NOT NULL, requests INTEGER,
    fetched_at REAL NOT NULL,
    PRIMARY KEY (provider, width, start, model, project, api_key, service_tier, batch)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS billed_cost (
    provider TEXT NOT NULL, start INTEGER NOT NULL, "end" INTEGER NOT NULL,
    line_item TEXT NOT NULL, model TEXT NOT NULL, project TEXT NOT NULL,
    amount_pusd INTEGER NOT NULL, currency TEXT NOT NULL, fetched_at REAL NOT NULL,
    PRIMARY KEY (provider, start, line_item, model, project)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS billed_buckets (
    provider TEXT NOT NULL, kind TEXT NOT NULL, start INTEGER NOT NULL, "end" INTEGER NOT NULL,
    fetched_at REAL NOT NULL,
    PRIMARY KEY (provider, kind, start)
) WITHOUT ROWID;
"""

_USAGE_COLS: Final = ("provider", "width", "start", '"end"', "model", "project", "api_key", "service_tier", "batch",
                      "input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens",
                      "cache_write_1h_tokens", "requests", "fetched_at")
_ADD: Final = ("input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens", "cache_write_1h_tokens")
_UPSERT_USAGE: Final = (
    f"INSERT INTO billed_usage ({', '.join(_USAGE_COLS)}) VALUES ({', '.join('?' * len(_USAGE_COLS))}) "
    "ON CONFLICT DO UPDATE SET "
    + ", ".join(f"{c} = {c} + excluded.{c}" for c in _ADD)
    + ", requests = CASE WHEN requests IS NULL OR excluded.requests IS NULL THEN NULL ELSE requests + excluded.requests END"
)
_UPSERT_COST: Final = (
    'INSERT INTO billed_cost (provider, start, "end", line_item, model, project, amount_pusd, currency, fetched_at) '
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO UPDATE SET amount_pusd = amount_pusd + excluded.amount_pusd"
)


@dataclass(frozen=True, slots=True)
class DayTotals:
    day_start: int
    pusd: int
    requests: int | None
    input_tokens: int
    output_tokens: int


@dataclass(frozen=True, slots=True)
class ModelTotals:
    model: str
    pusd: int
    requests: int | None
    input_tokens: int
    output_tokens: int
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    cache_write_1h_tokens: int = 0


class BilledStore:
    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger
        ledger.ensure_schema(DDL)

    # -- writes ---------------------------------------------------------------------------------
    def _replace(self, conn: sqlite3.Connection, provider: str, kind: str, start: int, end: int,
                 buckets: Sequence[tuple[int, int]], fetched_at: float) -> None:
        if kind == "cost_1d":
            conn.execute("DELETE FROM billed_cost WHERE provider = ? AND start >= ? AND start < ?", (provider, start, end))
        else:
            conn.execute("DELETE FROM billed_usage WHERE provider = ? AND width = ? AND start >= ? AND start < ?",
                         (provider, kind.split("_", 1)[1], start, end))
        conn.executemany(
            'INSERT OR REPLACE INTO billed_buckets (provider, kind, start, "end", fetched_at) VALUES (?, ?, ?, ?, ?)',
            [(provider, kind, s, e, fetched_at) for s, e in buckets],
        )

    def replace_usage(self, provider: str, width: str, start: int, end: int, rows: Iterable[UsageRow],
                      buckets: Sequence[tuple[int, int]], fetched_at: float) -> int:
        values = [(r.provider, r.width, r.start, r.end, r.model, r.project, r.api_key, r.service_tier, r.batch,
                   r.input_tokens, r.output_tokens, r.cache_read_tokens, r.cache_write_tokens,
                   r.cache_write_1h_tokens, r.requests, fetched_at) for r in rows]

        def run(conn: sqlite3.Connection) -> int:
            with conn:
                conn.execute("BEGIN")
                self._replace(conn, provider, f"usage_{width}", start, end, buckets, fetched_at)
                conn.executemany(_UPSERT_USAGE, values)
            return len(values)

        return self.ledger.call(run)

    def replace_costs(self, provider: str, start: int, end: int, rows: Iterable[CostRow],
                      buckets: Sequence[tuple[int, int]], fetched_at: float) -> int:
        values = [(r.provider, r.start, r.end, r.line_item, r.model, r.project, r.amount_pusd, r.currency, fetched_at)
                  for r in rows]

        def run(conn: sqlite3.Connection) -> int:
            with conn:
                conn.execute("BEGIN")
                self._replace(conn, provider, "cost_1d", start, end, buckets, fetched_at)
                conn.executemany(_UPSERT_COST, values)
            return len(values)

        return self.ledger.call(run)

    def prune_minutes(self, before: int) -> int:
        """Drop 1-minute rows (and their bucket records) older than ``before``: they only serve the last hour."""
        def run(conn: sqlite3.Connection) -> int:
            with conn:
                conn.execute("BEGIN")
                n = conn.execute("DELETE FROM billed_usage WHERE width = '1m' AND start < ?", (before,)).rowcount
                conn.execute("DELETE FROM billed_buckets WHERE kind = 'usage_1m' AND start < ?", (before,))
            return n

        return self.ledger.call(run)

    # -- coverage -------------------------------------------------------------------------------
    def settled_starts(self, provider: str, kind: str, start: int, end: int, settle_s: float) -> set[int]:
        """Bucket starts in ``[start, end)`` fetched at least ``settle_s`` after the bucket ended."""
        q = ('SELECT start FROM billed_buckets WHERE provider = ? AND kind = ? AND start >= ? AND start < ? '
             'AND fetched_at >= "end" + ?')
        return self.ledger.call(lambda c: {r[0] for r in c.execute(q, (provider, kind, start, end, settle_s))})

    def fetched_starts(self, provider: str, kind: str, start: int, end: int) -> set[int]:
        q = "SELECT start FROM billed_buckets WHERE provider = ? AND kind = ? AND start >= ? AND start < ?"
        return self.ledger.call(lambda c: {r[0] for r in c.execute(q, (provider, kind, start, end))})

    # -- reads ----------------------------------------------------------------------------------
    def days(self, provider: str, start: int, end: int) -> list[DayTotals]:
        """One entry per UTC day in ``[start, end)`` (zeros where nothing was billed)."""
        def run(conn: sqlite3.Connection) -> list[DayTotals]:
            cost = dict(conn.execute(
                "SELECT start, SUM(amount_pusd) FROM billed_cost WHERE provider = ? AND start >= ? AND start < ? GROUP BY start",
                (provider, start, end)))
            usage = {r[0]: r[1:] for r in conn.execute(
                "SELECT start, SUM(requests), COUNT(requests) = COUNT(*), SUM(input_tokens), SUM(output_tokens) "
                "FROM billed_usage WHERE provider = ? AND width = '1d' AND start >= ? AND start < ? GROUP BY start",
                (provider, start, end))}
            out = []
            for day in range(start, end, 86400):
                req, all_known, inp, outp = usage.get(day, (0, 1, 0, 0))
                out.append(DayTotals(day, int(cost.get(day, 0)), int(req or 0) if all_known else None, int(inp), int(outp)))
            return out

        return self.ledger.call(run)

    def models(self, provider: str, start: int, end: int, width: str = "1d") -> list[ModelTotals]:
        """Per model over ``[start, end)``: cost from cost rows, tokens and requests from usage rows."""
        def run(conn: sqlite3.Connection) -> list[ModelTotals]:
            cost = dict(conn.execute(
                "SELECT model, SUM(amount_pusd) FROM billed_cost WHERE provider = ? AND start >= ? AND start < ? GROUP BY model",
                (provider, start, end)))
            usage = {r[0]: r[1:] for r in conn.execute(
                "SELECT model, SUM(requests), COUNT(requests) = COUNT(*), SUM(input_tokens), SUM(output_tokens), "
                "SUM(cache_read_tokens), SUM(cache_write_tokens), SUM(cache_write_1h_tokens) "
                "FROM billed_usage WHERE provider = ? AND width = ? AND start >= ? AND start < ? GROUP BY model",
                (provider, width, start, end))}
            out = []
            for model in set(cost) | set(usage):
                # a model with costs but no usage rows (tools, storage): its request count is unknown
                req, all_known, inp, outp, cr, cw, cw1 = usage.get(model, (None, 0, 0, 0, 0, 0, 0))
                out.append(ModelTotals(model, int(cost.get(model, 0)), int(req or 0) if all_known else None,
                                       int(inp), int(outp), int(cr), int(cw), int(cw1)))
            out.sort(key=lambda m: (-m.pusd, -(m.input_tokens + m.output_tokens), m.model))
            return out

        return self.ledger.call(run)

    def minutes(self, provider: str, start: int, end: int) -> list[tuple[int, str, int, int, int, int, int, int | None]]:
        """1-minute rows in ``[start, end)`` summed over other dimensions:
        (minute start, model, input, output, cache read, cache write, cache write 1h, requests)."""
        q = ("SELECT start, model, SUM(input_tokens), SUM(output_tokens), SUM(cache_read_tokens), SUM(cache_write_tokens), "
             "SUM(cache_write_1h_tokens), CASE WHEN COUNT(requests) = COUNT(*) THEN SUM(requests) END "
             "FROM billed_usage WHERE provider = ? AND width = '1m' AND start >= ? AND start < ? "
             "GROUP BY start, model ORDER BY start, model")
        return self.ledger.call(lambda c: c.execute(q, (provider, start, end)).fetchall())

    def local_minutes(self, start: int, end: int) -> list[tuple[int, str, int, int, int | None, int]]:
        """What local sources observed, per minute and model (from the events table):
        (minute start, model, input tokens, output tokens, priced pusd or None if any unpriced, requests)."""
        q = ("SELECT CAST(ts / 60 AS INTEGER) * 60 AS minute, COALESCE(model, ''), SUM(input_tokens), SUM(output_tokens), "
             "CASE WHEN COUNT(cost_pusd) = COUNT(*) THEN SUM(cost_pusd) END, COUNT(*) "
             "FROM events WHERE ts >= ? AND ts < ? GROUP BY minute, model ORDER BY minute")
        return self.ledger.call(lambda c: c.execute(q, (start, end)).fetchall())

    def cost_total(self, provider: str, start: int, end: int) -> int:
        q = "SELECT COALESCE(SUM(amount_pusd), 0) FROM billed_cost WHERE provider = ? AND start >= ? AND start < ?"
        return int(self.ledger.call(lambda c: c.execute(q, (provider, start, end)).fetchone()[0]))
