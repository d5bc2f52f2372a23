"""The ledger: every accepted event in SQLite (WAL), one record per id: the largest offered (revisions).

One connection, owned by one worker thread; every call runs there, so the ledger is safe to use
from the feed's event loop (``await ledger.append_async(...)``), from CLI code (``ledger.append``)
and from source threads at once. Appends from concurrent callers are group-committed.

Other modules own tables of their own (file cursors, billed rows, the audit log, the NATS outbox):
they declare them with :meth:`Ledger.ensure_schema` and run statements through :meth:`Ledger.call`.

Schema versions
---------------
``meta.schema_version`` names the version of the ``events`` and ``meta`` tables a ledger file has.
Opening a ledger (:func:`migrate`, on the ledger thread, before anything else touches the file):

* a new file gets the latest schema directly;
* an older file is first copied beside itself (``<file>.v<N>-backup-<UTC time>``, one consistent
  file made with ``VACUUM INTO`` while the migration holds the write lock), then upgraded by the
  steps of :data:`MIGRATIONS` in order, in one transaction: if a step fails nothing changes;
* a file from a newer tokentop (a version above :data:`SCHEMA_VERSION`) is refused, untouched.

Versions: 1 is tokentop 0.1.0 (``events`` with the stored event fields, ``cost_pusd``,
``cost_kind``, ``received_at``; ``meta``). 2 adds ``events.revision`` (the emitter's version of a
record). 3 adds ``events.speed`` and ``events.web_searches`` (priced beside the tokens) and
``events.revisions`` (how often the stored record was replaced). Steps only add columns with
defaults, so an older tokentop can still append to an upgraded file. Other modules' tables are
theirs: no step touches them (``CREATE ... IF NOT EXISTS`` in their own ``ensure_schema``).

Revisable events
----------------
An append is an upsert (:meth:`Ledger.submit`): a record whose id is not stored is inserted; one
whose id is stored replaces the stored record when it is larger under the revision rule
(:mod:`tokentop.core.revision`), and is a duplicate otherwise. The comparison runs on the ledger
thread inside the write transaction (``BEGIN IMMEDIATE``: another process appending to the same
file, such as ``tokentop import`` beside a feed, waits rather than interleaving), so the stored
record is always the largest ever offered. Each append answers, per event, ``True`` (new),
``False`` (not stored: a duplicate, or smaller than the stored record) or a :class:`Revised`
holding the record it replaced, with the cost that record was stored at.
"""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import logging
import os
import sqlite3
import threading
import time
import typing
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Final, Iterable, Iterator, Sequence, TypeVar

from tokentop import __version__
from tokentop.core.events import EVENT_FIELDS, ROW_FIELDS, Event, event_from_row, event_row
from tokentop.core.pricing import Cost
from tokentop.core.private import PRIVATE_FILE, private_sqlite
from tokentop.core.revision import wins

T = TypeVar("T")
log = logging.getLogger("tokentop.ledger")

# Python's sqlite3 (3.11, 3.12) binds a parameter that is not exactly an int, float, str or bytearray
# through the adapter protocol, and for None, which has no adapter, it looks up ``__adapt__`` and
# ``__conform__`` and formats two AttributeErrors first: measured 3,300 instructions per None, and a
# Claude Code event's row has four (pid, cost_usd, latency_ms, speed), 29 % of the cost of storing it.
# An adapter registered for None (``{}.get``: a C function that answers None) is found in one dict
# lookup; the value bound is still NULL. The registry is the sqlite3 module's, so this holds for every
# connection of the process, with the same NULL for each.
sqlite3.register_adapter(type(None), {}.get)

# -- columns ----------------------------------------------------------------------------------------

_SQL_TYPES: Final = {str: "TEXT", int: "INTEGER", float: "REAL", bool: "INTEGER"}
#: The ledger's own columns after the stored event fields, with their SQL definitions.
_LEDGER_COLUMNS: Final = {
    #: the price the event was accepted at, in pico-dollars (NULL: unpriced)
    "cost_pusd": "INTEGER",
    #: estimated | provided | unpriced
    "cost_kind": "TEXT NOT NULL",
    #: when the feed accepted it (epoch seconds)
    "received_at": "REAL NOT NULL",
    #: Schema version 3. How often the record stored under this id was replaced by a larger one
    #: (0: as first stored); see "Revisable events" above.
    "revisions": "INTEGER NOT NULL DEFAULT 0",
}
#: Columns every append writes and every read returns, in :func:`~tokentop.core.events.event_row` order.
_COLUMNS: Final = ROW_FIELDS


def _literal(value: object) -> str:
    if isinstance(value, bool) or isinstance(value, int):
        return str(int(value))
    if isinstance(value, float):
        return repr(value)
    return "'" + str(value).replace("'", "''") + "'"


def _event_columns() -> dict[str, str]:
    """Each stored event field's column, from its type and default in :class:`Event`: nullable
    for ``X | None`` fields, else ``NOT NULL`` with the field's default (needed to add it to an
    existing table)."""
    hints = typing.get_type_hints(Event)
    defaults = {f.name: f.default for f in dataclasses.fields(Event)}
    out = {}
    for name in EVENT_FIELDS:
        args = typing.get_args(hints[name])
        base = next(a for a in args if a is not type(None)) if args else hints[name]
        sql = _SQL_TYPES[base]
        if type(None) not in args:
            sql += " NOT NULL"
            if defaults[name] is not dataclasses.MISSING:
                sql += f" DEFAULT {_literal(defaults[name])}"
        out[name] = sql
    out["id"] += " UNIQUE"  # one record per id: INSERT OR IGNORE, then the revision rule (see above)
    return out


#: every column of ``events`` at the latest version, with its SQL definition
EVENT_COLUMNS: Final = {**_event_columns(), **_LEDGER_COLUMNS}
if _COLUMNS != tuple(EVENT_COLUMNS)[: len(_COLUMNS)]:
    raise RuntimeError(f"ledger columns {tuple(EVENT_COLUMNS)} do not start with event_row's {_COLUMNS}")


def _create_statements() -> list[str]:
    # A rowid table with a UNIQUE id (not WITHOUT ROWID on the id): rows append in order and only
    # the small id index takes random inserts, which measured about twice as fast for random ids.
    columns = ",\n".join(f"    {name} {sql}" for name, sql in EVENT_COLUMNS.items())
    return [
        f"CREATE TABLE IF NOT EXISTS events (\n{columns}\n)",
        "CREATE INDEX IF NOT EXISTS events_ts ON events(ts)",
        "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    ]


# -- migrations -------------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Migration:
    """One step: upgrades a ledger from ``version - 1`` to ``version`` (inside the caller's transaction)."""

    version: int
    what: str
    run: Callable[[sqlite3.Connection], None]


def _add_columns(*names: str) -> Callable[[sqlite3.Connection], None]:
    """A step that adds ``events`` columns as :data:`EVENT_COLUMNS` defines them (a new event field
    or ledger column is one such step)."""
    def run(conn: sqlite3.Connection) -> None:
        for name in names:
            conn.execute(f"ALTER TABLE events ADD COLUMN {name} {EVENT_COLUMNS[name]}")

    return run


#: Every step after version 1, in order; the last one's version is :data:`SCHEMA_VERSION`.
MIGRATIONS: Final = (
    Migration(2, "events.revision: the emitter's version of a revisable record", _add_columns("revision")),
    Migration(3, "events.speed, events.web_searches (priced beside the tokens), events.revisions (times replaced)",
              _add_columns("speed", "web_searches", "revisions")),
)
SCHEMA_VERSION: Final = 1 + len(MIGRATIONS)
if [m.version for m in MIGRATIONS] != list(range(2, SCHEMA_VERSION + 1)):
    raise RuntimeError("MIGRATIONS must upgrade one version at a time, from 2 up")


@dataclass(frozen=True, slots=True)
class Upgrade:
    """What :func:`migrate` did to an older ledger."""

    from_version: int
    to_version: int
    #: the copy of the file as it was (``None`` for an in-memory ledger)
    backup: str | None


def schema_version(conn: sqlite3.Connection) -> int | None:
    """The ledger's schema version; ``None`` for a file with no ``events`` table yet (a new ledger)."""
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    if "events" not in tables:
        return None
    row = None
    if "meta" in tables:
        row = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
    if row is None:
        return 1  # 0.1.0 wrote the version right after creating the tables
    try:
        version = int(row[0])
    except ValueError:
        version = 0
    if version < 1:
        raise LedgerError(f"the ledger's meta table holds an unreadable schema_version {row[0]!r}")
    return version


def _refuse_newer(version: int | None, path: str) -> None:
    if version is not None and version > SCHEMA_VERSION:
        raise LedgerError(
            f"the ledger at {path} was written by a newer tokentop (ledger schema version {version}; "
            f"tokentop {__version__} reads versions up to {SCHEMA_VERSION}): upgrade tokentop, or point "
            f"[ledger] path at another file. The ledger was not changed.")


def migrate(conn: sqlite3.Connection, path: str) -> Upgrade | None:
    """Bring the ledger at ``path`` (open on ``conn``, in autocommit mode) to :data:`SCHEMA_VERSION`.

    Returns what was upgraded, or ``None`` when the file was new or current. Raises
    :class:`LedgerError` for a ledger of a newer tokentop, and when a step fails (the file is then
    as it was, and the error names the backup)."""
    version = schema_version(conn)
    if version == SCHEMA_VERSION:
        return None  # the common case: no write lock taken
    _refuse_newer(version, path)
    conn.execute("BEGIN IMMEDIATE")  # one migrator at a time; it re-reads the version under the lock
    backup: str | None = None
    try:
        version = schema_version(conn)
        _refuse_newer(version, path)
        if version == SCHEMA_VERSION:  # another process migrated it while this one waited for the lock
            conn.execute("COMMIT")
            return None
        if version is None:
            for statement in _create_statements():
                conn.execute(statement)
        else:
            backup = _backup(path, version)
            for step in MIGRATIONS[version - 1 :]:
                try:
                    step.run(conn)
                except sqlite3.Error as exc:
                    raise LedgerError(
                        f"cannot upgrade the ledger at {path} to schema version {step.version} ({step.what}): "
                        f"{exc}. The ledger was not changed" + (f"; a copy is at {backup}" if backup else "")) from exc
        conn.execute("INSERT OR REPLACE INTO meta(key, value) VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    return None if version is None else Upgrade(version, SCHEMA_VERSION, backup)


def _backup(path: str, version: int, now: float | None = None) -> str | None:
    """Copy the ledger to ``<path>.v<version>-backup-<UTC time>`` (never over an existing file).

    Runs while the caller holds the write lock, on a second connection: ``VACUUM INTO`` cannot run
    inside a transaction, and a reader still sees the committed file, WAL included, as one file."""
    if path == ":memory:":
        return None
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(now))
    target = f"{path}.v{version}-backup-{stamp}"
    try:
        for n in itertools.count(2):
            try:
                os.close(os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_FILE))  # a private copy
                break
            except FileExistsError:
                target = f"{path}.v{version}-backup-{stamp}-{n}"
        reader = sqlite3.connect(path, timeout=5.0)
        try:
            reader.execute("VACUUM INTO ?", (target,))
        finally:
            reader.close()
    except (OSError, sqlite3.Error) as exc:
        raise LedgerError(f"cannot back up the ledger at {path} to {target} before upgrading it, so it was not "
                          f"upgraded: {exc}") from exc
    return target


# -- appends ----------------------------------------------------------------------------------------

#: Rows per multi-row INSERT (23 columns x 32 rows = 736 parameters: under 999, the limit of SQLite
#: builds before 3.32).
#: Python's sqlite3 releases and retakes the GIL around every statement step; one step per row let
#: the feed's event loop and the ledger thread hand the GIL back and forth per event.
INSERT_CHUNK_ROWS: Final = 32
if INSERT_CHUNK_ROWS * len(_COLUMNS) > 999:
    raise RuntimeError(f"INSERT_CHUNK_ROWS x {len(_COLUMNS)} columns is over SQLite's 999 parameters")
_ROW_PLACEHOLDERS: Final = f"({', '.join('?' * len(_COLUMNS))})"


def _insert_sql(n: int) -> str:
    return f"INSERT OR IGNORE INTO events ({', '.join(_COLUMNS)}) VALUES {', '.join([_ROW_PLACEHOLDERS] * n)}"


_INSERT_CHUNK: Final = _insert_sql(INSERT_CHUNK_ROWS)


def _store_rows(conn: sqlite3.Connection, events: Sequence[Event] | None,
                rows: Sequence[tuple[Any, ...]]) -> list[Outcome]:
    """Store ``rows`` (the records of ``events``; ``None``: rebuilt from the rows where needed): an
    :data:`Outcome` per row, as if they were offered one at a time in order.

    New ids go in with multi-row ``INSERT OR IGNORE`` statements. A statement that inserted fewer
    rows than it had (``rowcount``; rows that triggers add elsewhere, such as the NATS outbox, are not
    counted) met ids already stored, or an id twice: only its rows are then sorted out, one by one
    (:func:`_sort_out`). Before this, one such row sent the whole batch back to be redone row by row,
    and a cold import, where about 1 % of the ids repeat across files (resumed sessions), paid that
    for nearly every batch."""
    out: list[Outcome] = [True] * len(rows)
    flatten = itertools.chain.from_iterable
    top: int | None = None  # the largest rowid before the current statement (rowids only grow)
    for i in range(0, len(rows), INSERT_CHUNK_ROWS):
        chunk = rows[i : i + INSERT_CHUNK_ROWS]
        if top is None:
            top = conn.execute("SELECT max(rowid) FROM events").fetchone()[0] or 0
        cur = conn.execute(_INSERT_CHUNK if len(chunk) == INSERT_CHUNK_ROWS else _insert_sql(len(chunk)),
                           list(flatten(chunk)))
        inserted = cur.rowcount
        last = cur.lastrowid if inserted else top  # the rowid of the statement's last inserted row
        if inserted != len(chunk):
            _sort_out(conn, events, rows, range(i, i + len(chunk)), top, last, out)
        top = last
    return out


def _sort_out(conn: sqlite3.Connection, events: Sequence[Event] | None, rows: Sequence[tuple[Any, ...]],
              span: range, top: int, last: int, out: list[Outcome]) -> None:
    """The rows ``span`` of one statement that met a stored id: a row whose id's stored row is the
    one this statement inserted (rowid above ``top``, up to ``last``, claimed by the id's first row)
    is new; any other is compared with the stored record, which it replaces when larger."""
    claimed: set[int] = set()
    for j in span:
        row = rows[j]
        found = conn.execute(_SELECT_ONE_ROWID, (row[0],)).fetchone()
        if found is None:  # pragma: no cover - OR IGNORE skipped the row for another constraint
            out[j] = False
            continue
        rowid = found[0]
        if top < rowid <= last and rowid not in claimed:
            claimed.add(rowid)
            continue  # inserted by this statement: new
        stored = _stored(found[1:])
        event = events[j] if events is not None else event_from_row(row)
        if wins(event, stored.event):
            conn.execute(_UPDATE, (*row[1:], row[0]))
            out[j] = Revised(stored)
        else:
            out[j] = False


class LedgerError(RuntimeError):
    """The ledger cannot be opened or written (path, permissions, corruption)."""


@dataclass(frozen=True, slots=True)
class Stored:
    """An event as read back from the ledger, with the cost it was accepted at."""

    event: Event
    cost: Cost
    received_at: float
    #: how often the record stored under this id was replaced by a larger one
    revisions: int = 0


@dataclass(frozen=True, slots=True)
class Revised:
    """An append's outcome for a record that replaced the stored one (see "Revisable events")."""

    #: the record it replaced, with the cost that record was stored at
    previous: Stored


#: Per appended event: ``True`` new, ``False`` not stored (a duplicate, or no larger than the
#: stored record), :class:`Revised` when it replaced the stored record.
Outcome = bool | Revised

#: Columns every read returns: an append's columns, then the revision counter.
_READ_COLUMNS: Final = (*_COLUMNS, "revisions")
_N_EVENT: Final = len(EVENT_FIELDS)
_SELECT_ONE: Final = f"SELECT {', '.join(_READ_COLUMNS)} FROM events WHERE id = ?"
_SELECT_ONE_ROWID: Final = f"SELECT rowid, {', '.join(_READ_COLUMNS)} FROM events WHERE id = ?"
_UPDATE: Final = (f"UPDATE events SET {', '.join(f'{c} = ?' for c in _COLUMNS[1:])}, revisions = revisions + 1 "
                  f"WHERE id = ?")


def _stored(r: Sequence[Any]) -> Stored:
    return Stored(event_from_row(r), Cost(r[_N_EVENT], r[_N_EVENT + 1]), r[_N_EVENT + 2], r[_N_EVENT + 3])


class Ledger:
    """SQLite event store. ``path=":memory:"`` gives a private in-memory ledger (tests, ``--no-ledger``)."""

    def __init__(self, path: str | Path, *, retention_days: float = 0.0) -> None:
        self.path = str(path)
        self.retention_days = retention_days
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="tokentop-ledger")
        self._conn: sqlite3.Connection | None = None
        self._closed = False
        #: queued appends: (events, or None when only rows were given; their rows; the caller's future)
        self._pending: list[tuple[Sequence[Event] | None, Sequence[tuple[Any, ...]], Future[list[Outcome]]]] = []
        self._pending_lock = threading.Lock()
        #: what opening did to an older ledger (``None``: it was new or current)
        self.upgrade: Upgrade | None = None
        try:
            self._pool.submit(self._open).result()
        except LedgerError:
            self._pool.shutdown(wait=False)
            raise
        except sqlite3.Error as exc:
            self._pool.shutdown(wait=False)
            raise LedgerError(f"cannot open the ledger at {self.path}: {exc}") from exc
        if self.upgrade is not None:
            u = self.upgrade
            log.warning("upgraded the ledger %s from schema version %d to %d; the file as it was is kept at %s",
                        self.path, u.from_version, u.to_version, u.backup)

    # -- thread-side ---------------------------------------------------------------------------
    def _open(self) -> None:
        if self.path != ":memory:":
            private_sqlite(Path(self.path))  # 0600 file (and -wal/-shm), 0700 dir: core/private.py
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        try:
            conn.execute("PRAGMA busy_timeout=5000")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("PRAGMA cache_size=-65536")  # 64 MiB: keeps the id index hot during big imports
            # first, before anything else reads or writes (and before journal_mode, which is kept in
            # the file: a ledger of a newer tokentop is refused untouched)
            self.upgrade = migrate(conn, self.path)
            conn.execute("PRAGMA journal_mode=WAL")
        except BaseException:
            conn.close()
            raise
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
            # IMMEDIATE: the write lock from the start, so no other process (``tokentop import`` beside a
            # feed) can commit between reading a stored record and replacing it
            conn.execute("BEGIN IMMEDIATE")
            results: list[list[Outcome]] = []
            for events, rows, _ in batch:
                results.append(_store_rows(conn, events, rows))
            conn.execute("COMMIT")
        except Exception as exc:  # not only sqlite3.Error: a value SQLite cannot bind must not strand the batch's waiters
            try:
                conn.execute("ROLLBACK")
            except sqlite3.Error:
                pass
            err = LedgerError(f"ledger write failed: {exc}")
            for *_, fut in batch:
                fut.set_exception(err)
            return
        for (*_, fut), outcomes in zip(batch, results):
            fut.set_result(outcomes)

    # -- public --------------------------------------------------------------------------------
    def call(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``fn(conn)`` on the ledger thread and return its result (blocking)."""
        return self._pool.submit(fn, self.conn).result()

    async def call_async(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        return await asyncio.wrap_future(self._pool.submit(fn, self.conn))

    def ensure_schema(self, ddl: str) -> None:
        """Create a module's own tables (``CREATE TABLE IF NOT EXISTS ...`` script)."""
        self.call(lambda c: c.executescript(ddl))

    def submit(self, items: Iterable[tuple[Event, Cost]], received_at: float | None = None) -> Future[list[Outcome]]:
        """Queue events for the next group commit. The future gives an :data:`Outcome` per event."""
        if self._closed:
            raise LedgerError("the ledger is closed")
        now = time.time() if received_at is None else received_at
        pairs = items if isinstance(items, list) else list(items)
        events = [e for e, _ in pairs]
        rows = [event_row(e, c, now) for e, c in pairs]
        fut: Future[list[Outcome]] = Future()
        with self._pending_lock:
            self._pending.append((events, rows, fut))
        self._pool.submit(self._flush)
        return fut

    def submit_rows(self, rows: Sequence[tuple[Any, ...]]) -> Future[list[Outcome]]:
        """:meth:`submit` for events already priced and spelled as ledger rows
        (:func:`~tokentop.core.events.event_row`, e.g. by a backfill worker process): this thread only
        stores them. The events are rebuilt from the rows only if some of their ids are stored already."""
        if self._closed:
            raise LedgerError("the ledger is closed")
        fut: Future[list[Outcome]] = Future()
        with self._pending_lock:
            self._pending.append((None, rows, fut))
        self._pool.submit(self._flush)
        return fut

    def append(self, items: Iterable[tuple[Event, Cost]], received_at: float | None = None) -> list[Outcome]:
        """Store events durably (committed when this returns); an :data:`Outcome` per event."""
        return self.submit(items, received_at).result()

    async def append_async(self, items: Iterable[tuple[Event, Cost]], received_at: float | None = None) -> list[Outcome]:
        return await asyncio.wrap_future(self.submit(items, received_at))

    def get(self, event_id: str) -> Stored | None:
        """The record stored under ``event_id``, if any."""
        row = self.call(lambda c: c.execute(_SELECT_ONE, (event_id,)).fetchone())
        return None if row is None else _stored(row)

    def events_since(self, ts: float, until: float | None = None, batch: int = 5000) -> Iterator[Stored]:
        """Stored events with ``ts >= since`` (and ``< until``), in time order, streamed in batches."""
        last_ts, last_id = ts, ""
        first = True
        while True:
            def run(conn: sqlite3.Connection, lt: float = last_ts, li: str = last_id, f: bool = first) -> list[Any]:
                if f:
                    q = f"SELECT {', '.join(_READ_COLUMNS)} FROM events WHERE ts >= ?"
                    args: list[Any] = [lt]
                else:
                    q = f"SELECT {', '.join(_READ_COLUMNS)} FROM events WHERE (ts > ? OR (ts = ? AND id > ?))"
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

    def count(self) -> int:
        return self.call(lambda c: c.execute("SELECT COUNT(*) FROM events").fetchone()[0])

    def prune(self, now: float) -> int:
        """Delete events older than ``retention_days`` (nothing when it is 0, the default: the ledger
        keeps everything). Returns how many were removed. A feed prunes through
        :func:`tokentop.core.retention.apply_retention`, which also reports it."""
        if self.retention_days <= 0:
            return 0
        return self.prune_before(now - self.retention_days * 86400.0)

    def prune_before(self, cut: float) -> int:
        """Delete the events dated before ``cut`` (epoch seconds). Returns how many were removed."""
        return self.call(lambda c: c.execute("DELETE FROM events WHERE ts < ?", (cut,)).rowcount)

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
