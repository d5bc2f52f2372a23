"""The feed over real HTTP/WebSocket on loopback."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import httpx
import pytest
import websockets

from tokentop import config as config_mod
from tokentop.core.feed.runner import FeedRunner
from tokentop.core.snapshot import Snapshot

ROW_FIELDS = {
    "requests_per_s", "tokens_per_s", "input_tokens_per_s", "output_tokens_per_s", "usd_per_hour",
    "requests_today", "tokens_today", "usd_today", "unpriced_requests_today",
}


def post(feed, body, **headers) -> httpx.Response:
    if isinstance(body, (dict, list)):
        body = json.dumps(body)
    return httpx.post(f"{feed.address}/v1/events", content=body, headers=headers)


def test_ndjson_with_a_bad_line_in_the_middle_keeps_its_neighbours(feed) -> None:
    body = "\n".join([
        json.dumps({"id": "a", "agent": "x", "model": "gpt-5", "input_tokens": 100}),
        "{not json",
        json.dumps({"id": "b", "agent": "x", "output_tokens": -3}),
        json.dumps({"id": "c", "agent": "y", "model": "gpt-5", "output_tokens": 10}),
    ])
    r = post(feed, body, **{"content-type": "application/x-ndjson"})
    assert r.status_code == 202
    data = r.json()
    assert (data["accepted"], data["duplicates"], data["rejected"]) == (2, 0, 2)
    assert data["errors"][0]["line"] == 2 and "not valid JSON" in data["errors"][0]["error"]
    assert data["errors"][1] == {"line": 3, "error": "output_tokens: must be a non-negative integer, got -3"}
    snap = feed.snapshot()
    assert snap.totals.requests_today == 2
    assert {r.key for r in snap.agents} == {"x", "y"}


def test_single_object_and_array_bodies(feed) -> None:
    assert post(feed, {"id": "one", "input_tokens": 1}).json()["accepted"] == 1
    r = post(feed, [{"id": "two"}, {"id": "three"}, {"id": "one"}])
    assert r.json() == {"accepted": 2, "revised": 0, "duplicates": 1, "rejected": 0, "errors": []}


def test_duplicate_ids_count_once(feed) -> None:
    ev = {"id": "dup", "agent": "a", "model": "gpt-5", "input_tokens": 1_000_000}
    assert post(feed, ev).json()["accepted"] == 1
    assert post(feed, ev).json() == {"accepted": 0, "revised": 0, "duplicates": 1, "rejected": 0, "errors": []}
    snap = feed.snapshot()
    assert snap.totals.requests_today == 1
    assert float(snap.totals.usd_today) == pytest.approx(1.25)


def test_nothing_parses_is_400(feed) -> None:
    r = post(feed, "garbage\nmore garbage")
    assert r.status_code == 400 and r.json()["rejected"] == 2
    r = post(feed, "")
    assert r.status_code == 400 and "empty body" in r.json()["errors"][0]["error"]


def test_body_over_the_limit_is_413(feed) -> None:
    big = json.dumps({"id": "x", "agent": "a" * 100}) + "\n"
    body = big * (1024 * 1024 // len(big) + 10)
    assert post(feed, body).status_code == 413
    # chunked upload without Content-Length is cut off too
    def gen():
        for _ in range(20):
            yield b"x" * 100_000

    r = httpx.post(f"{feed.address}/v1/events", content=gen())
    assert r.status_code == 413
    assert feed.snapshot().totals.requests_today == 0


def test_any_origin_header_is_403(feed) -> None:
    r = post(feed, {"id": "o"}, Origin="http://localhost:3000")
    assert r.status_code == 403
    assert httpx.get(f"{feed.address}/v1/snapshot", headers={"Origin": "null"}).status_code == 403
    assert feed.snapshot().totals.requests_today == 0


def test_snapshot_json_shape(feed) -> None:
    post(feed, {"id": "s", "agent": "a", "session": "s1", "project": "p", "model": "gpt-5", "pid": 4242,
                "input_tokens": 100, "output_tokens": 10})
    data = httpx.get(f"{feed.address}/v1/snapshot").json()
    assert data["v"] == 1 and isinstance(data["generated_at"], float)
    assert {"requests_per_s", "tokens_per_s", "input_tokens_per_s", "output_tokens_per_s", "usd_per_hour",
            "requests_today", "tokens_today", "usd_today", "unpriced_requests_today",
            "active_sessions"} <= set(data["totals"])
    for view in ("agents", "models", "sessions", "projects"):
        assert len(data[view]) == 1
        assert ROW_FIELDS <= set(data[view][0])
    assert data["agents"][0]["name"] == "a"
    session = data["sessions"][0]
    assert {k: session[k] for k in ("id", "agent", "model", "pid", "host", "state")} == {
        "id": "s1", "agent": "a", "model": "gpt-5", "pid": 4242, "host": "test-host", "state": "active"}
    assert Snapshot.from_json(data).sessions[0].pid == 4242


def test_healthz_and_recent_requests(feed) -> None:
    assert httpx.get(f"{feed.address}/healthz").json()["service"] == "tokentop"
    post(feed, [{"id": f"r{i}", "agent": "a" if i % 2 else "b", "model": "gpt-5", "input_tokens": i} for i in range(6)])
    r = httpx.get(f"{feed.address}/v1/requests", params={"view": "agents", "key": "a", "limit": 2}).json()
    assert [x["id"] for x in r["requests"]] == ["r5", "r3"]
    assert r["requests"][0]["cost_kind"] == "estimated"
    assert httpx.get(f"{feed.address}/v1/requests", params={"view": "nope"}).status_code == 400


async def test_ws_stream_sends_a_snapshot_then_updates(feed) -> None:
    url = feed.address.replace("http://", "ws://") + "/v1/stream"
    async with websockets.connect(url) as ws:
        first = json.loads(await asyncio.wait_for(ws.recv(), 5))
        assert first["totals"]["requests_today"] == 0
        await asyncio.to_thread(post, feed, {"id": "w1", "agent": "a"})
        deadline = time.monotonic() + 5
        while True:
            frame = json.loads(await asyncio.wait_for(ws.recv(), 5))
            if frame["totals"]["requests_today"] == 1:
                break
            assert time.monotonic() < deadline


async def test_ws_publish_acknowledges_batches(feed) -> None:
    url = feed.address.replace("http://", "ws://") + "/v1/publish"
    async with websockets.connect(url) as ws:
        await ws.send("\n".join(json.dumps({"id": f"p{i}", "agent": "ws"}) for i in range(100)))
        ack = json.loads(await ws.recv())
        assert ack == {"type": "ack", "seq": 1, "accepted": 100, "revised": 0, "duplicates": 0, "rejected": 0, "errors": []}
        await ws.send(json.dumps([{"id": "p1"}, {"id": "bad", "pid": -1}]))
        ack = json.loads(await ws.recv())
        assert (ack["seq"], ack["duplicates"], ack["rejected"]) == (2, 1, 1)
    assert feed.snapshot().totals.requests_today == 100


def test_ws_with_origin_is_refused(feed) -> None:
    url = feed.address.replace("http://", "ws://") + "/v1/publish"

    async def go() -> None:
        async with websockets.connect(url, origin="http://evil.example"):
            pass

    with pytest.raises(websockets.exceptions.InvalidStatus) as info:
        asyncio.run(go())
    assert info.value.response.status_code == 403


def test_restart_keeps_todays_totals(tmp_path: Path) -> None:
    cfg = config_mod.from_mapping({"ledger": {"path": str(tmp_path / "l.db")}})
    first = FeedRunner(cfg, listen="127.0.0.1:0").start_in_thread(require_listen=True)
    try:
        r = post(first, [{"id": f"k{i}", "agent": "a", "model": "claude-sonnet-4", "input_tokens": 100_000,
                          "output_tokens": 10_000} for i in range(25)])
        assert r.json()["accepted"] == 25
        before = first.snapshot()
    finally:
        first.stop()
    second = FeedRunner(cfg, listen="127.0.0.1:0").start_in_thread(require_listen=True)
    try:
        after = second.snapshot()
        assert after.totals.requests_today == 25
        assert after.totals.usd_today == before.totals.usd_today
        assert post(second, {"id": "k3", "agent": "a"}).json()["duplicates"] == 1  # ids survive the restart
    finally:
        second.stop()


def test_ingest_token_when_configured(tmp_path: Path) -> None:
    cfg = config_mod.from_mapping({"ledger": {"path": str(tmp_path / "l.db")}, "feed": {"ingest_requires_token": True}})
    runner = FeedRunner(cfg, listen="127.0.0.1:0").start_in_thread(require_listen=True)
    try:
        assert post(runner, {"id": "t"}).status_code == 401
        ok = post(runner, {"id": "t"}, Authorization=f"Bearer {runner.token}")
        assert ok.status_code == 202
        assert post(runner, {"id": "t2"}, Authorization="Bearer wrong").status_code == 401
    finally:
        runner.stop()


def test_unix_socket_is_private(tmp_path: Path) -> None:
    import os
    import stat

    sock = tmp_path / "feed.sock"
    cfg = config_mod.from_mapping({"ledger": {"path": str(tmp_path / "l.db")}})
    runner = FeedRunner(cfg, listen=f"unix:{sock}").start_in_thread(require_listen=True)
    try:
        assert stat.S_IMODE(os.stat(sock).st_mode) == 0o600
        from tokentop.core.feed.client import FeedClient

        with FeedClient(f"unix:{sock}") as client:
            assert client.healthy()
            assert client.post_events([{"id": "u", "agent": "a"}])["accepted"] == 1
            assert client.snapshot().totals.requests_today == 1
    finally:
        runner.stop()
    assert not sock.exists()


def test_token_file_is_private(feed) -> None:
    import os
    import stat

    mode = stat.S_IMODE(os.stat(feed.token_dir / "token").st_mode)
    assert mode == 0o600


def test_ndjson_line_holding_two_objects_is_rejected_not_split(feed) -> None:
    body = '{"id": "n1", "agent": "a"}\n{"id": "n2"},{"id": "n3"}\n{"id": "n4"}\n'
    data = post(feed, body).json()
    assert (data["accepted"], data["rejected"]) == (2, 1)
    assert data["errors"][0]["line"] == 2
    assert {r.key for r in feed.snapshot().agents} == {"a", "unknown"}


def test_listening_socket_disables_nagle() -> None:
    """Regression: without TCP_NODELAY (inherited by accepted sockets) every small round trip
    waited ~40 ms for a delayed ACK on loopback; measured in bench/core_bench.py lag."""
    import socket

    from tokentop.core.feed.runner import bind_socket

    sock = bind_socket("127.0.0.1:0")
    try:
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 1
        client = socket.create_connection(sock.getsockname())
        sock.setblocking(True)
        conn, _ = sock.accept()
        assert conn.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 1
        conn.close()
        client.close()
    finally:
        sock.close()
