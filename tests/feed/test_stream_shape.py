"""Narrowing WS /v1/stream (?views=, ?series=compact) over a real feed, the compact series form
round-tripping through Snapshot.from_json, and the live view's RemoteFeed asking for it."""

from __future__ import annotations

import asyncio
import json
import time
from decimal import Decimal

import httpx
import pytest
import websockets
from hypothesis import given
from hypothesis import strategies as st

from tokentop.core.feed.stream import DEFAULT_SHAPE, StreamShape, StreamShapeError
from tokentop.core.snapshot import DIMENSIONS, SERIES_S, RowReuse, Snapshot, compact_series, read_series
from tokentop.ui.feeds import RemoteFeed, live_view_shape

UUSD = 1e-6  # the documented precision of a compact series value


def post(feed, events: list[dict]) -> None:  # noqa: ANN001
    body = "\n".join(json.dumps(e) for e in events)
    r = httpx.post(f"{feed.address}/v1/events", content=body, headers={"content-type": "application/x-ndjson"})
    assert r.status_code == 202, r.text


SPEND = [
    {"id": "e1", "agent": "alpha", "session": "s-alpha", "model": "gpt-4o", "provider": "openai",
     "input_tokens": 5000, "output_tokens": 500, "pid": 4242},
    # a request too cheap to reach one micro-dollar: its second must still show spend
    {"id": "e2", "agent": "tiny", "session": "s-tiny", "model": "gpt-4o-mini", "provider": "openai",
     "input_tokens": 1, "output_tokens": 0},
]


def stream_url(feed, query: str = "") -> str:  # noqa: ANN001
    return feed.address.replace("http://", "ws://") + "/v1/stream" + query


async def frames(url: str, count: int) -> list[dict]:
    out = []
    async with websockets.connect(url, max_size=None) as ws:
        for _ in range(count):
            out.append(json.loads(await asyncio.wait_for(ws.recv(), 5)))
    return out


async def test_narrowed_stream_sends_only_the_asked_views_with_compact_series(feed) -> None:  # noqa: ANN001
    await asyncio.to_thread(post, feed, SPEND)
    full, = await frames(stream_url(feed), 1)
    narrow, = await frames(stream_url(feed, "?views=sessions,agents&series=compact"), 1)

    # the default stream is the documented v1 snapshot, unchanged
    assert set(DIMENSIONS) <= full.keys() and "views" not in full and "series" not in full
    alpha_full = next(r for r in full["agents"] if r["name"] == "alpha")
    assert isinstance(alpha_full["burn_series"], list) and len(alpha_full["burn_series"]) == SERIES_S

    assert narrow["views"] == ["agents", "sessions"] and narrow["series"] == "compact"
    assert not {"models", "projects", "providers", "hosts"} & narrow.keys()
    alpha = next(r for r in narrow["agents"] if r["name"] == "alpha")
    series = alpha["burn_series"]
    assert series["n"] == SERIES_S and all(isinstance(v, int) for v in series["uusd"])
    assert series["start"] + len(series["uusd"]) <= SERIES_S
    assert sum(series["uusd"]) == pytest.approx(sum(alpha_full["burn_series"]) / UUSD, abs=len(series["uusd"]))
    tiny = next(r for r in narrow["sessions"] if r["id"] == "s-tiny")
    assert sum(tiny["burn_series"]["uusd"]) >= 1  # spend below 1 µUSD still shows as spend
    assert narrow["totals"]["burn_series"]["n"] == SERIES_S
    assert narrow["totals"]["usd_today"] == full["totals"]["usd_today"]  # every other figure as before

    snap = Snapshot.from_json(narrow)
    assert [r.key for r in snap.agents] == [r["name"] for r in full["agents"]]
    assert snap.models == () and snap.find("sessions", "s-alpha").pid == 4242


@pytest.mark.parametrize("query, named", [("?views=agents,bogus", "'bogus'"), ("?views=", "no view"),
                                          ("?series=tiny", "'tiny'")])
async def test_a_bad_stream_query_is_refused_with_a_reason(feed, query: str, named: str) -> None:  # noqa: ANN001
    async with websockets.connect(stream_url(feed, query)) as ws:
        with pytest.raises(websockets.exceptions.ConnectionClosed) as info:
            await asyncio.wait_for(ws.recv(), 5)
    assert info.value.rcvd.code == 4400
    assert named in info.value.rcvd.reason
    assert feed.app.hub.subscribers == 0


async def test_each_tick_is_serialised_once_per_shape_not_per_subscriber(feed) -> None:  # noqa: ANN001
    await asyncio.to_thread(post, feed, SPEND)
    compact = "?" + live_view_shape().query()
    urls = [stream_url(feed), stream_url(feed), stream_url(feed, compact), stream_url(feed, compact)]
    got = await asyncio.gather(*(frames(u, 3) for u in urls))
    assert all(len(f) == 3 for f in got)
    frame = feed.app.hub.latest
    assert frame is not None
    assert sorted(frame.shapes, key=str) == sorted([DEFAULT_SHAPE, live_view_shape()], key=str)


def test_stream_shape_query_round_trips_and_rejects_unknowns() -> None:
    shape = StreamShape.from_query({"views": "sessions, agents", "series": "compact"})
    assert shape == StreamShape(("agents", "sessions"), "compact")
    assert StreamShape.from_query(dict(x.split("=") for x in shape.query().split("&"))) == shape
    assert StreamShape.from_query({}) == DEFAULT_SHAPE and DEFAULT_SHAPE.query() == ""
    with pytest.raises(StreamShapeError, match="views: unknown view 'nope'"):
        StreamShape.from_query({"views": "agents,nope"})


@given(st.lists(st.one_of(st.just(0.0), st.floats(0, 500, allow_nan=False)), min_size=SERIES_S, max_size=SERIES_S))
def test_compact_series_round_trips_within_a_micro_dollar(values: list[float]) -> None:
    back = read_series(json.loads(json.dumps(compact_series(values))))
    assert len(back) == len(values)
    for before, after in zip(values, back):
        assert abs(before - after) <= UUSD * 1.0000001
        assert (before > 0) == (after > 0)  # quiet stays quiet, spend stays visible


def test_compact_form_round_trips_through_snapshot_from_json(feed) -> None:  # noqa: ANN001
    post(feed, SPEND)
    snap = feed.snapshot()
    again = Snapshot.from_json(json.loads(json.dumps(snap.to_json(series="compact"))))
    for view in DIMENSIONS:
        assert [r.key for r in again.view(view)] == [r.key for r in snap.view(view)]
        for a, b in zip(snap.view(view), again.view(view)):
            assert len(a.burn_series) == len(b.burn_series)
            assert all(abs(x - y) <= UUSD for x, y in zip(a.burn_series, b.burn_series))
            # every other figure exactly as the full form has it (money to 6 decimals, as documented)
            assert (a.usd_today.quantize(Decimal("0.000001")), round(a.usd_per_hour, 6), a.pid, a.state) == \
                (b.usd_today, b.usd_per_hour, b.pid, b.state)
    assert all(abs(x - y) <= UUSD for x, y in zip(snap.totals.burn_series, again.totals.burn_series))
    with pytest.raises(ValueError, match="does not fit"):
        read_series({"n": 3, "start": 2, "uusd": [1, 2]})


def test_row_reuse_keeps_unchanged_rows_and_rebuilds_changed_ones(feed) -> None:  # noqa: ANN001
    post(feed, SPEND)
    first = json.loads(json.dumps(feed.snapshot().to_json(series="compact")))
    second = json.loads(json.dumps(first))
    second["agents"][0]["usd_per_hour"] += 1.0
    reuse = RowReuse()
    a = Snapshot.from_json(first, reuse)
    b = Snapshot.from_json(second, reuse)
    assert b.agents[0] is not a.agents[0] and b.agents[0].usd_per_hour == a.agents[0].usd_per_hour + 1.0
    assert b.agents[1] is a.agents[1] and b.sessions[0] is a.sessions[0]


async def test_remote_source_asks_for_the_live_views_in_compact_form(feed) -> None:  # noqa: ANN001
    await asyncio.to_thread(post, feed, SPEND)
    source = RemoteFeed(feed.address, retry_s=0.1)
    await source.start()
    try:
        deadline = time.monotonic() + 10
        while source.received < 2:
            assert time.monotonic() < deadline, "no snapshot from the feed"
            await asyncio.sleep(0.05)
    finally:
        await source.stop()
    assert source.shape == live_view_shape()
    from tokentop.ui.views import TABLE_VIEWS

    # what the live view's table views show, plus sessions (the kill flow); nothing else
    assert set(source.shape.views or ()) == {spec.dim for spec in TABLE_VIEWS.values()} | {"sessions"}
    assert "providers" not in (source.shape.views or ())
    assert live_view_shape() in feed.app.hub.latest.shapes  # the feed really served the compact form
    snap = source.latest()
    local = feed.snapshot()
    assert snap is not None and snap.providers == ()  # not asked for, not sent
    alpha, alpha_local = snap.find("agents", "alpha"), local.find("agents", "alpha")
    assert alpha.usd_today == alpha_local.usd_today
    assert sum(alpha.burn_series) == pytest.approx(sum(alpha_local.burn_series), abs=SERIES_S * UUSD)
    assert snap.find("sessions", "s-alpha").pid == 4242  # the kill flow's facts are there
