"""The revision rule (docs/events.md "Revisions"): per id the largest record offered is kept, in
any order, once; the ledger, the feed's memory and the aggregator agree."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import subprocess
import sys
from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tokentop.core.aggregate import Aggregator
from tokentop.core.events import Event
from tokentop.core.feed.service import FeedService
from tokentop.core.ledger import Ledger, Revised
from tokentop.core.pricing import Pricer
from tokentop.core.revision import known_no_larger, memory_key, memory_ts, order_key, wins
from tokentop.core.team import outbox

TZ = timezone(timedelta(hours=1))
NOW = datetime(2026, 11, 26, 15, 0, 0, tzinfo=TZ).timestamp()
MIDNIGHT = datetime(2026, 11, 26, 0, 0, 0, tzinfo=TZ).timestamp()
PRICER = Pricer()


def rec(i: int = 1, *, ts: float = NOW - 5, out: int = 10, inp: int = 1000, **kw) -> Event:
    base = dict(id=f"r{i}", ts=ts, agent="claude-code", session="s1", provider="anthropic",
                model="claude-sonnet-4-5", input_tokens=inp, output_tokens=out)
    base.update(kw)
    return Event(**base)


# -- the order --------------------------------------------------------------------------------------

def test_the_order_more_tokens_then_output_then_revision_then_earlier_then_a_fixed_choice() -> None:
    base = rec(out=10, inp=1000)
    assert wins(rec(out=11, inp=1000), base)  # more tokens
    assert not wins(rec(out=500, inp=10), base)  # more output but fewer tokens: a revision never lowers the total
    assert wins(rec(out=20, inp=990), base)  # same total, more output
    assert wins(rec(revision=1), base) and not wins(base, rec(revision=1))  # same counts: higher revision
    assert wins(rec(ts=NOW - 9), base) and not wins(rec(ts=NOW), base)  # same so far: the earlier record
    other = rec(session="s2")  # differs only in attribution: a fixed choice, one way only
    assert wins(other, base) != wins(base, other)
    assert not wins(base, base) and not wins(dataclasses.replace(base), base)  # a repeat changes nothing
    # a model fallback mid-stream: the whole larger record wins, never a mix of fields
    fallback = rec(out=400, inp=1000, model="claude-opus-4-5", cache_read_tokens=0, cache_write_tokens=900)
    assert wins(fallback, rec(out=3, inp=1000, cache_read_tokens=900))


def test_the_fixed_choice_is_the_same_in_every_process() -> None:
    """Two processes (a feed and `tokentop import`, a host and the fleet) must agree on every pair."""
    code = ("from tokentop.core.events import Event; from tokentop.core.revision import wins\n"
            "a = Event('x', 1.7e9, 'a', session='s1', model='m1', project='p', input_tokens=5)\n"
            "b = Event('x', 1.7e9, 'b', session='s0', model='m2', branch='z', input_tokens=5)\n"
            "print(wins(a, b), wins(b, a))")
    answers = set()
    for seed in ("1", "2", "3"):
        env = dict(os.environ, PYTHONHASHSEED=seed)
        answers.add(subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                                   check=True).stdout.strip())
    assert len(answers) == 1 and answers.pop() in ("True False", "False True")


records = st.builds(
    rec,
    i=st.integers(0, 3),
    ts=st.sampled_from([NOW - 30, NOW - 5, NOW - 5.000001, MIDNIGHT - 20, NOW - 100]),
    out=st.integers(0, 50),
    inp=st.sampled_from([0, 10, 1000]),
    revision=st.integers(0, 2),
    model=st.sampled_from(["claude-sonnet-4-5", "claude-opus-4-5", "unknown-model"]),
    session=st.sampled_from(["s1", "s2", None]),
    cost_usd=st.sampled_from([None, None, 0.5]),
)


@settings(max_examples=300, deadline=None)
@given(a=records, b=records)
def test_the_memory_key_never_contradicts_the_rule(a: Event, b: Event) -> None:
    """The feed drops a record in memory only when the rule would not store it either."""
    if known_no_larger(memory_key(a), memory_key(b)):
        assert not wins(a, b)
    assert memory_ts(memory_key(a)) == pytest.approx(a.ts, abs=1e-6)
    assert (order_key(a) > order_key(b)) == wins(a, b)


# -- the ledger ---------------------------------------------------------------------------------------

def test_the_ledger_replaces_a_smaller_record_counts_revisions_and_queues_each_one_for_nats(tmp_path) -> None:
    with Ledger(tmp_path / "l.db") as ledger:
        outbox.install(ledger)
        first, final = rec(out=3), rec(out=299, ts=NOW - 2)
        c1, c2 = PRICER.price(first), PRICER.price(final)
        assert ledger.append([(first, c1)]) == [True]
        (outcome,) = ledger.append([(final, c2)])
        assert isinstance(outcome, Revised) and outcome.previous.event == first
        assert (outcome.previous.cost.pusd, outcome.previous.cost.kind) == (c1.pusd, c1.kind)
        assert ledger.append([(first, c1), (final, c2)]) == [False, False]  # late copies: nothing changes
        stored = ledger.get("r1")
        assert stored is not None and stored.event == final and stored.revisions == 1
        assert (stored.cost.pusd, stored.cost.kind) == (c2.pusd, c2.kind)
        rows = outbox.read(ledger, 10)
        assert [(p.event_id, p.revisions) for p in rows] == [("r1", 1), ("r1", 1)]  # queued twice, read as stored
        assert ledger.count() == 1


@settings(max_examples=60, deadline=None)
@given(stream=st.lists(records, min_size=1, max_size=25), cut=st.integers(1, 7), data=st.data())
def test_any_order_and_any_batching_store_the_largest_record_per_id(stream: list[Event], cut: int, data) -> None:
    shuffled = data.draw(st.permutations(stream + stream[::3]))
    expected: dict[str, Event] = {}
    for e in stream:
        if e.id not in expected or wins(e, expected[e.id]):
            expected[e.id] = e
    with Ledger(":memory:") as ledger:
        for k in range(0, len(shuffled), cut):
            ledger.append([(e, PRICER.price(e)) for e in shuffled[k : k + cut]])
        stored = {s.event.id: s for s in ledger.events_since(0)}
    assert {k: s.event for k, s in stored.items()} == expected
    assert all(s.cost.pusd == PRICER.price(s.event).pusd for s in stored.values())  # a record's own cost travels with it


# -- the aggregator -----------------------------------------------------------------------------------

def totals_of(agg: Aggregator, now: float) -> tuple:
    snap = agg.snapshot(now)
    t = snap.totals
    rows = {dim: sorted((r.key, r.requests_today, r.tokens_today, r.usd_today, r.unpriced_requests_today,
                         r.cache_write_tokens_today, tuple(m for m in r.models if m.requests))
                        for r in getattr(snap, dim) if r.requests_today)
            for dim in ("agents", "models", "sessions", "projects")}
    return (t.requests_today, t.tokens_today, t.output_tokens_today, t.usd_today, t.usd_estimated_today,
            t.usd_provided_today, t.unpriced_requests_today, t.errors_today), rows


@settings(max_examples=150, deadline=None)
@given(stream=st.lists(records, min_size=1, max_size=30), cools=st.lists(st.booleans(), min_size=30, max_size=30),
       data=st.data())
def test_any_interleaving_of_records_and_revisions_ends_with_the_totals_of_the_final_records(
        stream: list[Event], cools: list[bool], data) -> None:
    """Records and revisions through the real feed (ledger + aggregator), with cells cooling into
    the cold sums between steps, end with the snapshot of applying only the final records."""
    order = data.draw(st.permutations(stream))
    clock = [NOW]

    async def run() -> Aggregator:
        ledger = Ledger(":memory:")
        service = FeedService(ledger, PRICER, Aggregator(tz=TZ), clock=lambda: clock[0])
        for i, e in enumerate(order):
            await service.ingest_events([e])
            if cools[i]:
                clock[0] += 200  # the cell goes cold and is folded before the next record
                service.aggregator.cool(clock[0])
        ledger.close()
        return service.aggregator

    agg = asyncio.run(run())
    final: dict[str, Event] = {}
    for e in stream:
        if e.id not in final or wins(e, final[e.id]):
            final[e.id] = e
    only_final = Aggregator(tz=TZ)
    for e in final.values():
        only_final.apply(e, PRICER.price(e), clock[0])
    assert totals_of(agg, clock[0]) == totals_of(only_final, clock[0])


def test_a_revision_moves_money_between_estimated_provided_and_unpriced_and_between_models() -> None:
    agg = Aggregator(tz=TZ)
    otlp = rec(cost_usd=0.25, source="otlp")
    agg.apply(otlp, PRICER.price(otlp), NOW)
    snap = agg.snapshot(NOW)
    assert snap.totals.usd_provided_today == pytest.approx(0.25) and snap.totals.usd_estimated_today == 0
    transcript = rec(model="claude-opus-4-5", revision=1, cache_write_tokens=500)
    agg.revise(otlp, PRICER.price(otlp), transcript, PRICER.price(transcript), NOW + 1)
    snap = agg.snapshot(NOW + 1)
    t = snap.totals
    assert (t.requests_today, t.usd_provided_today) == (1, 0)
    assert t.usd_estimated_today == PRICER.price(transcript).usd
    assert {r.key: r.requests_today for r in snap.models if r.requests_today} == {"claude-opus-4-5": 1}
    unknown = dataclasses.replace(transcript, model="unknown-model", output_tokens=99)
    agg.revise(transcript, PRICER.price(transcript), unknown, PRICER.price(unknown), NOW + 2)
    t = agg.snapshot(NOW + 2).totals
    assert (t.requests_today, t.unpriced_requests_today, t.usd_today) == (1, 1, 0)


def test_rates_get_the_difference_at_the_second_of_the_revision() -> None:
    agg = Aggregator(tz=TZ)
    first = rec(ts=NOW - 30, out=3)
    agg.apply(first, PRICER.price(first), NOW - 30)
    final = rec(ts=NOW - 1, out=2003)
    agg.revise(first, PRICER.price(first), final, PRICER.price(final), NOW)
    snap = agg.snapshot(NOW)
    assert snap.totals.requests_per_s == 0  # the request was counted 30 s ago, not again now
    assert snap.totals.output_tokens_per_s == pytest.approx(2000 / 10)  # the 2000 learnt now
    assert snap.totals.tokens_series[-1] == 2000 and sum(snap.totals.requests_series) == 1
    assert snap.totals.requests_today == 1 and snap.totals.output_tokens_today == 2003
    # detail views show the revised record
    assert [r.event.output_tokens for r in agg.recent_requests()] == [2003]


def test_a_revision_of_a_record_from_before_midnight_leaves_today_alone() -> None:
    agg = Aggregator(tz=TZ)
    old = rec(ts=MIDNIGHT - 3600, out=3)
    agg.apply(old, PRICER.price(old), NOW)
    new = rec(ts=MIDNIGHT - 3600, out=900)
    agg.revise(old, PRICER.price(old), new, PRICER.price(new), NOW)
    t = agg.snapshot(NOW).totals
    assert (t.requests_today, t.tokens_today, t.tokens_series[-1]) == (0, 0, 0)
