"""An event dated a little ahead of the feed's clock (accepted within max_future_s) must not break
the snapshot: it counts now."""

from __future__ import annotations

from tests.core.test_aggregate import NOW, ev, agg_with


def test_an_event_from_a_few_seconds_ahead_counts_now_and_the_snapshot_builds() -> None:
    agg = agg_with(ev(1, ts=NOW - 1), ev(2, ts=NOW + 25))
    snap = agg.snapshot(NOW)
    assert snap.totals.requests_today == 2
    assert snap.totals.requests_per_s > 0
