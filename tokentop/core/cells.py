"""The aggregator's cells and sums, shared by :mod:`tokentop.core.aggregate` (which fills them) and
:mod:`tokentop.core.snapshot_builder` (which reads them): kept apart so that neither module
imports the other at run time."""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

from tokentop.core.snapshot import DIMENSIONS

if TYPE_CHECKING:
    from tokentop.core.snapshot_builder import CellRecord

#: A cell's key: the value of each of these event fields, missing ones as NONE_LABEL (except the
#: session, which stays None: such requests count everywhere but have no session row). The hot
#: paths of the aggregator index keys by position (0 agent, 1 model, 2 session, 3 project, 5 host).
CELL_KEY: Final = ("agent", "model", "session", "project", "provider", "host")
#: the event field each dimension groups by ("agents" -> "agent", ...)
_DIM_FIELD: Final = {dim: dim[:-1] for dim in DIMENSIONS}
#: index of each dimension's value in a cell key
_KEY_INDEX: Final = {dim: CELL_KEY.index(field) for dim, field in _DIM_FIELD.items()}


class Counts:
    """Today's counters (tokens in the contract's semantics, money in pico-dollars)."""

    __slots__ = (
        "day", "requests", "input", "output", "cache_read", "cache_write", "reasoning", "errors",
        "pusd_estimated", "pusd_provided", "unpriced", "first_seen", "last_seen",
    )

    def __init__(self) -> None:
        self.day = -1
        self.requests = self.input = self.output = self.cache_read = self.cache_write = 0
        self.reasoning = self.errors = self.pusd_estimated = self.pusd_provided = self.unpriced = 0
        self.first_seen = 0.0
        self.last_seen = 0.0

    def clear_day(self, day: int) -> None:
        self.day = day
        self.requests = self.input = self.output = self.cache_read = self.cache_write = 0
        self.reasoning = self.errors = self.pusd_estimated = self.pusd_provided = self.unpriced = 0

    def add_counts(self, other: Counts, day: int) -> None:
        """Add ``other``'s counters if they are of ``day`` (this one is moved to ``day`` first)."""
        if self.day != day:
            self.clear_day(day)
        if other.day == day:
            self.requests += other.requests
            self.input += other.input
            self.output += other.output
            self.cache_read += other.cache_read
            self.cache_write += other.cache_write
            self.reasoning += other.reasoning
            self.errors += other.errors
            self.pusd_estimated += other.pusd_estimated
            self.pusd_provided += other.pusd_provided
            self.unpriced += other.unpriced
        if other.last_seen > self.last_seen:
            self.last_seen = other.last_seen
        if other.first_seen and (not self.first_seen or other.first_seen < self.first_seen):
            self.first_seen = other.first_seen

    @property
    def pusd_today(self) -> int:
        return self.pusd_estimated + self.pusd_provided


class Cell(Counts):
    """One hot (agent, model, session, project, provider, host) combination.

    Besides its counters and buckets, a cell carries what the incremental snapshot builder needs
    to find what changed in it since the previous snapshot without rescanning it (see
    :mod:`tokentop.core.snapshot_builder`): ``syn_sec``/``syn_b``, its last bucket when the builder
    last read it (buckets after it, and what was added to it, are new), and ``late``, what an
    out-of-order event added to an older bucket meanwhile."""

    __slots__ = ("key", "buckets", "pid", "branch", "serial", "dirty", "syn_sec", "syn_b", "late", "record")

    def __init__(self, key: tuple[str, ...], serial: int = 0) -> None:
        super().__init__()
        self.key = key
        #: [second, requests, input tokens, output tokens, pusd], oldest first
        self.buckets: list[list[int]] = []
        self.pid: int | None = None
        self.branch: str | None = None
        #: creation order (ties between cells are broken by it, as by the order of ``Aggregator.cells``)
        self.serial = serial
        #: listed in ``Aggregator.dirty`` since the last snapshot
        self.dirty = False
        self.syn_sec = -1
        self.syn_b: tuple[int, int, int, int] = (0, 0, 0, 0)
        #: [second, requests, input, output, pusd] added to buckets older than ``syn_sec`` (rare)
        self.late: list[list[int]] | None = None
        #: the snapshot builder's memory of this cell (None until it first read it)
        self.record: CellRecord | None = None


class RowSum(Counts):
    """A row's cold sum: what its cooled cells contributed today, plus identity for session rows."""

    __slots__ = ("models", "agent", "model", "pid", "host", "project", "branch")

    def __init__(self) -> None:
        super().__init__()
        #: model -> [requests, tokens, pusd, unpriced] for today
        self.models: dict[str, list[int]] = {}
        self.agent: str | None = None
        self.model: str | None = None
        self.pid: int | None = None
        self.host: str | None = None
        self.project: str | None = None
        self.branch: str | None = None

    def clear_day(self, day: int) -> None:
        super().clear_day(day)
        self.models = {}


def add_model_share(models: dict[str, list[int]], model: str, c: Counts, day: int) -> None:
    # not "no requests": a cell a revision took a record out of can hold tokens and money at 0 requests
    if c.day != day or not (c.requests or c.input or c.output or c.pusd_estimated or c.pusd_provided or c.unpriced):
        return
    share = models.get(model)
    if share is None:
        models[model] = [c.requests, c.input + c.output, c.pusd_today, c.unpriced]
    else:
        share[0] += c.requests
        share[1] += c.input + c.output
        share[2] += c.pusd_today
        share[3] += c.unpriced
