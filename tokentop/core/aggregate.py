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
  :class:`~tokentop.core.snapshot.Snapshot` (the data model, which knows nothing of this module);
  the builder is the last section here, beside the state it reads, and keeps its cache of quiet
  rows (:data:`RowCache`) on the aggregator so eviction can drop entries with their rows.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from datetime import datetime, timedelta, tzinfo
from typing import TYPE_CHECKING, Any, Final, Mapping

from tokentop.core.events import Event
from tokentop.core.pricing import PICO, Cost, usd
from tokentop.core.snapshot import DIMENSIONS, NONE_LABEL, SERIES_S, ModelShare, Row, Snapshot, Totals, sort_rows

if TYPE_CHECKING:
    from tokentop.config import Config

#: A cell's key: the value of each of these event fields, missing ones as NONE_LABEL (except the
#: session, which stays None: such requests count everywhere but have no session row). The hot
#: paths below index keys by position (0 agent, 1 model, 2 session, 3 project, 5 host).
CELL_KEY: Final = ("agent", "model", "session", "project", "provider", "host")
#: the event field each dimension groups by ("agents" -> "agent", ...)
_DIM_FIELD: Final = {dim: dim[:-1] for dim in DIMENSIONS}
#: index of each dimension's value in a cell key
_KEY_INDEX: Final = {dim: CELL_KEY.index(field) for dim, field in _DIM_FIELD.items()}


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
    """One hot (agent, model, session, project, provider, host) combination."""

    __slots__ = ("key", "buckets", "pid", "branch")

    def __init__(self, key: tuple[str, ...]) -> None:
        super().__init__()
        self.key = key
        #: [second, requests, input tokens, output tokens, pusd], oldest first
        self.buckets: list[list[int]] = []
        self.pid: int | None = None
        self.branch: str | None = None

    def window(self, now: float, seconds: int) -> tuple[int, int, int, int]:
        """(requests, input tokens, output tokens, pusd) in the last ``seconds`` one-second buckets."""
        cutoff = int(now) - seconds
        req = tin = tout = pusd = 0
        for b in reversed(self.buckets):
            if b[0] <= cutoff:
                break
            req += b[1]
            tin += b[2]
            tout += b[3]
            pusd += b[4]
        return req, tin, tout, pusd


class RowSum(Counts):
    """A row's cold sum: what its cooled cells contributed today, plus identity for session rows."""

    __slots__ = ("models", "version", "agent", "model", "pid", "host", "project", "branch")

    def __init__(self) -> None:
        super().__init__()
        #: model -> [requests, tokens, pusd, unpriced] for today
        self.models: dict[str, list[int]] = {}
        self.version = 0
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
        #: bumped whenever a session's state or process facts change (snapshot row cache key)
        self.session_versions: dict[str, int] = {}
        self.events_applied = 0
        self.events_revised = 0
        self.evicted = 0
        #: rows of quiet (cold-only) rows from earlier snapshots, reused while unchanged
        self.row_cache: RowCache = {}

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
            cell = self.cells[key] = Cell(key)
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
                _add_late(buckets, sec, inp, out, pusd)
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
            new_cell = self.cells[new_key] = Cell(new_key)
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
                _add_bucket(new_cell.buckets, sec, 0, new.input_tokens - old.input_tokens,
                            new.output_tokens - old.output_tokens, pusd_new - pusd_old)
            else:
                _add_bucket(new_cell.buckets, sec, 1, new.input_tokens, new.output_tokens, pusd_new)
                _add_bucket(old_cell.buckets, sec, -1, -old.input_tokens, -old.output_tokens, -pusd_old)
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
            row.version += 1

    # -- maintenance ---------------------------------------------------------------------------
    def cool(self, now: float) -> int:
        """Fold cells quiet for :attr:`AggregatorConfig.hot_s` into the cold sums. Returns how many."""
        _, day = self.days.today(now)
        edge = now - self.config.hot_s
        quiet = [cell for cell in self.cells.values() if cell.last_seen < edge]
        for cell in quiet:
            del self.cells[cell.key]
            self._fold(cell, day)
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
            row.version += 1

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
            self.session_versions.pop(key, None)
            self.row_cache.pop(("sessions", key), None)
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
                self.row_cache.pop((dim, key), None)
            dropped += len(stale)
        self.evicted += dropped
        return dropped

    def set_session_state(self, session: str, state: str | None) -> None:
        """Mark a session ``paused``/``stopped``/... (``None`` clears the mark)."""
        if state is None:
            self.session_states.pop(session, None)
        else:
            self.session_states[session] = state
        self.session_versions[session] = self.session_versions.get(session, 0) + 1

    def bind_process(self, session: str, facts: dict[str, object]) -> None:
        """Record the process behind a session (pid, host, start_time, uid, cmd)."""
        self.session_processes[session] = dict(facts)
        self.session_versions[session] = self.session_versions.get(session, 0) + 1

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
        """Freeze the model at ``now`` (``status``: the snapshot's free-form status entries)."""
        return _build_snapshot(self, now, status)


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


def _add_bucket(buckets: list[list[int]], sec: int, req: int, inp: int, out: int, pusd: int) -> None:
    if buckets and buckets[-1][0] == sec:
        b = buckets[-1]
        b[1] += req
        b[2] += inp
        b[3] += out
        b[4] += pusd
    elif not buckets or buckets[-1][0] < sec:
        buckets.append([sec, req, inp, out, pusd])
    else:
        _add_late(buckets, sec, inp, out, pusd, req)


def _add_late(buckets: list[list[int]], sec: int, inp: int, out: int, pusd: int, req: int = 1) -> None:
    """A late event: add it to its own second's bucket (a short walk back; rare)."""
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


# -- snapshot building ----------------------------------------------------------------------------

_PICO_TO_USD = (1.0 / PICO).__mul__  # floats for sparklines; exact money stays in Decimal fields
#: (cold sum version, session version, day): a quiet row's Row is rebuilt when one of them changes
RowStamp = tuple[int, int, int]
#: (dimension, row key) -> the stamp a quiet row was built at, and the Row built
RowCache = dict[tuple[str, str], tuple[RowStamp, Row]]


class _Hot(Counts):
    """What a row's hot cells add up to at this instant."""

    __slots__ = ("req", "tin", "tout", "burn", "series", "parts", "models", "active", "latest", "latest_ts")

    def __init__(self) -> None:
        super().__init__()
        self.req = self.tin = self.tout = self.burn = 0
        self.series: list[int] | None = None
        #: the dense per-second series of each hot cell of this row
        self.parts: list[list[int]] = []
        self.models: dict[str, list[int]] = {}
        self.active: set[str] = set()
        self.latest: Cell | None = None
        self.latest_ts = -1.0


def _sum_series(parts: list[list[int]]) -> list[int] | None:
    if not parts:
        return None
    if len(parts) == 1:
        return parts[0]
    return list(map(sum, zip(*parts)))


def _money_models(models: dict[str, list[int]]) -> tuple[ModelShare, ...]:
    return tuple(
        ModelShare(name, s[0], s[1], usd(s[2]), s[3])
        for name, s in sorted(models.items(), key=lambda kv: (-kv[1][2], -kv[1][1], kv[0]))
    )


def _make_row(agg: Aggregator, dim: str, key: str, cold: RowSum | None, hot: _Hot | None, now: float, day: int) -> Row:
    cfg = agg.config
    c = Counts()
    c.day = day
    if cold is not None:
        c.add_counts(cold, day)
    if hot is not None:
        c.add_counts(hot, day)
    kwargs: dict[str, Any] = {}
    if c.requests:
        kwargs.update(
            requests_today=c.requests, tokens_today=c.input + c.output, input_tokens_today=c.input,
            output_tokens_today=c.output, cache_read_tokens_today=c.cache_read,
            cache_write_tokens_today=c.cache_write, reasoning_tokens_today=c.reasoning,
            usd_today=usd(c.pusd_today), usd_estimated_today=usd(c.pusd_estimated),
            usd_provided_today=usd(c.pusd_provided), unpriced_requests_today=c.unpriced, errors_today=c.errors,
        )
    if hot is not None:
        rw = cfg.rate_window_s
        kwargs.update(
            requests_per_s=hot.req / rw, tokens_per_s=(hot.tin + hot.tout) / rw, input_tokens_per_s=hot.tin / rw,
            output_tokens_per_s=hot.tout / rw, usd_per_hour=hot.burn / PICO * 3600.0 / cfg.burn_window_s,
        )
        if hot.series is not None:
            kwargs["burn_series"] = tuple(map(_PICO_TO_USD, hot.series))
    if dim != "models":
        models: dict[str, list[int]] = {}
        for source in (cold.models if cold is not None and cold.day == day else None, hot.models if hot else None):
            if source:
                for name, share in source.items():
                    mine = models.get(name)
                    if mine is None:
                        models[name] = list(share)
                    else:
                        for i in range(4):
                            mine[i] += share[i]
        kwargs["models"] = _money_models(models)
    active = c.last_seen >= now - cfg.idle_after_s
    state = "active" if active else "idle"
    if dim == "sessions":
        state = agg.session_states.get(key, state)
        proc = agg.session_processes.get(key, {})
        if hot is not None and hot.latest is not None:
            cell = hot.latest
            agent, model, project, host = cell.key[0], cell.key[1], cell.key[3], cell.key[5]
            pid, branch = cell.pid, cell.branch
            if cold is not None:
                pid = pid if pid is not None else cold.pid
                branch = branch if branch is not None else cold.branch
        elif cold is not None:
            agent, model, project, host, pid, branch = cold.agent, cold.model, cold.project, cold.host, cold.pid, cold.branch
        else:  # pragma: no cover - a row always has one part
            agent = model = project = host = branch = None
            pid = None
        kwargs.update(
            agent=agent, model=None if model == NONE_LABEL else model,
            pid=pid if pid is not None else proc.get("pid"),
            host=(None if host == NONE_LABEL else host) or proc.get("host"),
            project=None if project == NONE_LABEL else project, branch=branch, cmd=proc.get("cmd"),
            sessions=1 if active else 0,
        )
    elif hot is not None:
        kwargs["sessions"] = len(hot.active)
    return Row(key=key, first_seen=c.first_seen, last_seen=c.last_seen, state=state, **kwargs)


def _build_snapshot(agg: Aggregator, now: float, status: Mapping[str, object] | None = None) -> Snapshot:
    """Freeze the aggregator at ``now``: O(hot cells + rows); unchanged cold rows are reused."""
    cfg = agg.config
    agg.cool(now)
    _, day = agg.days.today(now)
    rw, bw = cfg.rate_window_s, cfg.burn_window_s
    idle_edge = now - cfg.idle_after_s
    series_start = int(now) - SERIES_S + 1
    hot: dict[str, dict[str, _Hot]] = {dim: {} for dim in DIMENSIONS}
    total_hot = _Hot()
    req_series = [0] * SERIES_S
    tok_series = [0] * SERIES_S
    active_sessions: set[str] = set()
    now_i = int(now)
    rate_cut, burn_cut = now_i - rw, now_i - bw
    total_parts: list[list[int]] = []
    for cell in agg.cells.values():
        # One pass over the cell's buckets: both windows, its dense burn series, the header series.
        req = tin = tout = burn = 0
        dense: list[int] | None = None
        for b in cell.buckets:
            sec = b[0]
            if sec >= series_start:
                i = sec - series_start
                if dense is None:
                    dense = [0] * SERIES_S
                dense[i] += b[4]
                req_series[i] += b[1]
                tok_series[i] += b[2] + b[3]
            if sec > burn_cut:
                burn += b[4]
                if sec > rate_cut:
                    req += b[1]
                    tin += b[2]
                    tout += b[3]
        active = cell.last_seen >= idle_edge
        session = cell.key[2]
        if active and session is not None:
            active_sessions.add(session)
        if dense is not None:
            total_parts.append(dense)
        targets = [total_hot]
        for dim, index in _KEY_INDEX.items():
            k = cell.key[index]
            if k is None:
                continue
            table = hot[dim]
            h = table.get(k)
            if h is None:
                h = table[k] = _Hot()
            targets.append(h)
            if dim != "models":
                add_model_share(h.models, cell.key[1], cell, day)
            if active and session is not None:
                h.active.add(session)
            if cell.last_seen > h.latest_ts:
                h.latest, h.latest_ts = cell, cell.last_seen
            if dense is not None:
                h.parts.append(dense)
        for h in targets:
            h.add_counts(cell, day)
            h.req += req
            h.tin += tin
            h.tout += tout
            h.burn += burn
    total_series = total_hot.series = _sum_series(total_parts) or [0] * SERIES_S
    for table in hot.values():
        for h in table.values():
            h.series = _sum_series(h.parts)

    views: dict[str, tuple[Row, ...]] = {}
    cache = agg.row_cache
    for dim in DIMENSIONS:
        cold_table = agg.cold[dim]
        hot_table = hot[dim]
        rows: list[Row] = []
        for key, cold in cold_table.items():
            h = hot_table.get(key)
            if h is None:
                ck = (cold.version, agg.session_versions.get(key, 0) if dim == "sessions" else 0, day)
                cached = cache.get((dim, key))
                if cached is not None and cached[0] == ck:
                    rows.append(cached[1])
                    continue
                row = _make_row(agg, dim, key, cold, None, now, day)
                cache[(dim, key)] = (ck, row)
                rows.append(row)
            else:
                rows.append(_make_row(agg, dim, key, cold, h, now, day))
        for key, h in hot_table.items():
            if key not in cold_table:
                rows.append(_make_row(agg, dim, key, None, h, now, day))
        views[dim] = sort_rows(rows, "burn")

    t = Counts()
    t.day = day
    t.add_counts(agg.cold_total, day)
    t.add_counts(total_hot, day)
    totals = Totals(
        requests_per_s=total_hot.req / rw,
        tokens_per_s=(total_hot.tin + total_hot.tout) / rw,
        input_tokens_per_s=total_hot.tin / rw,
        output_tokens_per_s=total_hot.tout / rw,
        usd_per_hour=total_hot.burn / PICO * 3600.0 / bw,
        requests_today=t.requests,
        tokens_today=t.input + t.output,
        input_tokens_today=t.input,
        output_tokens_today=t.output,
        cache_read_tokens_today=t.cache_read,
        cache_write_tokens_today=t.cache_write,
        reasoning_tokens_today=t.reasoning,
        usd_today=usd(t.pusd_today),
        usd_estimated_today=usd(t.pusd_estimated),
        usd_provided_today=usd(t.pusd_provided),
        unpriced_requests_today=t.unpriced,
        errors_today=t.errors,
        active_sessions=len(active_sessions),
        requests_series=tuple(req_series),
        tokens_series=tuple(tok_series),
        burn_series=tuple(map(_PICO_TO_USD, total_series)),
    )
    return Snapshot(generated_at=now, totals=totals, status=dict(status or {}), **views)
