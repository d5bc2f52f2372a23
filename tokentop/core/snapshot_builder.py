"""Snapshots of the aggregator, built at a cost that follows what changed.

:class:`SnapshotBuilder` is what :meth:`Aggregator.snapshot <tokentop.core.aggregate.Aggregator.snapshot>`
runs. The first builder rescanned every bucket of every hot cell and rebuilt every row at each
tick: 335 ms of CPU per snapshot for 2000 active sessions (``bench/core_bench.py snapshot``). This
one keeps, for every row of every view and for the totals, the row's hot part and its last
:class:`~tokentop.core.snapshot.Row`, and at each snapshot touches only:

* cells the aggregator marked since the previous snapshot (an event or a revision reached them:
  :attr:`Aggregator.dirty <tokentop.core.aggregate.Aggregator.dirty>`), or folded into the cold
  sums (``cooled``), or that go idle now;
* rows those cells belong to, rows whose cold sum or session state changed (``touched``) or that
  were evicted (``dropped``), and rows a second of which leaves the rate window (10 s) or the
  burn window (60 s) now.

Each row keeps the last two minutes as rings of one-second sums (requests, input, output, pusd)
and running sums over the rate and burn windows; a cell's new amounts go into the rings of its
rows, and a second leaving a window leaves the sums when its time comes (a heap of those moments).
A cell's today counters reach its group rows (agents, models, ...) as deltas, summed per row and
model in C when the row is rebuilt; a session row sums its own few cells.

A row that changed gets a new Row and a new ``stamp``; when only its rates or sparkline changed it
is a copy of the previous Row with those fields replaced. A row whose only change is that its
sparkline moved on by a second (any row with spend in the last two minutes) gets a copy with the
series shifted and keeps its stamp, which lets the stream send it once and readers shift it
(``docs/api.md``, delta frames). Rows nothing happened to are the previous Row objects. Views are
re-sorted only when a row's sort key or the set of rows changed.

Exactness: every figure is the one :func:`build_full_snapshot` computes from scratch (the
definition, kept here as the oracle; ``tests/core/test_snapshot_builder.py`` checks random
sequences of apply / revise / cool / evict / session state against it). Sums are exact integers
and floats are derived from them with the same expressions. The builder starts over (one full
pass) at local midnight and when the clock goes backwards.
"""

from __future__ import annotations

import heapq
from decimal import Decimal
from operator import attrgetter, sub
from typing import TYPE_CHECKING, Any, Final, Mapping

from tokentop.core.cells import _KEY_INDEX, Cell, Counts, RowSum, add_model_share
from tokentop.core.pricing import PICO, usd
from tokentop.core.snapshot import DIMENSIONS, NONE_LABEL, SERIES_S, ModelShare, Row, Snapshot, Totals, sort_rows

if TYPE_CHECKING:
    from tokentop.core.aggregate import Aggregator

_PICO_TO_USD = (1.0 / PICO).__mul__  # floats for sparklines; exact money stays in Decimal fields
_ZERO_USD: Final = usd(0)
_NO_USD: Final = Decimal(0)  # Row's default: what a row with no request today shows
_SORT_KEY = attrgetter("sort_key")
_NEVER: Final = float("inf")

# A cell's today counters as handed to its group rows (summed per row and model in C): requests,
# input, output, cache read, cache write, reasoning, errors, pusd estimated / provided, unpriced,
# and whether it has a model share today (a row lists the models with one).
_REQ, _IN, _OUT, _CR, _CW, _REAS, _ERR, _PEST, _PPROV, _UNP, _SHARE = range(11)
_ZERO_VEC: Final = (0,) * 11
_ZERO_SERIES: Final = (0.0,) * SERIES_S
#: what changed in a row since its Row was built: its counters, state or identity (a full build),
#: or only its rates and sparkline (a copy of the Row with those replaced)
_COUNTS: Final = 1
_RATES: Final = 2


class RowState:
    """One row of one view (or the totals): its hot part, its rings, its last Row."""

    __slots__ = (
        "dim", "key", "by_model", "pending", "nhot", "active", "members", "first", "last",
        "r_sec", "r_req", "r_in", "r_out", "r_usd", "w_req", "w_in", "w_out", "w_usd", "cut_r", "cut_b",
        "spark_last", "spark_lo", "series", "series_end", "row", "sort_key", "folded", "news", "due", "alive",
    )

    def __init__(self, dim: str, key: str | None) -> None:
        self.dim = dim
        self.key = key
        #: model -> summed counters of this row's hot cells of that model (group rows)
        self.by_model: dict[str, list[int]] = {}
        #: model -> counter deltas not folded into ``by_model`` yet
        self.pending: dict[str, list[tuple[int, ...]]] = {}
        #: hot cells in this row
        self.nhot = 0
        #: session -> its active hot cells in this row (not on session rows)
        self.active: dict[str, int] | None = None if dim == "sessions" else {}
        #: the hot cells of a session row (its counters and identity come from them)
        self.members: dict[Cell, None] | None = {} if dim == "sessions" else None
        #: first / last seen over every cell this row has had (the cold sum holds the same for cooled ones)
        self.first = 0.0
        self.last = 0.0
        #: the last two minutes, one slot per ``second % 120``; ``r_sec`` says which second a slot holds
        self.r_sec: list[int] | None = None
        self.r_req: list[int] = []
        self.r_in: list[int] = []
        self.r_out: list[int] = []
        self.r_usd: list[int] = []
        #: sums over the seconds after ``cut_r`` (requests, input, output) and after ``cut_b`` (pusd)
        self.w_req = self.w_in = self.w_out = self.w_usd = 0
        self.cut_r = self.cut_b = -1
        #: newest second one of its cells added to (the row has a series while it is recent)
        self.spark_last = -1
        #: oldest second whose ring value changed since the series was last converted
        self.spark_lo: int | None = None
        #: the last converted series and the second it ends at
        self.series: tuple[float, ...] = ()
        self.series_end = 0
        self.row: Row | None = None
        self.sort_key: tuple[Any, ...] = ()
        #: key.casefold(), part of every sort key
        self.folded = key.casefold() if key is not None else ""
        self.news = 0
        #: the second of its slot in the builder's wheel (a second leaves a window then; 0: none)
        self.due = 0
        self.alive = True

    def pending_for(self, model: str) -> list[tuple[int, ...]]:
        lst = self.pending.get(model)
        if lst is None:
            lst = self.pending[model] = []
        return lst

    def fold(self) -> list[int] | tuple[int, ...] | None:
        """Fold the pending deltas in; the hot counters (None: no hot cell)."""
        by_model = self.by_model
        for model, deltas in self.pending.items():
            if deltas:
                base = by_model.get(model)
                summed = list(map(sum, zip(base or _ZERO_VEC, *deltas)))
                deltas.clear()
                if any(summed):
                    by_model[model] = summed
                elif base is not None:
                    del by_model[model]
        if not self.nhot:
            return None
        if len(by_model) == 1:
            for acc in by_model.values():
                return acc
        if not by_model:
            return _ZERO_VEC
        return list(map(sum, zip(*by_model.values())))

    def add(self, s: int, req: int, tin: int, tout: int, pusd: int) -> None:
        """Amounts of second ``s`` (inside the last two minutes) reached this row."""
        r_sec = self.r_sec
        if r_sec is None:
            r_sec = self.r_sec = [-1] * SERIES_S
            self.r_req = [0] * SERIES_S
            self.r_in = [0] * SERIES_S
            self.r_out = [0] * SERIES_S
            self.r_usd = [0] * SERIES_S
        i = s % SERIES_S
        held = r_sec[i]
        if held != s:
            # the slot's second is two minutes old: out of every window (drop it from the sums if
            # the row has not moved its edges past it yet), then the slot is this second's
            if held > self.cut_r:
                self.w_req -= self.r_req[i]
                self.w_in -= self.r_in[i]
                self.w_out -= self.r_out[i]
            if held > self.cut_b:
                self.w_usd -= self.r_usd[i]
            r_sec[i] = s
            self.r_req[i] = req
            self.r_in[i] = tin
            self.r_out[i] = tout
            self.r_usd[i] = pusd
        else:
            self.r_req[i] += req
            self.r_in[i] += tin
            self.r_out[i] += tout
            self.r_usd[i] += pusd
        if s > self.cut_r:
            self.w_req += req
            self.w_in += tin
            self.w_out += tout
        if s > self.cut_b:
            self.w_usd += pusd
        if s > self.spark_last:
            self.spark_last = s
        if self.spark_lo is None or s < self.spark_lo:
            self.spark_lo = s

    def advance(self, cut_r: int, cut_b: int, now_i: int) -> int:
        """Move the window edges to ``cut_r`` / ``cut_b``: seconds leaving a window leave its sums.
        Returns the second at which the next one leaves a window (0: none is inside)."""
        r_sec = self.r_sec
        if r_sec is None:
            self.cut_r, self.cut_b = cut_r, cut_b
            self.w_req = self.w_in = self.w_out = self.w_usd = 0
            return 0
        if cut_r != self.cut_r:
            if cut_r < self.cut_r or cut_r - self.cut_r >= SERIES_S:
                self.w_req = self.w_in = self.w_out = 0
                lo = max(cut_r, now_i - SERIES_S) + 1
                for sec in range(lo, now_i + 1):
                    i = sec % SERIES_S
                    if r_sec[i] == sec:
                        self.w_req += self.r_req[i]
                        self.w_in += self.r_in[i]
                        self.w_out += self.r_out[i]
            else:
                for sec in range(self.cut_r + 1, cut_r + 1):
                    i = sec % SERIES_S
                    if r_sec[i] == sec:
                        self.w_req -= self.r_req[i]
                        self.w_in -= self.r_in[i]
                        self.w_out -= self.r_out[i]
            self.cut_r = cut_r
        if cut_b != self.cut_b:
            if cut_b < self.cut_b or cut_b - self.cut_b >= SERIES_S:
                self.w_usd = 0
                lo = max(cut_b, now_i - SERIES_S) + 1
                for sec in range(lo, now_i + 1):
                    i = sec % SERIES_S
                    if r_sec[i] == sec:
                        self.w_usd += self.r_usd[i]
            else:
                for sec in range(self.cut_b + 1, cut_b + 1):
                    i = sec % SERIES_S
                    if r_sec[i] == sec:
                        self.w_usd -= self.r_usd[i]
            self.cut_b = cut_b
        # the oldest second inside each window leaves it (window length) seconds after it came
        rw, bw = now_i - cut_r, now_i - cut_b
        due = 0
        for sec in range(cut_r + 1, now_i + 1):
            if r_sec[sec % SERIES_S] == sec:
                due = sec + rw
                break
        for sec in range(cut_b + 1, (due - bw) if due else now_i + 1):
            if r_sec[sec % SERIES_S] == sec:
                due = sec + bw
                break
        return due

    def series_at(self, now_i: int) -> tuple[float, ...]:
        """The burn series for the 120 seconds ending at ``now_i``: the previous one moved on, with
        only the seconds that changed (and the new ones) converted from the ring."""
        r_sec, r_usd = self.r_sec, self.r_usd
        lo = self.spark_lo
        self.spark_lo = None
        old = self.series
        shift = now_i - self.series_end
        start = now_i - SERIES_S + 1
        if r_sec is None:
            values = _ZERO_SERIES
        elif not old or shift >= SERIES_S or shift < 0:
            values = tuple([_PICO_TO_USD(r_usd[sec % SERIES_S]) if r_sec[sec % SERIES_S] == sec else 0.0
                            for sec in range(start, now_i + 1)])
        else:
            keep = SERIES_S - shift if lo is None else min(SERIES_S - shift, max(0, lo - start))
            # old[shift:shift + keep] is unchanged; the seconds after it are read from the ring
            tail = [_PICO_TO_USD(r_usd[sec % SERIES_S]) if r_sec[sec % SERIES_S] == sec else 0.0
                    for sec in range(start + keep, now_i + 1)]
            values = old[shift:shift + keep] + tuple(tail) if keep else tuple(tail)
        self.series, self.series_end = values, now_i
        return values


class TotalState(RowState):
    """The totals: a row over every hot cell."""

    def __init__(self) -> None:
        super().__init__("total", None)


class CellRecord:
    """What the builder remembers of one hot cell: its rows and what it last contributed to them."""

    __slots__ = ("targets", "groups", "lists", "vec", "active", "first", "last", "later", "due", "built")

    def __init__(self, targets: list[RowState], groups: list[RowState], model: str) -> None:
        #: its row in each dimension (a cell without a session has no session row), then the totals
        self.targets = targets
        #: the targets that sum counters from deltas (all but the session row)
        self.groups = groups
        #: each group's pending deltas for this cell's model
        self.lists = [t.pending_for(model) for t in groups]
        #: the counters it contributes (see ``_REQ`` ...)
        self.vec: tuple[int, ...] = _ZERO_VEC
        self.active = False
        self.first = 0.0
        self.last = 0.0
        #: new amounts at seconds still ahead of the builder's clock (counted when it gets there)
        self.later: list[list[int]] | None = None
        #: sequence of the pending wake-up in the builder's cell heap (going idle, a later amount due)
        self.due = 0
        self.built = 0


class View:
    """One view's rows in display order (``sort_rows(..., "burn")``), re-sorted only when needed."""

    __slots__ = ("states", "order", "resort", "changed", "rows")

    def __init__(self) -> None:
        self.states: dict[str, RowState] = {}
        self.order: list[RowState] = []
        self.resort = False
        #: a row object changed (rebuilt or shifted): the view's tuple is rebuilt
        self.changed = True
        self.rows: tuple[Row, ...] = ()


class SnapshotBuilder:
    """Incremental snapshots of one :class:`Aggregator` (see the module docstring)."""

    def __init__(self, agg: Aggregator) -> None:
        self.agg = agg
        #: stamps never repeat, even across a start-over (stream readers compare them)
        self._stamps = 0
        self._seq = 0
        self.builds = 0
        #: what the last build did (the bench and tests read them): cells read, rows rebuilt
        #: in full, rows whose rates or sparkline changed (a copy), rows only shifted
        self.cells_read = 0
        self.rebuilt = 0
        self.rerated = 0
        self.shifted = 0
        self.starts = 0
        self._reset(-1)

    # -- state -----------------------------------------------------------------------------------
    def _reset(self, day: int) -> None:
        agg = self.agg
        self.day = day
        self.now: float | None = None
        self.views = {dim: View() for dim in DIMENSIONS}
        self.total = TotalState()
        #: (time, sequence, cell): a cell goes idle / a later amount is due
        self.cell_heap: list[tuple[float, int, Cell]] = []
        #: second -> rows a second of which leaves one of their windows then (a timer wheel: exits
        #: fall on whole seconds, and a dict slot costs less than a heap entry per row and second)
        self.wheel: dict[int, list[RowState]] = {}
        self.wheel_at = -1
        #: rows with a burn series (shifted at every build while they have one)
        self.sparking: dict[RowState, None] = {}
        self.dirty_rows: list[RowState] = []
        if day < 0:
            return
        self.starts += 1
        # start over: every cell is new to the builder, every cold row is to be built
        for cell in agg.dirty:
            cell.dirty = False
        for cell in agg.cells.values():
            cell.record = None
            cell.syn_sec = -1
            cell.syn_b = (0, 0, 0, 0)
            cell.late = None
            cell.dirty = True
        agg.dirty = list(agg.cells.values())
        agg.cooled.clear()
        agg.dropped.clear()
        agg.touched = {(dim, key) for dim in DIMENSIONS for key in agg.cold[dim]}
        agg.touched.add(("total", None))

    def _state(self, dim: str, key: str) -> RowState:
        view = self.views[dim]
        state = view.states.get(key)
        if state is None:
            state = view.states[key] = RowState(dim, key)
            view.order.append(state)
            view.resort = True
        return state

    def _mark(self, state: RowState, news: int) -> None:
        if not state.news:
            self.dirty_rows.append(state)
        state.news |= news

    def _record(self, cell: Cell) -> CellRecord:
        key = cell.key
        targets = []
        groups = []
        for dim, index in _KEY_INDEX.items():
            k = key[index]
            if k is not None:
                state = self._state(dim, k)
                state.nhot += 1
                if state.members is not None:
                    state.members[cell] = None
                else:
                    groups.append(state)
                targets.append(state)
        total = self.total
        total.nhot += 1
        targets.append(total)
        groups.append(total)
        rec = cell.record = CellRecord(targets, groups, key[1])  # type: ignore[arg-type]
        return rec

    # -- the build ---------------------------------------------------------------------------------
    def build(self, now: float, status: Mapping[str, object] | None = None) -> Snapshot:
        agg = self.agg
        cfg = agg.config
        _, day = agg.days.today(now)
        if day != self.day or self.now is None or now < self.now:
            self._reset(day)
        self.now = now
        self.builds += 1
        agg.cool(now)
        now_i = int(now)
        rw, bw = cfg.rate_window_s, cfg.burn_window_s
        ctx = _Tick(now, now_i, day, now - cfg.idle_after_s, now_i - SERIES_S + 1, now_i - rw, now_i - bw, rw, bw,
                    cfg.idle_after_s, self.builds)
        self.cells_read = 0

        # 1. cells folded into the cold sums: their counters leave the hot part of their rows
        for cell in agg.cooled:
            rec = cell.record
            if rec is None:
                self._touch_keys(cell.key)
                continue
            cell.record = None
            if any(rec.vec):
                neg = tuple(-v for v in rec.vec)
                for lst in rec.lists:
                    lst.append(neg)
            session = cell.key[2]
            for t in rec.targets:
                t.nhot -= 1
                if rec.active and t.active is not None and session is not None:
                    _dec(t.active, session)
                if t.members is not None:
                    t.members.pop(cell, None)
                self._mark(t, _COUNTS)
        agg.cooled.clear()

        # 2. rows whose cold sum or session state changed, rows evicted
        for dim, key in agg.touched:
            if dim == "total":
                self._mark(self.total, _COUNTS)
                continue
            state = self.views[dim].states.get(key)  # type: ignore[arg-type]
            if state is None and key in agg.cold[dim]:
                state = self._state(dim, key)  # type: ignore[arg-type]
            if state is not None:
                self._mark(state, _COUNTS)
        agg.touched = set()
        for dim, key in agg.dropped:
            view = self.views[dim]
            state = view.states.pop(key, None)
            if state is not None:
                state.alive = False
                self.sparking.pop(state, None)
                view.resort = True
        agg.dropped.clear()

        # 3. cells an event or a revision reached, cells going idle now or with amounts due now
        dirty, agg.dirty = agg.dirty, []
        cells = agg.cells
        for cell in dirty:
            cell.dirty = False
            if cells.get(cell.key) is cell:
                self._read(cell, ctx, True)
        heap = self.cell_heap
        again = []
        while heap and heap[0][0] <= now:
            item = heapq.heappop(heap)
            cell = item[2]
            rec = cell.record
            if rec is None or rec.due != item[1]:
                continue  # stale: read since, or cooled
            if rec.built == ctx.build_no:
                again.append(item)  # read this build already; its wake-up stands
                continue
            rec.due = 0
            self._read(cell, ctx, False)
        for item in again:
            heapq.heappush(heap, item)

        # 4. rows a second of which leaves a window now
        wheel = self.wheel
        if wheel:
            seconds = (range(self.wheel_at + 1, now_i + 1) if 0 <= now_i - self.wheel_at <= 2 * SERIES_S
                       else sorted(k for k in wheel if k <= now_i))
            for sec in seconds:
                due = wheel.pop(sec, None)
                if due:
                    for state in due:
                        if state.due == sec and state.alive:
                            state.due = 0
                            self._mark(state, _RATES)
        self.wheel_at = now_i

        # 5. rows
        self.rebuilt = self.rerated = self.shifted = 0
        total = self.total
        for state in self.dirty_rows:
            news = state.news
            state.news = 0
            if state.alive and state is not total:
                self._build_row(state, news, ctx)
        self.dirty_rows = []
        start = ctx.series_start
        for state in list(self.sparking):
            if state.series_end == now_i:
                continue  # built above (or earlier in this second)
            if state.spark_last < start or state.nhot == 0:
                self._build_row(state, _RATES, ctx)  # its sparkline just ended
                continue
            state.row = _with_series(state.row, state.series_at(now_i))  # type: ignore[arg-type]
            self.views[state.dim].changed = True
            self.shifted += 1

        views: dict[str, tuple[Row, ...]] = {}
        for dim in DIMENSIONS:
            view = self.views[dim]
            if view.resort:
                view.order = [s for s in view.order if s.alive]
                view.order.sort(key=_SORT_KEY)
                view.resort = False
                view.changed = True
            if view.changed:
                view.rows = tuple([s.row for s in view.order])  # type: ignore[misc]
                view.changed = False
            views[dim] = view.rows
        totals = self._totals(ctx)
        return Snapshot(generated_at=now, totals=totals, status=dict(status or {}), **views)

    def _touch_keys(self, key: tuple[str | None, ...]) -> None:
        for dim, index in _KEY_INDEX.items():
            k = key[index]
            if k is not None:
                self._mark(self._state(dim, k), _COUNTS)
        self._mark(self.total, _COUNTS)

    # -- one cell ----------------------------------------------------------------------------------
    def _read(self, cell: Cell, ctx: _Tick, news: bool) -> None:
        """Hand ``cell``'s rows what changed in it: new amounts (``news``: it was marked), counters,
        active or not, seen times."""
        self.cells_read += 1
        rec = cell.record
        if rec is None:
            rec = self._record(cell)
        rec.built = ctx.build_no
        now_i = ctx.now_i
        mark = 0
        targets = rec.targets

        entries = _fresh(cell) if news else []
        later = rec.later
        if later:
            rec.later = None
            entries.extend(later)
        if entries:
            start = ctx.series_start
            for e in entries:
                s = e[0]
                if s > now_i:  # ahead of this clock (it was set back): counted when it gets there
                    if rec.later is None:
                        rec.later = []
                    rec.later.append(e)
                elif s >= start:
                    for t in targets:
                        t.add(s, e[1], e[2], e[3], e[4])
                    mark = _RATES

        if cell.day == ctx.day:
            r, i, o, pe, pp, un = cell.requests, cell.input, cell.output, cell.pusd_estimated, cell.pusd_provided, cell.unpriced
            vec = (r, i, o, cell.cache_read, cell.cache_write, cell.reasoning, cell.errors, pe, pp, un,
                   1 if (r or i or o or pe or pp or un) else 0)
        else:
            vec = _ZERO_VEC
        old = rec.vec
        if vec != old:
            delta = tuple(map(sub, vec, old))
            rec.vec = vec
            for lst in rec.lists:
                lst.append(delta)
            mark = _COUNTS

        active = cell.last_seen >= ctx.idle_edge
        if active != rec.active:
            rec.active = active
            session = cell.key[2]
            if session is not None:
                for t in targets:
                    a = t.active
                    if a is not None:
                        if active:
                            a[session] = a.get(session, 0) + 1
                        else:
                            _dec(a, session)
            mark = _COUNTS
        ls, fs = cell.last_seen, cell.first_seen
        if ls != rec.last or fs != rec.first:
            rec.last, rec.first = ls, fs
            for t in targets:
                if ls > t.last:
                    t.last = ls
                if fs and (not t.first or fs < t.first):
                    t.first = fs
            mark = _COUNTS
        if mark:
            if mark == _COUNTS and entries:
                mark = _COUNTS | _RATES
            for t in targets:
                if not t.news:
                    self.dirty_rows.append(t)
                t.news |= mark

        # when will it change without news: going idle, an amount ahead of the clock coming due
        due = cell.last_seen + ctx.idle_after if active else _NEVER
        if rec.later:
            due = min(due, min(e[0] for e in rec.later))
        if due != _NEVER:
            self._seq += 1
            rec.due = self._seq
            heapq.heappush(self.cell_heap, (due, self._seq, cell))
        else:
            rec.due = 0

    # -- one row -------------------------------------------------------------------------------------
    def _build_row(self, state: RowState, news: int, ctx: _Tick) -> None:
        due = state.advance(ctx.cut_r, ctx.cut_b, ctx.now_i)
        if due != state.due:
            state.due = due
            if due:
                slot = self.wheel.get(due)
                if slot is None:
                    self.wheel[due] = [state]
                else:
                    slot.append(state)
        row = state.row
        if news & _COUNTS or row is None:
            self._build_full(state, ctx)
            return
        # only the rates or the sparkline moved: the Row with those replaced
        if state.nhot:
            rw = ctx.rw
            req, tin, tout = state.w_req / rw, (state.w_in + state.w_out) / rw, state.w_in / rw
            tout_s = state.w_out / rw
            burn = state.w_usd / PICO * 3600.0 / ctx.bw
        else:
            req = tin = tout = tout_s = burn = 0.0
        series = self._series(state, ctx)
        self._stamps += 1
        new = Row(row.key, req, tin, tout, tout_s, burn, row.requests_today, row.tokens_today,
                  row.input_tokens_today, row.output_tokens_today, row.cache_read_tokens_today,
                  row.cache_write_tokens_today, row.reasoning_tokens_today, row.usd_today, row.usd_estimated_today,
                  row.usd_provided_today, row.unpriced_requests_today, row.errors_today, row.first_seen,
                  row.last_seen, row.state, row.sessions, row.models, series, row.agent, row.model, row.pid,
                  row.host, row.project, row.branch, row.cmd, self._stamps)
        self._place(state, new)
        self.rerated += 1

    def _series(self, state: RowState, ctx: _Tick) -> tuple[float, ...]:
        if state.nhot and state.spark_last >= ctx.series_start:
            self.sparking[state] = None
            return state.series_at(ctx.now_i)
        state.series = ()
        state.spark_lo = None
        self.sparking.pop(state, None)
        return ()

    def _place(self, state: RowState, row: Row) -> None:
        state.row = row
        sort_key = (-row.usd_per_hour, -row.usd_today, state.folded, state.key)
        view = self.views[state.dim]
        if sort_key != state.sort_key:
            state.sort_key = sort_key
            view.resort = True
        view.changed = True

    def _build_full(self, state: RowState, ctx: _Tick) -> None:
        agg = self.agg
        dim, key = state.dim, state.key
        day = ctx.day
        members = state.members
        if members is None:
            hot = state.fold()
        elif not members:
            hot = None
        elif len(members) == 1:
            for cell in members:
                hot = cell.record.vec if cell.record is not None else _ZERO_VEC
        else:
            hot = list(map(sum, zip(*(c.record.vec for c in members if c.record is not None))))
        cold = agg.cold[dim].get(key)  # type: ignore[arg-type]
        if hot is None and cold is None:  # no part left (defensive: eviction drops such rows first)
            state.alive = False
            self.views[dim].states.pop(key, None)  # type: ignore[arg-type]
            self.views[dim].resort = True
            self.sparking.pop(state, None)
            return
        cold_today = cold is not None and cold.day == day
        if hot is None:
            h = _ZERO_VEC
        else:
            h = hot
        if cold_today:
            req = cold.requests + h[_REQ]  # type: ignore[union-attr]
        else:
            req = h[_REQ]
        if req:
            if cold_today:
                c = cold
                inp = c.input + h[_IN]  # type: ignore[union-attr]
                out = c.output + h[_OUT]  # type: ignore[union-attr]
                cr = c.cache_read + h[_CR]  # type: ignore[union-attr]
                cw = c.cache_write + h[_CW]  # type: ignore[union-attr]
                reas = c.reasoning + h[_REAS]  # type: ignore[union-attr]
                err = c.errors + h[_ERR]  # type: ignore[union-attr]
                pe = c.pusd_estimated + h[_PEST]  # type: ignore[union-attr]
                pp = c.pusd_provided + h[_PPROV]  # type: ignore[union-attr]
                unp = c.unpriced + h[_UNP]  # type: ignore[union-attr]
            else:
                inp, out, cr, cw, reas, err, pe, pp, unp = (h[_IN], h[_OUT], h[_CR], h[_CW], h[_REAS], h[_ERR],
                                                            h[_PEST], h[_PPROV], h[_UNP])
            est = usd(pe) if pe else _ZERO_USD
            prov = usd(pp) if pp else _ZERO_USD
            spent = prov if not pe else (est if not pp else usd(pe + pp))
            tokens = inp + out
        else:
            inp = out = cr = cw = reas = err = unp = tokens = 0
            est = prov = spent = _NO_USD
        last, first = state.last, state.first
        if cold is not None:
            if cold.last_seen > last:
                last = cold.last_seen
            if cold.first_seen and (not first or cold.first_seen < first):
                first = cold.first_seen
        if hot is not None:
            rw = ctx.rw
            rate_req, rate_tok, rate_in, rate_out = (state.w_req / rw, (state.w_in + state.w_out) / rw,
                                                     state.w_in / rw, state.w_out / rw)
            burn = state.w_usd / PICO * 3600.0 / ctx.bw
        else:
            rate_req = rate_tok = rate_in = rate_out = burn = 0.0
        series = self._series(state, ctx)
        models: tuple[ModelShare, ...] = ()
        if dim != "models":
            models = self._models(state, cold if cold_today else None, hot is not None)
        active = last >= ctx.idle_edge
        text = "active" if active else "idle"
        agent = model = pid = host = project = branch = cmd = None
        if dim == "sessions":
            text = agg.session_states.get(key, text)  # type: ignore[arg-type]
            proc = agg.session_processes.get(key)  # type: ignore[arg-type]
            latest = None
            if members:
                latest_ts = -1.0
                for cell in members:  # in creation order: the first of equals wins, as in the full build
                    if cell.last_seen > latest_ts:
                        latest, latest_ts = cell, cell.last_seen
            if latest is not None:
                k = latest.key
                agent, model, project, host = k[0], k[1], k[3], k[5]
                pid, branch = latest.pid, latest.branch
                if cold is not None:
                    pid = pid if pid is not None else cold.pid
                    branch = branch if branch is not None else cold.branch
            elif cold is not None:
                agent, model, project, host, pid, branch = cold.agent, cold.model, cold.project, cold.host, cold.pid, cold.branch
            if model == NONE_LABEL:
                model = None
            if project == NONE_LABEL:
                project = None
            if host == NONE_LABEL:
                host = None
            if proc:
                if pid is None:
                    pid = proc.get("pid")  # type: ignore[assignment]
                host = host or proc.get("host")  # type: ignore[assignment]
                cmd = proc.get("cmd")  # type: ignore[assignment]
            sessions = 1 if active else 0
        else:
            sessions = len(state.active) if hot is not None else 0  # type: ignore[arg-type]
        self._stamps += 1
        row = Row(key, rate_req, rate_tok, rate_in, rate_out, burn, req, tokens, inp, out, cr, cw, reas,  # type: ignore[arg-type]
                  spent, est, prov, unp, err, first, last, text, sessions, models, series, agent, model, pid,
                  host, project, branch, cmd, self._stamps)
        self._place(state, row)
        self.rebuilt += 1

    def _models(self, state: RowState, cold: RowSum | None, hot: bool) -> tuple[ModelShare, ...]:
        models: dict[str, list[int]] = {}
        if cold is not None and cold.models:
            for name, share in cold.models.items():
                models[name] = list(share)
        if hot:
            if state.members is not None:
                shares = []
                for cell in state.members:
                    vec = cell.record.vec if cell.record is not None else _ZERO_VEC
                    if vec[_SHARE]:
                        shares.append((cell.key[1], vec))
            else:
                shares = [(name, acc) for name, acc in state.by_model.items() if acc[_SHARE]]
            for name, acc in shares:
                share = [acc[_REQ], acc[_IN] + acc[_OUT], acc[_PEST] + acc[_PPROV], acc[_UNP]]
                mine = models.get(name)
                if mine is None:
                    models[name] = share
                else:
                    for n in range(4):
                        mine[n] += share[n]
        if len(models) == 1:
            for name, s in models.items():
                return (ModelShare(name, s[0], s[1], usd(s[2]), s[3]),)
        return _money_models(models)

    def _totals(self, ctx: _Tick) -> Totals:
        agg = self.agg
        total = self.total
        total.news = 0
        total.advance(ctx.cut_r, ctx.cut_b, ctx.now_i)
        hot = total.fold() or _ZERO_VEC
        t = Counts()
        t.day = ctx.day
        t.add_counts(agg.cold_total, ctx.day)
        t.requests += hot[_REQ]
        t.input += hot[_IN]
        t.output += hot[_OUT]
        t.cache_read += hot[_CR]
        t.cache_write += hot[_CW]
        t.reasoning += hot[_REAS]
        t.errors += hot[_ERR]
        t.pusd_estimated += hot[_PEST]
        t.pusd_provided += hot[_PPROV]
        t.unpriced += hot[_UNP]
        rw, bw = ctx.rw, ctx.bw
        start, now_i = ctx.series_start, ctx.now_i
        req_series = [0] * SERIES_S
        tok_series = [0] * SERIES_S
        if total.spark_last >= start and total.r_sec is not None:
            r_sec = total.r_sec
            for n, sec in enumerate(range(start, now_i + 1)):
                i = sec % SERIES_S
                if r_sec[i] == sec:
                    req_series[n] = total.r_req[i]
                    tok_series[n] = total.r_in[i] + total.r_out[i]
            burn = total.series_at(now_i)
        else:
            total.series = ()
            total.spark_lo = None
            burn = _ZERO_SERIES
        return Totals(
            requests_per_s=total.w_req / rw,
            tokens_per_s=(total.w_in + total.w_out) / rw,
            input_tokens_per_s=total.w_in / rw,
            output_tokens_per_s=total.w_out / rw,
            usd_per_hour=total.w_usd / PICO * 3600.0 / bw,
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
            active_sessions=len(total.active),  # type: ignore[arg-type]
            requests_series=tuple(req_series),
            tokens_series=tuple(tok_series),
            burn_series=burn,
        )


class _Tick:
    """The instants and edges of one build."""

    __slots__ = ("now", "now_i", "day", "idle_edge", "series_start", "cut_r", "cut_b", "rw", "bw", "idle_after",
                 "build_no")

    def __init__(self, now: float, now_i: int, day: int, idle_edge: float, series_start: int, cut_r: int, cut_b: int,
                 rw: int, bw: int, idle_after: float, build_no: int) -> None:
        self.now = now
        self.now_i = now_i
        self.day = day
        self.idle_edge = idle_edge
        self.series_start = series_start
        self.cut_r = cut_r
        self.cut_b = cut_b
        self.rw = rw
        self.bw = bw
        self.idle_after = idle_after
        self.build_no = build_no


def _with_series(row: Row, series: tuple[float, ...]) -> Row:
    """``row`` with its sparkline moved on (the same content: the same stamp)."""
    return Row(row.key, row.requests_per_s, row.tokens_per_s, row.input_tokens_per_s, row.output_tokens_per_s,
               row.usd_per_hour, row.requests_today, row.tokens_today, row.input_tokens_today,
               row.output_tokens_today, row.cache_read_tokens_today, row.cache_write_tokens_today,
               row.reasoning_tokens_today, row.usd_today, row.usd_estimated_today, row.usd_provided_today,
               row.unpriced_requests_today, row.errors_today, row.first_seen, row.last_seen, row.state,
               row.sessions, row.models, series, row.agent, row.model, row.pid, row.host, row.project,
               row.branch, row.cmd, row.stamp)


def _dec(counts: dict[str, int], key: str) -> None:
    n = counts.get(key, 0) - 1
    if n > 0:
        counts[key] = n
    else:
        counts.pop(key, None)


def _fresh(cell: Cell) -> list[list[int]]:
    """What was added to ``cell``'s buckets since the builder last read it: [second, requests,
    input, output, pusd] per bucket (new buckets, the growth of the one read last, late additions
    to older ones), and remember its newest bucket as read."""
    out = cell.late or []
    cell.late = None
    buckets = cell.buckets
    n = len(buckets)
    if not n:
        return out
    syn = cell.syn_sec
    i = n
    while i and buckets[i - 1][0] > syn:
        i -= 1
    if i and buckets[i - 1][0] == syn:
        b = buckets[i - 1]
        sb = cell.syn_b
        if b[1] != sb[0] or b[2] != sb[1] or b[3] != sb[2] or b[4] != sb[3]:
            out.append([syn, b[1] - sb[0], b[2] - sb[1], b[3] - sb[2], b[4] - sb[3]])
    for b in buckets[i:]:
        out.append(b[:])
    last = buckets[-1]
    cell.syn_sec = last[0]
    cell.syn_b = (last[1], last[2], last[3], last[4])
    return out


def _money_models(models: dict[str, list[int]]) -> tuple[ModelShare, ...]:
    return tuple(
        ModelShare(name, s[0], s[1], usd(s[2]), s[3])
        for name, s in sorted(models.items(), key=lambda kv: (-kv[1][2], -kv[1][1], kv[0]))
    )


# -- the definition: a snapshot from scratch ------------------------------------------------------------


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


def build_full_snapshot(agg: Aggregator, now: float, status: Mapping[str, object] | None = None) -> Snapshot:
    """The snapshot of ``agg`` at ``now`` computed from scratch: every bucket of every hot cell,
    every cold sum (O(hot buckets + rows)). The definition the incremental builder must match;
    tests and benches compare against it. Like a snapshot, it folds quiet cells first."""
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
            if sec > now_i:
                continue  # a second this clock has not reached (the clock was set back)
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
    for dim in DIMENSIONS:
        cold_table = agg.cold[dim]
        hot_table = hot[dim]
        rows = [_make_row(agg, dim, key, cold, hot_table.get(key), now, day) for key, cold in cold_table.items()]
        rows.extend(_make_row(agg, dim, key, None, h, now, day) for key, h in hot_table.items() if key not in cold_table)
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


__all__ = ["SnapshotBuilder", "build_full_snapshot", "RowState", "CellRecord"]
