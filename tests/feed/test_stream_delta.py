"""Delta frames on WS /v1/stream (``?delta=1``) over a real feed: a delta subscriber reads, frame
after frame, exactly the snapshots a v1 subscriber of the same tick reads, while the rows nothing
happened to are not sent again; v1 subscribers are unchanged."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from pathlib import Path
from typing import Iterator

import httpx
import orjson
import pytest
import websockets
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.limits.helpers import statusline_payload
from tokentop import config as config_mod
from tokentop.core.feed.runner import FeedRunner
from tokentop.core.feed.stream import DeltaGap, DeltaReader, StreamShape, columns
from tokentop.core.snapshot import DIMENSIONS, Snapshot
from tokentop.ui.feeds import live_view_shape


@pytest.fixture
def fast_feed(tmp_path: Path) -> Iterator[FeedRunner]:
    """A feed streaming 5 frames a second, at most 4 rows a view (so rows enter and leave the top)."""
    cfg = config_mod.from_mapping({"ledger": {"path": str(tmp_path / "feed.db")},
                                   "feed": {"stream_interval_s": 0.2, "max_stream_rows": 4}})
    runner = FeedRunner(cfg, listen="127.0.0.1:0", host_name="test-host")
    runner.start_in_thread(require_listen=True)
    try:
        yield runner
    finally:
        runner.stop()


def post(feed: FeedRunner, events: list[dict]) -> None:
    body = "\n".join(json.dumps(e) for e in events)
    r = httpx.post(f"{feed.address}/v1/events", content=body, headers={"content-type": "application/x-ndjson"})
    assert r.status_code == 202, r.text


def event(n: int, session: int, out: int = 100) -> dict:
    return {"id": f"d{n}", "agent": f"agent-{session % 3}", "session": f"s{session}", "model": "gpt-4o",
            "provider": "openai", "project": f"p{session % 2}", "input_tokens": 1000 + 37 * session,
            "output_tokens": out, "pid": 9000 + session}


def url(feed: FeedRunner, query: str) -> str:
    return feed.address.replace("http://", "ws://") + "/v1/stream" + ("?" + query if query else "")


async def collect(target: str, seconds: float) -> list[str]:
    out = []
    async with websockets.connect(target, max_size=None) as ws:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            try:
                out.append(await asyncio.wait_for(ws.recv(), max(0.05, deadline - time.monotonic())))
            except asyncio.TimeoutError:
                break
    return out


def traffic(feed: FeedRunner, stop: threading.Event) -> None:
    """A few busy sessions, some now and then (moving in and out of the top four); sessions 8 and
    9 spent a lot at the start and are quiet since (their rows only see their sparklines move)."""
    n = 0
    tick = 0
    while not stop.is_set():
        tick += 1
        batch = []
        for s in range(8):
            if s < 3 or (s + tick) % 5 == 0 or (s == 7 and tick > 6):
                n += 1
                batch.append(event(n, s, out=50 + 40 * ((s * tick) % 7)))
        post(feed, batch)
        stop.wait(0.15)


@pytest.mark.parametrize("series", ["compact", "full"])
async def test_delta_frames_read_as_the_v1_snapshots_of_the_same_ticks(fast_feed: FeedRunner, series: str) -> None:
    feed = fast_feed
    await asyncio.to_thread(post, feed, [event(0, s) for s in range(8)] + [event(-s, s, out=90_000) for s in (8, 9)])
    # subscription windows travel in every frame (v1 and delta alike)
    r = await asyncio.to_thread(httpx.post, f"{feed.address}/v1/limits/statusline", json=statusline_payload())
    assert r.status_code == 200, r.text
    views = "agents,sessions,models,projects,hosts"
    v1_query = f"views={views}" + ("&series=compact" if series == "compact" else "")
    stop = threading.Event()
    poster = threading.Thread(target=traffic, args=(feed, stop), daemon=True)
    poster.start()
    try:
        v1_texts, delta_texts = await asyncio.gather(collect(url(feed, v1_query), 4.0),
                                                     collect(url(feed, v1_query + "&delta=1"), 4.0))
    finally:
        stop.set()
        poster.join(5)
    v1 = [orjson.loads(t) for t in v1_texts]
    deltas = [orjson.loads(t) for t in delta_texts]
    assert all("frame" not in f and "seq" not in f for f in v1)  # a v1 subscriber sees no change
    assert deltas[0]["frame"] == "full" and deltas[0]["columns"]["sessions"] == list(columns("sessions"))
    assert all(f["frame"] == "delta" for f in deltas[1:]) and len(deltas) >= 8

    reader = DeltaReader()
    decoded = {}
    sent_rows = total_rows = shifted = tails = 0
    for frame in deltas:
        if frame["frame"] == "delta":  # a changed row's series: only what the reader does not have yet
            col = columns("sessions").index("burn_series")
            tails += sum(1 for values in frame["sessions"]["set"] if isinstance(values[col], dict) and "keep" in values[col])
        snap = reader.read(frame)
        shifted += reader.shifted
        decoded[frame["generated_at"]] = snap
        if frame["frame"] == "delta":
            sent_rows += sum(len(frame[v]["set"]) for v in frame["views"])
            total_rows += sum(len(snap.view(v)) for v in frame["views"])
    compared = 0
    for frame in v1[1:]:  # the first frames of both were built at connect, apart
        snap = decoded.get(frame["generated_at"])
        if snap is None:
            continue
        want = Snapshot.from_json(frame)
        for view in DIMENSIONS:
            assert snap.view(view) == want.view(view), view  # every row, in order: sparklines moved on too
        assert snap.totals == want.totals and dict(snap.status) == dict(want.status)
        assert snap.limits == want.limits and len(snap.limits) == 2
        assert snap.sessions  # rows were there to compare
        compared += 1
    assert compared >= 6
    assert 0 < sent_rows < total_rows  # rows that did not change were not sent again
    assert shifted  # and the reader moved their sparklines on itself
    assert tails  # and busy rows came with the end of their series only (read equal to v1 above)
    assert any("order" in f.get("sessions", {}) for f in deltas[1:])  # the top four changed
    assert any(f.get("sessions", {}).get("drop") for f in deltas[1:])  # a row left the top four


async def test_a_quiet_feed_sends_no_rows_and_subscribers_share_each_delta(fast_feed: FeedRunner) -> None:
    feed = fast_feed
    await asyncio.to_thread(post, feed, [event(0, s) for s in range(3)])
    query = live_view_shape().query()
    assert "delta=1" in query
    a, b = await asyncio.gather(collect(url(feed, query), 1.5), collect(url(feed, query), 1.5))
    later = [orjson.loads(t) for t in a[1:]]
    assert later and all(f["frame"] == "delta" for f in later)
    # nothing happened: no row is sent again (a second passing only moves the sparklines, which
    # the reader does itself), and the totals still come every frame
    assert all(not f[v]["set"] and "drop" not in f[v] for f in later for v in f["views"])
    assert all("totals" in f for f in later)
    assert len(a[-1]) < len(a[0]) / 2
    frame = feed.app.hub.latest
    assert frame is not None and len(frame._deltas) <= 2  # one text per (shape, previous frame), not per subscriber


async def test_an_unknown_delta_version_is_refused_with_a_reason(fast_feed: FeedRunner) -> None:
    async with websockets.connect(url(fast_feed, "delta=7")) as ws:
        with pytest.raises(websockets.exceptions.ConnectionClosed) as info:
            await asyncio.wait_for(ws.recv(), 5)
    assert info.value.rcvd.code == 4400 and "delta" in info.value.rcvd.reason and "'7'" in info.value.rcvd.reason


def test_delta_shape_query_round_trips() -> None:
    shape = StreamShape.from_query({"views": "sessions", "series": "compact", "delta": "1"})
    assert shape.delta == 1 and StreamShape.from_query(dict(x.split("=") for x in shape.query().split("&"))) == shape


def test_a_delta_frame_that_does_not_follow_is_refused() -> None:
    reader = DeltaReader()
    full = {"v": 1, "frame": "full", "seq": 5, "generated_at": 1000.0, "views": ["agents"],
            "columns": {"agents": list(columns("agents"))}, "agents": {"rows": []}, "totals": {}, "status": {}}
    reader.read(full)
    with pytest.raises(DeltaGap, match="follows frame 3"):
        reader.read({"v": 1, "frame": "delta", "seq": 7, "base": 3, "generated_at": 1001.0, "views": ["agents"],
                     "agents": {"set": []}, "totals": {}})
    # a feed older than delta frames sends whole snapshots: read as such
    snap = reader.read({"v": 1, "generated_at": 1002.0, "totals": {}, "agents": [], "status": {}})
    assert snap.agents == ()


def test_rows_decode_the_same_by_position_or_by_column_name(feed) -> None:  # noqa: ANN001
    """The reader's fast decoder (the columns this tokentop sends) and its by-name one (any other
    columns: a newer feed's, in another order, with more) read the same rows as a v1 reader."""
    post(feed, [event(1, 1), event(2, 2, out=70_000)])
    snap = feed.snapshot()
    from tokentop.core.feed.stream import _decoder, row_values

    for view in ("sessions", "agents"):
        cols = list(columns(view))
        shuffled = list(reversed(cols)) + ["a_future_column"]
        for row in snap.view(view):
            values = json.loads(json.dumps(row_values(row, view, "compact")))
            by_name = dict(zip(cols, values))
            v1_row = json.loads(json.dumps(row.to_json(view, "compact")))
            want = Snapshot.from_json({"v": 1, "generated_at": 0, view: [v1_row]}).view(view)[0]
            assert _decoder(view, cols)(values) == want
            assert _decoder(view, shuffled)([by_name[c] for c in reversed(cols)] + [42]) == want


@settings(max_examples=300, deadline=None)
@given(old=st.lists(st.sampled_from([0.0, 0.0, 0.0, 1e-7, 0.25, 3.5, 0.0000004]), min_size=1, max_size=12),
       data=st.data(), lag=st.integers(0, 14), form=st.sampled_from(["compact", "full"]))
def test_a_series_tail_rebuilds_exactly_what_a_whole_series_reads_as(old: list[float], data, lag: int,  # noqa: ANN001
                                                                      form: str) -> None:
    """Whatever changed (the newest seconds, an older second revised, nothing, everything) and
    however far the clock moved, the kept values plus the tail read as the whole series would."""
    from tokentop.core.feed.stream import _series_tail, _shifted, _wire_values
    from tokentop.core.snapshot import compact_series, read_series

    n = len(old)
    moved = list(_shifted(tuple(old), lag))
    edits = data.draw(st.lists(st.tuples(st.integers(0, n - 1), st.sampled_from([0.0, 2e-7, 0.5, 7.25])), max_size=4))
    for i, v in edits:
        moved[i] = v
    new = tuple(moved)

    def wire(series: tuple[float, ...]) -> object:
        return compact_series(series) if form == "compact" else [round(v, 9) for v in series]

    held = _shifted(read_series(wire(tuple(old))), lag)  # what a reader holds, moved on
    want = read_series(wire(new))
    tail = _series_tail(_wire_values(new, form), _wire_values(tuple(old), form), lag, form)
    if tail is None:
        return  # the whole series is sent
    assert 0 < tail["keep"] <= n
    assert held[: tail["keep"]] + read_series(tail["tail"]) == want
