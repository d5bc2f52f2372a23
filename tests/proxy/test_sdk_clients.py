"""The real ``openai`` and ``anthropic`` SDKs through the proxy: text arrives intact, and the event
in the feed carries exactly the usage the upstream reported, in the contract's semantics."""

from __future__ import annotations

import anthropic
import httpx
import openai
import pytest
from tests.proxy.fake_upstream import (
    ANTHROPIC_FINAL_OUTPUT, ANTHROPIC_MODEL, ANTHROPIC_START_USAGE, EMBEDDING_MODEL, OPENAI_MODEL, OPENAI_USAGE,
    RESPONSES_USAGE, TEXT,
)

OPENAI_KEY = "sk-proj-TESTKEY-openai-0123456789abcdef"
ANTHROPIC_KEY = "sk-ant-api03-TESTKEY-anthropic-0123456789abcdef"

# Claude's worked example: input = 3 uncached + 2849 written (1 h) + 9493 read
CLAUDE_INPUT = 3 + 2849 + 9493


def oa(proxy, **kw) -> openai.OpenAI:
    return openai.OpenAI(base_url=proxy.url + "/v1", api_key=OPENAI_KEY, max_retries=0, **kw)


def an(proxy, **kw) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=proxy.url, api_key=ANTHROPIC_KEY, max_retries=0, **kw)


def assert_openai_usage(e) -> None:
    assert (e.input_tokens, e.cache_read_tokens, e.output_tokens, e.reasoning_tokens) == (1200, 1000, 300, 120)
    assert e.cache_write_tokens == 0


def assert_claude_usage(e) -> None:
    assert e.input_tokens == CLAUDE_INPUT
    assert e.cache_read_tokens == ANTHROPIC_START_USAGE["cache_read_input_tokens"]
    assert e.cache_write_tokens == 2849 and e.cache_write_1h_tokens == 2849
    assert e.output_tokens == ANTHROPIC_FINAL_OUTPUT


def test_anthropic_messages_non_streaming(proxy, upstream) -> None:
    msg = an(proxy).messages.create(model="claude-sonnet-4-5", max_tokens=100, messages=[{"role": "user", "content": "hi"}])
    assert msg.content[0].text == TEXT
    [e] = proxy.events(1)
    assert e.id == f"claude:{msg._request_id}" and msg._request_id.startswith("req_011C")
    assert (e.agent, e.provider, e.model, e.status, e.source) == ("anthropic-python", "anthropic", ANTHROPIC_MODEL, "ok", "proxy")
    assert_claude_usage(e)
    assert e.latency_ms is not None and e.latency_ms > 0
    assert e.session and e.session.startswith("conn-127.0.0.1:")


def test_anthropic_messages_streaming(proxy, upstream) -> None:
    client = an(proxy)
    with client.messages.stream(model="claude-sonnet-4-5", max_tokens=100, messages=[{"role": "user", "content": "hi"}]) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text == TEXT
    assert final.usage.output_tokens == ANTHROPIC_FINAL_OUTPUT
    [e] = proxy.events(1)
    assert_claude_usage(e)
    assert e.status == "ok" and e.model == ANTHROPIC_MODEL
    assert e.id.startswith("claude:req_011C")
    # the proxy asked for an answer it can read, and sent nothing of its own upstream
    seen = upstream.api.last("/v1/messages")
    assert seen.headers["accept-encoding"] == "identity"
    assert seen.headers["authorization"] == f"Bearer {ANTHROPIC_KEY}"  # passed through untouched


def test_openai_chat_non_streaming(proxy, upstream) -> None:
    r = oa(proxy).chat.completions.with_raw_response.create(model="gpt-5", messages=[{"role": "user", "content": "hi"}])
    completion = r.parse()
    assert completion.choices[0].message.content == TEXT
    [e] = proxy.events(1)
    assert e.id == f"openai:{r.headers['x-request-id']}"
    assert (e.agent, e.provider, e.model, e.status) == ("openai-python", "openai", OPENAI_MODEL, "ok")
    assert_openai_usage(e)
    assert upstream.api.last().headers["authorization"] == f"Bearer {OPENAI_KEY}"


def test_openai_chat_stream_without_include_usage_is_metered_and_client_sees_what_it_asked(proxy, upstream) -> None:
    chunks = list(oa(proxy).chat.completions.create(model="gpt-5", messages=[{"role": "user", "content": "hi"}], stream=True))
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == TEXT
    assert all(c.choices for c in chunks), "the usage chunk (empty choices) was not stripped"
    assert all(c.usage is None for c in chunks)
    sent = upstream.api.last("/v1/chat/completions").json()
    assert sent["stream_options"] == {"include_usage": True}
    [e] = proxy.events(1)
    assert_openai_usage(e)
    assert e.model == OPENAI_MODEL and e.status == "ok"


def test_openai_chat_stream_raw_bytes_carry_no_usage_at_all(proxy, upstream) -> None:
    body = {"model": "gpt-5", "messages": [{"role": "user", "content": "hi"}], "stream": True}
    with httpx.stream("POST", proxy.url + "/v1/chat/completions", json=body, headers={"authorization": "Bearer x"}) as r:
        raw = b"".join(r.iter_raw())
    assert b'"usage"' not in raw
    assert raw.rstrip().endswith(b"data: [DONE]")
    assert raw.count(b"\n\n") == len(TEXT.split(" ")) + 3  # role chunk, words, finish chunk, [DONE]
    [e] = proxy.events(1)
    assert e.output_tokens == OPENAI_USAGE["completion_tokens"]


def test_openai_chat_stream_with_include_usage_passes_through_unchanged(proxy, upstream) -> None:
    chunks = list(oa(proxy).chat.completions.create(
        model="gpt-5", messages=[{"role": "user", "content": "hi"}], stream=True, stream_options={"include_usage": True},
    ))
    assert chunks[-1].choices == [] and chunks[-1].usage.prompt_tokens == 1200
    [e] = proxy.events(1)
    assert_openai_usage(e)


def test_openai_stream_options_without_include_usage_is_merged(proxy, upstream) -> None:
    body = {"model": "gpt-5", "messages": [], "stream": True, "stream_options": {"include_obfuscation": False}}
    with httpx.stream("POST", proxy.url + "/v1/chat/completions", json=body) as r:
        raw = b"".join(r.iter_raw())
    assert b'"usage"' not in raw
    assert upstream.api.last().json()["stream_options"] == {"include_obfuscation": False, "include_usage": True}
    proxy.events(1)


def test_openai_responses_non_streaming_and_streaming(proxy, upstream) -> None:
    client = oa(proxy)
    r = client.responses.create(model="gpt-5", input="hi")
    assert r.output_text == TEXT
    with client.responses.stream(model="gpt-5", input="hi") as stream:
        text = "".join(ev.delta for ev in stream if ev.type == "response.output_text.delta")
        final = stream.get_final_response()
    assert text == TEXT and final.usage.input_tokens == RESPONSES_USAGE["input_tokens"]
    events = proxy.events(2)
    for e in events:
        assert (e.input_tokens, e.cache_read_tokens, e.output_tokens, e.reasoning_tokens) == (2200, 2000, 410, 256)
        assert e.model == OPENAI_MODEL and e.status == "ok"
    assert "stream_options" not in upstream.api.last("/v1/responses").json()


def test_openai_embeddings(proxy, upstream) -> None:
    r = oa(proxy).embeddings.create(model="text-embedding-3-small", input=["a", "b"], encoding_format="float")
    assert len(r.data) == 2
    [e] = proxy.events(1)
    assert (e.model, e.input_tokens, e.output_tokens) == (EMBEDDING_MODEL, 8, 0)


def test_legacy_completions_streaming(proxy, upstream) -> None:
    chunks = list(oa(proxy).completions.create(model="gpt-3.5-turbo-instruct", prompt="hi", stream=True))
    assert "".join(c.choices[0].text for c in chunks) == TEXT
    [e] = proxy.events(1)
    assert (e.input_tokens, e.output_tokens, e.model) == (5, 7, "gpt-3.5-turbo-instruct")


@pytest.mark.parametrize("status,exc", [(400, openai.BadRequestError), (401, openai.AuthenticationError),
                                        (429, openai.RateLimitError), (500, openai.InternalServerError)])
def test_openai_upstream_errors_pass_through_and_are_metered_as_errors(proxy, upstream, status, exc) -> None:
    with pytest.raises(exc) as info:
        oa(proxy).chat.completions.create(model="gpt-5", messages=[], extra_headers={"x-fake": f"error-{status}"})
    assert info.value.status_code == status
    assert "tokentop" not in str(info.value)  # the upstream's own message, untouched
    [e] = proxy.events(1)
    assert e.status == "error" and e.tokens == 0
    assert e.id == f"openai:{info.value.response.headers['x-request-id']}"
    assert e.model == "gpt-5"  # no answer model: the one asked for


@pytest.mark.parametrize("status,exc", [(400, anthropic.BadRequestError), (401, anthropic.AuthenticationError),
                                        (429, anthropic.RateLimitError), (500, anthropic.InternalServerError),
                                        (529, anthropic.APIStatusError)])
def test_anthropic_upstream_errors_pass_through(proxy, upstream, status, exc) -> None:
    with pytest.raises(exc) as info:
        an(proxy).messages.create(model="claude-sonnet-4-5", max_tokens=10, messages=[{"role": "user", "content": "x"}],
                                  extra_headers={"x-fake": f"error-{status}"})
    assert info.value.status_code == status
    [e] = proxy.events(1)
    assert e.status == "error" and e.id.startswith("claude:req_011C")


def test_anthropic_streaming_error_answer_is_json_not_sse(proxy, upstream) -> None:
    with pytest.raises(anthropic.RateLimitError):
        with an(proxy).messages.stream(model="claude-sonnet-4-5", max_tokens=10, messages=[{"role": "user", "content": "x"}],
                                       extra_headers={"x-fake": "error-429"}) as stream:
            list(stream.text_stream)
    [e] = proxy.events(1)
    assert e.status == "error"


def test_upstream_cookies_are_not_carried_from_one_client_to_another(proxy, upstream) -> None:
    """A CDN cookie set on one agent's answer must not ride along on another agent's request."""
    from tests.proxy import fake_upstream

    original = fake_upstream.Handler.base_headers

    def with_cookie(self, ctype):
        return original(self, ctype) + [(b"set-cookie", b"__cf_bm=agent-one-cookie; Path=/; HttpOnly")]

    fake_upstream.Handler.base_headers = with_cookie
    try:
        first = httpx.post(proxy.url + "/v1/chat/completions", json={"model": "gpt-5", "messages": []})
    finally:
        fake_upstream.Handler.base_headers = original
    assert "agent-one-cookie" in first.headers["set-cookie"]  # passed back to its own client
    httpx.post(proxy.url + "/v1/chat/completions", json={"model": "gpt-5", "messages": []})
    assert "cookie" not in upstream.api.last().headers
    proxy.events(2)


def test_hop_by_hop_and_own_headers_are_not_forwarded(proxy, upstream) -> None:
    r = httpx.post(proxy.url + "/v1/chat/completions", json={"model": "gpt-5", "messages": []},
                   headers={"connection": "keep-alive, x-private-hop", "x-private-hop": "1", "te": "trailers",
                            "x-tokentop-agent": "bot", "x-tokentop-session": "s", "x-tokentop-project": "p",
                            "proxy-authorization": "Basic abc", "openai-organization": "org-1", "accept-encoding": "br"})
    sent = upstream.api.last().headers
    for name in ("x-private-hop", "te", "x-tokentop-agent", "x-tokentop-session", "x-tokentop-project", "proxy-authorization"):
        assert name not in sent, name
    assert sent["openai-organization"] == "org-1" and sent["accept-encoding"] == "identity"
    assert "keep-alive" not in r.headers  # the upstream's hop-by-hop "keep-alive: timeout=30" stayed behind
    assert r.headers["x-fake-upstream"] == "1" and r.headers["x-request-id"].startswith("req_")
    # the upstream's own server and date headers, once: the proxy adds none of its own
    assert r.headers.get_list("server") == ["uvicorn"] and len(r.headers.get_list("date")) == 1
    [e] = proxy.events(1)
    assert (e.agent, e.session, e.project) == ("bot", "s", "p")


def test_passthrough_routes_stream_both_ways_untouched(proxy, upstream) -> None:
    r = httpx.get(proxy.url + "/v1/models", headers={"accept-encoding": "gzip"})
    assert r.status_code == 200 and r.json()["data"][0]["id"] == OPENAI_MODEL
    assert upstream.api.last().headers["accept-encoding"] == "gzip"  # not metered: the client's own choice
    big = b"x" * 300_000
    r = httpx.post(proxy.url + "/v1/files", content=iter([big[:100_000], big[100_000:]]))
    assert r.status_code == 400 and upstream.api.last().body == big  # the fake reads it as JSON and says so
    counters = proxy.part.app.counters
    assert counters.passthrough == 2 and counters.metered == 0
