"""What one ``WS /v1/stream`` subscriber asked for, and each tick's frames, serialised once per shape.

A subscriber may narrow the stream with query parameters (``docs/api.md``, "Narrowing the
stream"): ``?views=agents,sessions`` sends only those views, ``?series=compact`` sends every
``burn_series`` as integer micro-dollars with the zero runs at both ends left out, and
``?delta=1`` asks for delta frames: after a first full frame, each frame carries only the rows
that changed since the previous one (``docs/api.md``, "Delta frames"). Without them the stream is
the documented v1 snapshot, unchanged.

Each tick the feed builds ONE snapshot; :class:`StreamFrame` serialises it at most once per
distinct :class:`StreamShape` (and, for delta frames, once per shape and previous frame) however
many subscribers share it. :class:`DeltaReader` is the reading side of delta frames.
"""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass, fields
from decimal import Decimal
from typing import Any, Callable, Final, Mapping

import orjson

from tokentop.core.limits.windows import windows_from_json
from tokentop.core.snapshot import (
    COMPACT_PER_USD,
    DIMENSIONS,
    SERIES_FORMS,
    ModelShare,
    Row,
    RowReuse,
    Snapshot,
    Totals,
    compact_series,
    read_series,
)
from tokentop.core.snapshot import _money as money

#: delta framing versions this feed speaks (``?delta=1``)
DELTA_VERSIONS: Final = (1,)


class StreamShapeError(ValueError):
    """A ``WS /v1/stream`` query the feed cannot honour; the message names the bad parameter."""


@dataclass(frozen=True, slots=True)
class StreamShape:
    #: the views sent, in :data:`DIMENSIONS` order; ``None`` = all of them
    views: tuple[str, ...] | None = None
    series: str = "full"
    #: delta framing version (0: every frame is a whole snapshot, as in v1)
    delta: int = 0

    def __post_init__(self) -> None:  # one shape, one spelling: views in DIMENSIONS order
        if self.views is not None:
            object.__setattr__(self, "views", tuple(v for v in DIMENSIONS if v in self.views))

    @classmethod
    def from_query(cls, query: Mapping[str, str]) -> StreamShape:
        views: tuple[str, ...] | None = None
        raw = query.get("views")
        if raw is not None:
            asked = [v.strip() for v in raw.split(",") if v.strip()]
            unknown = [v for v in asked if v not in DIMENSIONS]
            if unknown or not asked:
                what = f"unknown view {unknown[0]!r}" if unknown else "no view named"
                raise StreamShapeError(f"views: {what}; expected a comma-separated list of {', '.join(DIMENSIONS)}")
            views = tuple(v for v in DIMENSIONS if v in asked)
        series = query.get("series", "full")
        if series not in SERIES_FORMS:
            raise StreamShapeError(f"series: unknown form {series!r}; expected one of {', '.join(SERIES_FORMS)}")
        delta = 0
        raw = query.get("delta")
        if raw is not None:
            if not raw.isdigit() or int(raw) not in DELTA_VERSIONS:
                known = ", ".join(map(str, DELTA_VERSIONS))
                raise StreamShapeError(f"delta: unknown version {raw!r}; this feed speaks delta={known}")
            delta = int(raw)
        return cls(views, series, delta)

    def query(self) -> str:
        """The query string (without ``?``) that asks a feed for this shape; ``""`` for the default."""
        parts = []
        if self.views is not None:
            parts.append("views=" + ",".join(self.views))
        if self.series != "full":
            parts.append("series=" + self.series)
        if self.delta:
            parts.append(f"delta={self.delta}")
        return "&".join(parts)

    @property
    def sent_views(self) -> tuple[str, ...]:
        return DIMENSIONS if self.views is None else self.views


DEFAULT_SHAPE = StreamShape()


def encode_snapshot(snapshot: Snapshot, shape: StreamShape = DEFAULT_SHAPE, max_rows: int | None = None) -> str:
    """The snapshot's JSON text in ``shape`` (orjson; the stdlib for what orjson refuses). A delta
    shape gets a full frame (the first frame of a delta stream)."""
    if shape.delta:
        return _dumps(_full_frame(snapshot, shape, max_rows, 0))
    return _dumps(snapshot.to_json(max_rows, views=shape.views, series=shape.series))


def _dumps(data: Any) -> str:
    try:
        return orjson.dumps(data, option=orjson.OPT_NON_STR_KEYS).decode()
    except TypeError:  # e.g. an int beyond 64 bits in a source's status: the stdlib copes
        return json.dumps(data, separators=(",", ":"))


def decode_snapshot(text: str | bytes, reuse: RowReuse | None = None) -> Snapshot:
    """A snapshot from stream or ``GET /v1/snapshot`` text, in either series form; ``reuse`` keeps
    the previous frame's unchanged rows (one per stream connection)."""
    data: Any = orjson.loads(text)
    if not isinstance(data, dict):
        raise ValueError(f"a snapshot is a JSON object, got {type(data).__name__}")
    return Snapshot.from_json(data, reuse)


_frame_ids = itertools.count(1)


class StreamFrame:
    """One tick's snapshot; :meth:`text` serialises it once per shape, :meth:`delta_text` once per
    shape and previous frame, on first demand."""

    __slots__ = ("snapshot", "max_rows", "seq", "uid", "_texts", "_deltas", "_sent", "_wire")

    def __init__(self, snapshot: Snapshot, max_rows: int | None, seq: int = 0) -> None:
        self.snapshot = snapshot
        self.max_rows = max_rows
        #: the hub's frame number (a subscriber's first frame carries the number of the hub's latest)
        self.seq = seq
        #: unique among frames (delta texts are cached by the previous frame's uid)
        self.uid = next(_frame_ids)
        self._texts: dict[StreamShape, str] = {}
        self._deltas: dict[tuple[StreamShape, int], str] = {}
        #: view -> the rows sent in it (after ``max_rows``) and their keys' stamps
        self._sent: dict[str, tuple[tuple[Row, ...], dict[str, int]]] = {}
        #: (view, key, series form) -> the row's burn series as sent, value by value
        self._wire: dict[tuple[str, str, str], list[Any]] = {}

    def text(self, shape: StreamShape = DEFAULT_SHAPE) -> str:
        """The whole frame in ``shape`` (a full frame, for a delta shape)."""
        text = self._texts.get(shape)
        if text is None:
            if shape.delta:
                text = _dumps(_full_frame(self.snapshot, shape, self.max_rows, self.seq))
            else:
                text = encode_snapshot(self.snapshot, shape, self.max_rows)
            self._texts[shape] = text
        return text

    def delta_text(self, shape: StreamShape, base: StreamFrame) -> str:
        """This frame as a delta frame over ``base`` (the frame the subscriber got last)."""
        key = (shape, base.uid)
        text = self._deltas.get(key)
        if text is None:
            text = self._deltas[key] = _dumps(_delta_frame(base, self, shape))
        return text

    def sent(self, view: str) -> tuple[tuple[Row, ...], dict[str, int]]:
        hit = self._sent.get(view)
        if hit is None:
            rows = self.snapshot.view(view)
            if self.max_rows is not None and len(rows) > self.max_rows:
                rows = rows[: self.max_rows]
            hit = self._sent[view] = (rows, {r.key: r.stamp for r in rows})
        return hit

    @property
    def shapes(self) -> tuple[StreamShape, ...]:
        """The shapes this frame was serialised in so far, once each (tests read it)."""
        return tuple(self._texts) + tuple(shape for shape, _ in self._deltas)

    def wire_series(self, view: str, row: Row, form: str) -> list[Any]:
        """``row``'s burn series as this frame sends it, value by value (micro-dollar ints for the
        compact form, USD rounded to 9 places for the full one); computed once per frame."""
        key = (view, row.key, form)
        hit = self._wire.get(key)
        if hit is None:
            hit = self._wire[key] = _wire_values(row.burn_series, form)
        return hit


# -- delta frames ---------------------------------------------------------------------------------
#
# A delta stream's rows are JSON arrays, not objects: their columns are named once, in the full
# frame ("columns"), and each row sends only its values (about half the bytes, and a reader
# builds a row from a list instead of thirty dictionary look-ups). The values are those of the v1
# row object, in the same order; ``models`` entries are [model, requests, tokens, usd,
# unpriced_requests].

SESSION_COLUMNS: Final = ("id", "agent", "model", "pid", "host", "project", "branch", "cmd", "state")
GROUP_COLUMNS: Final = ("name", "state", "sessions")
FIGURE_COLUMNS: Final = (
    "requests_per_s", "tokens_per_s", "input_tokens_per_s", "output_tokens_per_s", "usd_per_hour",
    "requests_today", "tokens_today", "input_tokens_today", "output_tokens_today", "cache_read_tokens_today",
    "cache_write_tokens_today", "reasoning_tokens_today", "usd_today", "usd_estimated_today",
    "usd_provided_today", "unpriced_requests_today", "errors_today", "first_seen", "last_seen", "models",
    "burn_series",
)


def columns(view: str) -> tuple[str, ...]:
    """The columns of a delta stream's rows of ``view``."""
    return (SESSION_COLUMNS if view == "sessions" else GROUP_COLUMNS) + FIGURE_COLUMNS


def row_values(r: Row, view: str, series: str) -> list[Any]:
    """``r`` as a delta stream's row: the v1 row object's values, in :func:`columns` order."""
    head: list[Any]
    if view == "sessions":
        head = [r.key, r.agent, r.model, r.pid, r.host, r.project, r.branch, r.cmd, r.state]
    else:
        head = [r.key, r.state, r.sessions]
    head += (
        round(r.requests_per_s, 4), round(r.tokens_per_s, 2), round(r.input_tokens_per_s, 2),
        round(r.output_tokens_per_s, 2), round(r.usd_per_hour, 6), r.requests_today, r.tokens_today,
        r.input_tokens_today, r.output_tokens_today, r.cache_read_tokens_today, r.cache_write_tokens_today,
        r.reasoning_tokens_today, money(r.usd_today), money(r.usd_estimated_today), money(r.usd_provided_today),
        r.unpriced_requests_today, r.errors_today, r.first_seen, r.last_seen,
        [[m.model, m.requests, m.tokens, money(m.usd), m.unpriced_requests] for m in r.models],
        compact_series(r.burn_series) if series == "compact" else [round(v, 9) for v in r.burn_series],
    )
    return head


def _frame_head(frame: str, seq: int, snapshot: Snapshot, shape: StreamShape) -> dict[str, Any]:
    out: dict[str, Any] = {"v": snapshot.v, "frame": frame, "seq": seq, "generated_at": snapshot.generated_at}
    if shape.series != "full":
        out["series"] = shape.series
    out["views"] = list(shape.sent_views)
    out["totals"] = snapshot.totals.to_json(shape.series)
    # a few small objects whose pace and eaten_by move every tick: sent whole, every frame
    out["limits"] = [w.to_json() for w in snapshot.limits]
    return out


def _full_frame(snapshot: Snapshot, shape: StreamShape, max_rows: int | None, seq: int) -> dict[str, Any]:
    out = _frame_head("full", seq, snapshot, shape)
    out["columns"] = {view: list(columns(view)) for view in shape.sent_views}
    truncated: dict[str, int] = {}
    for view in shape.sent_views:
        rows = snapshot.view(view)
        if max_rows is not None and len(rows) > max_rows:
            truncated[view] = len(rows) - max_rows
            rows = rows[:max_rows]
        out[view] = {"rows": [row_values(r, view, shape.series) for r in rows]}
    if truncated:
        out["truncated"] = truncated
    out["status"] = dict(snapshot.status)
    return out


def _delta_frame(base: StreamFrame, frame: StreamFrame, shape: StreamShape) -> dict[str, Any]:
    snapshot = frame.snapshot
    out = _frame_head("delta", frame.seq, snapshot, shape)
    out["base"] = base.seq
    lag = int(snapshot.generated_at) - int(base.snapshot.generated_at)
    truncated: dict[str, int] = {}
    for view in shape.sent_views:
        old_rows, old = base.sent(view)
        rows, now = frame.sent(view)
        total = len(snapshot.view(view))
        if total > len(rows):
            truncated[view] = total - len(rows)
        changed = []
        before: dict[str, Row] | None = None
        for r in rows:
            if r.stamp and old.get(r.key) == r.stamp:
                continue
            values = row_values(r, view, shape.series)
            if r.burn_series and lag >= 0:
                if before is None:
                    before = {b.key: b for b in old_rows}
                prev = before.get(r.key)
                if prev is not None and len(prev.burn_series) == len(r.burn_series):
                    tail = _series_tail(frame.wire_series(view, r, shape.series),
                                        base.wire_series(view, prev, shape.series), lag, shape.series)
                    if tail is not None:
                        values[-1] = tail
            changed.append(values)
        part: dict[str, Any] = {"set": changed}
        gone = [key for key in old if key not in now]
        if gone:
            part["drop"] = gone
        if len(rows) != len(old_rows) or any(a.key != b.key for a, b in zip(rows, old_rows)):
            part["order"] = [r.key for r in rows]
        out[view] = part
    if truncated:
        out["truncated"] = truncated
    if snapshot.status != base.snapshot.status:
        out["status"] = dict(snapshot.status)
    return out


def _wire_values(series: tuple[float, ...], form: str) -> list[Any]:
    if form == "compact":  # as compact_series makes them
        return [round(v * COMPACT_PER_USD) or (1 if v > 0 else 0) for v in series]
    return [round(v, 9) for v in series]  # as row_values sends them


def _series_tail(new: list[Any], old: list[Any], lag: int, form: str) -> dict[str, Any] | None:
    """A changed row's burn series as ``{"keep": k, "tail": ...}`` when its first ``k`` values are
    the ones the reader already has (the base frame's, moved on ``lag`` seconds): the new values
    of a busy row are its last second or two, so this is most of its bytes left out. ``None``
    when nothing can be kept (the whole series is sent)."""
    n = len(new)
    k = 0
    limit = n - lag  # past it, the reader has only the zeros the shift brought in
    while k < limit and new[k] == old[k + lag]:
        k += 1
    if k == limit:
        while k < n and not new[k]:
            k += 1
    if k == 0:
        return None
    rest = new[k:]
    if form != "compact":
        return {"keep": k, "tail": rest}
    start, end = 0, len(rest)
    while start < end and not rest[start]:
        start += 1
    while end > start and not rest[end - 1]:
        end -= 1
    return {"keep": k, "tail": {"n": len(rest), "start": start, "uusd": rest[start:end]} if rest else []}


class DeltaGap(ValueError):
    """A delta frame that does not follow the frame this reader holds (the reader reconnects)."""


_MONEY_FIELDS: Final = frozenset({"usd_today", "usd_estimated_today", "usd_provided_today"})
_ROW_FIELDS: Final = tuple(f.name for f in fields(Row))
_NO_MONEY: Final = Decimal("0.0")  # what Decimal(str(0.0)) is, as a v1 reader makes it


def _usd(value: float) -> Decimal:
    return _NO_MONEY if value == 0 else Decimal(str(value))


def _models(entries: list[list[Any]]) -> tuple[ModelShare, ...]:
    return tuple(ModelShare(m[0], m[1], m[2], _usd(m[3]), m[4]) for m in entries)


def _decode_group(v: list[Any]) -> Row:
    # [name, state, sessions, rates (5), today counts (7), usd (3), unpriced, errors, first, last, models, series]
    today, est, prov = v[15], v[16], v[17]
    usd_today = _usd(today)
    return Row(str(v[0]), v[3], v[4], v[5], v[6], v[7], v[8], v[9], v[10], v[11], v[12], v[13], v[14], usd_today,
               usd_today if est == today else _usd(est), _usd(prov), v[18], v[19], v[20], v[21], v[1], v[2],
               _models(v[22]) if v[22] else (), read_series(v[23]))


def _decode_session(v: list[Any]) -> Row:
    # [id, agent, model, pid, host, project, branch, cmd, state, rates (5), counts (7), usd (3), unpriced,
    #  errors, first, last, models, series]; a v1 session row has no "sessions": 0, as a v1 reader reads it
    today, est, prov = v[21], v[22], v[23]
    usd_today = _usd(today)
    return Row(str(v[0]), v[9], v[10], v[11], v[12], v[13], v[14], v[15], v[16], v[17], v[18], v[19], v[20],
               usd_today, usd_today if est == today else _usd(est), _usd(prov), v[24], v[25], v[26], v[27], v[8],
               0, _models(v[28]) if v[28] else (), read_series(v[29]), v[1], v[2], v[3], v[4], v[5], v[6], v[7])


def _decoder(view: str, cols: list[str]) -> Callable[[list[Any]], Row]:
    """A function that builds the Row of one array row of ``view`` with these columns: the fast,
    positional one for the columns this tokentop sends; else one that looks each column up by name
    (a newer feed may send columns this reader does not know: they are skipped; Row fields it is
    not sent keep their default, as in v1)."""
    if tuple(cols) == columns(view):
        return _decode_session if view == "sessions" else _decode_group
    index = {name: i for i, name in enumerate(cols)}
    index["key"] = index.get("id" if view == "sessions" else "name", -1)
    plan: list[tuple[str, int]] = [(name, index[name]) for name in _ROW_FIELDS if index.get(name, -1) >= 0]

    def decode(values: list[Any]) -> Row:
        kwargs: dict[str, Any] = {}
        for name, i in plan:
            if i >= len(values):
                continue
            value = values[i]
            if value is None:
                continue
            if name in _MONEY_FIELDS:
                value = _usd(value)
            elif name == "models":
                value = _models(value)
            elif name == "burn_series":
                value = read_series(value)
            elif name == "key":
                value = str(value)
            kwargs[name] = value
        return Row(**kwargs)

    return decode


def shift_series(row: Row, seconds: int) -> Row:
    """``row`` as it reads ``seconds`` later with no news: its sparkline moved on (zeros come in)."""
    series = row.burn_series
    if seconds <= 0 or not series:
        return row
    moved = _shifted(series, seconds)
    return Row(row.key, row.requests_per_s, row.tokens_per_s, row.input_tokens_per_s, row.output_tokens_per_s,
               row.usd_per_hour, row.requests_today, row.tokens_today, row.input_tokens_today,
               row.output_tokens_today, row.cache_read_tokens_today, row.cache_write_tokens_today,
               row.reasoning_tokens_today, row.usd_today, row.usd_estimated_today, row.usd_provided_today,
               row.unpriced_requests_today, row.errors_today, row.first_seen, row.last_seen, row.state,
               row.sessions, row.models, moved, row.agent, row.model, row.pid, row.host, row.project,
               row.branch, row.cmd, row.stamp)


class _ViewState:
    __slots__ = ("rows", "at", "order", "decode", "series_col")

    def __init__(self, decode: Callable[[list[Any]], Row], cols: list[str]) -> None:
        #: key -> its row as of second ``at[key]``
        self.rows: dict[str, Row] = {}
        self.at: dict[str, int] = {}
        self.order: list[str] = []
        self.decode = decode
        #: where ``burn_series`` is in a row (-1: not sent)
        self.series_col = cols.index("burn_series") if "burn_series" in cols else -1

    def decode_set(self, values: list[Any], second: int) -> Row:
        """A row of a delta frame's ``set``: whole, or with its series as a tail over the one held."""
        col = self.series_col
        tail = values[col] if 0 <= col < len(values) else None
        if not (isinstance(tail, dict) and "keep" in tail):
            return self.decode(values)
        values[col] = None
        row = self.decode(values)
        held = self.rows.get(row.key)
        if held is None:
            raise DeltaGap(f"a series tail for {row.key!r}, a row this reader does not hold")
        prior = _shifted(held.burn_series, second - self.at[row.key])
        keep = tail["keep"]
        if not isinstance(keep, int) or not 0 < keep <= len(prior):
            raise ValueError(f"series tail of {row.key!r}: keep={keep!r} does not fit {len(prior)} values")
        row.burn_series = prior[:keep] + read_series(tail.get("tail"))
        return row


def _shifted(series: tuple[float, ...], seconds: int) -> tuple[float, ...]:
    n = len(series)
    if seconds <= 0 or not n:
        return series
    return series[seconds:] + (0.0,) * seconds if seconds < n else (0.0,) * n


class DeltaReader:
    """The reading side of a delta stream (one per connection): turns each frame, full or delta,
    into the same :class:`Snapshot` a v1 frame of that tick decodes to. A frame without ``frame``
    (a feed older than delta frames) is read as the whole snapshot it is."""

    def __init__(self) -> None:
        self.seq: int | None = None
        self.views: dict[str, _ViewState] = {}
        self.status: Mapping[str, Any] = {}
        self.reuse = RowReuse()
        #: rows decoded from the wire / only shifted, in the last frame (tests and benches read them)
        self.decoded = 0
        self.shifted = 0

    def read(self, data: Mapping[str, Any]) -> Snapshot:
        kind = data.get("frame")
        if kind is None:
            return Snapshot.from_json(data, self.reuse)
        if data.get("v") != 1:
            raise ValueError(f"unsupported snapshot version {data.get('v')!r} (this tokentop reads v1)")
        second = int(data["generated_at"])
        self.decoded = self.shifted = 0
        if kind == "full":
            cols = data.get("columns") or {}
            self.views = {}
            for view in data.get("views") or ():
                view_cols = cols.get(view) or list(columns(view))
                state = self.views[view] = _ViewState(_decoder(view, view_cols), view_cols)
                for values in (data.get(view) or {}).get("rows") or ():
                    row = state.decode(values)
                    state.rows[row.key] = row
                    state.at[row.key] = second
                    state.order.append(row.key)
                    self.decoded += 1
            self.status = data.get("status") or {}
        elif kind == "delta":
            if self.seq is None or data.get("base") != self.seq:
                raise DeltaGap(f"delta frame {data.get('seq')} follows frame {data.get('base')}, "
                               f"but this reader holds frame {self.seq}")
            for view, state in self.views.items():
                part = data.get(view) or {}
                for key in part.get("drop") or ():
                    state.rows.pop(key, None)
                    state.at.pop(key, None)
                for values in part.get("set") or ():
                    row = state.decode_set(values, second)
                    state.rows[row.key] = row
                    state.at[row.key] = second
                    self.decoded += 1
                order = part.get("order")
                if order is not None:
                    state.order = list(order)
            if "status" in data:
                self.status = data["status"] or {}
        else:
            raise ValueError(f"unknown frame kind {kind!r}")
        self.seq = data.get("seq")
        views: dict[str, tuple[Row, ...]] = {}
        for view, state in self.views.items():
            rows, at = state.rows, state.at
            out = []
            for key in state.order:
                row = rows[key]
                lag = second - at[key]
                if lag > 0:  # unchanged since an earlier frame: only its sparkline moved on
                    if row.burn_series:
                        row = rows[key] = shift_series(row, lag)
                        self.shifted += 1
                    at[key] = second
                out.append(row)
            views[view] = tuple(out)
        return Snapshot(generated_at=float(data["generated_at"]), totals=Totals.from_json(data.get("totals") or {}),
                        status=self.status, limits=windows_from_json(data.get("limits")), **views)
