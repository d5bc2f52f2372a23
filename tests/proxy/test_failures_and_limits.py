"""Upstream failures answered in the client's protocol's error shape, and every limit at its edge."""

from __future__ import annotations

import json

import socket
import threading
import time

import anthropic
import httpx
import openai
import pytest
from tests.proxy.helpers import TOKEN

from tokentop.core.proxy.meters import BodyMeter, ChatStream, ResponsesStream


def free_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def test_unreachable_upstream_is_a_502_in_each_protocols_shape(make_proxy) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    proxy = make_proxy(upstreams={"openai": dead, "anthropic": dead})
    with pytest.raises(openai.InternalServerError) as oi:
        openai.OpenAI(base_url=proxy.url + "/v1", api_key="k", max_retries=0).chat.completions.create(model="gpt-5", messages=[])
    assert oi.value.status_code == 502
    assert oi.value.body["code"] == "upstream_unreachable"
    assert f"cannot reach upstream 'openai' ({dead})" in oi.value.message
    with pytest.raises(anthropic.APIStatusError) as ai:
        anthropic.Anthropic(base_url=proxy.url, api_key="k", max_retries=0).messages.create(
            model="claude-sonnet-4-5", max_tokens=5, messages=[{"role": "user", "content": "x"}])
    assert ai.value.status_code == 502
    assert ai.value.body["type"] == "error" and ai.value.body["error"]["type"] == "api_error"
    events = proxy.events(2)
    assert all(e.status == "error" and e.tokens == 0 for e in events)
    assert {e.model for e in events} == {"gpt-5", "claude-sonnet-4-5"}


def test_silent_upstream_is_a_504_naming_the_setting(make_proxy) -> None:
    proxy = make_proxy(read_timeout_s=0.3)
    r = httpx.post(proxy.url + "/v1/messages", json={"model": "m", "max_tokens": 1, "messages": []},
                   headers={"x-fake": "hang", "x-fake-delay": "3", "anthropic-version": "2023-06-01"}, timeout=5)
    assert r.status_code == 504
    assert r.json()["error"]["type"] == "timeout_error"
    assert "read_timeout_s" in r.json()["error"]["message"]
    [e] = proxy.events(1)
    assert e.status == "error"


def test_upstream_silent_mid_stream_breaks_off_the_client(make_proxy) -> None:
    proxy = make_proxy(read_timeout_s=0.3)
    body = {"model": "m", "max_tokens": 1, "stream": True, "messages": []}
    with pytest.raises(httpx.RemoteProtocolError):
        with httpx.stream("POST", proxy.url + "/v1/messages", json=body,
                          headers={"x-fake-chunk-delay": "1", "anthropic-version": "2023-06-01"}, timeout=5) as r:
            for _ in r.iter_raw():
                pass
    [e] = proxy.events(1)
    assert e.status == "error" and e.input_tokens > 0


def _hold(url: str, headers: dict, started: threading.Event) -> threading.Thread:
    def run() -> None:
        started.set()
        httpx.post(url, json={"model": "gpt-5", "messages": []}, headers=headers, timeout=10)

    t = threading.Thread(target=run, daemon=True)
    t.start()
    started.wait(5)
    return t


def wait_inflight(proxy, n: int) -> None:
    deadline = time.monotonic() + 10
    while proxy.part.app.inflight < n:
        assert time.monotonic() < deadline, f"never {n} requests in flight"
        time.sleep(0.01)


def test_all_upstream_connections_busy_is_a_503_after_pool_timeout(make_proxy) -> None:
    proxy = make_proxy(max_upstream_connections=1, pool_timeout_s=0.2)
    holder = _hold(proxy.url + "/v1/chat/completions", {"x-fake": "hang", "x-fake-delay": "1.5"}, threading.Event())
    wait_inflight(proxy, 1)
    time.sleep(0.1)  # its upstream connection is taken
    r = httpx.post(proxy.url + "/v1/chat/completions", json={"model": "gpt-5", "messages": []}, timeout=5)
    assert r.status_code == 503 and r.json()["error"]["code"] == "proxy_overloaded"
    assert "max_upstream_connections" in r.json()["error"]["message"]
    holder.join(5)
    # one connection again free: the next request passes
    assert httpx.post(proxy.url + "/v1/chat/completions", json={"model": "gpt-5", "messages": []}).status_code == 200


@pytest.mark.parametrize("limit", [1, 2])
def test_max_inflight_at_its_edge(make_proxy, limit) -> None:
    proxy = make_proxy(max_inflight=limit)
    holders = [_hold(proxy.url + "/v1/chat/completions", {"x-fake": "hang", "x-fake-delay": "1.5"}, threading.Event())
               for _ in range(limit - 1)]
    wait_inflight(proxy, limit - 1)
    with httpx.Client(timeout=5) as c:
        # the limit-th request in flight is served ...
        slow = threading.Thread(target=lambda: c.post(proxy.url + "/v1/chat/completions", json={"model": "gpt-5", "messages": []},
                                                      headers={"x-fake": "hang", "x-fake-delay": "1.5"}), daemon=True)
        slow.start()
        wait_inflight(proxy, limit)
        # ... one more is refused
        r = httpx.post(proxy.url + "/v1/chat/completions", json={"model": "gpt-5", "messages": []}, timeout=5)
        assert r.status_code == 503 and "max_inflight = " + str(limit) in r.json()["error"]["message"]
        slow.join(5)
    for h in holders:
        h.join(5)
    assert proxy.part.app.counters.busy == 1


def test_unknown_upstream_name_is_a_404_listing_the_known_ones(proxy) -> None:
    r = httpx.post(proxy.url + "/nope/v1/chat/completions", json={})
    assert r.status_code == 404
    assert "no upstream named 'nope'" in r.json()["error"]["message"]
    assert "anthropic, compat, openai" in r.json()["error"]["message"]


@pytest.mark.parametrize("chunked", [False, True])
def test_max_request_bytes_at_its_edge(make_proxy, upstream, chunked) -> None:
    proxy = make_proxy(max_request_bytes=1000)

    def body(size: int) -> bytes:
        head = b'{"model":"gpt-5","messages":[],"pad":"'
        return head + b"x" * (size - len(head) - 2) + b'"}'

    def send(raw: bytes) -> httpx.Response:
        content = iter([raw[:500], raw[500:]]) if chunked else raw
        return httpx.post(proxy.url + "/v1/chat/completions", content=content, headers={"content-type": "application/json"})

    ok = send(body(1000))
    assert ok.status_code == 200 and len(upstream.api.last().body) == 1000
    over = send(body(1001))
    assert over.status_code == 413
    assert over.json()["error"]["code"] == "request_too_large" and "max_request_bytes" in over.json()["error"]["message"]
    assert proxy.part.app.counters.too_large == 1
    r = httpx.post(proxy.url + "/v1/messages", content=body(1001), headers={"anthropic-version": "2023-06-01"})
    assert r.status_code == 413 and r.json()["error"]["type"] == "request_too_large"


def test_body_meter_parses_whole_up_to_the_limit_and_the_tail_beyond(upstream) -> None:
    body = b'{"object":"list","data":[{"embedding":[0.1]}],"model":"text-embedding-3-small","usage":{"prompt_tokens":8,"total_tokens":8}}'
    at = BodyMeter("embeddings", len(body))
    at.feed(body[:40])
    at.feed(body[40:])
    assert at._parts is not None
    at.finish()
    over = BodyMeter("embeddings", len(body) - 1)
    over.feed(body[:40])
    over.feed(body[40:])
    assert over._parts is None  # kept head and tail only
    over.finish()
    for m in (at, over):
        assert m.usage is not None and m.usage.input_tokens == 8 and m.model == "text-embedding-3-small"


def test_big_non_streaming_answer_passes_intact_and_is_metered_from_its_tail(make_proxy) -> None:
    proxy = make_proxy(max_parse_bytes=10_000)
    client = openai.OpenAI(base_url=proxy.url + "/v1", api_key="k", max_retries=0)
    r = client.embeddings.with_raw_response.create(model="text-embedding-3-small", input="x", encoding_format="float",
                                                   extra_headers={"x-fake": "big", "x-fake-size": "200000"})
    assert len(r.content) >= 200_000 and r.parse().usage.prompt_tokens == 8
    [e] = proxy.events(1)
    assert (e.input_tokens, e.model, e.status) == (8, "text-embedding-3-small", "ok")


def test_oversize_sse_event_passes_intact_and_usage_is_read_from_its_tail(make_proxy) -> None:
    proxy = make_proxy(max_parse_bytes=10_000)
    client = openai.OpenAI(base_url=proxy.url + "/v1", api_key="k", max_retries=0)
    instructions = "be brief. " * 3000  # echoed in response.created and response.completed: 30 kB events
    with client.responses.stream(model="gpt-5", input="hi", instructions=instructions) as stream:
        final = stream.get_final_response()
    assert final.instructions == instructions
    [e] = proxy.events(1)
    assert (e.input_tokens, e.output_tokens, e.model, e.status) == (2200, 410, "gpt-5-2025-08-07", "ok")


def test_sse_event_at_the_limit_is_held_whole_and_one_byte_more_is_not() -> None:
    data = b'{"type":"response.completed","response":{"model":"m","usage":{"input_tokens":5,"output_tokens":1}}}'
    event = b"event: response.completed\ndata: " + data
    at = ResponsesStream(len(event))
    at.feed(event)
    assert at.stream.oversize_events == 0
    at.feed(b"\n\n")
    over = ResponsesStream(len(event) - 1)
    over.feed(event)
    assert over.stream.oversize_events == 1
    over.feed(b"\n\n")
    for m in (at, over):
        assert m.complete and m.usage is not None and m.usage.input_tokens == 5 and m.model == "m"


def test_an_oversize_responses_event_keeps_the_answered_model_after_long_instructions() -> None:
    # The response object names its model after `instructions`: a long system prompt pushed it out of
    # the event's head, and the request's alias was recorded instead, whenever the event arrived in
    # more than one read (under load, the end-to-end test above failed that way now and then).
    response = {"id": "resp_1", "instructions": "be brief. " * 3000, "max_output_tokens": None,
                "model": "gpt-5-2025-08-07", "usage": {"input_tokens": 7, "output_tokens": 3}}
    for kind in ("response.created", "response.completed"):
        data = json.dumps({"type": kind, "response": response}).encode()
        event = b"event: " + kind.encode() + b"\ndata: " + data + b"\n\n"
        meter = ResponsesStream(10_000)
        for i in range(0, len(event), 4096):  # read by read, as a loaded socket delivers it
            meter.feed(event[i:i + 4096])
        assert meter.stream.oversize_events == 1
        assert meter.model == "gpt-5-2025-08-07"


def test_oversize_chunk_in_a_rewritten_chat_stream_is_passed_not_held() -> None:
    meter = ChatStream(100, strip=True)
    big = b'data: {"choices":[{"delta":{"content":"' + b"y" * 300 + b'"}}],"usage":null}\n\n'
    out = meter.feed(big[:150]) + meter.feed(big[150:])
    assert out == big  # too big to rewrite: passed through as it came
    usage_chunk = b'data: {"choices":[],"usage":{"prompt_tokens":3,"completion_tokens":4}}\n\n'
    assert meter.feed(usage_chunk + b"data: [DONE]\n\n") == b"data: [DONE]\n\n"
    assert meter.usage is not None and meter.usage.output_tokens == 4


def test_queue_max_drops_and_counts_when_the_feed_does_not_take_events(make_proxy) -> None:
    class DownSink:
        async def __call__(self, events) -> None:
            raise ConnectionError("feed down")

    proxy = make_proxy(sink=DownSink(), queue_max=2)
    for _ in range(3):
        assert httpx.post(proxy.url + "/v1/chat/completions", json={"model": "gpt-5", "messages": []}).status_code == 200
    deadline = time.monotonic() + 5
    while True:  # the pump gathers for 100 ms before its first (failing) delivery
        status = httpx.get(proxy.url + "/_tokentop/status", headers={"x-tokentop-token": TOKEN}).json()
        if status["events"]["failures"] or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert status["events"]["dropped"] == 1
    assert status["events"]["queued"] == 2
    assert "feed down" in status["events"]["last_error"]
