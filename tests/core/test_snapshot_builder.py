"""The incremental snapshot builder against the definition (a snapshot computed from scratch).

A snapshot is built at each step of random sequences of apply / revise / cool / evict / session
state / process facts at clocks that move forward (and sometimes back, and over midnight); each
must equal :func:`build_full_snapshot` of the same aggregator at the same instant: every row of
every view, in order, and the totals, to the pico-dollar.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tokentop.core.aggregate import Aggregator, AggregatorConfig
from tokentop.core.events import Event
from tokentop.core.pricing import Cost, Pricer
from tokentop.core.snapshot import DIMENSIONS, Snapshot
from tokentop.core.feed.stream import shift_series
from tokentop.core.snapshot_builder import build_full_snapshot

TZ = timezone(timedelta(hours=1))
#: ten minutes before local midnight: long sequences cross it
NOW = datetime(2026, 11, 26, 23, 50, 0, tzinfo=TZ).timestamp()
PRICER = Pricer()


def assert_same(incremental: Snapshot, full: Snapshot) -> None:
    assert incremental.totals == full.totals
    for dim in DIMENSIONS:
        got, want = incremental.view(dim), full.view(dim)
        assert [r.key for r in got] == [r.key for r in want], dim
        for a, b in zip(got, want):
            assert a == b, (dim, a.key)
    assert incremental == full


class StampWatch:
    """Holds each snapshot against the one before: a row that kept its stamp must read as the row
    sent before with only its sparkline moved on by the seconds between (what a delta-stream reader
    does with a row it is not sent again; ``docs/api.md``, delta frames)."""

    def __init__(self) -> None:
        self.prev: Snapshot | None = None
        self.kept = 0

    def see(self, snap: Snapshot) -> None:
        prev, self.prev = self.prev, snap
        if prev is None:
            return
        lag = int(snap.generated_at) - int(prev.generated_at)
        for dim in DIMENSIONS:
            before = {r.key: r for r in prev.view(dim)}
            for row in snap.view(dim):
                old = before.get(row.key)
                if old is not None and row.stamp and row.stamp == old.stamp:
                    assert lag >= 0, (dim, row.key)
                    assert row == shift_series(old, lag), (dim, row.key, lag)
                    self.kept += 1


def event(i: int, ts: float, session: int, model: str, agent: str, project: int | None, inp: int, out: int,
          error: bool = False, cache: int = 0) -> Event:
    return Event(id=f"e{i}", ts=ts, agent=agent, session=None if session < 0 else f"s{session}", model=model,
                 project=None if project is None else f"p{project}", provider="openai" if model.startswith("gpt") else None,
                 host="h1" if session % 2 else "h2", input_tokens=inp + cache, cache_read_tokens=cache,
                 output_tokens=out, status="error" if error else "ok", pid=4000 + session if session % 3 else None)


MODELS = ["gpt-5", "gpt-5-mini", "claude-sonnet-4", "unknown-model"]
COSTS = {"unknown-model": None}

op = st.one_of(
    st.tuples(st.just("apply"), st.integers(-1, 6), st.sampled_from(MODELS), st.sampled_from(["a", "b"]),
              st.one_of(st.none(), st.integers(0, 2)), st.integers(0, 50_000), st.integers(0, 5_000),
              st.floats(-400, 400), st.booleans(), st.sampled_from(["estimated", "provided", "unpriced"])),
    st.tuples(st.just("revise"), st.integers(0, 200), st.integers(-1, 6), st.sampled_from(MODELS),
              st.integers(0, 20_000), st.floats(-60, 30)),
    st.tuples(st.just("tick"), st.floats(0, 400)),
    st.tuples(st.just("tick"), st.floats(0, 3)),
    st.tuples(st.just("back"), st.floats(0, 5)),
    st.tuples(st.just("evict")),
    st.tuples(st.just("cool")),
    st.tuples(st.just("state"), st.integers(0, 6), st.sampled_from([None, "paused", "stopped"])),
    st.tuples(st.just("bind"), st.integers(0, 6), st.integers(1, 99999)),
    st.tuples(st.just("snap")),
)


def cost_of(e: Event, kind: str) -> Cost:
    if kind == "unpriced" or e.model == "unknown-model":
        return Cost(None, "unpriced")
    priced = PRICER.price(e)
    if kind == "provided":
        return Cost((priced.pusd or 0) + 7, "provided")
    return priced


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(ops=st.lists(op, min_size=1, max_size=60),
       windows=st.sampled_from([(10, 60, 120.0), (1, 5, 5.0), (30, 120, 200.0), (60, 10, 30.0)]))
def test_incremental_snapshots_equal_full_rebuilds(ops: list[tuple], windows: tuple[int, int, float]) -> None:
    rw, bw, idle = windows
    cfg = AggregatorConfig(rate_window_s=rw, burn_window_s=bw, idle_after_s=idle, session_ttl_s=300.0,
                           row_ttl_s=900.0, recent_max=50)
    agg = Aggregator(cfg, tz=TZ)
    now = NOW
    applied: dict[str, tuple[Event, Cost]] = {}
    watch = StampWatch()
    n = 0
    for item in ops:
        kind = item[0]
        if kind == "apply":
            _, session, model, agent, project, inp, out, dt, err, cost_kind = item
            n += 1
            e = event(n, now + dt, session, model, agent, project, inp, out, err, cache=inp // 3)
            cost = cost_of(e, cost_kind)
            agg.apply(e, cost, now)
            applied[e.id] = (e, cost)
        elif kind == "revise" and applied:
            _, pick, session, model, more, dt = item
            old, old_cost = applied[sorted(applied)[pick % len(applied)]]
            new = Event(**{**old.to_dict(), "output_tokens": old.output_tokens + more, "ts": old.ts + dt,
                           "model": model, "session": None if session < 0 else f"s{session}",
                           "cache_read_tokens": old.cache_read_tokens})
            new_cost = cost_of(new, old_cost.kind)
            agg.revise(old, old_cost, new, new_cost, now)
            applied[new.id] = (new, new_cost)
        elif kind == "tick":
            now += item[1]
        elif kind == "back":
            now -= item[1]
        elif kind == "evict":
            agg.evict(now)
        elif kind == "cool":
            agg.cool(now)
        elif kind == "state":
            agg.set_session_state(f"s{item[1]}", item[2])
        elif kind == "bind":
            agg.bind_process(f"s{item[1]}", {"pid": item[2], "cmd": "agent --run"})
        if kind in ("snap", "tick", "back", "evict") or len(applied) % 5 == 0:
            snap = agg.snapshot(now)
            watch.see(snap)
            assert_same(snap, build_full_snapshot(agg, now))
    snap = agg.snapshot(now + 0.5)
    watch.see(snap)
    assert_same(snap, build_full_snapshot(agg, now + 0.5))


def steady(agg: Aggregator, sessions: int, start: float, seconds: int, every: int = 1) -> float:
    """Events for every ``every``-th session each second, a snapshot each second; returns the clock."""
    now = start
    n = 0
    for _ in range(seconds):
        now += 1.0
        for s in range(0, sessions, every):
            n += 1
            e = Event(id=f"x{now}-{s}", ts=now - 0.5, agent=f"a{s % 3}", session=f"s{s}", model="gpt-5",
                      input_tokens=1000, output_tokens=100)
            agg.apply(e, PRICER.price(e), now)
        agg.snapshot(now)
    return now


def test_unchanged_rows_are_reused_and_only_changed_cells_are_read() -> None:
    agg = Aggregator(tz=TZ)
    now = steady(agg, 50, NOW - 3600, 5)
    builder = agg.builder
    assert builder is not None
    before = agg.snapshot(now + 0.9)
    # one more second with news for 2 sessions: the builder reads 2 cells, not 50
    for s in (0, 1):
        e = Event(id=f"y{s}", ts=now + 0.95, agent="a0", session=f"s{s}", model="gpt-5", input_tokens=10, output_tokens=1)
        agg.apply(e, PRICER.price(e), now + 1)
    snap = agg.snapshot(now + 1)
    assert builder.cells_read == 2
    assert builder.rebuilt == 2 + 5  # two sessions; their agent, model, project, provider and host rows
    moved = {r.key: r for r in snap.sessions}
    for r in before.sessions:
        if r.key in ("s0", "s1"):
            assert moved[r.key].stamp != r.stamp
        else:
            # the others only slid their sparkline by a second: same content, same stamp
            assert moved[r.key].stamp == r.stamp and moved[r.key].burn_series == r.burn_series[1:] + (0.0,)
    assert_same(snap, build_full_snapshot(agg, now + 1))
    # two minutes of quiet later every row has settled: nothing is rebuilt, every Row is the same object
    quiet = agg.snapshot(now + 400)
    again = agg.snapshot(now + 401)
    assert builder.rebuilt == 0 and builder.shifted == 0 and builder.cells_read == 0
    assert all(a is b for a, b in zip(quiet.sessions, again.sessions))


def test_a_timestamp_ahead_of_the_clock_counts_at_its_arrival() -> None:
    """An emitter whose clock runs ahead (the contract accepts up to 5 min) once crashed the
    snapshot builder (a second beyond the sparkline): it counts at the second it arrived."""
    agg = Aggregator(tz=TZ)
    e = Event(id="f", ts=NOW + 30, agent="a", session="s", model="gpt-5", input_tokens=1000, output_tokens=10)
    agg.apply(e, PRICER.price(e), NOW)
    snap = agg.snapshot(NOW)
    assert snap.totals.requests_today == 1
    assert snap.totals.requests_series[-1] == 1
    assert snap.totals.requests_per_s > 0
    assert snap.sessions[0].burn_series[-1] > 0
    assert_same(snap, build_full_snapshot(agg, NOW))


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(traffic=st.lists(st.tuples(st.floats(0, 150), st.integers(0, 5), st.sampled_from(MODELS), st.integers(1, 9000),
                                  st.booleans()), min_size=1, max_size=40),
       steps=st.lists(st.floats(0.2, 4.0), min_size=60, max_size=120),
       windows=st.sampled_from([(10, 60, 120.0), (1, 5, 5.0), (60, 10, 30.0), (20, 20, 45.0)]))
def test_time_alone_moves_rows_exactly_as_a_full_rebuild(traffic: list[tuple], steps: list[float],
                                                         windows: tuple[int, int, float]) -> None:
    """Events over a couple of minutes (a snapshot now and then), then the clock walks on with no
    news: every window edge, idle transition, cooling and sparkline end shows at the same instant."""
    rw, bw, idle = windows
    agg = Aggregator(AggregatorConfig(rate_window_s=rw, burn_window_s=bw, idle_after_s=idle), tz=TZ)
    start = NOW - 7200
    for n, (at, session, model, out, snap) in enumerate(sorted(traffic)):
        e = event(n, start + at, session, model, "a", session % 2, 1000, out)
        agg.apply(e, cost_of(e, "estimated"), start + at)
        if snap:
            assert_same(agg.snapshot(start + at), build_full_snapshot(agg, start + at))
    now = start + max(t[0] for t in traffic)
    watch = StampWatch()
    for step in steps:
        now += step
        snap = agg.snapshot(now)
        watch.see(snap)
        assert_same(snap, build_full_snapshot(agg, now))
