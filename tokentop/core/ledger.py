"""The ledger: every accepted event, appended to SQLite (WAL), idempotent by id.

One connection, owned by one worker thread; every call runs there, so the ledger is safe to use
from the feed's event loop (``await ledger.append_async(...)``), from CLI code (``ledger.append``)
and from source threads at once. Appends from concurrent callers are group-committed.

Other modules own tables of their own (file cursors, billed rows, the audit log, the NATS outbox):
they declare them with :meth:`Ledger.ensure_schema` and run statements through :meth:`Ledger.call`.
"""

from __future__ import annotations

import asyncio
import itertools
import sqlite3
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Final, Iterable, Iterator, Sequence, TypeVar

from tokentop.core.events import Event
from tokentop.core.pricing import Cost

T = TypeVar("T")

SCHEMA_VERSION: Final = 1

# A rowid table with a UNIQUE id (not WITHOUT ROWID on the id): rows append in order and only the
# small id index takes random inserts, which measured about twice as fast for random event ids.
_EVENTS_DDL: Final = """
CREATE TABLE IF NOT EXISTS events (
    id TEXT NOT NULL UNIQUE,
    ts REAL NOT NULL,
    agent TEXT NOT NULL,
    session TEXT,
    project TEXT,
    host TEXT,
    pid INTEGER,
    provider TEXT,
    model TEXT,
    input_tokens INTEGER NOT NULL DEFAULT 0,
    output_tokens INTEGER NOT NULL DEFAULT 0,
    cache_read_tokens INTEGER NOT NULL DEFAULT 0,
    cache_write_tokens INTEGER NOT NULL DEFAULT 0,
    cache_write_1h_tokens INTEGER NOT NULL DEFAULT 0,
    reasoning_tokens INTEGER NOT NULL DEFAULT 0,
    cost_usd REAL,
    latency_ms REAL,
    status TEXT NOT NULL DEFAULT 'ok',
    source TEXT,
    branch TEXT,
    cost_pusd INTEGER,
    cost_kind TEXT NOT NULL,
    received_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS events_ts ON events(ts);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""

_COLUMNS: Final = (
    "id", "ts", "agent", "session", "project", "host", "pid", "provider", "model", "input_tokens",
    "output_tokens", "cache_read_tokens", "cache_write_tokens", "cache_write_1h_tokens", "reasoning_tokens",
    "cost_usd", "latency_ms", "status", "source", "branch", "cost_pusd", "cost_kind", "received_at",
)
_INSERT: Final = f"INSERT OR IGNORE INTO events ({', '.join(_COLUMNS)}) VALUES ({', '.join('?' * len(_COLUMNS))})"
#: Rows per multi-row INSERT (23 columns x 32 rows = 736 parameters: under 999, the limit of SQLite
#: builds before 3.32).
#: Python's sqlite3 releases and retakes the GIL around every statement step; one step per row let
#: the feed's event loop and the ledger thread hand the GIL back and forth per event.
INSERT_CHUNK_ROWS: Final = 32
_ROW_PLACEHOLDERS: Final = f"({', '.join('?' * len(_COLUMNS))})"


def _insert_sql(n: int) -> str:
    return f"INSERT OR IGNORE INTO events ({', '.join(_COLUMNS)}) VALUES {', '.join([_ROW_PLACEHOLDERS] * n)}"


_INSERT_CHUNK: Final = _insert_sql(INSERT_CHUNK_ROWS)


def _insert_rows(conn: sqlite3.Connection, rows: Sequence[tuple[Any, ...]]) -> int:
    """Insert (or ignore, by id) ``rows``; returns how many were inserted (not counting rows that
    triggers add elsewhere, e.g. the NATS outbox: ``rowcount`` excludes them)."""
    inserted = 0
    full = len(rows) - len(rows) % INSERT_CHUNK_ROWS
    flatten = itertools.chain.from_iterable
    for i in range(0, full, INSERT_CHUNK_ROWS):
        inserted += conn.execute(_INSERT_CHUNK, list(flatten(rows[i : i + INSERT_CHUNK_ROWS]))).rowcount
    if full < len(rows):
        rest = rows[full:]
        inserted += conn.execute(_insert_sql(len(rest)), list(flatten(rest))).rowcount
    return inserted


class LedgerError(RuntimeError):
    """The ledger cannot be opened or written (path, permissions, corruption)."""


@dataclass(frozen=True, slots=True)
class Stored:
    """An event as read back from the ledger, with the cost it was accepted at."""

    event: Event
    cost: Cost
    received_at: float


def _row(e: Event, cost: Cost, received_at: float) -> tuple[Any, ...]:
    # Plain attribute reads: on Python 3.11 these specialise for slots and measured about twice as
    # fast as operator.attrgetter plus a tuple concatenation.
    return (
        e.id, e.ts, e.agent, e.session, e.project, e.host, e.pid, e.provider, e.model, e.input_tokens,
        e.output_tokens, e.cache_read_tokens, e.cache_write_tokens, e.cache_write_1h_tokens, e.reasoning_tokens,
        e.cost_usd, e.latency_ms, e.status, e.source, e.branch, cost.pusd, cost.kind, received_at,
    )


def _stored(r: Sequence[Any]) -> Stored:
    e = Event(
        id=r[0], ts=r[1], agent=r[2], session=r[3], project=r[4], host=r[5], pid=r[6], provider=r[7], model=r[8],
        input_tokens=r[9], output_tokens=r[10], cache_read_tokens=r[11], cache_write_tokens=r[12],
        cache_write_1h_tokens=r[13], reasoning_tokens=r[14], cost_usd=r[15], latency_ms=r[16], status=r[17],
        source=r[18], branch=r[19],
    )
    return Stored(e, Cost(r[20], r[21]), r[22])


class Ledger:
    """SQLite event store. ``path=":memory:"`` gives a private in-memory ledger (tests, ``--no-ledger``)."""

    def __init__(self, path: str | Path, *, retention_days: float = 90.0) -> None:
        self.path = str(path)
        self.retention_days = retention_days
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="tokentop-ledger")
        self._conn: sqlite3.Connection | None = None
        self._closed = False
        self._pending: list[tuple[list[tuple[Any, ...]], Future[list[bool]]]] = []
        self._pending_lock = threading.Lock()
        self._schemas: list[str] = []
        try:
            self._pool.submit(self._open).result()
        except sqlite3.Error as exc:
            self._pool.shutdown(wait=False)
            raise LedgerError(f"cannot open the ledger at {self.path}: {exc}") from exc

    # -- thread-side ---------------------------------------------------------------------------
    def _open(self) -> None:
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("PRAGMA busy_timeout=5000")
        conn.execute("PRAGMA cache_size=-65536")  # 64 MiB: keeps the id index hot during big imports
        conn.executescript(_EVENTS_DDL)
        conn.execute("INSERT OR IGNORE INTO meta(key, value) VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
        self._conn = conn

    @property
    def conn(self) -> sqlite3.Connection:
        """The connection; use only inside a function passed to :meth:`call`."""
        assert self._conn is not None
        return self._conn

    def _flush(self) -> None:
        with self._pending_lock:
            batch, self._pending = self._pending, []
        if not batch:
            return
        conn = self.conn
        try:
            conn.execute("BEGIN")
            results: list[list[bool]] = []
            for rows, _ in batch:
                # Common case: every row is new; one executemany. Otherwise redo row by row to learn
                # which ids were already stored.
                conn.execute("SAVEPOINT batch")
                # rowcount, not total_changes: rows inserted by triggers (the NATS outbox) must not
                # make a batch with stored ids look all new
                if _insert_rows(conn, rows) == len(rows):
                    conn.execute("RELEASE batch")
                    results.append([True] * len(rows))
                    continue
                conn.execute("ROLLBACK TO batch")
                conn.execute("RELEASE batch")
                results.append([conn.execute(_INSERT, row).rowcount == 1 for row in rows])
            conn.execute("COMMIT")
        except Exception as exc:  # not only sqlite3.Error: a value SQLite cannot bind must not strand the batch's waiters
            try:
                conn.execute("ROLLBACK")
            except sqlite3.Error:
                pass
            err = LedgerError(f"ledger write failed: {exc}")
            for _, fut in batch:
                fut.set_exception(err)
            return
        for (_, fut), flags in zip(batch, results):
            fut.set_result(flags)

    # -- public --------------------------------------------------------------------------------
    def call(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``fn(conn)`` on the ledger thread and return its result (blocking)."""
        return self._pool.submit(fn, self.conn).result()

    async def call_async(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        return await asyncio.wrap_future(self._pool.submit(fn, self.conn))

    def ensure_schema(self, ddl: str) -> None:
        """Create a module's own tables (``CREATE TABLE IF NOT EXISTS ...`` script)."""
        self.call(lambda c: c.executescript(ddl))

    def submit(self, items: Iterable[tuple[Event, Cost]], received_at: float | None = None) -> Future[list[bool]]:
        """Queue events for the next group commit. The future gives, per event, True if new."""
        if self._closed:
            raise LedgerError("the ledger is closed")
        now = time.time() if received_at is None else received_at
        rows = [_row(e, c, now) for e, c in items]
        fut: Future[list[bool]] = Future()
        with self._pending_lock:
            self._pending.append((rows, fut))
        self._pool.submit(self._flush)
        return fut

    def append(self, items: Iterable[tuple[Event, Cost]], received_at: float | None = None) -> list[bool]:
        """Store events durably (committed when this returns). Per event: True if new, False if a duplicate id."""
        return self.submit(items, received_at).result()

    async def append_async(self, items: Iterable[tuple[Event, Cost]], received_at: float | None = None) -> list[bool]:
        return await asyncio.wrap_future(self.submit(items, received_at))

    def known_ids(self, ids: Sequence[str]) -> set[str]:
        """Which of ``ids`` are already stored."""
        def run(conn: sqlite3.Connection) -> set[str]:
            found: set[str] = set()
            for i in range(0, len(ids), 500):
                chunk = ids[i : i + 500]
                q = f"SELECT id FROM events WHERE id IN ({', '.join('?' * len(chunk))})"
                found.update(r[0] for r in conn.execute(q, chunk))
            return found

        return self.call(run) if ids else set()

    def events_since(self, ts: float, until: float | None = None, batch: int = 5000) -> Iterator[Stored]:
        """Stored events with ``ts >= since`` (and ``< until``), in time order, streamed in batches."""
        last_ts, last_id = ts, ""
        first = True
        while True:
            def run(conn: sqlite3.Connection, lt: float = last_ts, li: str = last_id, f: bool = first) -> list[Any]:
                if f:
                    q = f"SELECT {', '.join(_COLUMNS)} FROM events WHERE ts >= ?"
                    args: list[Any] = [lt]
                else:
                    q = f"SELECT {', '.join(_COLUMNS)} FROM events WHERE (ts > ? OR (ts = ? AND id > ?))"
                    args = [lt, lt, li]
                if until is not None:
                    q += " AND ts < ?"
                    args.append(until)
                q += " ORDER BY ts, id LIMIT ?"
                args.append(batch)
                return conn.execute(q, args).fetchall()

            rows = self.call(run)
            for r in rows:
                yield _stored(r)
            if len(rows) < batch:
                return
            last_ts, last_id, first = rows[-1][1], rows[-1][0], False

    def ids_since(self, ts: float) -> set[str]:
        return self.call(lambda c: {r[0] for r in c.execute("SELECT id FROM events WHERE ts >= ?", (ts,))})

    def count(self) -> int:
        return self.call(lambda c: c.execute("SELECT COUNT(*) FROM events").fetchone()[0])

    def prune(self, now: float) -> int:
        """Delete events older than the retention window. Returns how many were removed."""
        cutoff = now - self.retention_days * 86400.0
        return self.call(lambda c: c.execute("DELETE FROM events WHERE ts < ?", (cutoff,)).rowcount)

    def get_meta(self, key: str) -> str | None:
        row = self.call(lambda c: c.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone())
        return None if row is None else row[0]

    def set_meta(self, key: str, value: str) -> None:
        self.call(lambda c: c.execute("INSERT OR REPLACE INTO meta(key, value) VALUES (?, ?)", (key, value)))

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True

        def shut(conn: sqlite3.Connection) -> None:
            self._flush()
            try:
                conn.execute("PRAGMA optimize")
            except sqlite3.Error:
                pass
            conn.close()

        try:
            self._pool.submit(shut, self.conn).result()
        finally:
            self._pool.shutdown(wait=True)

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
