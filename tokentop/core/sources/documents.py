"""Whole-document stores: one JSON file per session or thread, rewritten in place on every update.

Some agents keep a session as one JSON document and rewrite the whole file when anything changes
(an older release's session files, a thread file). Such a file cannot be tailed: a byte offset means
nothing once the writer rewrites it, and records earlier in it change (tokens attached to the last
message, tool results merged in). :class:`DocumentSource` reads these stores for a format that
declares them with :class:`Documents` (a :class:`~tokentop.core.sources.protocol.StoreFormat`'s
source, or a :class:`~tokentop.core.sources.protocol.LogFormat`'s ``companion``):

* A file is read whole when its size, mtime or inode changed since it was last read (a cursor per
  file in the ledger table ``document_cursors``, so a restart does not re-read unchanged files).
* Its records become events with the ids the format gives them; an event is handed on the first
  time it is seen and again whenever its token total grows (the feed keeps one event per id and
  takes a later, larger revision), never held back. What was handed per file is remembered in
  memory for files written to within :data:`HOT_S` (a restart forgets it: the feed then answers the
  re-sent ids as duplicates).
* A document that does not parse while it was written to within :data:`SETTLE_S` is being rewritten
  right now: it is read again a moment later (``pending``), not counted. One that stays unreadable is
  counted (``unreadable_documents``) and read again only when it changes.
* Documents larger than :data:`MAX_DOCUMENT_BYTES` are skipped and counted (``documents_too_large``).
* The backfill window applies as for log files: files untouched since before it are not opened,
  events older than it are dropped.

Knows no agent: the declaration says where the files are and how one is turned into events.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Final

from tokentop.core.events import Event
from tokentop.core.sources.protocol import Found, Progress, Sink, SourceContext, Stats, walk

if TYPE_CHECKING:
    from tokentop.core.ledger import Ledger

log = logging.getLogger("tokentop.sources")

CURSOR_DDL: Final = """
CREATE TABLE IF NOT EXISTS document_cursors (
    path TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    inode INTEGER NOT NULL,
    size INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL,
    updated_at REAL NOT NULL
) WITHOUT ROWID;
"""

#: A document bigger than this is not read (counted as ``documents_too_large``).
MAX_DOCUMENT_BYTES: Final = 256 * 1024 * 1024
#: A document that fails to parse within this many seconds of its last write is being rewritten:
#: it is read again shortly instead of being counted as unreadable.
SETTLE_S: Final = 5.0
#: Files written to within this many seconds are stat'ed by ``poll_recent`` and keep their memory
#: of what was handed.
HOT_S: Final = 3600.0

#: ``parse(content, path, host, counters)`` → the document's events. Raises ``ValueError`` (e.g.
#: :class:`Unreadable`) for a document that cannot be read as a whole (not JSON, not the expected
#: shape); a record inside it that cannot be read is skipped and counted in ``counters`` (the
#: source's ``stats.counters``, e.g. ``"malformed"``).
Parse = Callable[[bytes, str, "str | None", "dict[str, int]"], list[Event]]


class Unreadable(ValueError):
    """A document that cannot be turned into events as a whole."""


@dataclass(frozen=True, eq=False)
class Documents:
    """Where a format's whole-document files are and how one becomes events. Module-level
    functions only (the declaration travels to the backfill worker with the settings)."""

    #: the cursor kind, and what the counters are filed under (the format's name)
    kind: str
    #: file names read: this suffix ...
    suffix: str
    #: ... and this prefix
    prefix: str = ""
    #: keeps only these paths among the files whose names match
    accept: Callable[[str], bool] | None = None
    #: turns one document into events
    parse: Parse | None = None

    def matches(self, path: str) -> bool:
        name = path.rsplit(os.sep, 1)[-1]
        if not (name.endswith(self.suffix) and name.startswith(self.prefix)):
            return False
        return self.accept is None or self.accept(path)


@dataclass(slots=True)
class _Cursor:
    inode: int
    size: int
    mtime_ns: int


def _total(e: Event) -> int:
    return e.input_tokens + e.output_tokens


class DocumentSource:
    """A :class:`~tokentop.core.sources.protocol.Source` over one format's whole-document files."""

    def __init__(self, ctx: SourceContext, spec: Documents) -> None:
        if spec.parse is None:
            raise ValueError(f"{spec.kind}: a Documents declaration needs parse")
        self.ctx = ctx
        self.spec = spec
        self.parse: Parse = spec.parse
        self.stats = Stats()
        self.ledger: Ledger | None = ctx.ledger
        self.cursors: dict[str, _Cursor] = {}
        #: per file: event id → token total handed (files written to within HOT_S)
        self.handed: dict[str, dict[str, int]] = {}
        #: files seen mid-rewrite, read again by :meth:`poll_tick`
        self.retry: set[str] = set()
        #: files modified within HOT_S at the last full poll
        self.hot: list[str] = []
        self._dirty: dict[str, _Cursor | None] = {}
        self._roots = [str(r).rstrip(os.sep) + os.sep for r in ctx.roots]
        if self.ledger is not None:
            self.ledger.ensure_schema(CURSOR_DDL)
            rows = self.ledger.call(lambda c: c.execute(
                "SELECT path, inode, size, mtime_ns FROM document_cursors WHERE kind = ?", (spec.kind,)).fetchall())
            self.cursors = {p: _Cursor(i, s, m) for p, i, s, m in rows}

    # -- protocol.Source ----------------------------------------------------------------------------
    def watch_dirs(self) -> list[Path]:
        return list(self.ctx.roots)

    def poll(self, sink: Sink, *, progress: Progress | None = None) -> int:
        found = self._discover()
        now = self.ctx.clock()
        present = {p for p, _ in found}
        for path in [p for p in self.cursors if p not in present]:
            del self.cursors[path]
            self._dirty[path] = None
        for path in [p for p in self.handed if p not in present]:
            del self.handed[path]
        self.retry &= present
        self.hot = [p for p, st in found if st.st_mtime > now - HOT_S]
        hot = set(self.hot)
        for path in [p for p in self.handed if p not in hot]:
            del self.handed[path]  # a cold file's memory goes; a later change re-sends its ids once
        self.stats.files = max(self.stats.files, len(found))
        return self._read_all(found, sink, progress, now)

    def poll_changed(self, sink: Sink, paths: set[str]) -> int:
        mine = [p for p in paths if self._owns(p)]
        return self._read_paths(mine, sink) if mine else 0

    def poll_recent(self, sink: Sink) -> int:
        return self._read_paths(self.hot, sink) if self.hot else 0

    def poll_tick(self, sink: Sink) -> int:
        # a file caught mid-rewrite is read again on the next tick (a quarter second), not on the
        # next change, which may never come
        return self._read_paths(sorted(self.retry), sink) if self.retry else 0

    # -- internals ----------------------------------------------------------------------------------
    def _owns(self, path: str) -> bool:
        return any(path.startswith(r) for r in self._roots) and self.spec.matches(path)

    def _discover(self) -> list[Found]:
        found: list[Found] = []
        seen: set[str] = set()
        for root in self.ctx.roots:
            got: list[Found] = []
            walk(str(root), (self.spec.suffix,), self.spec.prefix, got)
            for path, st in got:
                if path not in seen and (self.spec.accept is None or self.spec.accept(path)):
                    seen.add(path)
                    found.append((path, st))
        found.sort()
        return found

    def _read_paths(self, paths: list[str], sink: Sink) -> int:
        found: list[Found] = []
        for path in paths:
            try:
                found.append((path, os.stat(path)))
            except OSError:
                self.retry.discard(path)
                self.handed.pop(path, None)
                if self.cursors.pop(path, None) is not None:
                    self._dirty[path] = None
        if path_list := [p for p, _ in found]:
            hot = set(self.hot)
            self.hot += [p for p in path_list if p not in hot]
        return self._read_all(found, sink, None, self.ctx.clock())

    def _read_all(self, found: list[Found], sink: Sink, progress: Progress | None, now: float) -> int:
        cutoff = now - self.ctx.backfill_days * 86400.0
        todo = []
        for path, st in found:
            cur = self.cursors.get(path)
            if cur is not None and path not in self.retry and (cur.inode, cur.size, cur.mtime_ns) == (
                    st.st_ino, st.st_size, st.st_mtime_ns):
                continue
            if cur is None and st.st_mtime < cutoff:
                continue  # nothing in it can be inside the backfill window
            todo.append((path, st))
        total = sum(st.st_size for _, st in todo)
        done = handed = 0
        batch: list[Event] = []
        for path, st in todo:
            batch.extend(self._read(path, st, now, cutoff))
            done += st.st_size
            if len(batch) >= self.ctx.batch_events:
                sink(batch)
                handed += len(batch)
                batch = []
                self._commit()
            if progress:
                progress(done, total)
        if batch:
            sink(batch)
            handed += len(batch)
        self._commit()
        if progress:
            progress(total, total)
        return handed

    def _read(self, path: str, st: os.stat_result, now: float, cutoff: float) -> list[Event]:
        counters = self.stats.counters
        if st.st_size > MAX_DOCUMENT_BYTES:
            counters["documents_too_large"] = counters.get("documents_too_large", 0) + 1
            log.warning("%s: %d bytes, over the %d-byte limit for a document; not read", path, st.st_size,
                        MAX_DOCUMENT_BYTES)
            self._set_cursor(path, st)
            return []
        try:
            with open(path, "rb") as fh:
                data = fh.read()
        except OSError as exc:
            counters["unreadable_files"] = counters.get("unreadable_files", 0) + 1
            log.warning("cannot read %s: %s", path, exc)
            return []
        self.stats.files_read += 1
        self.stats.bytes_read += len(data)
        try:
            events = self.parse(data, path, self.ctx.host, counters)
        except ValueError as exc:
            if now - st.st_mtime < SETTLE_S or len(data) != st.st_size:
                self.retry.add(path)  # caught mid-rewrite: read it again in a moment
                return []
            self.retry.discard(path)
            counters["unreadable_documents"] = counters.get("unreadable_documents", 0) + 1
            log.warning("%s: cannot read the document: %s", path, exc)
            self._set_cursor(path, st)
            return []
        self.retry.discard(path)
        self.stats.lines += 1
        kept = [e for e in events if e.ts >= cutoff]
        self.stats.too_old += len(events) - len(kept)
        best: dict[str, Event] = {}
        for e in kept:  # the same record twice in one document: the larger wins (a tie: the later)
            prev = best.get(e.id)
            if prev is None or _total(e) >= _total(prev):
                best[e.id] = e
        memo = self.handed.setdefault(path, {})
        out = []
        for event_id, e in best.items():
            t = _total(e)
            if t > memo.get(event_id, -1):
                out.append(e)
                memo[event_id] = t
        self.stats.events += len(out)
        self._set_cursor(path, st)
        return out

    def _set_cursor(self, path: str, st: os.stat_result) -> None:
        cur = _Cursor(st.st_ino, st.st_size, st.st_mtime_ns)
        self.cursors[path] = cur
        self._dirty[path] = cur

    def _commit(self) -> None:
        dirty, self._dirty = self._dirty, {}
        if not dirty or self.ledger is None:
            return
        now = time.time()
        upserts = [(p, self.spec.kind, c.inode, c.size, c.mtime_ns, now) for p, c in dirty.items() if c is not None]
        deletes = [(p,) for p, c in dirty.items() if c is None]

        def run(conn: sqlite3.Connection) -> None:
            with conn:
                if upserts:
                    conn.executemany("INSERT OR REPLACE INTO document_cursors VALUES (?, ?, ?, ?, ?, ?)", upserts)
                if deletes:
                    conn.executemany("DELETE FROM document_cursors WHERE path = ?", deletes)

        self.ledger.call(run)
