"""The budget stop end to end: a real feed with the proxy as its part (``[proxy] enabled``), the
fake upstream, and the real openai / anthropic SDKs as clients. A rule that opts in trips → the
SDK's next request raises its own RateLimitError carrying tokentop's message (the rule, where it
stands, how to lift it) and never reaches the upstream; the condition clears (a new day, the burn
falls, the window resets) → the next request passes. Every block and lift is in the audit."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Callable, Iterator

import anthropic
import httpx
import openai
import pytest

from tokentop import config as config_mod
from tokentop.core.control.blocks import BlocksStatus
from tokentop.core.feed.runner import FeedRunner
from tokentop.core.proxy.server import bind

MESSAGE = [{"role": "user", "content": "x"}]


class Clock:
    def __init__(self, t: float) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def wait_until(what: Callable[[], Any], timeout: float = 15.0, message: str = "") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = what()
        if value:
            return value
        assert time.monotonic() < deadline, message or "timed out"
        time.sleep(0.02)


def free_port() -> int:
    sock = bind("127.0.0.1:0")
    port = sock.getsockname()[1]
    sock.close()
    return port


class StopFeed:
    """A running feed with the proxy as its part; ``url`` is the proxy's."""

    def __init__(self, runner: FeedRunner, url: str, clock: Clock) -> None:
        self.runner = runner
        self.url = url
        self.clock = clock

    def blocks(self) -> BlocksStatus:
        status = BlocksStatus.of(self.runner.snapshot())
        assert status is not None
        return status

    def audit(self) -> list[tuple[str, str, str | None, str, bool]]:
        ctl = self.runner.parts.control
        assert ctl is not None
        return [(a.requested, a.origin, a.scope, a.session, a.ok) for a in ctl.audit.recent(100)
                if a.action in ("block", "unblock")]

    def anthropic(self, **headers: str) -> anthropic.Anthropic:
        return anthropic.Anthropic(base_url=self.url, api_key="sk-ant-test", max_retries=2, default_headers=headers)

    def openai(self, **headers: str) -> openai.OpenAI:
        return openai.OpenAI(base_url=self.url + "/v1", api_key="sk-test", max_retries=2, default_headers=headers)


@pytest.fixture
def stop_feed(tmp_path: Path, upstream) -> Iterator[Callable[..., StopFeed]]:  # noqa: ANN001
    runners: list[FeedRunner] = []

    def make(rules: str, clock: Clock | None = None) -> StopFeed:
        clock = clock or Clock(time.time())
        port = free_port()
        cfg = tmp_path / "config.toml"
        cfg.write_text(
            f'[ledger]\npath = "{tmp_path / "feed.db"}"\n'
            '[sources]\nenabled = []\n'
            '[control]\ndesktop_notify = false\npolicy_interval_s = 0.05\n'
            f'[proxy]\nenabled = true\nlisten = "127.0.0.1:{port}"\n'
            f'[proxy.upstreams]\nopenai = "{upstream.url}"\nanthropic = "{upstream.url}"\n' + rules)
        runner = FeedRunner(config_mod.load(cfg), listen="127.0.0.1:0", host_name="box", clock=clock)
        runner.start_in_thread(require_listen=True)
        runners.append(runner)
        url = f"http://127.0.0.1:{port}"

        def up() -> bool:
            try:
                return httpx.get(url + "/_tokentop/healthz").status_code == 200
            except httpx.HTTPError:
                return False

        wait_until(up, message="the proxy never started")
        return StopFeed(runner, url, clock)

    try:
        yield make
    finally:
        for r in runners:
            r.stop()


def test_a_daily_budget_with_block_at_stops_the_sdks_and_a_new_day_lets_them_through(stop_feed, upstream) -> None:
    feed = stop_feed('[budget.daily]\nusd_per_day = 0.05\nblock_at = 1.0\n')
    client = feed.anthropic()
    for _ in range(2):  # ~$0.028 each (Sonnet 4.5 with 1-hour cache writes): over $0.05
        client.messages.create(model="claude-sonnet-4-5", max_tokens=5, messages=MESSAGE)
    wait_until(lambda: feed.blocks().count == 1, message="the budget never blocked")
    [block] = feed.blocks().active
    assert (block.scope, block.rule, block.origin) == ("global", "budget.daily", "policy:daily")

    with pytest.raises(anthropic.RateLimitError) as info:
        client.messages.create(model="claude-sonnet-4-5", max_tokens=5, messages=MESSAGE)
    assert info.value.response.headers["x-should-retry"] == "false"
    message = info.value.body["error"]["message"]
    assert message.startswith('tokentop stopped this request (rule budget.daily): budget "daily": $0.0')
    assert " of $0.05 today. To lift it: raise [budget.daily] usd_per_day (or block_at) and restart the feed, " \
           "wait for midnight (a new day), or run `tokentop unblock --all`" in message
    with pytest.raises(openai.RateLimitError) as oinfo:  # every request: a global budget
        feed.openai().chat.completions.create(model="gpt-5", messages=MESSAGE)
    assert oinfo.value.body["code"] == "insufficient_quota" and "rule budget.daily" in oinfo.value.message
    assert len(upstream.api.seen) == 2, "a blocked request reached the upstream (or an SDK retried it)"

    feed.clock.t += 86400  # a new day: spend today is $0 again
    wait_until(lambda: feed.blocks().count == 0, message="the block did not lift on a new day")
    assert client.messages.create(model="claude-sonnet-4-5", max_tokens=5, messages=MESSAGE).usage.output_tokens == 527
    assert feed.audit() == [("block", "policy:daily", "global", "", True), ("unblock", "policy:daily", "global", "", True)]


def test_a_per_model_budget_blocks_the_alias_the_client_asks_for(stop_feed, upstream) -> None:
    """Budgets see the model the upstream answered (claude-sonnet-4-5-20250929); the client asks
    for the alias (claude-sonnet-4-5): the block still refuses it, and only that model."""
    feed = stop_feed('[budget.sonnet]\nscope = "model"\nmatch = "claude-sonnet-4-5"\nusd_per_day = 0.03\nblock_at = 1.0\n')
    client = feed.anthropic()
    for _ in range(2):
        client.messages.create(model="claude-sonnet-4-5", max_tokens=5, messages=MESSAGE)
    wait_until(lambda: feed.blocks().count == 1)
    [block] = feed.blocks().active
    assert (block.scope, block.key) == ("model", "claude-sonnet-4-5-20250929")
    with pytest.raises(anthropic.RateLimitError) as info:
        client.messages.create(model="claude-sonnet-4-5", max_tokens=5, messages=MESSAGE)
    assert 'budget "sonnet" for model claude-sonnet-4-5-20250929' in info.value.body["error"]["message"]
    with pytest.raises(anthropic.RateLimitError):  # the dated name too
        client.messages.create(model="claude-sonnet-4-5-20250929", max_tokens=5, messages=MESSAGE)
    # another model passes
    assert feed.openai().chat.completions.create(model="gpt-5", messages=MESSAGE).usage.prompt_tokens == 1200
    assert feed.audit() == [("block", "policy:sonnet", "model", "claude-sonnet-4-5-20250929", True)]


def test_a_runaway_rule_with_action_block_stops_that_session_until_it_cools_down(stop_feed, upstream) -> None:
    feed = stop_feed('[runaway.hot]\nusd_per_hour_above = 2.0\nfor_s = 0\naction = "block"\n')
    hot = feed.anthropic(**{"X-Tokentop-Session": "s-hot"})
    calm = feed.anthropic(**{"X-Tokentop-Session": "s-calm"})
    calm.messages.create(model="claude-sonnet-4-5", max_tokens=5, messages=MESSAGE)  # ~$1.7/h over the last minute
    for _ in range(3):  # ~$5/h
        hot.messages.create(model="claude-sonnet-4-5", max_tokens=5, messages=MESSAGE)
    wait_until(lambda: feed.blocks().count == 1, message="the runaway rule never blocked")
    assert [(b.scope, b.key) for b in feed.blocks().active] == [("session", "s-hot")]
    with pytest.raises(anthropic.RateLimitError) as info:
        hot.messages.create(model="claude-sonnet-4-5", max_tokens=5, messages=MESSAGE)
    message = info.value.body["error"]["message"]
    assert message.startswith('tokentop stopped this request (rule runaway.hot): runaway rule "hot": session s-hot burning $')
    assert "above $2.00/h for 0 s. To lift it: it lifts by itself once the burn stays under $1.60/h for 0 s, or run " \
           "`tokentop unblock s-hot`" in message
    calm.messages.create(model="claude-sonnet-4-5", max_tokens=5, messages=MESSAGE)  # the other session passes
    assert len(upstream.api.seen) == 5

    feed.clock.t += 600  # the burn window empties: the burn is back to $0/h, the rule clears
    wait_until(lambda: feed.blocks().count == 0, message="the runaway block did not lift")
    hot.messages.create(model="claude-sonnet-4-5", max_tokens=5, messages=MESSAGE)
    assert feed.audit() == [("block", "policy:hot", "session", "s-hot", True),
                            ("unblock", "policy:hot", "session", "s-hot", True)]


def test_a_subscription_window_over_block_at_stops_claude_code_until_it_resets(stop_feed, upstream) -> None:
    feed = stop_feed('[limits.claude-5h]\nwindow = "5h"\nagent = "claude-code"\nwarn_at = 50\nblock_at = 90\n')
    feed_url = feed.runner.address
    resets_at = feed.clock.t + 3600
    payload = {"session_id": "cc-1", "version": "2.1.90", "model": {"id": "claude-sonnet-4-5", "display_name": "Sonnet 4.5"},
               "rate_limits": {"five_hour": {"used_percentage": 95, "resets_at": resets_at},
                               "seven_day": {"used_percentage": 40, "resets_at": feed.clock.t + 5 * 86400}}}
    assert httpx.post(f"{feed_url}/v1/limits/statusline", json=payload).status_code == 200
    wait_until(lambda: feed.blocks().count == 1, message="the window rule never blocked")
    claude = feed.anthropic(**{"User-Agent": "claude-cli/2.1.90 (external, cli)"})
    with pytest.raises(anthropic.RateLimitError) as info:
        claude.messages.create(model="claude-sonnet-4-5", max_tokens=5, messages=MESSAGE)
    message = info.value.body["error"]["message"]
    assert message.startswith('tokentop stopped this request (rule limits.claude-5h): subscription window rule '
                              '"claude-5h": Claude 5h window at 95 % (blocks at 90 %), resets in 1h00m. To lift it: '
                              'wait for the window to reset (in 1h00m), raise [limits.claude-5h] block_at and restart '
                              'the feed, or run `tokentop unblock --agent claude-code`'), message
    assert upstream.api.seen == []
    # another agent (the SDK's own user agent) is not Claude Code: it passes
    assert feed.anthropic().messages.create(model="claude-sonnet-4-5", max_tokens=5, messages=MESSAGE).usage.output_tokens == 527

    feed.clock.t = resets_at + 1  # the window resets (0 %, awaiting data)
    wait_until(lambda: feed.blocks().count == 0, message="the window's block did not lift at its reset")
    claude.messages.create(model="claude-sonnet-4-5", max_tokens=5, messages=MESSAGE)
    assert feed.audit() == [("block", "policy:claude-5h", "agent", "claude-code", True),
                            ("unblock", "policy:claude-5h", "agent", "claude-code", True)]


def test_a_person_unblocking_a_rule_block_lifts_it_until_the_rule_clears(stop_feed, upstream) -> None:
    feed = stop_feed('[budget.daily]\nusd_per_day = 0.02\nblock_at = 1.0\n')
    client = feed.anthropic()
    client.messages.create(model="claude-sonnet-4-5", max_tokens=5, messages=MESSAGE)
    wait_until(lambda: feed.blocks().count == 1)
    r = httpx.post(feed.runner.address + "/v1/unblock", json={"scope": "global", "key": ""},
                   headers={"authorization": f"Bearer {feed.runner.token}"})
    assert r.status_code == 200 and r.json()["message"] == "lifted every request: budget.daily (until the rule clears)"
    assert feed.blocks().count == 0 and [b.rule for b in feed.blocks().lifted] == ["budget.daily"]
    time.sleep(0.3)  # several evaluations later, still over budget: it stays lifted
    assert feed.blocks().count == 0
    client.messages.create(model="claude-sonnet-4-5", max_tokens=5, messages=MESSAGE)
    feed.clock.t += 86400  # the rule clears: the lift is forgotten ...
    wait_until(lambda: not feed.blocks().lifted)
    client.messages.create(model="claude-sonnet-4-5", max_tokens=5, messages=MESSAGE)
    wait_until(lambda: feed.blocks().count == 1)  # ... and the rule blocks anew when over again
    with pytest.raises(anthropic.RateLimitError):
        client.messages.create(model="claude-sonnet-4-5", max_tokens=5, messages=MESSAGE)
    assert feed.audit() == [("block", "policy:daily", "global", "", True), ("unblock", "api", "global", "", True),
                            ("block", "policy:daily", "global", "", True)]
