"""The snapshot: an immutable, already-sorted view of the aggregator at one instant.

This module is the data model only (rows, totals, their JSON, sorting); the aggregator builds it
(:meth:`tokentop.core.aggregate.Aggregator.snapshot`) and a remote reader decodes it
(:meth:`Snapshot.from_json`). The UI, ``--once --json``, ``GET /v1/snapshot`` and ``WS /v1/stream`` all render the same
object. Its JSON shape is the public contract documented in ``docs/api.md``; :meth:`Snapshot.to_json`
and :meth:`Snapshot.from_json` round-trip it, so a remote feed's snapshot renders exactly like a
local one.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from decimal import Decimal
from typing import Any, Final, Literal, Mapping

from tokentop.core.limits.windows import Window, windows_from_json

SNAPSHOT_VERSION: Final = 1
#: The dimensions a snapshot has a view (a tuple of rows) for, in the order the JSON lists them.
#: Each groups requests by the event field of its singular name (``agents`` by ``agent``, ...).
DIMENSIONS: Final = ("agents", "sessions", "models", "projects", "providers", "hosts")
#: The row key of requests that leave a dimension's field empty (no model, project, provider, host).
NONE_LABEL: Final = "(none)"
#: Length, in one-second steps, of every per-second series (sparklines, ``burn_series``).
SERIES_S: Final = 120
#: ``window``: the share of the 5-hour subscription window (values from ``snapshot.limits``, see
#: :func:`sort_rows`)
SortKey = Literal["burn", "tokens", "requests", "spend", "name", "window"]
#: how ``burn_series`` travels: ``full`` (120 USD floats, the default) or ``compact`` (see docs/api.md)
SERIES_FORMS: Final = ("full", "compact")
#: compact series unit: integer micro-dollars (the precision of every other money figure here)
COMPACT_PER_USD: Final = 1_000_000
SORT_KEYS: Final[tuple[SortKey, ...]] = ("burn", "tokens", "requests", "spend", "name", "window")

_SIX = Decimal("0.000001")


@dataclass(frozen=True, slots=True)
class ModelShare:
    model: str
    requests: int
    tokens: int
    usd: Decimal
    unpriced_requests: int


@dataclass(frozen=True, slots=True)
class Row:
    """One row of a view. ``key`` is the row's identity (the session id on session rows)."""

    key: str
    requests_per_s: float = 0.0
    tokens_per_s: float = 0.0
    input_tokens_per_s: float = 0.0
    output_tokens_per_s: float = 0.0
    usd_per_hour: float = 0.0
    requests_today: int = 0
    tokens_today: int = 0
    input_tokens_today: int = 0
    output_tokens_today: int = 0
    cache_read_tokens_today: int = 0
    cache_write_tokens_today: int = 0
    reasoning_tokens_today: int = 0
    usd_today: Decimal = Decimal(0)
    usd_estimated_today: Decimal = Decimal(0)
    usd_provided_today: Decimal = Decimal(0)
    unpriced_requests_today: int = 0
    errors_today: int = 0
    first_seen: float = 0.0
    last_seen: float = 0.0
    state: str = "idle"
    #: active sessions behind this row (1/0 on session rows)
    sessions: int = 0
    #: models by spend today, most expensive first
    models: tuple[ModelShare, ...] = ()
    #: USD spent in each of the last 120 seconds, oldest first; empty when nothing recent
    burn_series: tuple[float, ...] = ()
    # session rows only
    agent: str | None = None
    model: str | None = None
    pid: int | None = None
    host: str | None = None
    project: str | None = None
    branch: str | None = None
    cmd: str | None = None

    @property
    def name(self) -> str:
        return self.key

    @property
    def model_names(self) -> str:
        if self.model:
            return self.model
        return ", ".join(m.model for m in self.models)

    def sort_value(self, key: SortKey) -> Any:
        if key == "burn":
            return self.usd_per_hour
        if key == "tokens":
            return self.tokens_per_s
        if key == "requests":
            return self.requests_per_s
        if key == "spend":
            return self.usd_today
        if key == "window":
            return 0.0  # a row does not know its window share: sort_rows takes it as ``values``
        return self.key.casefold()

    def to_json(self, view: str, series: str = "full") -> dict[str, Any]:
        out: dict[str, Any]
        if view == "sessions":
            out = {
                "id": self.key, "agent": self.agent, "model": self.model, "pid": self.pid, "host": self.host,
                "project": self.project, "branch": self.branch, "cmd": self.cmd, "state": self.state,
            }
        else:
            out = {"name": self.key, "state": self.state, "sessions": self.sessions}
        out.update(
            requests_per_s=round(self.requests_per_s, 4),
            tokens_per_s=round(self.tokens_per_s, 2),
            input_tokens_per_s=round(self.input_tokens_per_s, 2),
            output_tokens_per_s=round(self.output_tokens_per_s, 2),
            usd_per_hour=round(self.usd_per_hour, 6),
            requests_today=self.requests_today,
            tokens_today=self.tokens_today,
            input_tokens_today=self.input_tokens_today,
            output_tokens_today=self.output_tokens_today,
            cache_read_tokens_today=self.cache_read_tokens_today,
            cache_write_tokens_today=self.cache_write_tokens_today,
            reasoning_tokens_today=self.reasoning_tokens_today,
            usd_today=_money(self.usd_today),
            usd_estimated_today=_money(self.usd_estimated_today),
            usd_provided_today=_money(self.usd_provided_today),
            unpriced_requests_today=self.unpriced_requests_today,
            errors_today=self.errors_today,
            first_seen=self.first_seen,
            last_seen=self.last_seen,
            models=[
                {"model": m.model, "requests": m.requests, "tokens": m.tokens, "usd": _money(m.usd),
                 "unpriced_requests": m.unpriced_requests}
                for m in self.models
            ],
            burn_series=compact_series(self.burn_series) if series == "compact" else [round(v, 9) for v in self.burn_series],
        )
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, Any], view: str) -> Row:
        key = data.get("id") if view == "sessions" else data.get("name")
        kwargs: dict[str, Any] = {}
        for name in _ROW_PLAIN_FIELDS:
            value = data.get(name)
            if value is not None:
                kwargs[name] = value
        for name in _ROW_MONEY_FIELDS:
            value = data.get(name)
            if value is not None:
                kwargs[name] = Decimal(str(value))
        models = tuple(
            ModelShare(m["model"], m["requests"], m["tokens"], Decimal(str(m["usd"])), m.get("unpriced_requests", 0))
            for m in data.get("models") or ()
        )
        return cls(key=str(key), models=models, burn_series=read_series(data.get("burn_series")), **kwargs)


@dataclass(frozen=True, slots=True)
class Totals:
    requests_per_s: float = 0.0
    tokens_per_s: float = 0.0
    input_tokens_per_s: float = 0.0
    output_tokens_per_s: float = 0.0
    usd_per_hour: float = 0.0
    requests_today: int = 0
    tokens_today: int = 0
    input_tokens_today: int = 0
    output_tokens_today: int = 0
    cache_read_tokens_today: int = 0
    cache_write_tokens_today: int = 0
    reasoning_tokens_today: int = 0
    usd_today: Decimal = Decimal(0)
    usd_estimated_today: Decimal = Decimal(0)
    usd_provided_today: Decimal = Decimal(0)
    unpriced_requests_today: int = 0
    errors_today: int = 0
    active_sessions: int = 0
    #: per-second series for the last 120 s, oldest first (header sparklines)
    requests_series: tuple[int, ...] = ()
    tokens_series: tuple[int, ...] = ()
    burn_series: tuple[float, ...] = ()

    def to_json(self, series: str = "full") -> dict[str, Any]:
        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name == "burn_series" and series == "compact":
                value = compact_series(value)
            elif isinstance(value, Decimal):
                value = _money(value)
            elif isinstance(value, tuple):
                value = list(value)
            elif isinstance(value, float):
                value = round(value, 6)
            out[f.name] = value
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Totals:
        kwargs: dict[str, Any] = {}
        for f in fields(cls):
            if f.name not in data:
                continue
            value = data[f.name]
            if f.name.startswith("usd_") and f.name != "usd_per_hour":
                value = Decimal(str(value))
            elif f.name == "burn_series":
                value = read_series(value)
            elif isinstance(value, list):
                value = tuple(value)
            kwargs[f.name] = value
        return cls(**kwargs)


@dataclass(frozen=True, slots=True)
class Snapshot:
    generated_at: float
    totals: Totals
    agents: tuple[Row, ...] = ()
    sessions: tuple[Row, ...] = ()
    models: tuple[Row, ...] = ()
    projects: tuple[Row, ...] = ()
    providers: tuple[Row, ...] = ()
    hosts: tuple[Row, ...] = ()
    #: free-form, JSON-able status from the feed and sources (ingest counters, import progress, ...)
    status: Mapping[str, Any] = field(default_factory=dict)
    v: int = SNAPSHOT_VERSION
    #: subscription windows (5-hour, weekly) with data, from the feed's limits part (docs/limits.md);
    #: a snapshot of a feed without them (older, fleet) has none
    limits: tuple[Window, ...] = ()

    def view(self, name: str) -> tuple[Row, ...]:
        if name not in DIMENSIONS:
            raise ValueError(f"unknown view {name!r}; expected one of {', '.join(DIMENSIONS)}")
        return getattr(self, name)

    def find(self, view: str, key: str) -> Row | None:
        for row in self.view(view):
            if row.key == key:
                return row
        return None

    @property
    def empty(self) -> bool:
        return not self.agents and self.totals.requests_today == 0

    def to_json(self, max_rows: int | None = None, *, views: tuple[str, ...] | None = None,
                series: str = "full") -> dict[str, Any]:
        """The public JSON shape. ``views`` (a subset of :data:`DIMENSIONS`) leaves the other views out
        and lists the ones sent under ``"views"``; ``series="compact"`` sends every ``burn_series``
        as :func:`compact_series`. The defaults give the documented v1 snapshot unchanged."""
        if series not in SERIES_FORMS:
            raise ValueError(f"unknown series form {series!r}; expected one of {', '.join(SERIES_FORMS)}")
        out: dict[str, Any] = {"v": self.v, "generated_at": self.generated_at, "totals": self.totals.to_json(series)}
        if series != "full":
            out["series"] = series
        truncated: dict[str, int] = {}
        for view in DIMENSIONS:
            if views is not None and view not in views:
                continue
            rows = self.view(view)
            if max_rows is not None and len(rows) > max_rows:
                truncated[view] = len(rows) - max_rows
                rows = rows[:max_rows]
            out[view] = [r.to_json(view, series) for r in rows]
        if views is not None:
            out["views"] = [v for v in DIMENSIONS if v in views]
        if truncated:
            out["truncated"] = truncated
        out["limits"] = [w.to_json() for w in self.limits]
        out["status"] = dict(self.status)
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, Any], reuse: RowReuse | None = None) -> Snapshot:
        """The snapshot of a JSON object in either series form.

        ``reuse`` (a stream reader's memory of the previous frame) hands back the same
        :class:`Row` object for a row whose JSON did not change, which saves building it and lets
        the table skip it without comparing cells (idle rows of a big fleet)."""
        if data.get("v") != SNAPSHOT_VERSION:
            raise ValueError(f"unsupported snapshot version {data.get('v')!r} (this tokentop reads v{SNAPSHOT_VERSION})")
        if reuse is None:
            views = {view: tuple(Row.from_json(r, view) for r in data.get(view) or ()) for view in DIMENSIONS}
        else:
            views = {view: reuse.rows(view, data.get(view) or ()) for view in DIMENSIONS}
        return cls(
            generated_at=float(data["generated_at"]),
            totals=Totals.from_json(data.get("totals") or {}),
            status=data.get("status") or {},
            limits=windows_from_json(data.get("limits")),
            **views,
        )


class RowReuse:
    """Rows of the previous frame by (view, key) with the JSON they came from (see ``from_json``)."""

    __slots__ = ("_seen", "reused")

    def __init__(self) -> None:
        self._seen: dict[str, dict[str, tuple[Mapping[str, Any], Row]]] = {}
        #: rows handed back unchanged (tests and benches read it)
        self.reused = 0

    def rows(self, view: str, items: Any) -> tuple[Row, ...]:
        before = self._seen.get(view, {})
        now: dict[str, tuple[Mapping[str, Any], Row]] = {}
        out = []
        id_field = "id" if view == "sessions" else "name"
        for raw in items:
            key = raw.get(id_field)
            hit = before.get(key)  # type: ignore[arg-type]
            if hit is not None and hit[0] == raw:
                row = hit[1]
                self.reused += 1
            else:
                row = Row.from_json(raw, view)
            now[key] = (raw, row)
            out.append(row)
        self._seen[view] = now
        return tuple(out)


def _money(value: Decimal) -> float:
    return float(value.quantize(_SIX))


_PER_UUSD = (1.0 / COMPACT_PER_USD).__mul__
_ROW_MONEY_FIELDS: Final = ("usd_today", "usd_estimated_today", "usd_provided_today")
_ROW_PLAIN_FIELDS: Final = tuple(
    f.name for f in fields(Row) if f.name not in ("key", "models", "burn_series", *_ROW_MONEY_FIELDS)
)


def compact_series(values: tuple[float, ...] | list[float]) -> dict[str, Any] | list[Any]:
    """A USD-per-second series as ``{"n": len, "start": i, "uusd": [ints]}``.

    ``uusd`` holds integer micro-dollars for seconds ``start`` .. ``start + len(uusd) - 1``; the
    seconds before and after are zero (leading and trailing zero runs are not sent). Each value is
    within 1 micro-dollar of the exact one, and a second with any spend is at least 1, so a quiet
    but active second still shows. An empty series stays ``[]``.
    """
    n = len(values)
    if not n:
        return []
    ints = [round(v * COMPACT_PER_USD) or (1 if v > 0 else 0) for v in values]
    start = 0
    while start < n and not ints[start]:
        start += 1
    end = n
    while end > start and not ints[end - 1]:
        end -= 1
    return {"n": n, "start": start, "uusd": ints[start:end]}


def read_series(data: Any) -> tuple[float, ...]:
    """A ``burn_series`` in either form (a list of USD, or :func:`compact_series`) as USD floats."""
    if not data:
        return ()
    if isinstance(data, dict):
        n, start, uusd = int(data["n"]), int(data.get("start", 0)), data.get("uusd") or ()
        if n < 0 or start < 0 or start + len(uusd) > n:
            raise ValueError(f"compact series does not fit: n={n}, start={start}, {len(uusd)} values")
        return (0.0,) * start + tuple(map(_PER_UUSD, uusd)) + (0.0,) * (n - start - len(uusd))
    return tuple(data)


def sort_rows(rows: tuple[Row, ...] | list[Row], key: SortKey = "burn", reverse: bool = False,
              values: Mapping[str, float] | None = None) -> tuple[Row, ...]:
    """Rows in display order. Numeric keys sort high-to-low (``reverse`` flips it); ``name`` A-Z.

    ``window`` sorts by ``values`` (row key → the row's share of its 5-hour window, e.g.
    :func:`tokentop.core.limits.windows.session_points`); a row missing from it counts 0.
    Ties break on spend today, then on name, so the order is total and stable between frames.
    """
    if key not in SORT_KEYS:
        raise ValueError(f"unknown sort key {key!r}; expected one of {', '.join(SORT_KEYS)}")
    if key == "window":
        got = values or {}
        ordered = sorted(rows, key=lambda r: (-got.get(r.key, 0.0), -r.usd_today, r.key.casefold(), r.key))
        return tuple(reversed(ordered)) if reverse else tuple(ordered)
    if key == "name":
        ordered = sorted(rows, key=lambda r: (r.key.casefold(), r.key))
        return tuple(reversed(ordered)) if reverse else tuple(ordered)
    ordered = sorted(rows, key=lambda r: (-r.sort_value(key), -r.usd_today, r.key.casefold(), r.key))
    return tuple(reversed(ordered)) if reverse else tuple(ordered)


__all__ = ["Snapshot", "Row", "Totals", "ModelShare", "RowReuse", "sort_rows", "DIMENSIONS", "NONE_LABEL", "SORT_KEYS",
           "SortKey", "SERIES_S", "SERIES_FORMS", "compact_series", "read_series"]
