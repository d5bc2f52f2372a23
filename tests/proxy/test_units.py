"""Routing, identity, usage mapping and the SSE splitter, without servers."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tokentop.core.proxy.identity import agent_from_user_agent, claude_session, identify
from tokentop.core.proxy.meters import AnthropicStream, ChatStream
from tokentop.core.proxy.routes import UnknownUpstream, resolve
from tokentop.core.proxy.settings import BUILTIN_UPSTREAMS, ProxySettings
from tokentop.core.proxy.sse import SSEStream, find_json_value
from tokentop.core.proxy.usage import anthropic_usage, openai_usage

UP = {**BUILTIN_UPSTREAMS, "openrouter": "https://openrouter.ai/api", "zai": "https://api.z.ai/api/anthropic"}


@pytest.mark.parametrize("method,path,anth,upstream,url,protocol", [
    ("POST", "/v1/chat/completions", False, "openai", "https://api.openai.com/v1/chat/completions", "chat"),
    ("POST", "/v1/responses", False, "openai", "https://api.openai.com/v1/responses", "responses"),
    ("POST", "/v1/embeddings", False, "openai", "https://api.openai.com/v1/embeddings", "embeddings"),
    ("POST", "/v1/completions", False, "openai", "https://api.openai.com/v1/completions", "completions"),
    ("GET", "/v1/models", False, "openai", "https://api.openai.com/v1/models", "passthrough"),
    ("GET", "/v1/models", True, "anthropic", "https://api.anthropic.com/v1/models", "passthrough"),
    ("POST", "/v1/threads/t1/messages", False, "openai", "https://api.openai.com/v1/threads/t1/messages", "passthrough"),
    ("POST", "/v1/messages", False, "anthropic", "https://api.anthropic.com/v1/messages", "messages"),
    ("POST", "/v1/messages/count_tokens", True, "anthropic", "https://api.anthropic.com/v1/messages/count_tokens", "count_tokens"),
    ("POST", "/v1/messages/batches", True, "anthropic", "https://api.anthropic.com/v1/messages/batches", "passthrough"),
    ("POST", "/openrouter/v1/chat/completions", False, "openrouter", "https://openrouter.ai/api/v1/chat/completions", "chat"),
    ("POST", "/zai/v1/messages", True, "zai", "https://api.z.ai/api/anthropic/v1/messages", "messages"),
    ("POST", "/anthropic/v1/messages", False, "anthropic", "https://api.anthropic.com/v1/messages", "messages"),
    ("POST", "/api/event_logging/batch", True, "anthropic", "https://api.anthropic.com/api/event_logging/batch", "passthrough"),
])
def test_routes(method, path, anth, upstream, url, protocol) -> None:
    route = resolve(method, path, path, "", UP, anth)
    assert (route.upstream, route.url, route.protocol) == (upstream, url, protocol)
    assert route.family == ("anthropic" if upstream in ("anthropic", "zai") else "openai")


def test_query_string_and_raw_path_are_forwarded_as_sent() -> None:
    route = resolve("POST", "/v1/messages", "/v1/messages", "beta=true", UP, True)
    assert route.url == "https://api.anthropic.com/v1/messages?beta=true"
    route = resolve("GET", "/openrouter/v1/files/a b", "/openrouter/v1/files/a%20b", "", UP, False)
    assert route.url == "https://openrouter.ai/api/v1/files/a%20b"


def test_unknown_upstream() -> None:
    with pytest.raises(UnknownUpstream, match="no upstream named 'x'"):
        resolve("POST", "/x/v1/chat/completions", "/x/v1/chat/completions", "", UP, False)


@pytest.mark.parametrize("ua,agent", [
    ("claude-cli/2.1.3 (external, cli)", "claude-code"),
    ("codex_cli_rs/0.38.0 (Ubuntu 24.04.2 LTS; x86_64) WindowsTerminal", "codex"),
    ("codex_exec/0.50.0", "codex"),
    ("OpenAI/Python 3.63.0", "openai-python"),
    ("OpenAI/JS 6.1.0", "openai-node"),
    ("Anthropic/Python 2.17.0", "anthropic-python"),
    ("opencode/1.0.3 ai-sdk/provider-utils/3.0", "opencode"),
    ("litellm/1.77.0", "litellm"),
    ("Mozilla/5.0", None),
    ("", None),
])
def test_agent_from_user_agent(ua, agent) -> None:
    assert agent_from_user_agent(ua) == agent


def test_identity_precedence() -> None:
    body = {"metadata": {"user_id": "user_abc123_account_a929b7ef-d758_session_34832e57-9b65-4df6-9604-60b9fc786bcb"}}
    h = {b"user-agent": b"claude-cli/2.1.3 (external, cli)"}
    assert identify(h, body, "anthropic", ("127.0.0.1", 5555)) == ("claude-code", "34832e57-9b65-4df6-9604-60b9fc786bcb", None)
    h2 = {**h, b"x-tokentop-agent": b"reviewer", b"x-tokentop-session": b"run-7", b"x-tokentop-project": b"web"}
    assert identify(h2, body, "anthropic", ("127.0.0.1", 5555)) == ("reviewer", "run-7", "web")
    assert identify({b"session_id": b"019e1a2b-codex"}, None, "openai", ("127.0.0.1", 1)) == ("openai", "019e1a2b-codex", None)
    assert identify({}, None, "openrouter", ("127.0.0.1", 5555)) == ("openrouter", "conn-127.0.0.1:5555", None)
    assert claude_session({"metadata": {"user_id": json.dumps({"device_id": "d", "session_id": "s-json"})}}) == "s-json"
    assert claude_session({"metadata": {"user_id": "plain-user"}}) is None
    # control characters and over-long values never reach an event
    agent, _, _ = identify({b"x-tokentop-agent": b"a\x00b" + b"c" * 600}, None, "openai", None)
    assert agent.startswith("abc") and len(agent) == 512


def test_anthropic_usage_semantics() -> None:
    u = anthropic_usage({"input_tokens": 3, "cache_creation_input_tokens": 1200, "cache_read_input_tokens": 45000, "output_tokens": 850})
    assert u is not None and u.fields() == {"input_tokens": 46203, "output_tokens": 850, "cache_read_tokens": 45000,
                                            "cache_write_tokens": 1200, "cache_write_1h_tokens": 0, "reasoning_tokens": 0}
    # only the 5m/1h split given
    u = anthropic_usage({"input_tokens": 1, "cache_creation": {"ephemeral_5m_input_tokens": 10, "ephemeral_1h_input_tokens": 5}})
    assert u is not None and (u.input_tokens, u.cache_write_tokens, u.cache_write_1h_tokens) == (16, 15, 5)
    assert anthropic_usage(None) is None
    assert anthropic_usage({"input_tokens": -5, "output_tokens": "x"}).fields()["input_tokens"] == 0  # type: ignore[union-attr]


def test_openai_usage_semantics() -> None:
    u = openai_usage({"prompt_tokens": 10000, "completion_tokens": 2000, "prompt_tokens_details": {"cached_tokens": 8000},
                      "completion_tokens_details": {"reasoning_tokens": 1500}})
    assert u is not None and u.fields() == {"input_tokens": 10000, "output_tokens": 2000, "cache_read_tokens": 8000,
                                            "cache_write_tokens": 0, "cache_write_1h_tokens": 0, "reasoning_tokens": 1500}
    r = openai_usage({"input_tokens": 5, "output_tokens": 2, "input_tokens_details": {"cached_tokens": 9},
                      "output_tokens_details": {"reasoning_tokens": 7}})
    assert r is not None and r.fields()["cache_read_tokens"] == 5 and r.fields()["reasoning_tokens"] == 2  # clamped to wholes


def test_anthropic_stream_message_delta_with_cumulative_input_fields() -> None:
    m = AnthropicStream(1 << 20)
    m.feed(b'event: message_start\ndata: {"type":"message_start","message":{"model":"claude-x","usage":{"input_tokens":10,"output_tokens":1}}}\n\n')
    m.feed(b'event: message_delta\ndata: {"type":"message_delta","usage":{"input_tokens":10,"cache_read_input_tokens":100,"output_tokens":40}}\n\n')
    m.feed(b'event: message_stop\ndata: {"type":"message_stop"}\n\n')
    assert m.complete and m.model == "claude-x"
    assert m.usage is not None and (m.usage.input_tokens, m.usage.cache_read_tokens, m.usage.output_tokens) == (110, 100, 40)


def test_streams_without_event_lines_are_recognised_by_their_type() -> None:
    m = AnthropicStream(1 << 20)
    m.feed(b'data: {"type":"message_start","message":{"model":"c","usage":{"input_tokens":2,"output_tokens":1}}}\n\n')
    m.feed(b'data: {"type":"message_delta","usage":{"output_tokens":9}}\n\ndata: {"type":"message_stop"}\n\n')
    assert m.complete and m.usage is not None and m.usage.output_tokens == 9


def test_mid_stream_error_records_are_errors() -> None:
    a = AnthropicStream(1 << 20)
    a.feed(b'event: error\ndata: {"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}\n\n')
    c = ChatStream(1 << 20)
    c.feed(b'data: {"error":{"message":"boom","type":"server_error"}}\n\n')
    assert a.error and c.error


def test_find_json_value_ignores_keys_inside_strings() -> None:
    data = b'{"text":"he said \\"usage\\": {\\"x\\":1}","usage":{"prompt_tokens":3}}'
    assert find_json_value(data, "usage") == {"prompt_tokens": 3}
    assert find_json_value(b'..."usage": {"a": 1', "usage") is None  # cut off: not a value


STREAM = (
    b"event: message_start\r\ndata: {\"type\":\"message_start\",\"message\":{\"model\":\"m\",\"usage\":{\"input_tokens\":7,\"output_tokens\":1}}}\r\n\r\n"
    b": keep-alive comment\n\n"
    b"event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"delta\":{\"text\":\"a\\n\\nb\"}}\n\n"
    b"event: message_delta\rdata: {\"type\":\"message_delta\",\"usage\":{\"output_tokens\":12}}\r\r"
    b"event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n"
)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.integers(min_value=1, max_value=len(STREAM) - 1), max_size=40))
def test_any_chunking_gives_the_same_events_and_passes_bytes_unchanged(cuts) -> None:
    m = AnthropicStream(1 << 20)
    bounds = [0, *sorted(set(cuts)), len(STREAM)]
    out = b"".join(m.feed(STREAM[a:b]) for a, b in zip(bounds, bounds[1:])) + m.finish()
    assert out == STREAM
    assert m.complete and m.model == "m" and m.usage is not None
    assert (m.usage.input_tokens, m.usage.output_tokens) == (7, 12)


CHAT_STREAM = b"".join(
    b"data: " + json.dumps(c, separators=(",", ":")).encode() + b"\n\n"
    for c in [
        {"id": "c", "model": "gpt-5", "choices": [{"index": 0, "delta": {"content": "x"}}], "usage": None},
        {"id": "c", "model": "gpt-5", "choices": [{"index": 0, "delta": {"content": "\"usage\":null"}}], "usage": None},
        {"id": "c", "model": "gpt-5", "choices": [], "usage": {"prompt_tokens": 4, "completion_tokens": 2}},
    ]
) + b"data: [DONE]\n\n"


@settings(max_examples=300, deadline=None)
@given(st.lists(st.integers(min_value=1, max_value=len(CHAT_STREAM) - 1), max_size=30))
def test_stripping_the_usage_chunk_is_independent_of_chunking(cuts) -> None:
    m = ChatStream(1 << 20, strip=True)
    bounds = [0, *sorted(set(cuts)), len(CHAT_STREAM)]
    out = b"".join(m.feed(CHAT_STREAM[a:b]) for a, b in zip(bounds, bounds[1:])) + m.finish()
    chunks = [json.loads(line[6:]) for line in out.split(b"\n\n") if line.startswith(b"data: {")]
    assert [c["choices"][0]["delta"]["content"] for c in chunks] == ["x", "\"usage\":null"]
    assert all("usage" not in c for c in chunks)
    assert out.endswith(b"data: [DONE]\n\n")
    assert m.usage is not None and m.usage.input_tokens == 4 and m.complete


def test_sse_stream_holds_only_the_event_still_arriving() -> None:
    got = []
    s = SSEStream(lambda n, d: got.append(d), lambda n, h, t: None, 1 << 20, rewrite=lambda n, d, raw: raw)
    assert s.feed(b"data: 1\n\ndata: 2") == b"data: 1\n\n"
    assert s.feed(b"\n") == b""
    assert s.feed(b"\ndata: 3\n\n") == b"data: 2\n\ndata: 3\n\n"
    assert got == [b"1", b"2", b"3"]


def test_settings_validation() -> None:
    s = ProxySettings(upstreams={"openrouter": "https://openrouter.ai/api/"})
    assert s.upstreams == {**BUILTIN_UPSTREAMS, "openrouter": "https://openrouter.ai/api"}
    assert ProxySettings(upstreams={"openai": "http://127.0.0.1:9"}).upstreams["openai"] == "http://127.0.0.1:9"
    with pytest.raises(ValueError, match="reserved"):
        ProxySettings(upstreams={"v1": "https://x"})
    with pytest.raises(ValueError, match="must be a string starting with http"):
        ProxySettings(upstreams={"x": "ftp://x"})
    with pytest.raises(ValueError, match="HOST:PORT"):
        ProxySettings(listen="7413")
    assert ProxySettings().is_loopback and not ProxySettings(listen="0.0.0.0:7413").is_loopback


def test_env_proxy_selection() -> None:
    from tokentop.core.proxy.upstream import env_proxy_for

    env = {"HTTPS_PROXY": "http://corp:3128", "no_proxy": "internal.example,.corp.lan"}
    assert env_proxy_for("https://api.openai.com", env) == "http://corp:3128"
    assert env_proxy_for("http://api.openai.com", env) is None  # only HTTPS_PROXY set
    assert env_proxy_for("https://internal.example/v1", env) is None
    assert env_proxy_for("https://llm.corp.lan", env) is None
    assert env_proxy_for("http://127.0.0.1:8000", {"ALL_PROXY": "http://p:1"}) is None  # loopback never
    assert env_proxy_for("http://localhost:8000", {"ALL_PROXY": "http://p:1"}) is None
    assert env_proxy_for("https://x.ai", {"all_proxy": "socks5://p:1080", "NO_PROXY": "*"}) is None
