"""The 5-hour estimate from the ledger: ccusage's blocks, claude-monitor's P90 limit, incremental."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from tokentop.core.events import Event
from tokentop.core.ledger import Ledger
from tokentop.core.limits.estimate import (
    BLOCK_S, FLOOR_TOKENS, Estimator, blocks_of, floor_hour, learned_limit,
)
from tokentop.core.limits.usage import quota_tokens
from tokentop.core.pricing import Pricer

H = 3600.0
DAY0 = 1_795_651_200.0  # 2026-11-26 00:00 UTC


def test_blocks_start_on_the_utc_hour_and_last_five_hours() -> None:
    blocks = blocks_of([(DAY0 + 10 * H + 1234, 10), (DAY0 + 12 * H, 5), (DAY0 + 14 * H + 59 * 60, 1)])
    assert len(blocks) == 1
    assert blocks[0].start == DAY0 + 10 * H and blocks[0].end == DAY0 + 15 * H and blocks[0].tokens == 16
    # a request at the block's end starts a new block, floored to its hour
    blocks = blocks_of([(DAY0 + 10 * H + 1234, 10), (DAY0 + 15 * H + 30, 7)])
    assert [(b.start, b.tokens) for b in blocks] == [(DAY0 + 10 * H, 10), (DAY0 + 15 * H, 7)]
    # a gap of five hours starts a new block even inside the first one's span ... (never the case
    # for a 5 h block, so: the gap rule matters after a block's end) and a gap longer than 5 h too
    blocks = blocks_of([(DAY0 + 1 * H, 1), (DAY0 + 9 * H + 10, 2)])
    assert [b.start for b in blocks] == [DAY0 + 1 * H, DAY0 + 9 * H]
    assert floor_hour(DAY0 + 3 * H + 3599) == DAY0 + 3 * H


def test_the_limit_is_the_p90_of_completed_blocks_never_below_the_floor() -> None:
    now = DAY0 + 100 * H
    sizes = [50_000, 60_000, 70_000, 80_000, 90_000, 100_000, 110_000, 120_000, 130_000, 300_000]
    points = [(DAY0 + i * 6 * H, n) for i, n in enumerate(sizes)]
    blocks = blocks_of(points)
    assert len(blocks) == 10
    limit = learned_limit(blocks, now)
    assert limit is not None and 130_000 < limit < 300_000  # the 90th percentile, not the max
    # light use: every block small; the floor holds
    small = blocks_of([(DAY0 + i * 6 * H, 2_000) for i in range(5)])
    assert learned_limit(small, now) == FLOOR_TOKENS
    # blocks that reached a common limit are the ones that teach it (claude-monitor)
    mixed = blocks_of([(DAY0 + i * 6 * H, n) for i, n in enumerate([1_000, 1_500, 87_000, 90_000, 2_000])])
    assert learned_limit(mixed, now) >= 87_000
    # fewer than two completed blocks: nothing learned yet
    assert learned_limit(blocks_of([(DAY0, 50_000)]), now) is None
    # the block still running does not count; nor do blocks older than 192 h
    assert learned_limit(blocks_of([(DAY0, 60_000), (now - 60, 70_000)]), now) is None
    assert learned_limit(blocks, DAY0 + 54 * H + 200 * H) is None


def _event(i: int, ts: float, inp: int, cached: int, out: int, agent: str = "claude-code", session: str = "s1") -> Event:
    return Event(id=f"e{i}", ts=ts, agent=agent, session=session, model="claude-sonnet-4-5", input_tokens=inp,
                 cache_read_tokens=cached, output_tokens=out)


def test_quota_tokens_leave_out_cache_reads() -> None:
    assert quota_tokens(_event(0, 0, inp=10_000, cached=9_000, out=500)) == 1_500


@pytest.fixture
def ledger(tmp_path: Path):
    led = Ledger(tmp_path / "l.db")
    yield led
    led.close()


def test_the_estimate_from_the_ledger_and_kept_up_by_accepted_events(ledger: Ledger) -> None:
    pricer = Pricer()
    events = []
    # four finished blocks of 100k quota tokens, then the current block
    for day in range(4):
        for k in range(10):
            events.append(_event(len(events), DAY0 + day * 12 * H + k * 600, 12_000, 2_000, 0))
    now = DAY0 + 4 * 12 * H + 2 * H
    start = floor_hour(now - 1.5 * H)
    current = [_event(1000 + k, start + 60 + k * 600, 6_000, 1_000, 0) for k in range(5)]  # 25k so far
    ledger.append([(e, pricer.price(e)) for e in events + current])
    est = Estimator(ledger, ["claude-code"])
    asyncio.run(est.rescan(now))
    obs = est.observation("claude-code", now)
    assert obs is not None and obs.source == "estimated" and obs.window == "5h"
    assert obs.limit_tokens == 100_000
    assert obs.used_percent == pytest.approx(25.0)
    assert obs.resets_at == start + BLOCK_S
    # a new request extends the block without a rescan
    later = _event(2000, now + 60, 11_000, 1_000, 0)
    est.on_accepted([(later, pricer.price(later))], now + 60)
    assert est.observation("claude-code", now + 61).used_percent == pytest.approx(35.0)  # type: ignore[union-attr]
    # and agrees with a full re-read of the same ledger
    ledger.append([(later, pricer.price(later))])
    again = Estimator(ledger, ["claude-code"])
    again.rescan_now(now + 61)
    assert again.observation("claude-code", now + 61).used_percent == pytest.approx(35.0)  # type: ignore[union-attr]
    # the burn at this rate: tokens of the last 15 minutes inside the block
    assert est.burn("claude-code", now + 61) > 0
    # an event older than the newest block marks the agent for a re-read instead of guessing
    old = _event(3000, DAY0 + 3 * H, 1, 0, 0)
    est.on_accepted([(old, pricer.price(old))], now + 62)
    # (the last full read was at `now`): not at once — a backfill brings many such events ...
    assert est.due(now + 29) == []
    assert est.due(now + 30) == ["claude-code"]  # ... one re-read for all of them
    # idle for five hours: no active block, no estimate
    assert est.observation("claude-code", now + 6 * H) is None


def test_no_estimate_before_two_blocks_were_completed(ledger: Ledger) -> None:
    pricer = Pricer()
    e = _event(0, DAY0 + 60, 5_000, 0, 100)
    ledger.append([(e, pricer.price(e))])
    est = Estimator(ledger, ["claude-code"])
    est.rescan_now(DAY0 + 120)
    assert est.observation("claude-code", DAY0 + 120) is None


def test_a_revised_record_adds_only_its_difference(ledger: Ledger) -> None:
    """A streamed response is stored at first sight and revised with its final usage (the same id):
    the window's usage and the estimate count it once, at its final size."""
    from dataclasses import replace

    from tokentop.core.limits.usage import WindowUsage

    pricer = Pricer()
    now = DAY0 + 3 * H
    first = _event(1, now - 60, 20_000, 15_000, 0)  # 5k quota tokens at first sight
    final = replace(first, output_tokens=2_000)  # 7k once the response is complete
    usage = WindowUsage(ledger, clock=lambda: now)
    usage.want([("claude-code", now - H)])
    usage.resync_now(now)
    usage.on_accepted([(first, pricer.price(first))])
    usage.on_accepted([(final, pricer.price(final))])
    tally = usage.get("claude-code", now - H)
    assert tally is not None and tally.total == 7_000 and tally.sessions == {"s1": 7_000}
    # the same after a re-read of the ledger, which holds the revised record only
    ledger.append([(final, pricer.price(final))])
    usage.tallies[("claude-code", round(now - H))].loaded_at = 0.0
    usage.resync_now(now)
    assert usage.get("claude-code", now - H).total == 7_000  # type: ignore[union-attr]

    est = Estimator(ledger, ["claude-code"])
    est.rescan_now(now)  # the revised record is in the block once
    assert est.agents["claude-code"].blocks[-1].tokens == 7_000
    second = _event(2, now - 30, 10_000, 9_000, 0)
    est.on_accepted([(second, pricer.price(second))], now)
    est.on_accepted([(replace(second, output_tokens=500), pricer.price(second))], now)
    assert est.agents["claude-code"].blocks[-1].tokens == 7_000 + 1_500
