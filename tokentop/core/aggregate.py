"""Rolling aggregation: per-key totals for today, sliding-window rates and per-second series.

Pure and deterministic: no I/O, no clock. Callers pass ``now`` (epoch seconds) to every method.
Per-event work is O(1): each event touches one accumulator per dimension, and each accumulator
keeps sparse one-second buckets for the last :data:`SERIES_S` seconds only.

Dimensions: ``agents``, ``models``, ``sessions``, ``projects``, ``providers``, ``hosts``.
Session rows are evicted after ``session_ttl_s`` of silence (other rows once idle for
``row_ttl_s`` and not seen today); totals, and the rows of the other dimensions, keep what evicted
sessions contributed, so memory stays bounded under endless new sessions without losing money.
"""

from __future__ import annotations

import time as _time
from collections import deque
from dataclasses import dataclass
from datetime import datetime, timedelta, tzinfo
from typing import Callable, Final, Iterable, Iterator

from tokentop.core.events import Event
from tokentop.core.pricing import Cost

SERIES_S: Final = 120
DIMENSIONS: Final = ("agents", "models", "sessions", "projects", "providers", "hosts")
NONE_LABEL: Final = "(none)"


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


class DayClock:
    """Local-midnight boundaries in a given zone (``None``: the machine's local zone)."""

    def __init__(self, tz: tzinfo | None = None) -> None:
        self._tz = tz
        self._start = 0.0
        self._end = -1.0
        self._index = 0

    def today(self, now: float) -> tuple[float, int]:
        """(start of today as epoch seconds, a day index that changes at each local midnight)."""
        if not (self._start <= now < self._end):
            local = datetime.fromtimestamp(now, self._tz) if self._tz else datetime.fromtimestamp(now).astimezone()
            start = local.replace(hour=0, minute=0, second=0, microsecond=0)
            end = (start + timedelta(days=1, hours=2)).replace(hour=0)  # DST-safe next midnight
            self._start = start.timestamp()
            self._end = end.timestamp()
            self._index = start.toordinal()
        return self._start, self._index


class Acc:
    """Accumulator for one key of one dimension (and for the global totals)."""

    __slots__ = (
        "key", "day", "requests", "input", "output", "cache_read", "cache_write", "reasoning", "errors",
        "pusd_estimated", "pusd_provided", "unpriced", "first_seen", "last_seen", "buckets", "models",
        "agent", "model", "pid", "host", "project", "branch", "touched", "cached_row",
    )

    def __init__(self, key: str, with_models: bool) -> None:
        self.key = key
        self.day = -1
        self.requests = self.input = self.output = self.cache_read = self.cache_write = 0
        self.reasoning = self.errors = self.pusd_estimated = self.pusd_provided = self.unpriced = 0
        self.first_seen = 0.0
        self.last_seen = 0.0
        #: deque of [second, requests, input_tokens, output_tokens, pusd], oldest first
        self.buckets: deque[list[int]] = deque()
        #: model -> [requests, tokens, pusd, unpriced] for today (None on model rows)
        self.models: dict[str, list[int]] | None = {} if with_models else None
        self.agent: str | None = None
        self.model: str | None = None
        self.pid: int | None = None
        self.host: str | None = None
        self.project: str | None = None
        self.branch: str | None = None
        self.touched = True
        self.cached_row: object | None = None

    def reset_day(self, day: int) -> None:
        self.day = day
        self.requests = self.input = self.output = self.cache_read = self.cache_write = 0
        self.reasoning = self.errors = self.pusd_estimated = self.pusd_provided = self.unpriced = 0
        if self.models is not None:
            self.models = {}

    def add(self, e: Event, pusd: int, kind: str, today: bool, day: int, sec: int, horizon: int) -> None:
        self.touched = True
        ts = e.ts
        if ts > self.last_seen:
            self.last_seen = ts
        if not self.first_seen or ts < self.first_seen:
            self.first_seen = ts
        if today:
            if self.day != day:
                self.reset_day(day)
            self.requests += 1
            self.input += e.input_tokens
            self.output += e.output_tokens
            self.cache_read += e.cache_read_tokens
            self.cache_write += e.cache_write_tokens
            self.reasoning += e.reasoning_tokens
            if e.status == "error":
                self.errors += 1
            if kind == "estimated":
                self.pusd_estimated += pusd
            elif kind == "provided":
                self.pusd_provided += pusd
            else:
                self.unpriced += 1
            models = self.models
            if models is not None:
                name = e.model or NONE_LABEL
                share = models.get(name)
                if share is None:
                    models[name] = [1, e.input_tokens + e.output_tokens, pusd, 1 if kind == "unpriced" else 0]
                else:
                    share[0] += 1
                    share[1] += e.input_tokens + e.output_tokens
                    share[2] += pusd
                    if kind == "unpriced":
                        share[3] += 1
        if sec > horizon:
            buckets = self.buckets
            if buckets and buckets[-1][0] == sec:
                b = buckets[-1]
                b[1] += 1
                b[2] += e.input_tokens
                b[3] += e.output_tokens
                b[4] += pusd
            else:
                for b in reversed(buckets):  # late events: find their second (short, rare walk)
                    if b[0] == sec:
                        b[1] += 1
                        b[2] += e.input_tokens
                        b[3] += e.output_tokens
                        b[4] += pusd
                        break
                    if b[0] < sec:
                        _insert_bucket(buckets, [sec, 1, e.input_tokens, e.output_tokens, pusd])
                        break
                else:
                    buckets.appendleft([sec, 1, e.input_tokens, e.output_tokens, pusd])
                while buckets and buckets[0][0] <= horizon:
                    buckets.popleft()

    @property
    def pusd_today(self) -> int:
        return self.pusd_estimated + self.pusd_provided

    def window(self, now: float, seconds: int) -> tuple[int, int, int, int]:
        """(requests, input tokens, output tokens, pusd) in the last ``seconds`` seconds."""
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

    def series(self, now: float, field: int = 4) -> tuple[int, ...]:
        """Per-second values of one bucket field (4 = pusd) for the last :data:`SERIES_S` seconds."""
        if not self.buckets:
            return ()
        end = int(now)
        start = end - SERIES_S + 1
        values = [0] * SERIES_S
        for b in self.buckets:
            sec = b[0]
            if start <= sec <= end:
                values[sec - start] += b[field]
        return tuple(values)


def _insert_bucket(buckets: deque[list[int]], bucket: list[int]) -> None:
    sec = bucket[0]
    for i in range(len(buckets) - 1, -1, -1):
        if buckets[i][0] < sec:
            buckets.insert(i + 1, bucket)
            return
    buckets.appendleft(bucket)


@dataclass(frozen=True, slots=True)
class RecentRequest:
    event: Event
    cost: Cost


class Aggregator:
    """Holds the live model. Feed events with :meth:`apply`; read it with :meth:`snapshot`."""

    def __init__(self, config: AggregatorConfig | None = None, tz: tzinfo | None = None) -> None:
        self.config = config or AggregatorConfig()
        self.days = DayClock(tz)
        self.total = Acc("total", with_models=False)
        self.rows: dict[str, dict[str, Acc]] = {dim: {} for dim in DIMENSIONS}
        self.recent: deque[RecentRequest] = deque(maxlen=self.config.recent_max)
        #: session id -> state set by the control layer ("paused", "stopped", ...)
        self.session_states: dict[str, str] = {}
        #: session id -> process facts recorded by ``tokentop run`` / control (pid, host, cmd, ...)
        self.session_processes: dict[str, dict[str, object]] = {}
        self.events_applied = 0
        self.evicted = 0
        self._day_index = -1

    # -- input ---------------------------------------------------------------------------------
    def apply(self, event: Event, cost: Cost, now: float) -> None:
        start, day = self.days.today(now)
        if day != self._day_index:
            self._day_index = day
        today = event.ts >= start
        sec = int(event.ts)
        horizon = int(now) - SERIES_S
        pusd = cost.pusd or 0
        kind = cost.kind
        self.events_applied += 1
        self.total.add(event, pusd, kind, today, day, sec, horizon)
        rows = self.rows
        self._row(rows["agents"], event.agent, True).add(event, pusd, kind, today, day, sec, horizon)
        self._row(rows["models"], event.model or NONE_LABEL, False).add(event, pusd, kind, today, day, sec, horizon)
        self._row(rows["projects"], event.project or NONE_LABEL, True).add(event, pusd, kind, today, day, sec, horizon)
        self._row(rows["providers"], event.provider or NONE_LABEL, True).add(event, pusd, kind, today, day, sec, horizon)
        self._row(rows["hosts"], event.host or NONE_LABEL, True).add(event, pusd, kind, today, day, sec, horizon)
        if event.session is not None:
            acc = self._row(rows["sessions"], event.session, True)
            if event.ts >= acc.last_seen:
                acc.agent = event.agent
                if event.model:
                    acc.model = event.model
                if event.pid is not None:
                    acc.pid = event.pid
                if event.host is not None:
                    acc.host = event.host
                if event.project is not None:
                    acc.project = event.project
                if event.branch is not None:
                    acc.branch = event.branch
            acc.add(event, pusd, kind, today, day, sec, horizon)
        if self.config.recent_max:
            self.recent.append(RecentRequest(event, cost))

    def apply_many(self, items: Iterable[tuple[Event, Cost]], now: float) -> int:
        n = 0
        for event, cost in items:
            self.apply(event, cost, now)
            n += 1
        return n

    @staticmethod
    def _row(table: dict[str, Acc], key: str, with_models: bool) -> Acc:
        acc = table.get(key)
        if acc is None:
            acc = table[key] = Acc(key, with_models)
        return acc

    # -- maintenance ---------------------------------------------------------------------------
    def evict(self, now: float) -> int:
        """Drop silent rows (see module doc). Returns how many were evicted."""
        _, day = self.days.today(now)
        dropped = 0
        cutoff = now - self.config.session_ttl_s
        sessions = self.rows["sessions"]
        stale = [k for k, acc in sessions.items() if acc.last_seen < cutoff]
        for key in stale:
            del sessions[key]
            self.session_states.pop(key, None)
        dropped += len(stale)
        row_cutoff = now - self.config.row_ttl_s
        for dim in DIMENSIONS:
            if dim == "sessions":
                continue
            table = self.rows[dim]
            stale = [k for k, acc in table.items() if acc.last_seen < row_cutoff and acc.day != day]
            for key in stale:
                del table[key]
            dropped += len(stale)
        self.evicted += dropped
        return dropped

    def set_session_state(self, session: str, state: str | None) -> None:
        """Mark a session ``paused``/``stopped``/... (``None`` clears the mark)."""
        if state is None:
            self.session_states.pop(session, None)
        else:
            self.session_states[session] = state
        acc = self.rows["sessions"].get(session)
        if acc is not None:
            acc.touched = True

    def bind_process(self, session: str, facts: dict[str, object]) -> None:
        """Record the process behind a session (pid, host, start_time, uid, cmd)."""
        self.session_processes[session] = dict(facts)
        acc = self.rows["sessions"].get(session)
        if acc is not None:
            acc.touched = True

    # -- output --------------------------------------------------------------------------------
    def recent_requests(self, dim: str | None = None, key: str | None = None, limit: int = 50) -> list[RecentRequest]:
        """Newest first; filtered to one row of one dimension when ``dim``/``key`` are given."""
        if dim is not None and dim not in DIMENSIONS:
            raise ValueError(f"unknown dimension {dim!r}; expected one of {', '.join(DIMENSIONS)}")
        field = _DIM_FIELD.get(dim or "")
        out: list[RecentRequest] = []
        for item in reversed(self.recent):
            if field is not None and (getattr(item.event, field) or NONE_LABEL) != key:
                continue
            out.append(item)
            if len(out) >= limit:
                break
        return out

    def iter_rows(self, dim: str) -> Iterator[Acc]:
        return iter(self.rows[dim].values())

    def snapshot(self, now: float, **status: object):  # -> Snapshot (import cycle avoided)
        from tokentop.core.snapshot import build_snapshot

        return build_snapshot(self, now, status)


_DIM_FIELD: Final = {
    "agents": "agent",
    "models": "model",
    "sessions": "session",
    "projects": "project",
    "providers": "provider",
    "hosts": "host",
}


def wall_clock() -> float:
    """The real clock, for the edges (feed, CLI). The aggregator itself never reads it."""
    return _time.time()


Clock = Callable[[], float]
