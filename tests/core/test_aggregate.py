from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tokentop.core.aggregate import CELL_KEY, Aggregator, AggregatorConfig
from tokentop.core.events import Event
from tokentop.core.feed.service import FeedService
from tokentop.core.ledger import Ledger
from tokentop.core.pricing import Cost, Pricer, usd
from tokentop.core.revision import order_key
from tokentop.core.snapshot import DIMENSIONS, Snapshot

TZ = timezone(timedelta(hours=1))
NOW = datetime(2026, 11, 26, 15, 0, 0, tzinfo=TZ).timestamp()
PRICER = Pricer()


def ev(i: int, ts: float = NOW, **kw) -> Event:
    base = dict(id=f"e{i}", ts=ts, agent="a", session="s1", model="gpt-5", input_tokens=1000, output_tokens=100)
    base.update(kw)
    return Event(**base)


def agg_with(*events: Event, now: float = NOW, config: AggregatorConfig | None = None) -> Aggregator:
    agg = Aggregator(config, tz=TZ)
    for e in events:
        agg.apply(e, PRICER.price(e), now)
    return agg


def test_rates_use_the_sliding_window() -> None:
    events = [ev(i, ts=NOW - 9 + i + 0.25) for i in range(9)] + [ev(9, ts=NOW)]  # one in each of the last 10 one-second buckets
    snap = agg_with(*events).snapshot(NOW)
    assert snap.totals.requests_per_s == pytest.approx(1.0)
    assert snap.totals.tokens_per_s == pytest.approx(1100.0)
    # 20 s later the 10 s window is empty but the 60 s burn window still holds them
    later = agg_with(*events).snapshot(NOW + 20)
    assert later.totals.requests_per_s == 0
    assert later.totals.usd_per_hour > 0


def test_usd_per_hour_is_spend_in_last_minute_scaled() -> None:
    e = ev(1, ts=NOW - 1, input_tokens=1_000_000, output_tokens=0)  # $1.25 for gpt-5
    snap = agg_with(e).snapshot(NOW)
    assert snap.totals.usd_per_hour == pytest.approx(1.25 * 60)
    assert snap.agents[0].usd_per_hour == pytest.approx(75.0)


def test_today_counts_from_local_midnight() -> None:
    midnight = datetime(2026, 11, 26, 0, 0, tzinfo=TZ).timestamp()
    snap = agg_with(ev(1, ts=midnight - 1), ev(2, ts=midnight + 1)).snapshot(NOW)
    assert snap.totals.requests_today == 1


def test_day_rollover_resets_today_but_not_rates() -> None:
    midnight = datetime(2026, 11, 27, 0, 0, tzinfo=TZ).timestamp()
    agg = agg_with(ev(1, ts=midnight - 5), now=midnight - 4)
    snap = agg.snapshot(midnight + 2)
    assert snap.totals.requests_today == 0
    assert snap.agents[0].requests_today == 0
    assert snap.totals.requests_per_s == pytest.approx(0.1)  # still in the 10 s window


def test_per_row_series_and_models() -> None:
    agg = agg_with(ev(1, ts=NOW - 3), ev(2, ts=NOW - 3, model="claude-sonnet-4"), ev(3, ts=NOW, model="nope"))
    snap = agg.snapshot(NOW)
    row = snap.agents[0]
    assert len(row.burn_series) == 120
    assert sum(row.burn_series) == pytest.approx(float(row.usd_today))
    assert [m.model for m in row.models] == ["claude-sonnet-4", "gpt-5", "nope"]
    assert row.models[-1].unpriced_requests == 1
    assert row.unpriced_requests_today == 1


def test_late_events_land_in_their_own_second() -> None:
    agg = agg_with(ev(1, ts=NOW - 1), ev(2, ts=NOW - 50), ev(3, ts=NOW - 20))
    series = agg.snapshot(NOW).totals.requests_series
    assert series[-2] == 1 and series[-51] == 1 and series[-21] == 1 and sum(series) == 3


def test_session_rows_carry_identity_and_state() -> None:
    agg = agg_with(ev(1, ts=NOW - 10, pid=99, host="h1", project="p", branch="main"))
    agg.apply(ev(2, ts=NOW - 400, session="old"), PRICER.price(ev(2)), NOW)
    snap = agg.snapshot(NOW)
    s1 = snap.find("sessions", "s1")
    assert (s1.agent, s1.pid, s1.host, s1.project, s1.branch, s1.state) == ("a", 99, "h1", "p", "main", "active")
    assert snap.find("sessions", "old").state == "idle"
    assert snap.totals.active_sessions == 1
    assert snap.agents[0].sessions == 1
    agg.set_session_state("s1", "paused")
    assert agg.snapshot(NOW).find("sessions", "s1").state == "paused"


def test_eviction_bounds_memory_and_keeps_totals() -> None:
    cfg = AggregatorConfig(session_ttl_s=60)
    agg = agg_with(*[ev(i, ts=NOW - 300, session=f"s{i}") for i in range(1000)], config=cfg)
    before = agg.snapshot(NOW)
    dropped = agg.evict(NOW)
    after = agg.snapshot(NOW)
    assert dropped == 1000 and after.sessions == ()
    assert not agg.cells and not agg.cold["sessions"]
    assert after.totals.usd_today == before.totals.usd_today
    assert after.agents[0].usd_today == before.agents[0].usd_today
    assert after.totals.requests_today == 1000


def test_quiet_cells_are_folded_and_their_rows_reused() -> None:
    agg = agg_with(ev(1, ts=NOW), ev(2, ts=NOW, session="s2"))
    assert len(agg.cells) == 2
    first = agg.snapshot(NOW + 500)
    assert not agg.cells  # folded into the cold sums: no buckets kept for quiet rows
    second = agg.snapshot(NOW + 501)
    assert second.find("sessions", "s1") is first.find("sessions", "s1")  # unchanged rows are reused
    assert second.totals.requests_today == 2
    agg.apply(ev(3, ts=NOW + 502), PRICER.price(ev(3)), NOW + 502)  # the session wakes up again
    third = agg.snapshot(NOW + 502)
    assert third.find("sessions", "s1").requests_today == 2
    assert third.find("sessions", "s1").state == "active"
    assert third.totals.requests_today == 3


def test_every_dimension_is_a_view_and_a_part_of_the_cell_key() -> None:
    """One dimension list: each dimension groups by its event field, in the cells, the snapshot's
    views and the detail filter alike (a dimension added to the list that the aggregator does not
    key by fails here)."""
    e = ev(1, agent="ag", session="se", model="gpt-5", project="pr", provider="openai", host="ho")
    agg = agg_with(e)
    (key,) = agg.cells
    assert key == tuple(getattr(e, f) for f in CELL_KEY)
    snap = agg.snapshot(NOW)
    assert isinstance(snap, Snapshot)
    for dim in DIMENSIONS:
        value = getattr(e, dim[:-1])
        assert [r.key for r in snap.view(dim)] == [value], dim
        assert [r.event.id for r in agg.recent_requests(dim, value)] == ["e1"], dim
        assert agg.recent_requests(dim, "other") == [], dim
    assert list(snap.to_json()).index("agents") < list(snap.to_json()).index("hosts")


def test_cached_quiet_rows_follow_state_day_and_eviction() -> None:
    agg = agg_with(ev(1, ts=NOW))
    first = agg.snapshot(NOW + 500).find("sessions", "s1")
    assert agg.snapshot(NOW + 501).find("sessions", "s1") is first  # quiet and unchanged: the cached Row
    agg.set_session_state("s1", "paused")
    paused = agg.snapshot(NOW + 502).find("sessions", "s1")
    assert paused is not first and paused.state == "paused"
    assert agg.snapshot(NOW + 503).find("sessions", "s1") is paused
    tomorrow = datetime(2026, 11, 27, 0, 0, 1, tzinfo=TZ).timestamp()
    assert agg.snapshot(tomorrow).find("sessions", "s1").requests_today == 0  # a new day rebuilds every row
    assert agg.builder is not None and "s1" in agg.builder.views["sessions"].states
    agg.evict(tomorrow + 3600)
    assert agg.snapshot(tomorrow + 3600).find("sessions", "s1") is None
    assert "s1" not in agg.builder.views["sessions"].states  # the builder forgets evicted rows


def test_config_limits() -> None:
    with pytest.raises(ValueError, match="rate_window_s must be between 1 and 120"):
        AggregatorConfig(rate_window_s=500)


# -- property: totals equal the sum of distinct events, whatever the order and the duplicates -------

event_strategy = st.builds(
    lambda i, dt, inp, out, model, agent: Event(
        id=f"id{i}", ts=NOW - dt, agent=agent, session=f"s{i % 7}", model=model,
        input_tokens=inp, output_tokens=out,
    ),
    i=st.integers(0, 40),
    dt=st.floats(0, 3600),
    inp=st.integers(0, 200_000),
    out=st.integers(0, 20_000),
    model=st.sampled_from(["gpt-5", "claude-sonnet-4", "unknown-model"]),
    agent=st.sampled_from(["a", "b", "c"]),
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(events=st.lists(event_strategy, max_size=40), order=st.randoms(use_true_random=False))
def test_totals_equal_sum_of_distinct_events(events: list[Event], order) -> None:
    stream = list(events) + [events[j] for j in range(0, len(events), 2)]  # plus replays
    order.shuffle(stream)
    largest: dict[str, Event] = {}  # the revision rule: per id, the largest record offered, in any order
    for e in stream:
        if e.id not in largest or order_key(e) > order_key(largest[e.id]):
            largest[e.id] = e

    async def run() -> FeedService:
        ledger = Ledger(":memory:")
        service = FeedService(ledger, PRICER, Aggregator(tz=TZ), clock=lambda: NOW)
        for k in range(0, len(stream), 7):
            await service.ingest_events(stream[k : k + 7])
        ledger.close()
        return service

    service = asyncio.run(run())
    snap = service.snapshot(NOW)
    kept = list(largest.values())
    assert snap.totals.requests_today == len(kept)
    assert snap.totals.input_tokens_today == sum(e.input_tokens for e in kept)
    assert snap.totals.output_tokens_today == sum(e.output_tokens for e in kept)
    expected_usd = sum((PRICER.price(e).pusd or 0) for e in kept)
    assert snap.totals.usd_today == usd(expected_usd)
    assert snap.totals.unpriced_requests_today == sum(1 for e in kept if e.model == "unknown-model")
    assert sum(r.usd_today for r in snap.agents) == snap.totals.usd_today
    assert sum(r.requests_today for r in snap.models) == len(kept)
    assert service.counters.accepted == len(kept)
    assert service.counters.duplicates + service.counters.revised == len(stream) - len(kept)
