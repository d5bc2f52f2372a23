"""Parallel parsing of a large log backlog: a worker process parses whole groups of files.

On a cold import most of the time goes into JSON parsing and into the ledger's inserts; with
:class:`ParallelBackfill` a worker process (``spawn``) parses the backlog from the files' cursors
while this process stores the events. Results come back per job, in order, between this
process's own batches, so neither side holds more than a few batches of events. A format's
``group`` keeps files that must be read together (Claude Code: a session and its subagents) in
one job, in read order. Files being written and files already open stay in this process (their
readers' state is here).

What comes back: events (the feed's backfill: the feed dedupes, prices and aggregates them), or,
with :class:`PricedRows` (``tokentop import``, which only stores), ledger rows the worker priced
itself: this process then neither rebuilds events nor prices them, and the ledger's inserts, the
critical path of a cold import, are nearly all it does.

No worker outlives the poll that started it: once every job is handed over the pool is shut down
and its processes joined; when the poll fails or is interrupted (Ctrl-C, a feed stopping) the
workers are terminated at once (their results would be dropped anyway) and joined. Workers ignore
SIGINT: a terminal's Ctrl-C reaches the whole process group, and it is this process that decides.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import multiprocessing.context
import os
import signal
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Final, Iterator, Mapping

from tokentop.core.events import Event, event_row, event_tuple
from tokentop.core.sources.protocol import LogFormat, Sink, Stats
from tokentop.core.sources.settings import SourceSettings
from tokentop.core.sources.tailer import ACTIVE_S, LogFile, LogSources, Tally, read_order

if TYPE_CHECKING:
    from tokentop.core.pricing import Pricer, PriceOverride

#: A backlog at least this large (bytes) is parsed by worker processes.
PARALLEL_MIN_BYTES: Final = 32 * 1024 * 1024
#: Share of a parallel backlog's bytes parsed by this process. 0: the worker parses (nearly) all of
#: it while this process prices and stores the events; the ledger's inserts are the critical path.
MAIN_SHARE: Final = 0.0
#: Size of one job handed to a worker process (whole groups; results come back per job).
JOB_BYTES: Final = 24 * 1024 * 1024
#: Jobs per worker submitted ahead of the hand-over (one running, the rest waiting or done).
JOBS_AHEAD: Final = 3

Files = list[tuple[LogFile, os.stat_result]]
#: what a worker sends back: event tuples (or priced ledger rows), cursors, stats, each format's
#: shared-state export
ShareResult = tuple[list[tuple[Any, ...]], dict[str, tuple[Any, ...]], Stats, dict[str, Any]]


@dataclass(frozen=True)
class PricedRows:
    """Workers hand back priced ledger rows (:func:`~tokentop.core.events.event_row`), given to
    ``store``, instead of events given to the poll's sink: for a caller that only stores them
    (``tokentop import``). ``overrides``: the user's prices (``[pricing]``), as the caller's
    :class:`~tokentop.core.pricing.Pricer` has them."""

    overrides: Mapping[str, PriceOverride]
    store: Callable[[list[tuple[Any, ...]]], object]


#: one Pricer per worker process and set of overrides: its price cards are built once, not per job
_PRICERS: dict[tuple[Any, ...], Pricer] = {}


def _pricer(overrides: Mapping[str, PriceOverride]) -> Pricer:
    from tokentop.core.pricing import Pricer

    key = tuple(sorted(overrides.items()))
    pricer = _PRICERS.get(key)
    if pricer is None:
        pricer = _PRICERS[key] = Pricer(overrides)
    return pricer


def _group_key(lf: LogFile, settings: SourceSettings) -> tuple[str, str]:
    fmt = lf.fmt
    key = fmt.group(lf.path, settings.roots_of(fmt)) if fmt.group is not None else lf.path.rsplit(os.sep, 1)[0]
    return (fmt.name, key)


def split(tailer: LogSources, todo: Files, now: float) -> tuple[Files, list[Files]]:
    """This process's share (about :data:`MAIN_SHARE` of the bytes) and the worker's, as groups.
    A group's files stay together; files written to just now and files already open stay here."""
    groups: dict[tuple[str, str], Files] = {}
    mine: Files = []
    for lf, st in todo:
        if st.st_mtime > now - ACTIVE_S or lf.path in tailer.open:
            mine.append((lf, st))
            continue
        groups.setdefault(_group_key(lf, tailer.settings), []).append((lf, st))
    sizes = sorted(((sum(st.st_size for _, st in g), k) for k, g in groups.items()), key=lambda x: -x[0])
    a = sum(st.st_size for _, st in mine)
    b = 0
    theirs: list[Files] = []
    for size, key in sizes:
        if a <= MAIN_SHARE * (a + b + size):
            mine += groups[key]
            a += size
        else:
            theirs.append(sorted(groups[key], key=read_order))
            b += size
    return sorted(mine, key=read_order), theirs


def parse_share(settings: SourceSettings, host: str | None, now: float,
                specs: list[tuple[str, str, tuple[Any, ...] | None]],
                overrides: Mapping[str, PriceOverride] | None = None) -> ShareResult:
    """Worker process: read a share of the files from their cursors; events (priced ledger rows
    when ``overrides`` is given, see :class:`PricedRows`) and new cursors back."""
    src = LogSources(None, settings, host=host, clock=lambda: now)
    formats: dict[str, LogFormat] = {f.name: f for f in src.formats}
    cutoff = now - settings.backfill_days * 86400.0
    out: list[Event] = []
    for name, path, cur in specs:
        if cur is not None:
            src.take_cursors({path: cur})
        try:
            st = os.stat(path)
        except OSError:
            continue
        src._read(LogFile(formats[name], path), st, now, cutoff, out)
    cursors = {p: c.to_tuple() for p, c in src.cursors.items()}
    src.stats.events = len(out)
    if overrides is not None:
        price = _pricer(overrides).price
        received = time.time()
        rows = [event_row(e, price(e), received) for e in out]
    else:
        # plain tuples pickle ~8x faster than frozen dataclasses; the parent rebuilds them with Event(*t)
        rows = [event_tuple(e) for e in out]
    return rows, cursors, src.stats, {name: s.export() for name, s in src.shared.items()}


def _ignore_sigint() -> None:
    """Worker initializer: Ctrl-C is for the importing process, which stops the workers itself. The
    worker was started with SIGINT blocked (:func:`_children_start_sigint_blocked`): ignored now, it
    is unblocked, and a Ctrl-C that came while the interpreter started is dropped."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if hasattr(signal, "pthread_sigmask"):
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})


@contextlib.contextmanager
def _children_start_sigint_blocked() -> Iterator[None]:
    """Processes started in the block begin with SIGINT blocked (a thread's signal mask survives
    fork and exec). Ctrl-C goes to the terminal's whole process group: a worker still starting its
    interpreter, before its initializer ignores SIGINT, died of it and printed "Fatal Python error:
    init_import_site" or a KeyboardInterrupt traceback into the import's output. The mask is this
    thread's only: the importing process still gets its Ctrl-C (on another thread's behalf)."""
    if not hasattr(signal, "pthread_sigmask"):
        yield
        return
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


class _SpawnContext(multiprocessing.context.SpawnContext):
    """The ``spawn`` context, remembering the processes a pool starts with it: the pool itself has
    no public way to stop a running worker (Python 3.14 adds ``terminate_workers``)."""

    def __init__(self) -> None:
        super().__init__()
        self.started: list[multiprocessing.process.BaseProcess] = []

    def Process(self, *args: Any, **kwargs: Any) -> multiprocessing.process.BaseProcess:  # noqa: N802 - the context API
        proc = super().Process(*args, **kwargs)
        self.started.append(proc)
        return proc


@contextlib.contextmanager
def _sigint_deferred() -> Iterator[None]:
    """In the main thread (where Python runs signal handlers): a SIGINT during the block is noted and
    handled by the previous handler when the block ends (``KeyboardInterrupt`` by default). A mask
    would not do: another thread takes the signal and Python still raises in the main thread."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    got: list[int] = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: got.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
        if got:
            if callable(previous):
                previous(signal.SIGINT, None)
            elif previous == signal.SIG_DFL:
                raise KeyboardInterrupt


#: seconds a terminated worker gets to exit before it is killed
STOP_TIMEOUT_S: Final = 2.0


class WorkerBacklog:
    """The worker's share, submitted as jobs of about :data:`JOB_BYTES` (whole groups each)."""

    def __init__(self, tailer: LogSources, groups: list[Files], now: float, workers: int,
                 rows: PricedRows | None = None) -> None:
        from concurrent.futures import ProcessPoolExecutor  # only a large backlog pays for this import

        self.tailer = tailer
        self.rows = rows
        self.now = now
        self.context = _SpawnContext()
        #: jobs submitted to the pool, in hand-over order
        self.jobs: list[tuple[Future[ShareResult], Files, int]] = []
        #: jobs not submitted yet: at most :data:`JOBS_AHEAD` per worker run or wait ahead of the
        #: hand-over, so a parser that outruns the inserts does not pile its results up in this process
        self.queue: list[tuple[list[tuple[str, str, tuple[Any, ...] | None]], Files, int]] = []
        self.ahead = JOBS_AHEAD * workers
        try:
            # Ctrl-C is held back while the workers start: arriving inside a process start it would
            # leave a child this process never learnt the pid of (or one waiting for its orders).
            # It is raised right after, still inside this try.
            with _sigint_deferred():
                self.pool = ProcessPoolExecutor(workers, mp_context=self.context, initializer=_ignore_sigint)
                self._submit(groups, now)
        except BaseException:  # interrupted while starting: nothing may outlive this
            self.cancel()
            raise

    def _submit(self, groups: list[Files], now: float) -> None:
        tailer = self.tailer
        chunk: Files = []
        size = 0
        for i, group in enumerate(groups):
            chunk += group
            size += sum(st.st_size for _, st in group)
            if size >= JOB_BYTES or i == len(groups) - 1:
                specs = []
                for lf, _ in chunk:
                    cur = tailer.cursors.get(lf.path)
                    specs.append((lf.fmt.name, lf.path, None if cur is None else cur.to_tuple()))
                self.queue.append((specs, chunk, size))
                chunk, size = [], 0
        self.queue.reverse()  # popped from the end
        self._fill()

    def _fill(self) -> None:
        tailer = self.tailer
        overrides = None if self.rows is None else self.rows.overrides
        while self.queue and len(self.jobs) < self.ahead:
            specs, chunk, size = self.queue.pop()
            with _children_start_sigint_blocked():  # a submit may start a worker
                job = self.pool.submit(parse_share, tailer.settings, tailer.host, self.now, specs, overrides)
            self.jobs.append((job, chunk, size))

    def drain(self, sink: Sink, tally: Tally, *, wait: bool) -> None:
        # worker results are handed over in order as they complete, between the tailer's own batches
        jobs = self.jobs
        while jobs and (wait or jobs[0][0].done()):
            fut, _files, nbytes = jobs.pop(0)
            self._fill()  # the next job starts before this one's results are stored
            tally.handed += self._finish(fut, sink)
            tally.done += nbytes
            tally.report()
        if not jobs:
            self.pool.shutdown(wait=True)  # idle workers exit at once; joined here, not at interpreter exit

    def cancel(self) -> None:
        """Stop now: queued jobs are dropped, running workers terminated (killed if they linger) and
        joined, the pool's own thread too."""
        self.jobs.clear()
        self.queue.clear()
        pool = getattr(self, "pool", None)
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)
        started = [proc for proc in self.context.started if proc.pid is not None]
        for proc in started:
            if proc.is_alive():
                proc.terminate()
        for proc in started:
            proc.join(STOP_TIMEOUT_S)
            if proc.is_alive():
                proc.kill()
                proc.join()
        if pool is not None:
            pool.shutdown(wait=True)

    def _finish(self, fut: Future[ShareResult], sink: Sink) -> int:
        rows, cursors, stats, shared = fut.result()
        tailer = self.tailer
        step = tailer.batch_events
        if self.rows is not None:
            store = self.rows.store
            for i in range(0, len(rows), step):
                store(rows[i : i + step])
            handed = len(rows)
        else:
            events = [Event(*row) for row in rows]
            for i in range(0, len(events), step):
                sink(events[i : i + step])
            handed = len(events)
        del rows
        for name, exported in shared.items():
            tailer.shared[name].merge(exported)
        tailer.stats.add(stats)
        # cursors are committed once all jobs are handed over: committing here would wait for the
        # ledger to finish every queued insert, once per job
        tailer.take_cursors(cursors)
        return handed


class ParallelBackfill:
    """A :class:`~tokentop.core.sources.tailer.Backfill`: a backlog of at least
    :data:`PARALLEL_MIN_BYTES` in more than one file is shared with ``workers`` processes."""

    def __init__(self, workers: int = 1, rows: PricedRows | None = None) -> None:
        self.workers = workers
        #: how the workers hand back what they read (``None``: events, to the poll's sink)
        self.rows = rows

    def start(self, tailer: LogSources, todo: Files, now: float, total_bytes: int) -> tuple[Files, WorkerBacklog | None]:
        if self.workers <= 0 or total_bytes < PARALLEL_MIN_BYTES or len(todo) <= 1:
            return todo, None
        mine, theirs = split(tailer, todo, now)
        if not theirs:
            return mine, None
        return mine, WorkerBacklog(tailer, theirs, now, self.workers, self.rows)
