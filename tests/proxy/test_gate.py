"""The gate: a blocked request gets the provider's own 429 with tokentop's message, reaches no
upstream, is recorded; lifting the block lets the next one through."""

from __future__ import annotations

import anthropic
import httpx
import openai
import pytest
from tests.proxy.helpers import TOKEN

from tokentop.core.proxy.gate import Block, BlockList, GateChain, GateRequest


def test_blocked_session_gets_openai_rate_limit_error_with_tokentop_message(proxy, upstream) -> None:
    client = openai.OpenAI(base_url=proxy.url + "/v1", api_key="k", max_retries=2,
                           default_headers={"X-Tokentop-Session": "s-42"})
    proxy.call(lambda: proxy.part.blocks.block("session", "s-42"))
    with pytest.raises(openai.RateLimitError) as info:
        client.chat.completions.create(model="gpt-5", messages=[{"role": "user", "content": "x"}])
    err = info.value
    assert err.status_code == 429
    assert err.body == {"message": err.body["message"], "type": "insufficient_quota", "param": None, "code": "insufficient_quota"}
    assert "tokentop stopped this request (rule block-list): session 's-42' is blocked" in err.message
    assert "tokentop proxy unblock --session s-42" in err.message
    assert err.response.headers["x-should-retry"] == "false"
    assert upstream.api.seen == [], "a blocked request reached the upstream (or the SDK retried it)"
    [e] = proxy.events(1)
    assert (e.status, e.tokens, e.session, e.model, e.agent) == ("error", 0, "s-42", "gpt-5", "openai-python")

    assert proxy.call(lambda: proxy.part.blocks.unblock("session", "s-42")) is True
    r = client.chat.completions.create(model="gpt-5", messages=[{"role": "user", "content": "x"}])
    assert r.usage.prompt_tokens == 1200
    assert len(proxy.events(2)) == 2


def test_blocked_agent_gets_anthropic_rate_limit_error(proxy, upstream) -> None:
    proxy.call(lambda: proxy.part.blocks.block("agent", "anthropic-python", rule="budget.daily",
                                               message="spend today $101.20 is over block_at $100",
                                               how_to_lift="raise [budget.daily] block_at, or wait for midnight"))
    client = anthropic.Anthropic(base_url=proxy.url, api_key="k", max_retries=2)
    with pytest.raises(anthropic.RateLimitError) as info:
        client.messages.create(model="claude-sonnet-4-5", max_tokens=5, messages=[{"role": "user", "content": "x"}])
    assert info.value.body == {"type": "error", "error": {"type": "rate_limit_error", "message": info.value.body["error"]["message"]}}
    message = info.value.body["error"]["message"]
    assert message == ("tokentop stopped this request (rule budget.daily): spend today $101.20 is over block_at $100. "
                       "To lift it: raise [budget.daily] block_at, or wait for midnight")
    assert upstream.api.seen == []
    # a streaming request is refused the same way (before any stream starts)
    with pytest.raises(anthropic.RateLimitError):
        with client.messages.stream(model="claude-sonnet-4-5", max_tokens=5, messages=[{"role": "user", "content": "x"}]) as s:
            list(s.text_stream)
    assert proxy.part.app.counters.blocked == 2
    assert proxy.part.blocks.refused == {"budget.daily": 2}


def test_passthrough_requests_are_not_gated(proxy, upstream) -> None:
    proxy.call(lambda: proxy.part.blocks.block("global"))
    assert httpx.get(proxy.url + "/v1/models").status_code == 200
    r = httpx.post(proxy.url + "/v1/messages/count_tokens", json={"model": "m", "messages": []},
                   headers={"anthropic-version": "2023-06-01"})
    assert r.json() == {"input_tokens": 42}
    assert httpx.post(proxy.url + "/v1/chat/completions", json={"model": "gpt-5", "messages": []}).status_code == 429


def test_block_list_scopes_expiry_and_bounds() -> None:
    now = [1000.0]
    blocks = BlockList(clock=lambda: now[0])
    req = GateRequest(agent="codex", session="s1", model="gpt-5", upstream="openai", project="web")
    assert blocks.check(req) is None
    for scope, key in (("session", "s1"), ("agent", "codex"), ("project", "web"), ("model", "gpt-5"), ("global", "")):
        blocks.block(scope, key)
        assert blocks.check(req) is not None, scope
        assert blocks.unblock(scope, key)
        assert blocks.check(req) is None
    blocks.block("session", "s1", until=1010.0)
    assert blocks.check(req) is not None
    now[0] = 1010.0
    assert blocks.check(req) is None and blocks.entries() == []
    with pytest.raises(ValueError, match="needs its name"):
        blocks.block("agent", "")
    with pytest.raises(ValueError, match="scope must be one of"):
        blocks.block("team", "x")  # type: ignore[arg-type]


def test_block_list_holds_at_most_max_blocks(monkeypatch) -> None:
    from tokentop.core.proxy import gate

    monkeypatch.setattr(gate, "MAX_BLOCKS", 2)
    blocks = BlockList()
    blocks.block("session", "a")
    blocks.block("session", "b")
    blocks.block("session", "b", message="again")  # replacing one is fine at the bound
    with pytest.raises(ValueError, match="at most 2 blocks"):
        blocks.block("session", "c")


def test_gate_chain_first_block_wins_and_a_failing_gate_is_skipped() -> None:
    class Broken:
        def check(self, request: GateRequest) -> Block | None:
            raise RuntimeError("bug")

    class Budget:
        def check(self, request: GateRequest) -> Block | None:
            return Block("budget.x", "over", "raise it")

    chain = GateChain([Broken(), Budget()])
    block = chain.check(GateRequest("a", None, None, "openai"))
    assert block is not None and block.rule == "budget.x" and chain.errors == 1


def test_admin_routes_need_the_token_and_refuse_browsers(proxy) -> None:
    url = proxy.url + "/_tokentop/"
    assert httpx.get(url + "healthz").json() == {"ok": True, "service": "tokentop-proxy"}
    assert httpx.get(url + "status").status_code == 401
    assert httpx.get(url + "status", headers={"x-tokentop-token": "wrong"}).status_code == 401
    auth = {"x-tokentop-token": TOKEN}
    assert httpx.post(url + "block", json={"scope": "session", "key": "s"}, headers={**auth, "origin": "http://evil"}).status_code == 403
    r = httpx.post(url + "block", json={"scope": "session", "key": "s9", "message": "stop now"}, headers=auth)
    assert r.status_code == 200 and r.json()["blocked"]["key"] == "s9"
    assert [b["key"] for b in httpx.get(url + "blocks", headers=auth).json()["blocks"]] == ["s9"]
    refused = httpx.post(proxy.url + "/v1/chat/completions", json={"model": "m", "messages": []}, headers={"x-tokentop-session": "s9"})
    assert refused.status_code == 429 and "stop now" in refused.json()["error"]["message"]
    assert httpx.post(url + "block", json={"scope": "nope", "key": "s"}, headers=auth).status_code == 400
    assert httpx.post(url + "unblock", json={"scope": "session", "key": "s9"}, headers=auth).json() == {"lifted": True}
    assert httpx.post(url + "unblock", json={"scope": "session", "key": "s9"}, headers=auth).json() == {"lifted": False}
    status = httpx.get(url + "status", headers=auth).json()
    assert status["counters"]["blocked"] == 1 and status["blocks"] == []
