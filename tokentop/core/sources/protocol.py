"""What a source declares, and what the live loop and ``tokentop import`` drive (docs/sources.md).

An agent's store is read by one module under ``core/sources/`` that exports ``FORMAT``, listed once
in :data:`tokentop.core.sources.formats.FORMATS`. A format is one of two kinds:

* :class:`LogFormat` — append-only line files (JSONL). The module declares where the files are
  (roots, with their environment overrides and config keys), which names to read, how they are
  ordered and grouped, and a per-file :class:`FileReader`. The shared tailer
  (:class:`tokentop.core.sources.tailer.LogSources`) does all the file work: discovery, cursors in
  the ledger, partial last lines, rotation, parallel backfill.
* :class:`StoreFormat` — anything else (a SQLite database read read-only, whole-JSON files rewritten
  in place): the module builds its own :class:`Source`, which is driven exactly like the tailer.

Nothing outside the format modules and ``formats.py`` names an agent.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Final, Mapping, Protocol, Sequence, Union

from tokentop.core.events import Event
from tokentop.core.setting import Setting

if TYPE_CHECKING:
    from tokentop.core.ledger import Ledger

#: Receives events in batches: the feed's ingest, or the ledger directly for ``tokentop import``.
Sink = Callable[[list[Event]], object]
#: ``progress(done, total)`` in bytes (or any unit the source counts its backlog in).
Progress = Callable[[int, int], None]
#: A file found under a root: its path (a plain string: a restart compares thousands) and its stat.
Found = tuple[str, os.stat_result]
#: How often the live loop calls :meth:`Source.poll_tick` (seconds): a record a running agent writes
#: to a store the watcher does not follow is read within this.
TICK_S: Final = 0.25
#: ``roots(values, env)``: the format's config values (``{key: value}`` for its ``config_keys``)
#: and the environment → the directories its files live under, existing or not, in priority order.
RootsResolver = Callable[[Mapping[str, Any], Mapping[str, str]], tuple[Path, ...]]


# -- per-file readers -------------------------------------------------------------------------------

class FileReader(Protocol):
    """One file's parser state. The tailer hands it every complete line, in order, with its offset,
    and calls :meth:`flush` at the end of every read. A reader holds nothing back between reads: a
    record that a later line makes fuller is emitted again then (the feed keeps the largest record
    per id, see ``docs/events.md``)."""

    @property
    def prefilter(self) -> bytes | None:
        """Lines not containing these bytes are never handed to :meth:`feed` (``None``: every line)."""

    def feed(self, raw: bytes, offset: int, live: bool, now: float, out: list[Event], stats: dict[str, int]) -> None:
        """Parse one line (without its newline) starting at byte ``offset``; append events to ``out``
        (or keep them for :meth:`flush`), count problems in ``stats``. ``live``: the file is being
        written (modified within the last 30 s); ``now``: the time of the read."""

    def flush(self, out: list[Event], stats: dict[str, int]) -> None:
        """The read is over: append what was kept back during it (e.g. the largest line of each
        response read) to ``out``."""

    def state(self) -> dict[str, Any] | None:
        """JSON-able state saved with the cursor (``None``: nothing to keep)."""


class LineReader:
    """A :class:`FileReader` that emits each line's events as it reads them: subclass it and write
    :meth:`feed`."""

    prefilter: bytes | None = None

    def __init__(self, path: Path, host: str | None, shared: object = None, state: dict[str, Any] | None = None) -> None:
        self.path = path
        self.host = host

    def feed(self, raw: bytes, offset: int, live: bool, now: float, out: list[Event], stats: dict[str, int]) -> None:
        raise NotImplementedError

    def flush(self, out: list[Event], stats: dict[str, int]) -> None:
        return None

    def state(self) -> dict[str, Any] | None:
        return None


#: ``reader(path, host, shared, state)``: a reader for one file, resuming from a saved ``state``.
ReaderFactory = Callable[[Path, "str | None", Any, "dict[str, Any] | None"], FileReader]


class SharedState(Protocol):
    """State one format shares across its files (Claude Code: message ids seen in every file).
    A worker process's copy is exported and merged back after a parallel backfill."""

    def export(self) -> Any: ...

    def merge(self, exported: Any) -> None: ...


def walk(root: str, suffixes: tuple[str, ...], prefix: str, out: list[Found]) -> None:
    """Every file under ``root`` (recursively, symlinked dirs not followed) whose name starts with
    ``prefix`` and ends with one of ``suffixes``. A missing or unreadable dir adds nothing."""
    try:
        it = os.scandir(root)
    except OSError:
        return
    with it:
        for entry in it:
            try:
                if entry.is_dir(follow_symlinks=False):
                    walk(entry.path, suffixes, prefix, out)
                elif entry.name.endswith(suffixes) and entry.name.startswith(prefix):
                    out.append((entry.path, entry.stat()))
            except OSError:
                continue


# -- the two kinds of format ------------------------------------------------------------------------

@dataclass(frozen=True, eq=False)
class LogFormat:
    """An agent whose store is append-only line files, read by the shared tailer.

    Every callable must be a module-level function or class: the declaration is pickled to the
    backfill worker process.
    """

    #: the ``sources.enabled`` name ("claude-code"); also the ``kind`` of its files' cursors
    name: str
    #: resolves the roots from this format's config values and the environment
    roots: RootsResolver
    #: builds the per-file parser
    reader: ReaderFactory
    #: the format's own ``[sources]`` config keys (root overrides), merged into the section
    config_keys: Mapping[str, Setting] = field(default_factory=dict)
    #: file names read: any of these suffixes ...
    suffixes: tuple[str, ...] = (".jsonl",)
    #: ... and this prefix
    prefix: str = ""
    #: the directories under each root that hold the files, scanned and watched in this order
    #: (``""``: the root itself)
    subdirs: tuple[str, ...] = ("",)
    #: chooses the files to read among those found under one root (one list per subdir, in
    #: ``subdirs`` order), e.g. to drop a copy of a file kept elsewhere; default: all of them
    pick: Callable[[list[list[Found]]], list[Found]] | None = None
    #: true for files read after the format's other files (a file whose rules need another read first)
    later: Callable[[str], bool] | None = None
    #: ``group(path, roots)``: files with the same key go to the same backfill worker job and are
    #: read in order there; default: the file's directory
    group: Callable[[str, Sequence[Path]], str] | None = None
    #: files read whole rather than tailed, by suffix: ``(suffix, load)`` where ``load(path)`` returns
    #: the whole (e.g. decompressed) content; offsets then count content bytes. For files written
    #: once (compressed archives); a changed one is read again from its cursor.
    whole: tuple[tuple[str, Callable[[str], bytes]], ...] = ()
    #: builds the state the format's readers share (passed to ``reader`` as ``shared``)
    shared: Callable[[], SharedState] | None = None
    #: keeps only these paths among the files whose names match (e.g. files under a ``chats/`` dir,
    #: where the agent writes other JSONL files beside them); applied to discovery and to a watcher's
    #: reports alike
    accept: Callable[[str], bool] | None = None
    #: a source for the same agent's files that are not appended lines (e.g. an older release's
    #: whole-JSON sessions, rewritten in place), built from the same roots and driven beside the
    #: tailer; it is on and off with the format
    companion: Callable[[SourceContext], Source] | None = None

    def find(self, root: Path) -> list[Found]:
        """The files to read under one root. A root that is a file (an agent told to write one
        file, e.g. an OpenTelemetry export path) is that file, whatever its name."""
        try:
            st = os.stat(root)
        except OSError:
            return []
        if not stat.S_ISDIR(st.st_mode):
            return [(str(root), st)] if stat.S_ISREG(st.st_mode) else []
        per_dir: list[list[Found]] = []
        for sub in self.subdirs:
            got: list[Found] = []
            walk(str(root / sub) if sub else str(root), self.suffixes, self.prefix, got)
            if self.accept is not None:
                got = [f for f in got if self.accept(f[0])]
            per_dir.append(got)
        if self.pick is not None:
            return self.pick(per_dir)
        return [f for got in per_dir for f in got]

    def dirs(self, roots: Sequence[Path]) -> list[Path]:
        """The directories holding this format's files (what a watcher follows); a root that is a
        file is followed as that file."""
        out: list[Path] = []
        for root in roots:
            if root.is_file():
                out.append(root)
            else:
                out.extend(root / sub if sub else root for sub in self.subdirs)
        return out

    def matches(self, name: str, path: str | None = None) -> bool:
        """Whether a file named ``name`` (at ``path``, when known) is one of this format's."""
        if not (name.endswith(self.suffixes) and name.startswith(self.prefix)):
            return False
        return self.accept is None or path is None or self.accept(path)

    def loader(self, path: str) -> Callable[[str], bytes] | None:
        """How to read ``path`` whole, or ``None`` to tail it."""
        for suffix, load in self.whole:
            if path.endswith(suffix):
                return load
        return None


@dataclass
class Stats:
    """What a source read; ``counters`` holds named problems and rule hits ("malformed", ...).

    Most fields count since the source started; ``files_too_old``, ``partial`` and ``unreadable``
    describe the files as they are now (a file that became readable, or whose last line was
    completed, leaves them)."""

    files: int = 0
    files_read: int = 0
    bytes_read: int = 0
    lines: int = 0
    events: int = 0
    #: events left out because they are older than the backfill window
    too_old: int = 0
    #: files not opened at the last full scan: last written before the backfill window began
    files_too_old: int = 0
    #: files ending in a line without its newline (still being written): path -> bytes left unread
    partial: dict[str, int] = field(default_factory=dict)
    #: files that could not be read (permissions, a corrupt archive): path -> why
    unreadable: dict[str, str] = field(default_factory=dict)
    counters: dict[str, int] = field(default_factory=dict)

    def add(self, other: Stats) -> None:
        self.files += other.files
        for name in ("files_read", "bytes_read", "lines", "events", "too_old", "files_too_old"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.partial.update(other.partial)
        self.unreadable.update(other.unreadable)
        for k, v in other.counters.items():
            self.counters[k] = self.counters.get(k, 0) + v

    def to_json(self) -> dict[str, Any]:
        return {"files": self.files, "files_read": self.files_read, "bytes_read": self.bytes_read, "lines": self.lines,
                "events": self.events, "too_old": self.too_old, "files_too_old": self.files_too_old,
                "partial_lines": len(self.partial), "unreadable_files": len(self.unreadable), **self.counters}


class Source(Protocol):
    """A running reader of one or more stores, driven by the live loop and ``tokentop import``.

    :class:`tokentop.core.sources.tailer.LogSources` is one (every :class:`LogFormat` at once); a
    :class:`StoreFormat` builds another. Every method runs on the sources thread and may block on
    file or database work; none may hold a lock on the agent's store between calls.
    """

    stats: Stats

    def poll(self, sink: Sink, *, progress: Progress | None = None) -> int:
        """Find everything (new files, rows, stores) and read what is new since the last call; a
        backfill on the first call. Returns the number of events handed to ``sink``."""

    def poll_changed(self, sink: Sink, paths: set[str]) -> int:
        """The watcher saw ``paths`` change (any paths under any watched dir): read what is new."""

    def poll_recent(self, sink: Sink) -> int:
        """Polling mode, between two full :meth:`poll` calls: cheaply read what recently active
        stores added."""

    def poll_tick(self, sink: Sink) -> int:
        """Called about every :data:`TICK_S` in every mode (watching, polling, waiting): cheap
        checks of stores no file watcher can follow without cost, e.g. a SQLite database whose
        directory also holds thousands of other files (the ``-wal`` file's size and mtime). A
        source whose files the watcher reports does nothing here."""

    def watch_dirs(self) -> list[Path]:
        """Directories whose changes should trigger :meth:`poll_changed` (existing or not)."""


@dataclass(frozen=True, eq=False)
class SourceContext:
    """What a :class:`StoreFormat` gets to build its :class:`Source`."""

    #: where it keeps its cursors (``None``: nothing is persisted, e.g. a worker process)
    ledger: Ledger | None
    #: its roots, resolved from config and environment
    roots: tuple[Path, ...]
    backfill_days: float
    host: str | None
    clock: Callable[[], float]
    #: events handed to the sink at a time
    batch_events: int


@dataclass(frozen=True, eq=False)
class StoreFormat:
    """An agent whose store is not append-only lines: the module reads it with its own :class:`Source`
    (e.g. a SQLite database opened read-only, new rows found by ``rowid``/``time_updated``)."""

    name: str
    roots: RootsResolver
    #: builds the running source
    source: Callable[[SourceContext], Source]
    config_keys: Mapping[str, Setting] = field(default_factory=dict)


Format = Union[LogFormat, StoreFormat]
