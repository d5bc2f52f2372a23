"""A proxy in its own process enforcing a remote feed's blocks (``GET /v1/blocks``): the real
``tokentop proxy --feed URL`` with ``tokentop block|unblock`` against the feed, and the follower's
failure modes — the last blocks held through a short outage, then fail open (default) or closed."""

from __future__ import annotations

import json
import time
from pathlib import Path

import httpx
import openai
import pytest
from tests.proxy.helpers import RunningProxy
from test_command import start_proxy, stop, tokentop, write_config

from tokentop.core.control.blocks import BlocksStatus
from tokentop.core.proxy.follow import FollowedBlocks
from tokentop.core.proxy.server import build_proxy
from tokentop.core.proxy.settings import ProxySettings
from tokentop.core.proxy.sink import FeedSink

MESSAGE = [{"role": "user", "content": "x"}]


def wait_until(what, timeout: float = 15.0, message: str = "timed out"):  # noqa: ANN001, ANN201
    deadline = time.monotonic() + timeout
    while True:
        value = what()
        if value:
            return value
        assert time.monotonic() < deadline, message
        time.sleep(0.02)


def test_a_standalone_proxy_honours_the_feeds_blocks_made_with_the_cli(feed, upstream, tmp_path: Path) -> None:
    config = write_config(tmp_path, upstream.url, proxy={"blocks_poll_s": 0.1})
    proc, url, _ = start_proxy(config, "--feed", feed.address)
    assert proc.stderr is not None
    banner = [proc.stderr.readline() for _ in range(3)]
    assert banner[2].strip() == (f"budget stop:  enforces the blocks of the feed at {feed.address} (read every 0.1 s; "
                                 "while it cannot be read: fail open)")
    try:
        client = openai.OpenAI(base_url=url + "/v1", api_key="k", max_retries=2)
        assert client.chat.completions.create(model="gpt-5", messages=MESSAGE).usage.prompt_tokens == 1200
        # the feed knows a proxy follows its blocks
        wait_until(lambda: (BlocksStatus.of(feed.snapshot()) or BlocksStatus()).enforced, message="no follower seen")
        [proxy] = BlocksStatus.of(feed.snapshot()).proxies
        assert (proxy.url, proxy.how) == (url, "following")

        blocked = tokentop("--config", str(config), "block", "--agent", "openai-python", "--feed", feed.address)
        assert blocked.returncode == 0, blocked.stderr
        assert blocked.stdout.startswith("blocked agent openai-python at the API: the proxy refuses its next requests")

        def refused() -> str | None:
            try:
                client.chat.completions.create(model="gpt-5", messages=MESSAGE)
            except openai.RateLimitError as exc:
                return exc.message
            return None

        message = wait_until(refused, message="the proxy never enforced the feed's block")
        assert "tokentop stopped this request (rule user-block): agent openai-python is blocked by hand (tokentop block, " in message
        assert "To lift it: run `tokentop unblock --agent openai-python` (or press b on its row in tokentop)" in message
        listed = tokentop("--config", str(config), "block", "--feed", feed.address)
        assert listed.stdout.startswith("agent openai-python: rule user-block (by cli, since ")
        status = tokentop("--config", str(config), "proxy", "status", "--proxy", url).stdout
        assert f"budget stop: the feed at {feed.address}: ok, 1 blocks" in status and "refused by user-block: 1" in status

        lifted = tokentop("--config", str(config), "unblock", "--agent", "openai-python", "--feed", feed.address)
        assert lifted.returncode == 0 and lifted.stdout.strip() == "lifted agent openai-python: user-block"
        wait_until(lambda: refused() is None, message="the lifted block still refuses")
        again = tokentop("--config", str(config), "unblock", "--agent", "openai-python", "--feed", feed.address)
        assert again.returncode == 1 and "nothing blocked agent openai-python itself" in again.stderr

        log = tokentop("--config", str(config), "log", "--feed", feed.address, "--json").stdout.splitlines()
        rows = [json.loads(line) for line in log]
        assert [(r["requested"], r["origin"], r["scope"], r["session"], r["ok"]) for r in rows] == [
            ("block", "cli", "agent", "openai-python", True), ("unblock", "cli", "agent", "openai-python", True),
            ("unblock", "cli", "agent", "openai-python", False)]
        text = tokentop("--config", str(config), "log", "--feed", feed.address).stdout
        assert "block        agent openai-python  (at the API, by cli)" in text
    finally:
        code, err = stop(proc)
    assert code == 0, err


@pytest.fixture
def follower(feed, upstream):  # noqa: ANN001, ANN201
    running: list[RunningProxy] = []

    def make(**kw):  # noqa: ANN003, ANN202
        follow = FollowedBlocks(feed.address, feed.token, poll_s=0.05, **kw)
        settings = ProxySettings(listen="127.0.0.1:0", upstreams={"openai": upstream.url})
        part = build_proxy(settings, FeedSink(feed.address, token=feed.token), token="t", follow=follow)
        proxy = RunningProxy(part, feed)
        running.append(proxy)
        return proxy, follow

    yield make
    for p in running:
        p.stop()


def _block_session(feed, session: str) -> None:  # noqa: ANN001
    r = httpx.post(feed.address + "/v1/sessions/" + session + "/block", json={},
                   headers={"authorization": f"Bearer {feed.token}"})
    assert r.status_code == 200, r.text


class Monotonic:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def test_the_last_blocks_hold_through_a_short_outage_then_the_proxy_fails_open(follower, feed, upstream) -> None:
    mono = Monotonic()  # the follower's sense of how long the feed has been silent: moved by the test
    proxy, follow = follower(stale_s=5.0, monotonic=mono)
    client = openai.OpenAI(base_url=proxy.url + "/v1", api_key="k", max_retries=0,
                           default_headers={"X-Tokentop-Session": "s-1"})
    _block_session(feed, "s-1")
    wait_until(lambda: follow.blocks == 1)
    feed.stop()  # the feed goes away
    wait_until(lambda: follow.state == "unreachable")
    assert not follow.failing
    with pytest.raises(openai.RateLimitError, match="rule user-block"):  # still held
        client.chat.completions.create(model="gpt-5", messages=MESSAGE)
    mono.t += 5.0  # 5 s without an answer
    wait_until(lambda: follow.failing, message="never failed open")
    assert client.chat.completions.create(model="gpt-5", messages=MESSAGE).usage.prompt_tokens == 1200
    status = proxy.part.status()["feed_blocks"]
    assert status["state"] == "unreachable" and status["failing"] == "open" and status["blocks"] == 0
    assert "does not answer" in status["error"]


def test_fail_closed_refuses_with_a_retryable_503_while_the_feed_cannot_be_read(follower, feed, upstream) -> None:
    proxy, follow = follower(stale_s=0.2, fail_closed=True)
    client = openai.OpenAI(base_url=proxy.url + "/v1", api_key="k", max_retries=0)
    assert client.chat.completions.create(model="gpt-5", messages=MESSAGE).usage.prompt_tokens == 1200
    feed.stop()
    wait_until(lambda: follow.failing)
    with pytest.raises(openai.InternalServerError) as info:
        client.chat.completions.create(model="gpt-5", messages=MESSAGE)
    assert info.value.status_code == 503 and "x-should-retry" not in info.value.response.headers
    assert "cannot read the budget blocks of the feed at" in info.value.message
    assert len(upstream.api.seen) == 1


def test_a_follower_with_the_wrong_token_says_so_and_fails_open(feed, upstream) -> None:
    import asyncio

    async def main() -> FollowedBlocks:
        follow = FollowedBlocks(feed.address, "wrong-token", poll_s=0.05)
        await follow.prime()
        await follow.aclose()
        return follow

    follow = asyncio.run(main())
    assert follow.state == "refused" and follow.failing and "refused the local token (401)" in (follow.error or "")


def test_unchanged_blocks_cost_a_304(feed) -> None:
    headers = {"authorization": f"Bearer {feed.token}", "x-tokentop-proxy": "http://127.0.0.1:9"}
    first = httpx.get(feed.address + "/v1/blocks", headers=headers)
    assert first.status_code == 200 and first.json()["blocks"] == []
    again = httpx.get(feed.address + "/v1/blocks", headers={**headers, "if-none-match": first.headers["etag"]})
    assert again.status_code == 304
    _block_session(feed, "s-9")
    changed = httpx.get(feed.address + "/v1/blocks", headers={**headers, "if-none-match": first.headers["etag"]})
    assert changed.status_code == 200 and [b["key"] for b in changed.json()["blocks"]] == ["s-9"]
    assert httpx.get(feed.address + "/v1/blocks").status_code == 401
