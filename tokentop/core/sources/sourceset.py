"""The enabled sources, opened from the settings and driven as one (the live loop, ``tokentop import``).

Every enabled :class:`~tokentop.core.sources.protocol.LogFormat` is read by one shared tailer
(:class:`~tokentop.core.sources.tailer.LogSources`), plus its ``companion`` source if it declares one;
every enabled :class:`~tokentop.core.sources.protocol.StoreFormat` builds its own source. Callers see
one :class:`~tokentop.core.sources.protocol.Source`.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Sequence

from tokentop.core.sources.backfill import ParallelBackfill, PricedRows
from tokentop.core.sources.protocol import (
    LogFormat, Progress, SharedState, Sink, Source, SourceContext, Stats, StoreFormat,
)
from tokentop.core.sources.settings import SourceSettings
from tokentop.core.sources.tailer import BATCH_EVENTS, LogSources

if TYPE_CHECKING:
    from tokentop.core.ledger import Ledger


class SourceSet:
    """Several sources as one :class:`~tokentop.core.sources.protocol.Source`, polled in list order."""

    def __init__(self, members: Sequence[Source]) -> None:
        self.members: tuple[Source, ...] = tuple(members)

    @classmethod
    def open(
        cls,
        settings: SourceSettings,
        ledger: Ledger | None,
        *,
        host: str | None = None,
        clock: Callable[[], float] = time.time,
        workers: int = 0,
        batch_events: int = BATCH_EVENTS,
        rows: PricedRows | None = None,
    ) -> SourceSet:
        """The sources of the enabled formats. ``workers`` > 0: a large log backlog is parsed by
        that many extra processes (``backfill.py``), which hand back priced ledger rows to ``rows``
        when it is given, else events to the poll's sink."""
        active = settings.active()
        members: list[Source] = []
        if any(isinstance(f, LogFormat) for f in active):
            backfill = ParallelBackfill(workers, rows) if workers > 0 else None
            members.append(LogSources(ledger, settings, host=host, clock=clock, batch_events=batch_events,
                                      backfill=backfill))
        for fmt in active:
            build = fmt.source if isinstance(fmt, StoreFormat) else fmt.companion
            if build is not None:
                members.append(build(SourceContext(ledger, settings.roots_of(fmt), settings.backfill_days, host,
                                                   clock, batch_events)))
        return cls(members)

    @property
    def stats(self) -> Stats:
        if len(self.members) == 1:
            return self.members[0].stats
        total = Stats()
        for m in self.members:
            total.add(m.stats)
        return total

    def poll(self, sink: Sink, *, progress: Progress | None = None) -> int:
        if progress is None or len(self.members) == 1:
            return sum(m.poll(sink, progress=progress) for m in self.members)
        handed = 0
        base = 0  # the finished members' totals: one progress scale across members
        for m in self.members:
            seen = [0]

            def report(done: int, total: int, base: int = base, seen: list[int] = seen) -> None:
                seen[0] = total
                progress(base + done, base + total)

            handed += m.poll(sink, progress=report)
            base += seen[0]
        return handed

    def poll_changed(self, sink: Sink, paths: set[str]) -> int:
        return sum(m.poll_changed(sink, paths) for m in self.members)

    def poll_recent(self, sink: Sink) -> int:
        return sum(m.poll_recent(sink) for m in self.members)

    def poll_tick(self, sink: Sink) -> int:
        return sum(m.poll_tick(sink) for m in self.members)

    def watch_dirs(self) -> list[Path]:
        return [d for m in self.members for d in m.watch_dirs()]

    def shared_state(self, name: str) -> SharedState | None:
        """The state the readers of format ``name`` share (e.g. Codex's quota figures, which the
        feed's limits part takes from there), or ``None`` when that format is not read here."""
        for m in self.members:
            if isinstance(m, LogSources) and name in m.shared:
                return m.shared[name]
        return None
