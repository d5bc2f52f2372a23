"""The snapshot: an immutable, already-sorted view of the aggregator at one instant.

The UI, ``--once --json``, ``GET /v1/snapshot`` and ``WS /v1/stream`` all render the same
object. Its JSON shape is the public contract documented in ``docs/api.md``; :meth:`Snapshot.to_json`
and :meth:`Snapshot.from_json` round-trip it, so a remote feed's snapshot renders exactly like a
local one.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Final, Literal, Mapping

from tokentop.core.aggregate import DIMENSIONS, SERIES_S, Acc
from tokentop.core.pricing import PICO, usd

if TYPE_CHECKING:
    from tokentop.core.aggregate import Aggregator

SNAPSHOT_VERSION: Final = 1
VIEWS: Final = ("agents", "sessions", "models", "projects", "providers", "hosts")
SortKey = Literal["burn", "tokens", "requests", "spend", "name"]
SORT_KEYS: Final[tuple[SortKey, ...]] = ("burn", "tokens", "requests", "spend", "name")

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
        return self.key.casefold()

    def to_json(self, view: str) -> dict[str, Any]:
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
            burn_series=[round(v, 9) for v in self.burn_series],
        )
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, Any], view: str) -> Row:
        key = data.get("id") if view == "sessions" else data.get("name")
        kwargs: dict[str, Any] = {}
        for f in fields(cls):
            if f.name in ("key", "models", "burn_series"):
                continue
            if f.name in data and data[f.name] is not None:
                value = data[f.name]
                if f.name.startswith("usd_") and f.name != "usd_per_hour":
                    value = Decimal(str(value))
                kwargs[f.name] = value
        models = tuple(
            ModelShare(m["model"], m["requests"], m["tokens"], Decimal(str(m["usd"])), m.get("unpriced_requests", 0))
            for m in data.get("models") or ()
        )
        return cls(key=str(key), models=models, burn_series=tuple(data.get("burn_series") or ()), **kwargs)


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

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, Decimal):
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

    def view(self, name: str) -> tuple[Row, ...]:
        if name not in VIEWS:
            raise ValueError(f"unknown view {name!r}; expected one of {', '.join(VIEWS)}")
        return getattr(self, name)

    def find(self, view: str, key: str) -> Row | None:
        for row in self.view(view):
            if row.key == key:
                return row
        return None

    @property
    def empty(self) -> bool:
        return not self.agents and self.totals.requests_today == 0

    def to_json(self, max_rows: int | None = None) -> dict[str, Any]:
        out: dict[str, Any] = {"v": self.v, "generated_at": self.generated_at, "totals": self.totals.to_json()}
        truncated: dict[str, int] = {}
        for view in VIEWS:
            rows = self.view(view)
            if max_rows is not None and len(rows) > max_rows:
                truncated[view] = len(rows) - max_rows
                rows = rows[:max_rows]
            out[view] = [r.to_json(view) for r in rows]
        if truncated:
            out["truncated"] = truncated
        out["status"] = dict(self.status)
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Snapshot:
        if data.get("v") != SNAPSHOT_VERSION:
            raise ValueError(f"unsupported snapshot version {data.get('v')!r} (this tokentop reads v{SNAPSHOT_VERSION})")
        views = {view: tuple(Row.from_json(r, view) for r in data.get(view) or ()) for view in VIEWS}
        return cls(
            generated_at=float(data["generated_at"]),
            totals=Totals.from_json(data.get("totals") or {}),
            status=data.get("status") or {},
            **views,
        )


def _money(value: Decimal) -> float:
    return float(value.quantize(_SIX))


def sort_rows(rows: tuple[Row, ...] | list[Row], key: SortKey = "burn", reverse: bool = False) -> tuple[Row, ...]:
    """Rows in display order. Numeric keys sort high-to-low (``reverse`` flips it); ``name`` A-Z.

    Ties break on spend today, then on name, so the order is total and stable between frames.
    """
    if key not in SORT_KEYS:
        raise ValueError(f"unknown sort key {key!r}; expected one of {', '.join(SORT_KEYS)}")
    if key == "name":
        ordered = sorted(rows, key=lambda r: (r.key.casefold(), r.key))
        return tuple(reversed(ordered)) if reverse else tuple(ordered)
    ordered = sorted(rows, key=lambda r: (-r.sort_value(key), -r.usd_today, r.key.casefold(), r.key))
    return tuple(reversed(ordered)) if reverse else tuple(ordered)


# -- building -------------------------------------------------------------------------------------

def _row_from_acc(agg: Aggregator, dim: str, acc: Acc, now: float, day: int, recent: bool) -> Row:
    cfg = agg.config
    today = acc.day == day
    if recent:
        req, tin, tout, _ = acc.window(now, cfg.rate_window_s)
        _, _, _, burn_pusd = acc.window(now, cfg.burn_window_s)
        rw = cfg.rate_window_s
        rates = dict(
            requests_per_s=req / rw,
            tokens_per_s=(tin + tout) / rw,
            input_tokens_per_s=tin / rw,
            output_tokens_per_s=tout / rw,
            usd_per_hour=burn_pusd / PICO * 3600.0 / cfg.burn_window_s,
        )
        series = tuple(v / PICO for v in acc.series(now))
    else:
        rates = {}
        series = ()
    active = now - acc.last_seen <= cfg.idle_after_s
    state = "active" if active else "idle"
    extra: dict[str, Any] = {}
    if dim == "sessions":
        state = agg.session_states.get(acc.key, state)
        proc = agg.session_processes.get(acc.key, {})
        pid = acc.pid if acc.pid is not None else proc.get("pid")
        extra = dict(
            agent=acc.agent, model=acc.model, pid=pid, host=acc.host or proc.get("host"),
            project=acc.project, branch=acc.branch, cmd=proc.get("cmd"), sessions=1 if active else 0,
        )
    models: tuple[ModelShare, ...] = ()
    if today and acc.models:
        models = tuple(
            ModelShare(name, s[0], s[1], usd(s[2]), s[3])
            for name, s in sorted(acc.models.items(), key=lambda kv: (-kv[1][2], -kv[1][1], kv[0]))
        )
    if today:
        counts = dict(
            requests_today=acc.requests,
            tokens_today=acc.input + acc.output,
            input_tokens_today=acc.input,
            output_tokens_today=acc.output,
            cache_read_tokens_today=acc.cache_read,
            cache_write_tokens_today=acc.cache_write,
            reasoning_tokens_today=acc.reasoning,
            usd_today=usd(acc.pusd_today),
            usd_estimated_today=usd(acc.pusd_estimated),
            usd_provided_today=usd(acc.pusd_provided),
            unpriced_requests_today=acc.unpriced,
            errors_today=acc.errors,
        )
    else:
        counts = {}
    return Row(
        key=acc.key, first_seen=acc.first_seen, last_seen=acc.last_seen, state=state, models=models,
        burn_series=series, **rates, **counts, **extra,
    )


def build_snapshot(agg: Aggregator, now: float, status: Mapping[str, Any] | None = None) -> Snapshot:
    """Freeze the aggregator at ``now``. Rows unchanged since the last build are reused."""
    _, day = agg.days.today(now)
    horizon = now - SERIES_S - 1
    idle_edge = now - agg.config.idle_after_s - 1
    views: dict[str, tuple[Row, ...]] = {}
    session_rows: list[Row] = []
    for dim in DIMENSIONS:
        rows: list[Row] = []
        for acc in agg.rows[dim].values():
            recent = acc.last_seen > horizon
            cached = acc.cached_row
            # An untouched row whose rates and state cannot change any more is reused as is.
            if (
                cached is not None
                and not acc.touched
                and not recent
                and acc.last_seen < idle_edge
                and isinstance(cached, tuple)
                and cached[0] == day
            ):
                row = cached[1]
            else:
                if not recent and acc.buckets:
                    acc.buckets.clear()  # release memory of rows gone quiet
                row = _row_from_acc(agg, dim, acc, now, day, recent)
                acc.cached_row = (day, row)
                acc.touched = False
            rows.append(row)
        if dim == "sessions":
            session_rows = rows
        views[dim] = sort_rows(rows, "burn")

    # active session counts per agent / model / project / host
    counts: dict[str, dict[str, int]] = {d: {} for d in ("agents", "models", "projects", "hosts", "providers")}
    active_sessions = 0
    for row in session_rows:
        if row.state != "active":
            continue
        active_sessions += 1
        for dim, value in (("agents", row.agent), ("models", row.model), ("projects", row.project), ("hosts", row.host)):
            if value is not None or dim != "models":
                k = value if value is not None else "(none)"
                counts[dim][k] = counts[dim].get(k, 0) + 1
    for dim, per_key in counts.items():
        if per_key:
            views[dim] = tuple(replace(r, sessions=per_key.get(r.key, 0)) if r.sessions != per_key.get(r.key, 0) else r for r in views[dim])

    total = agg.total
    cfg = agg.config
    today = total.day == day
    req, tin, tout, _ = total.window(now, cfg.rate_window_s)
    _, _, _, burn_pusd = total.window(now, cfg.burn_window_s)
    rw = cfg.rate_window_s
    req_series = total.series(now, 1)
    in_series = total.series(now, 2)
    out_series = total.series(now, 3)
    totals = Totals(
        requests_per_s=req / rw,
        tokens_per_s=(tin + tout) / rw,
        input_tokens_per_s=tin / rw,
        output_tokens_per_s=tout / rw,
        usd_per_hour=burn_pusd / PICO * 3600.0 / cfg.burn_window_s,
        requests_today=total.requests if today else 0,
        tokens_today=(total.input + total.output) if today else 0,
        input_tokens_today=total.input if today else 0,
        output_tokens_today=total.output if today else 0,
        cache_read_tokens_today=total.cache_read if today else 0,
        cache_write_tokens_today=total.cache_write if today else 0,
        reasoning_tokens_today=total.reasoning if today else 0,
        usd_today=usd(total.pusd_today) if today else Decimal(0),
        usd_estimated_today=usd(total.pusd_estimated) if today else Decimal(0),
        usd_provided_today=usd(total.pusd_provided) if today else Decimal(0),
        unpriced_requests_today=total.unpriced if today else 0,
        errors_today=total.errors if today else 0,
        active_sessions=active_sessions,
        requests_series=req_series,
        tokens_series=tuple(a + b for a, b in zip(in_series, out_series)),
        burn_series=tuple(v / PICO for v in total.series(now)),
    )
    return Snapshot(generated_at=now, totals=totals, status=dict(status or {}), **views)


assert set(VIEWS) == set(DIMENSIONS)
__all__ = ["Snapshot", "Row", "Totals", "ModelShare", "sort_rows", "build_snapshot", "VIEWS", "SORT_KEYS", "SERIES_S"]
