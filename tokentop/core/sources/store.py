"""What :class:`~tokentop.core.sources.protocol.StoreFormat` sources share: their cursors in the
ledger, and reading another program's SQLite database without disturbing it.

**Cursors.** A store source keeps one JSON state per store (a database file, a directory of JSON
files) in the ledger table ``store_cursors``, keyed by the source's name and the store's path. Like
the tailer's cursors they are committed only after the events read before them were handed to the
sink (the ledger's one thread runs them after the batches queued earlier), so a crash re-reads,
never loses; event ids make the re-read harmless.

**SQLite, read-only.** An agent's database is opened for each read and closed after it, never kept
open between reads, and never written:

* While the agent runs, its WAL database has ``-wal`` and ``-shm`` files beside it; the database is
  opened ``mode=ro`` and reads see the WAL (the agent's latest commits).
* When the agent has exited, SQLite has checkpointed the WAL and deleted both files. A ``mode=ro``
  open would then *create* new ``-wal``/``-shm`` files beside the user's database (and leave them
  there), so the database is opened ``immutable=1`` instead: no lock, no side file, the main file
  read as it is (complete, since the WAL was checkpointed).
* ``-wal`` without ``-shm`` (the agent crashed, or is starting): ``immutable=1`` too (a ``mode=ro``
  open would create the ``-shm``); the WAL's last commits are read once the agent runs again.
* Reads are short statements in autocommit mode (no transaction spans two statements), so the
  agent's checkpoints are never held back for long. A busy or locked database is retried later with
  a growing delay (:class:`Backoff`), never an error.

Known limit: the agent may exit in the microseconds between the check for its ``-wal``/``-shm``
and the ``mode=ro`` open; SQLite then creates the two files (empty), which the agent reuses on its
next start.
"""

from __future__ import annotations

import json
import os
import sqlite3
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Final
from urllib.parse import quote

if TYPE_CHECKING:
    from tokentop.core.ledger import Ledger

STORE_CURSOR_DDL: Final = """
CREATE TABLE IF NOT EXISTS store_cursors (
    source TEXT NOT NULL,
    store TEXT NOT NULL,
    state TEXT NOT NULL,
    updated_at REAL NOT NULL,
    PRIMARY KEY (source, store)
) WITHOUT ROWID;
"""

#: How long one statement waits for a lock before the read is given up and retried later (s).
BUSY_TIMEOUT_S: Final = 0.2
#: Longest delay between two retries of a busy database (s).
MAX_BACKOFF_S: Final = 8.0


class StoreCursors:
    """One source's per-store states, loaded from the ledger once and written back on :meth:`commit`.

    Without a ledger (a worker process, a test) the states live in memory only.
    """

    def __init__(self, ledger: Ledger | None, source: str) -> None:
        self.ledger = ledger
        self.source = source
        self.states: dict[str, dict[str, Any]] = {}
        self._dirty: dict[str, dict[str, Any] | None] = {}
        if ledger is not None:
            ledger.ensure_schema(STORE_CURSOR_DDL)
            rows = ledger.call(lambda c: c.execute(
                "SELECT store, state FROM store_cursors WHERE source = ?", (source,)).fetchall())
            for store, state in rows:
                try:
                    loaded = json.loads(state)
                except ValueError:
                    continue  # unreadable: that store is read again from the start
                if isinstance(loaded, dict):
                    self.states[store] = loaded

    def get(self, store: str) -> dict[str, Any] | None:
        return self.states.get(store)

    def put(self, store: str, state: dict[str, Any]) -> None:
        self.states[store] = state
        self._dirty[store] = state

    def drop(self, store: str) -> None:
        if self.states.pop(store, None) is not None:
            self._dirty[store] = None

    def commit(self, now: float) -> None:
        dirty, self._dirty = self._dirty, {}
        if not dirty or self.ledger is None:
            return
        upserts = [(self.source, k, json.dumps(v, separators=(",", ":")), now) for k, v in dirty.items() if v is not None]
        deletes = [(self.source, k) for k, v in dirty.items() if v is None]

        def run(conn: sqlite3.Connection) -> None:
            with conn:
                if upserts:
                    conn.executemany("INSERT OR REPLACE INTO store_cursors VALUES (?, ?, ?, ?)", upserts)
                if deletes:
                    conn.executemany("DELETE FROM store_cursors WHERE source = ? AND store = ?", deletes)

        self.ledger.call(run)


@dataclass(frozen=True, slots=True)
class DbSignature:
    """What a cheap ``stat`` says about a database: when it changes, something may be new."""

    inode: int
    size: int
    mtime_ns: int
    #: ``(size, mtime_ns)`` of the ``-wal`` file, ``None`` when there is none
    wal: tuple[int, int] | None
    shm: bool

    @property
    def live(self) -> bool:
        """The agent has the database open (both side files exist): read it ``mode=ro``."""
        return self.wal is not None and self.shm


def signature(path: str) -> DbSignature | None:
    """The database's signature, ``None`` when it does not exist (or is not a regular file)."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    if not os.path.isfile(path):
        return None
    try:
        w = os.stat(path + "-wal")
        wal: tuple[int, int] | None = (w.st_size, w.st_mtime_ns)
    except OSError:
        wal = None
    return DbSignature(st.st_ino, st.st_size, st.st_mtime_ns, wal, os.path.exists(path + "-shm"))


class Busy(Exception):
    """The database was locked or busy; read it again later."""


def is_busy(exc: sqlite3.Error) -> bool:
    text = str(exc).lower()
    return "locked" in text or "busy" in text


def open_readonly(path: str, sig: DbSignature) -> sqlite3.Connection:
    """A connection that cannot write ``path`` and creates nothing beside it (see the module
    docstring). Raises :class:`Busy` for a locked database, ``sqlite3.Error`` for anything else."""
    mode = "mode=ro" if sig.live else "mode=ro&immutable=1"
    uri = f"file:{quote(os.path.abspath(path))}?{mode}"
    try:
        conn = sqlite3.connect(uri, uri=True, timeout=BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False)
    except sqlite3.OperationalError as exc:
        if is_busy(exc):
            raise Busy(str(exc)) from None
        raise
    try:
        conn.execute("PRAGMA query_only = 1")
    except sqlite3.Error:
        conn.close()
        raise
    return conn


class Backoff:
    """Retry timing for a busy store: the next try waits twice as long, up to :data:`MAX_BACKOFF_S`."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self.clock = clock
        self.delay = 0.0
        self.not_before = 0.0

    def ready(self) -> bool:
        return self.clock() >= self.not_before

    def failed(self) -> None:
        self.delay = min(MAX_BACKOFF_S, max(0.25, self.delay * 2))
        self.not_before = self.clock() + self.delay

    def ok(self) -> None:
        self.delay = 0.0
        self.not_before = 0.0


def table_columns(conn: sqlite3.Connection) -> dict[str, set[str]]:
    """Every table of the database and its columns (schema sniffing: stores change between versions)."""
    out: dict[str, set[str]] = {}
    for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall():
        cols = conn.execute(f"PRAGMA table_info(\"{name.replace(chr(34), chr(34) * 2)}\")").fetchall()
        out[name] = {c[1] for c in cols}
    return out
