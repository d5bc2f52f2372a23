"""Streams pass through as they come; broken, cancelled and compressed streams are metered as
what they were."""

from __future__ import annotations

import gzip
import json
import time

import anthropic
import httpx
import openai
import pytest
from tests.proxy.fake_upstream import ANTHROPIC_START_USAGE, OPENAI_USAGE, TEXT

CLAUDE_INPUT = 3 + 2849 + 9493
MESSAGES = {"model": "claude-sonnet-4-5", "max_tokens": 50, "stream": True, "messages": [{"role": "user", "content": "hi"}]}
CHAT = {"model": "gpt-5", "stream": True, "messages": [{"role": "user", "content": "hi"}]}
AN_HEADERS = {"x-api-key": "k", "anthropic-version": "2023-06-01"}


def test_first_byte_reaches_the_client_before_the_upstream_finished(proxy, upstream) -> None:
    headers = {**AN_HEADERS, "x-fake-first-delay": "0.4", "x-fake-chunk-delay": "0.05"}
    asked_at = time.time()
    with httpx.Client(timeout=10) as client:
        with client.stream("POST", proxy.url + "/v1/messages", json=MESSAGES, headers=headers) as r:
            chunks = r.iter_raw()
            first = next(chunks)
            got_first = time.monotonic()
            rest = b"".join(chunks)
    seen = upstream.api.last("/v1/messages")
    assert first.startswith(b"event: message_start")
    # the fake notes its end once its last send returned, which can be after the client read it all
    deadline = time.monotonic() + 5
    while seen.finished_at is None and time.monotonic() < deadline:
        time.sleep(0.01)
    assert seen.first_sent_at is not None and seen.finished_at is not None
    assert got_first < seen.finished_at, "the client got its first chunk only after the upstream finished"
    assert got_first - seen.first_sent_at < 0.25, "the first chunk was held back"
    assert b"message_stop" in rest
    [e] = proxy.events(1)
    assert e.status == "ok" and e.latency_ms >= 400
    assert e.ts >= asked_at + e.latency_ms / 1000 - 0.05  # stamped when the answer ended


def test_every_event_is_forwarded_as_it_arrives(proxy, upstream) -> None:
    """With gaps between upstream events, the client sees them one by one, not in a burst."""
    headers = {**AN_HEADERS, "x-fake-chunk-delay": "0.05"}
    arrivals = []
    with httpx.stream("POST", proxy.url + "/v1/messages", json=MESSAGES, headers=headers, timeout=10) as r:
        for chunk in r.iter_raw():
            arrivals.append((time.monotonic(), chunk))
    assert len(arrivals) >= 10
    assert arrivals[-1][0] - arrivals[1][0] > 0.3


def test_upstream_breaking_off_mid_stream_breaks_off_the_client_and_meters_partial_usage(proxy, upstream) -> None:
    headers = {**AN_HEADERS, "x-fake": "drop", "x-fake-drop-after": "5"}
    received = b""
    with pytest.raises(httpx.RemoteProtocolError):
        with httpx.stream("POST", proxy.url + "/v1/messages", json=MESSAGES, headers=headers, timeout=10) as r:
            for chunk in r.iter_raw():
                received += chunk
    assert b"message_start" in received and b"message_stop" not in received
    [e] = proxy.events(1)
    assert e.status == "error"
    assert e.input_tokens == CLAUDE_INPUT and e.output_tokens == ANTHROPIC_START_USAGE["output_tokens"]
    assert proxy.part.app.counters.aborted == 1


def test_sdk_sees_a_broken_stream_as_an_error(proxy, upstream) -> None:
    client = anthropic.Anthropic(base_url=proxy.url, api_key="k", max_retries=0)
    with pytest.raises(anthropic.APIError):
        with client.messages.stream(model="claude-sonnet-4-5", max_tokens=50, messages=[{"role": "user", "content": "hi"}],
                                    extra_headers={"x-fake": "drop", "x-fake-drop-after": "6"}) as stream:
            for _ in stream.text_stream:
                pass
    [e] = proxy.events(1)
    assert e.status == "error"


def test_client_cancelling_a_stream_closes_the_upstream_and_meters_what_was_seen(proxy, upstream) -> None:
    headers = {**AN_HEADERS, "x-fake-chunk-delay": "0.1"}
    with httpx.stream("POST", proxy.url + "/v1/messages", json=MESSAGES, headers=headers, timeout=10) as r:
        first = next(r.iter_raw())
    assert b"message_start" in first
    seen = upstream.api.last("/v1/messages")
    deadline = time.monotonic() + 3
    while seen.stream_state is None and time.monotonic() < deadline:
        time.sleep(0.02)
    assert seen.stream_state == "client-gone", "the proxy kept reading from the upstream after its client left"
    [e] = proxy.events(1)
    assert e.status == "error" and e.input_tokens == CLAUDE_INPUT
    assert proxy.part.app.counters.cancelled == 1


def test_client_cancelling_an_openai_stream_records_an_error_without_invented_tokens(proxy, upstream) -> None:
    with httpx.stream("POST", proxy.url + "/v1/chat/completions", json=CHAT, headers={"x-fake-chunk-delay": "0.1"}, timeout=10) as r:
        next(r.iter_raw())
    [e] = proxy.events(1)
    assert e.status == "error" and e.tokens == 0 and e.model == "gpt-5-2025-08-07"


def test_client_leaving_while_the_upstream_thinks_is_recorded_at_once(proxy, upstream) -> None:
    body = {**CHAT, "stream": False}
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(proxy.url + "/v1/chat/completions", json=body, headers={"x-fake": "hang", "x-fake-delay": "5"}, timeout=0.3)
    [e] = proxy.events(1, timeout=3)
    assert e.status == "error" and e.latency_ms < 2000


def test_gzip_answer_is_passed_compressed_and_still_metered(proxy, upstream) -> None:
    r = httpx.post(proxy.url + "/v1/chat/completions", json={**CHAT, "stream": False}, headers={"x-fake": "gzip"})
    assert r.headers["content-encoding"] == "gzip"
    assert r.json()["choices"][0]["message"]["content"] == TEXT  # httpx decoded the gzip the proxy passed on
    [e] = proxy.events(1)
    assert e.input_tokens == OPENAI_USAGE["prompt_tokens"] and e.status == "ok"


def test_gzip_stream_that_the_proxy_rewrites_reaches_the_client_decoded(proxy, upstream) -> None:
    with httpx.stream("POST", proxy.url + "/v1/chat/completions", json=CHAT, headers={"x-fake": "gzip"}) as r:
        assert "content-encoding" not in r.headers
        raw = b"".join(r.iter_raw())
    assert b'"usage"' not in raw and raw.rstrip().endswith(b"data: [DONE]")
    text = "".join(json.loads(line[6:])["choices"][0]["delta"].get("content", "")
                   for line in raw.split(b"\n") if line.startswith(b"data: {"))
    assert text == TEXT
    [e] = proxy.events(1)
    assert e.output_tokens == OPENAI_USAGE["completion_tokens"]


def test_gzip_stream_passed_as_is_is_metered_from_a_decoded_copy(proxy, upstream) -> None:
    body = {**CHAT, "stream_options": {"include_usage": True}}
    with httpx.stream("POST", proxy.url + "/v1/chat/completions", json=body, headers={"x-fake": "gzip"}) as r:
        assert r.headers["content-encoding"] == "gzip"
        raw = b"".join(r.iter_raw())
    assert b'"prompt_tokens":1200' in gzip.decompress(raw)
    [e] = proxy.events(1)
    assert e.input_tokens == 1200


def test_openai_sdk_streams_through_a_named_openai_compatible_upstream(proxy, upstream) -> None:
    client = openai.OpenAI(base_url=proxy.url + "/compat/v1", api_key="k", max_retries=0)
    chunks = list(client.chat.completions.create(model="some/model", messages=[{"role": "user", "content": "x"}], stream=True))
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == TEXT
    assert upstream.api.last().path == "/api/v1/chat/completions"
    [e] = proxy.events(1)
    assert e.provider == "compat" and e.agent == "openai-python" and e.id.startswith("compat:req_")
    assert e.input_tokens == 1200
