"""Hostile input at the feed's doors, over real HTTP/WebSocket: deeply nested JSON and DNS rebinding."""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest
import websockets

DEEP = 50_000


def deep_arrays(n: int = DEEP) -> str:
    return "[" * n + "]" * n


def deep_objects(n: int = DEEP) -> str:
    return '{"a":' * n + "1" + "}" * n


def event(i: str) -> str:
    return json.dumps({"id": i, "agent": "x", "model": "gpt-5", "input_tokens": 100})


@pytest.mark.parametrize("deep", [deep_arrays, deep_objects], ids=["arrays", "objects"])
def test_deeply_nested_event_body_is_a_400_naming_the_problem(feed, deep) -> None:
    r = httpx.post(f"{feed.address}/v1/events", content=deep())
    assert r.status_code == 400
    (error,) = r.json()["errors"]
    assert "nested too deeply" in error["error"]
    assert httpx.get(f"{feed.address}/healthz").status_code == 200


@pytest.mark.parametrize("deep", [deep_arrays, deep_objects], ids=["arrays", "objects"])
def test_a_deeply_nested_ndjson_line_keeps_its_neighbours(feed, deep) -> None:
    body = "\n".join([event("n1"), deep(), event("n2"), event("n3")])
    r = httpx.post(f"{feed.address}/v1/events", content=body)
    assert r.status_code == 202
    data = r.json()
    assert (data["accepted"], data["rejected"]) == (3, 1)
    assert data["errors"][0]["line"] == 2 and "nested too deeply" in data["errors"][0]["error"]
    assert feed.snapshot().totals.requests_today == 3


@pytest.mark.parametrize("depth", [900, 1020, 5000])
@pytest.mark.parametrize("field", ["model", "input_tokens", "cost_usd", "unknown_field"])
def test_a_deeply_nested_value_inside_an_event_is_rejected_not_a_crash(feed, field, depth) -> None:
    """Parsers accept some depth; the value must still be refused cleanly (its error message must
    not try to print it whole) and the other events of the body kept."""
    body = '{"id": "v1", "agent": "x", "%s": %s}' % (field, deep_arrays(depth))
    r = httpx.post(f"{feed.address}/v1/events", content="\n".join([event("v0"), body, event("v2")]))
    assert r.status_code == 202, r.text
    data = r.json()
    assert data["accepted"] + data["rejected"] == 3 and data["accepted"] >= 2
    if data["rejected"]:
        assert data["errors"][0]["line"] == 2 and len(data["errors"][0]["error"]) < 300


async def test_deeply_nested_frames_on_the_publish_socket_are_answered(feed) -> None:
    url = feed.address.replace("http://", "ws://") + "/v1/publish"
    async with websockets.connect(url, max_size=None) as ws:
        for frame in (deep_arrays(), deep_objects(), '{"type": "hello", "x": ' + deep_arrays() + "}"):
            await ws.send(frame)
            answer = json.loads(await asyncio.wait_for(ws.recv(), 10))
            assert answer["type"] in ("ack", "error")
            assert "nested too deeply" in json.dumps(answer)
        await ws.send("\n".join([event("w1"), deep_arrays(), event("w2")]))
        ack = json.loads(await asyncio.wait_for(ws.recv(), 10))
        assert (ack["accepted"], ack["rejected"]) == (2, 1)


@pytest.mark.parametrize("signal", ["logs", "metrics", "traces"])
@pytest.mark.parametrize("deep", [deep_arrays, deep_objects], ids=["arrays", "objects"])
def test_deeply_nested_otlp_json_is_a_400(feed, signal, deep) -> None:
    r = httpx.post(f"{feed.address}/v1/{signal}", content=deep(), headers={"content-type": "application/json"})
    assert r.status_code == 400
    assert "nested too deeply" in r.json()["message"]
    # inside an otherwise valid export: an attribute value nested past the limit
    body = ('{"resourceLogs": [{"resource": {"attributes": [{"key": "k", "value": {"arrayValue": {"values": '
            + deep_arrays() + "}}}]}}]}")
    r = httpx.post(f"{feed.address}/v1/{signal}", content=body, headers={"content-type": "application/json"})
    assert r.status_code == 400


def test_deeply_nested_control_body_is_a_400(feed) -> None:
    headers = {"authorization": f"Bearer {feed.token}"}
    r = httpx.post(f"{feed.address}/v1/sessions/s1/process", content=deep_arrays(2000), headers=headers)
    assert r.status_code == 400 and "nested too deeply" in r.json()["error"]
