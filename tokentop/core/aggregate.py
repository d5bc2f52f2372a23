"""Rolling aggregation: per-key totals for today, sliding-window rates and per-second series.

Pure and deterministic: no I/O, no clock. Callers pass ``now`` (epoch seconds) to every method.

Layout, chosen so that per-event work is one dictionary look-up and one small update:

* A **cell** holds everything for one combination (agent, model, session, project, provider, host)
  while it is *hot* (seen within the last :attr:`AggregatorConfig.hot_s` seconds): today's counters and sparse
  one-second buckets for rates and sparklines. :meth:`Aggregator.apply` touches exactly one cell.
* When a cell goes quiet, :meth:`Aggregator.cool` folds its counters into **cold sums**, one per
  row of each dimension (``agents``, ``models``, ``sessions``, ``projects``, ``providers``,
  ``hosts``) plus the global total, and drops the cell. A row is its cold sum plus its hot cells,
  so a snapshot costs O(hot cells + rows) and rows that did not change are reused.
* Session rows silent for ``session_ttl_s`` are evicted (other rows once idle for ``row_ttl_s`` and
  not seen today); what they spent stays in every other dimension and in the totals, so memory
  stays bounded under endless new sessions without losing money.
* A revised event (a later record with the same id replaced the stored one, see
  :mod:`tokentop.core.revision`) is applied as a difference by :meth:`Aggregator.revise`: the old
  record's counts come out of wherever they are now (its hot cell, or the cold sums, which are
  additive), the new record's go into its cell, and the rates and sparklines get the difference at
  the second of the revision. No request is counted twice.
* :meth:`Aggregator.snapshot` freezes cells and cold sums into a
  :class:`~tokentop.core.snapshot.Snapshot` (the data model, which knows nothing of this module)
  with :class:`tokentop.core.snapshot_builder.SnapshotBuilder`, which rebuilds only the rows that
  changed since the previous snapshot. What changed is recorded here, where it happens, at O(1)
  per event: :meth:`apply` and :meth:`revise` mark the cells they touch, :meth:`cool` lists the
  cells it folds, and a changed cold sum, session state or eviction names its row.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from datetime import datetime, timedelta, tzinfo
from typing import TYPE_CHECKING

from tokentop.core.cells import _DIM_FIELD, _KEY_INDEX, CELL_KEY, Cell, Counts, RowSum, add_model_share
from tokentop.core.events import Event
from tokentop.core.pricing import Cost
from tokentop.core.snapshot import DIMENSIONS, NONE_LABEL, SERIES_S, Snapshot

if TYPE_CHECKING:
    from tokentop.config import Config
    from tokentop.core.snapshot_builder import SnapshotBuilder

#: CELL_KEY, Cell, Counts, RowSum and add_model_share live in :mod:`tokentop.core.cells` (shared with
#: the snapshot builder) and are named here too, where readers of the aggregator look for them
__all__ = ["CELL_KEY", "Aggregator", "AggregatorConfig", "Cell", "Counts", "DayClock", "RecentRequest", "RowSum",
           "add_model_share"]



@dataclass(frozen=True, slots=True)
class AggregatorConfig:
    #: Sliding window (seconds) for requests/s and tokens/s.
    rate_window_s: int = 10
    #: Window (seconds) over which ``usd_per_hour`` is measured.
    burn_window_s: int = 60
    #: A session with no request for this long is ``idle``.
    idle_after_s: float = 120.0
    #: Session rows silent this long are evicted (their money stays in every total).
    session_ttl_s: float = 1800.0
    #: Other rows (agent, model, ...) silent this long and not seen today are evicted.
    row_ttl_s: float = 26 * 3600.0
    #: How many recent requests are kept for detail views.
    recent_max: int = 2000

    def __post_init__(self) -> None:
        for name in ("rate_window_s", "burn_window_s"):
            value = getattr(self, name)
            if not 1 <= value <= SERIES_S:
                raise ValueError(f"{name} must be between 1 and {SERIES_S} seconds, got {value}")
        for name in ("idle_after_s", "session_ttl_s", "row_ttl_s"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")
        if self.recent_max < 0:
            raise ValueError(f"recent_max must be >= 0, got {self.recent_max}")

    @classmethod
    def from_config(cls, cfg: Config) -> AggregatorConfig:
        """The ``[aggregate]`` section (the other fields keep their defaults)."""
        s = cfg.aggregate
        return cls(rate_window_s=s.rate_window_s, burn_window_s=s.burn_window_s,
                   idle_after_s=float(s.idle_after_s), session_ttl_s=float(s.session_ttl_s))

    @property
    def hot_s(self) -> float:
        """How long a cell stays hot: long enough for its sparkline and its active/idle state."""
        return max(float(SERIES_S), self.idle_after_s) + 1.0


class DayClock:
    """Local-midnight boundaries in a given zone (``None``: the machine's local zone)."""

    __slots__ = ("_tz", "start", "end", "index")

    def __init__(self, tz: tzinfo | None = None) -> None:
        self._tz = tz
        self.start = 0.0
        self.end = -1.0
        self.index = 0

    def today(self, now: float) -> tuple[float, int]:
        """(start of today as epoch seconds, a day index that changes at each local midnight)."""
        if not (self.start <= now < self.end):
            local = datetime.fromtimestamp(now, self._tz) if self._tz else datetime.fromtimestamp(now).astimezone()
            start = local.replace(hour=0, minute=0, second=0, microsecond=0)
            end = (start + timedelta(days=1, hours=2)).replace(hour=0)  # DST-safe next midnight
            self.start = start.timestamp()
            self.end = end.timestamp()
            self.index = start.toordinal()
        return self.start, self.index


@dataclass(frozen=True, slots=True)
class RecentRequest:
    event: Event
    cost: Cost


class Aggregator:
    """Holds the live model. Feed events with :meth:`apply`; read it with :meth:`snapshot`."""

    def __init__(self, config: AggregatorConfig | None = None, tz: tzinfo | None = None) -> None:
        self.config = config or AggregatorConfig()
        self.days = DayClock(tz)
        self.cells: dict[tuple[str, ...], Cell] = {}
        self.cold: dict[str, dict[str, RowSum]] = {dim: {} for dim in DIMENSIONS}
        self.cold_total = RowSum()
        self.recent: deque[tuple[Event, Cost]] = deque(maxlen=self.config.recent_max)
        #: session id -> state set by the control layer ("paused", "stopped", ...)
        self.session_states: dict[str, str] = {}
        #: session id -> process facts recorded by ``tokentop run`` / control (pid, host, cmd, ...)
        self.session_processes: dict[str, dict[str, object]] = {}
        self.events_applied = 0
        self.events_revised = 0
        self.evicted = 0
        # What changed since the last snapshot, for the incremental builder (each O(1) to record):
        #: cells an event or a revision touched, in first-touch order (``Cell.dirty`` says "listed")
        self.dirty: list[Cell] = []
        #: cells :meth:`cool` folded into the cold sums
        self.cooled: list[Cell] = []
        #: rows whose cold sum or session state changed otherwise: (dimension, key), ("total", None)
        self.touched: set[tuple[str, str | None]] = set()
        #: rows :meth:`evict` dropped
        self.dropped: list[tuple[str, str]] = []
        self._serial = 0
        self._builder: SnapshotBuilder | None = None

    # -- input ---------------------------------------------------------------------------------
    def apply(self, e: Event, cost: Cost, now: float) -> None:
        days = self.days
        if not (days.start <= now < days.end):
            days.today(now)
        ts = e.ts
        if ts < days.start and ts <= now - SERIES_S:
            self.events_applied += 1  # before today and outside every window: the ledger has it
            return
        key = (e.agent, e.model or NONE_LABEL, e.session, e.project or NONE_LABEL, e.provider or NONE_LABEL,
               e.host or NONE_LABEL)
        cell = self.cells.get(key)
        if cell is None:
            cell = self._new_cell(key)
        if not cell.dirty:
            cell.dirty = True
            self.dirty.append(cell)
        if ts > cell.last_seen:
            cell.last_seen = ts
            if e.pid is not None:
                cell.pid = e.pid
            if e.branch is not None:
                cell.branch = e.branch
        if not cell.first_seen or ts < cell.first_seen:
            cell.first_seen = ts
        pusd = cost.pusd or 0
        inp = e.input_tokens
        out = e.output_tokens
        if ts >= days.start:
            day = days.index
            if cell.day != day:
                cell.clear_day(day)
            cell.requests += 1
            cell.input += inp
            cell.output += out
            if e.cache_read_tokens:
                cell.cache_read += e.cache_read_tokens
            if e.cache_write_tokens:
                cell.cache_write += e.cache_write_tokens
            if e.reasoning_tokens:
                cell.reasoning += e.reasoning_tokens
            if e.status == "error":
                cell.errors += 1
            kind = cost.kind
            if kind == "estimated":
                cell.pusd_estimated += pusd
            elif kind == "provided":
                cell.pusd_provided += pusd
            else:
                cell.unpriced += 1
        # an event dated ahead of this clock (another host's clock, within the feed's max_future_s) is
        # bucketed now: the series end at now, and a later bucket broke every snapshot until it aged
        sec = min(int(ts), int(now))
        if sec > int(now) - SERIES_S:
            buckets = cell.buckets
            if buckets and buckets[-1][0] == sec:
                b = buckets[-1]
                b[1] += 1
                b[2] += inp
                b[3] += out
                b[4] += pusd
            elif not buckets or buckets[-1][0] < sec:
                buckets.append([sec, 1, inp, out, pusd])
                if buckets[0][0] <= sec - SERIES_S:
                    horizon = sec - SERIES_S
                    keep = 0
                    while buckets[keep][0] <= horizon:
                        keep += 1
                    del buckets[:keep]
            else:
                _add_late(cell, sec, inp, out, pusd)
        self.events_applied += 1
        if self.config.recent_max:
            self.recent.append((e, cost))

    def revise(self, old: Event, old_cost: Cost, new: Event, new_cost: Cost, now: float) -> None:
        """``new`` replaced ``old`` (the same id, applied before): apply the difference.

        Today's counters follow each record's day (the new record is counted today when its ``ts``
        is, the old one comes out of today when it was in it; the request is not counted again);
        a changed model, session or other key moves the amounts between cells and rows; rates and
        sparklines get the difference at the second ``now``, when it became known."""
        days = self.days
        if not (days.start <= now < days.end):
            days.today(now)
        self.events_revised += 1
        start, day = days.start, days.index
        series_edge = now - SERIES_S
        old_key = _cell_key(old)
        new_key = _cell_key(new)
        old_cell = self.cells.get(old_key)  # before the new record's cell may be made: a cold record stays cold
        new_cell = self.cells.get(new_key)
        if new_cell is None and (new.ts >= start or new.ts > series_edge):
            new_cell = self._new_cell(new_key)  # type: ignore[arg-type]
        for cell in (old_cell, new_cell):
            if cell is not None and not cell.dirty:
                cell.dirty = True
                self.dirty.append(cell)
        if new_cell is not None:
            _touch(new_cell, new)
            if new.ts >= start:
                _count(new_cell, new, new_cost, day, 1)
        if old.ts >= start:
            if old_cell is not None:
                _count(old_cell, old, old_cost, day, -1)
            else:
                self._retract_cold(old_key, old, old_cost, day)
        sec = int(now)
        if max(old.ts, new.ts) > series_edge and new_cell is not None:
            pusd_new = new_cost.pusd or 0
            pusd_old = old_cost.pusd or 0
            if old_cell is None or old_cell is new_cell:
                _add_bucket(new_cell, sec, 0, new.input_tokens - old.input_tokens,
                            new.output_tokens - old.output_tokens, pusd_new - pusd_old)
            else:
                _add_bucket(new_cell, sec, 1, new.input_tokens, new.output_tokens, pusd_new)
                _add_bucket(old_cell, sec, -1, -old.input_tokens, -old.output_tokens, -pusd_old)
        if self.config.recent_max:
            recent = self.recent
            eid = new.id
            for i in range(len(recent) - 1, -1, -1):  # newest first: a revision usually follows its record closely
                if recent[i][0].id == eid:
                    recent[i] = (new, new_cost)
                    break

    def _retract_cold(self, key: tuple[str | None, ...], e: Event, cost: Cost, day: int) -> None:
        """Take a record's today counts out of the cold sums it was folded into (rows since evicted
        are skipped: what they held lives on in the totals and the other dimensions, as it does
        for any evicted row)."""
        _count(self.cold_total, e, cost, day, -1)
        self.touched.add(("total", None))
        model = key[1]
        for dim, index in _KEY_INDEX.items():
            k = key[index]
            if k is None:
                continue
            row = self.cold[dim].get(k)
            if row is None or row.day != day:
                continue
            _count(row, e, cost, day, -1)
            if dim != "models":
                share = row.models.get(model)  # type: ignore[arg-type]
                if share is not None:
                    share[0] -= 1
                    share[1] -= e.input_tokens + e.output_tokens
                    share[2] -= cost.pusd or 0
                    share[3] -= cost.kind not in ("estimated", "provided")
            self.touched.add((dim, k))  # type: ignore[arg-type]

    # -- maintenance ---------------------------------------------------------------------------
    def cool(self, now: float) -> int:
        """Fold cells quiet for :attr:`AggregatorConfig.hot_s` into the cold sums. Returns how many.

        A cell whose newest bucket is still inside the sparkline's two minutes (a revision lands at
        the second it became known, which can be after the record's own time) stays hot until it
        leaves them: what it added to the rates and sparklines does not vanish early."""
        _, day = self.days.today(now)
        edge = now - self.config.hot_s
        series_start = int(now) - SERIES_S + 1
        quiet = [cell for cell in self.cells.values()
                 if cell.last_seen < edge and (not cell.buckets or cell.buckets[-1][0] < series_start)]
        for cell in quiet:
            del self.cells[cell.key]
            self._fold(cell, day)
            self.cooled.append(cell)
        return len(quiet)

    def _fold(self, cell: Cell, day: int) -> None:
        self.cold_total.add_counts(cell, day)
        for dim, index in _KEY_INDEX.items():
            key = cell.key[index]
            if key is None:
                continue  # no session id: counted everywhere else, no session row
            table = self.cold[dim]
            row = table.get(key)
            if row is None:
                row = table[key] = RowSum()
            newer = cell.last_seen >= row.last_seen
            row.add_counts(cell, day)
            if dim != "models":
                add_model_share(row.models, cell.key[1], cell, day)
            if dim == "sessions" and newer:
                row.agent, row.model, row.project, row.host = cell.key[0], cell.key[1], cell.key[3], cell.key[5]
                if cell.pid is not None:
                    row.pid = cell.pid
                if cell.branch is not None:
                    row.branch = cell.branch

    def evict(self, now: float) -> int:
        """Drop silent rows (see module doc). Returns how many rows were evicted."""
        self.cool(now)
        _, day = self.days.today(now)
        dropped = 0
        cutoff = now - self.config.session_ttl_s
        sessions = self.cold["sessions"]
        hot_sessions = {cell.key[2] for cell in self.cells.values()}
        stale = [k for k, row in sessions.items() if row.last_seen < cutoff and k not in hot_sessions]
        for key in stale:
            del sessions[key]
            self.session_states.pop(key, None)
            self.session_processes.pop(key, None)
            self.dropped.append(("sessions", key))
        dropped += len(stale)
        row_cutoff = now - self.config.row_ttl_s
        for dim in DIMENSIONS:
            if dim == "sessions":
                continue
            table = self.cold[dim]
            index = _KEY_INDEX[dim]
            hot_keys = {cell.key[index] for cell in self.cells.values()}
            stale = [k for k, row in table.items() if row.last_seen < row_cutoff and row.day != day and k not in hot_keys]
            for key in stale:
                del table[key]
                self.dropped.append((dim, key))
            dropped += len(stale)
        self.evicted += dropped
        return dropped

    def set_session_state(self, session: str, state: str | None) -> None:
        """Mark a session ``paused``/``stopped``/... (``None`` clears the mark)."""
        if state is None:
            self.session_states.pop(session, None)
        else:
            self.session_states[session] = state
        self.touched.add(("sessions", session))

    def bind_process(self, session: str, facts: dict[str, object]) -> None:
        """Record the process behind a session (pid, host, start_time, uid, cmd)."""
        self.session_processes[session] = dict(facts)
        self.touched.add(("sessions", session))

    # -- output --------------------------------------------------------------------------------
    def recent_requests(self, dim: str | None = None, key: str | None = None, limit: int = 50) -> list[RecentRequest]:
        """Newest first; filtered to one row of one dimension when ``dim``/``key`` are given."""
        if dim is not None and dim not in DIMENSIONS:
            raise ValueError(f"unknown dimension {dim!r}; expected one of {', '.join(DIMENSIONS)}")
        field = _DIM_FIELD.get(dim or "")
        out: list[RecentRequest] = []
        for event, cost in reversed(self.recent):
            if field is not None:
                value = getattr(event, field)
                if (value if value is not None or field == "session" else NONE_LABEL) != key:
                    continue
            out.append(RecentRequest(event, cost))
            if len(out) >= limit:
                break
        return out

    def snapshot(self, now: float, **status: object) -> Snapshot:
        """Freeze the model at ``now`` (``status``: the snapshot's free-form status entries).

        Incremental: rows nothing happened to since the previous snapshot are the previous Row
        objects (or, while their sparkline slides, copies with the series moved on); the figures
        are always those :func:`tokentop.core.snapshot_builder.build_full_snapshot` computes from
        scratch (a property test holds them equal)."""
        if self._builder is None:
            from tokentop.core.snapshot_builder import SnapshotBuilder

            self._builder = SnapshotBuilder(self)
        return self._builder.build(now, status)

    @property
    def builder(self) -> SnapshotBuilder | None:
        """The incremental snapshot builder (None before the first snapshot; tests and benches read it)."""
        return self._builder

    def _new_cell(self, key: tuple[str, ...]) -> Cell:
        self._serial += 1
        cell = self.cells[key] = Cell(key, self._serial)
        return cell


def _cell_key(e: Event) -> tuple[str | None, ...]:
    return (e.agent, e.model or NONE_LABEL, e.session, e.project or NONE_LABEL, e.provider or NONE_LABEL,
            e.host or NONE_LABEL)


def _touch(cell: Cell, e: Event) -> None:
    """A record reached ``cell``: its seen times and its latest pid and branch (as :meth:`Aggregator.apply`)."""
    ts = e.ts
    if ts > cell.last_seen:
        cell.last_seen = ts
        if e.pid is not None:
            cell.pid = e.pid
        if e.branch is not None:
            cell.branch = e.branch
    if not cell.first_seen or ts < cell.first_seen:
        cell.first_seen = ts


def _count(c: Counts, e: Event, cost: Cost, day: int, sign: int) -> None:
    """Add (``sign`` 1) or take out (-1) one record's today counters (the slow path of revisions;
    :meth:`Aggregator.apply` keeps its own unrolled copy)."""
    if c.day != day:
        c.clear_day(day)
    c.requests += sign
    c.input += sign * e.input_tokens
    c.output += sign * e.output_tokens
    c.cache_read += sign * e.cache_read_tokens
    c.cache_write += sign * e.cache_write_tokens
    c.reasoning += sign * e.reasoning_tokens
    if e.status == "error":
        c.errors += sign
    if cost.kind == "estimated":
        c.pusd_estimated += sign * (cost.pusd or 0)
    elif cost.kind == "provided":
        c.pusd_provided += sign * (cost.pusd or 0)
    else:
        c.unpriced += sign


def _add_bucket(cell: Cell, sec: int, req: int, inp: int, out: int, pusd: int) -> None:
    buckets = cell.buckets
    if buckets and buckets[-1][0] == sec:
        b = buckets[-1]
        b[1] += req
        b[2] += inp
        b[3] += out
        b[4] += pusd
    elif not buckets or buckets[-1][0] < sec:
        buckets.append([sec, req, inp, out, pusd])
    else:
        _add_late(cell, sec, inp, out, pusd, req)


def _add_late(cell: Cell, sec: int, inp: int, out: int, pusd: int, req: int = 1) -> None:
    """A late event: add it to its own second's bucket (a short walk back; rare). What lands in a
    bucket older than the one the snapshot builder last read is noted for it in ``cell.late``."""
    if sec < cell.syn_sec:
        late = cell.late
        if late is None:
            late = cell.late = []
        late.append([sec, req, inp, out, pusd])
    buckets = cell.buckets
    for i in range(len(buckets) - 1, -1, -1):
        b = buckets[i]
        if b[0] == sec:
            b[1] += req
            b[2] += inp
            b[3] += out
            b[4] += pusd
            return
        if b[0] < sec:
            buckets.insert(i + 1, [sec, req, inp, out, pusd])
            return
    buckets.insert(0, [sec, req, inp, out, pusd])

