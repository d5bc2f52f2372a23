"""The budget stop's key: ``b`` on a row blocks it at the API (a confirm modal like kill/pause),
the row shows BLOCKED and the header a count, the proxy refuses that session's next request; ``b``
again unblocks. Without a proxy enforcing the feed's blocks the action is shown, disabled, with
what would make it possible. Hidden in read-only mode."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import httpx
import openai
import pytest
from textual.widgets import Button, Static

from tests.ui.helpers import make_app, snapshot_of, table_lines, traffic
from tokentop import config as config_mod
from tokentop.core.control.blocks import ApiBlock, BlocksStatus, Enforcer
from tokentop.core.control.port import BlockTarget, Outcome
from tokentop.core.feed.runner import FeedRunner
from tokentop.core.feed.service import FeedService
from tokentop.core.ledger import Ledger
from tokentop.core.proxy.server import bind
from tokentop.ui.plain import plain_frame
from tokentop.ui.screens.block import BlockScreen

MESSAGE = [{"role": "user", "content": "x"}]


def _free_port() -> int:
    sock = bind("127.0.0.1:0")
    port = sock.getsockname()[1]
    sock.close()
    return port


@pytest.fixture
def proxied_feed(tmp_path: Path):  # noqa: ANN201
    """A real feed with the metering proxy as its part, the proxy's upstream a fake provider."""
    from tests.proxy.fake_upstream import FakeServer

    upstream = FakeServer().start()
    port = _free_port()
    cfg = config_mod.from_mapping({
        "ledger": {"path": str(tmp_path / "feed.db")}, "sources": {"enabled": []},
        "proxy": {"enabled": True, "listen": f"127.0.0.1:{port}", "upstreams": {"openai": upstream.url}},
    })
    runner = FeedRunner(cfg, listen="127.0.0.1:0", host_name="box")
    runner.start_in_thread(require_listen=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 10
    while True:
        try:
            httpx.get(url + "/_tokentop/healthz")
            break
        except httpx.HTTPError:
            assert time.monotonic() < deadline
            time.sleep(0.05)
    try:
        yield runner, url, upstream
    finally:
        runner.stop()
        upstream.stop()


async def _settle(pilot, app, until, tries: int = 100) -> None:  # noqa: ANN001
    for _ in range(tries):
        app.refresh_now()
        await pilot.pause(0.05)
        if until():
            return
    raise AssertionError("the view never got there")


async def test_b_blocks_a_session_at_the_api_and_b_again_lifts_it(proxied_feed) -> None:
    from tokentop.commands.top import make_controller
    from tokentop.ui.feeds import EmbeddedFeed

    runner, url, upstream = proxied_feed
    agent = openai.OpenAI(base_url=url + "/v1", api_key="k", max_retries=2, default_headers={"X-Tokentop-Session": "s-ui"})
    other = openai.OpenAI(base_url=url + "/v1", api_key="k", max_retries=2, default_headers={"X-Tokentop-Session": "s-other"})
    await asyncio.to_thread(agent.chat.completions.create, model="gpt-5", messages=MESSAGE)
    await asyncio.to_thread(other.chat.completions.create, model="gpt-5", messages=MESSAGE)
    source = EmbeddedFeed(runner)
    app = make_app(feed=source, view="sessions", controller=make_controller(source), clock=time.time, sort="name")
    async with app.run_test(size=(130, 30)) as pilot:
        await _settle(pilot, app, lambda: {"s-ui", "s-other"} <= {r.key for r in app.current_rows()}
                      and BlocksStatus.of(app.shown) is not None and BlocksStatus.of(app.shown).enforced)
        from tokentop.ui.table import BurnTable

        table = app.query_one(BurnTable)
        table.move_cursor_to("s-ui")
        await pilot.press("b")
        await pilot.pause()
        screen = app.screen
        assert isinstance(screen, BlockScreen) and screen.mode == "block"
        assert [r.target for r in screen.rows] == [BlockTarget("session", "s-ui", screen.rows[0].target.usd_per_hour,
                                                               agent="openai-python", model="gpt-5-2025-08-07")]
        assert screen.focused is screen.query_one("#cancel", Button)  # like kill: Cancel has the focus
        assert not screen.query_one("#confirm", Button).disabled
        explain = str(screen.query_one("#explain", Static).render())
        assert "`tokentop unblock s-ui`" in explain and f"Enforced by the proxy at {url} (in-feed)" in explain
        await pilot.press("y")
        await _settle(pilot, app, lambda: screen.outcomes is not None)
        assert screen.outcomes and screen.outcomes[0].ok, screen.outcomes
        await pilot.press("escape")

        # the proxy refuses that session's next request; the other session passes
        with pytest.raises(openai.RateLimitError) as info:
            await asyncio.to_thread(agent.chat.completions.create, model="gpt-5", messages=MESSAGE)
        assert "tokentop stopped this request (rule user-block): session s-ui is blocked by hand (the live view, " \
               in info.value.message
        await asyncio.to_thread(other.chat.completions.create, model="gpt-5", messages=MESSAGE)

        await _settle(pilot, app, lambda: any("BLOCKED" in line for line in table_lines(app)))
        lines = table_lines(app)
        assert [line.startswith(" s-ui") for line in lines if "BLOCKED" in line] == [True]
        assert "1 BLOCKED at the API" in app.query_one("#meters").render().plain

        # b again on the blocked row: the unblock modal
        table.move_cursor_to("s-ui")
        await pilot.press("b")
        await pilot.pause()
        screen = app.screen
        assert isinstance(screen, BlockScreen) and screen.mode == "unblock"
        await pilot.press("y")
        await _settle(pilot, app, lambda: screen.outcomes is not None)
        assert screen.outcomes and screen.outcomes[0].ok and screen.outcomes[0].message == "lifted session s-ui: user-block"
        await pilot.press("escape")
    await asyncio.to_thread(agent.chat.completions.create, model="gpt-5", messages=MESSAGE)
    ctl = runner.parts.control
    assert ctl is not None
    assert [(a.requested, a.origin, a.scope, a.session, a.ok) for a in ctl.audit.recent(10)] == [
        ("block", "ui", "session", "s-ui", True), ("unblock", "ui", "session", "s-ui", True)]


class RecordingBlocker:
    def __init__(self) -> None:
        self.calls: list[tuple[str, BlockTarget]] = []

    def block_unavailable(self) -> str | None:
        return None

    async def block(self, target: BlockTarget, *, message: str | None = None) -> Outcome:
        self.calls.append(("block", target))
        return Outcome(target.describe(), "block", True, "blocked")

    async def unblock(self, target: BlockTarget) -> Outcome:
        self.calls.append(("unblock", target))
        return Outcome(target.describe(), "unblock", True, "lifted")


def _with_blocks(snap, status: BlocksStatus):  # noqa: ANN001, ANN202
    from dataclasses import replace

    return replace(snap, status={**snap.status, BlocksStatus.KEY: status.to_json()})


def _fleet():  # noqa: ANN202
    return snapshot_of([
        *traffic("codex", "cx-1", "gpt-5", per_request_in=5000, per_request_out=500, n=5),
        *traffic("claude-code", "cc-1", "claude-sonnet-4-5-20250929", per_request_in=9000, per_request_out=900, n=5,
                 provider="anthropic"),
    ])


async def test_without_a_proxy_the_block_is_shown_disabled_with_what_would_make_it_possible() -> None:
    blocker = RecordingBlocker()
    snap = _with_blocks(_fleet(), BlocksStatus())  # the feed says: no proxy enforces its blocks
    app = make_app(snap, view="agents", blocker=blocker)
    async with app.run_test(size=(120, 30)) as pilot:
        app.refresh_now()
        await pilot.pause()
        await pilot.press("b")
        await pilot.pause()
        screen = app.screen
        assert isinstance(screen, BlockScreen)
        assert screen.query_one("#confirm", Button).disabled
        remedy = str(screen.query_one("#remedy", Static).render())
        assert remedy.startswith("Nothing can be blocked from here. No tokentop proxy enforces this feed's blocks. "
                                 "To make it possible: set `[proxy] enabled = true`")
        assert "or run `tokentop proxy`" in remedy
        await pilot.press("y")
        await pilot.pause()
        assert blocker.calls == []


async def test_b_on_an_agent_row_blocks_the_agent_and_the_rows_behind_it_show_blocked() -> None:
    blocker = RecordingBlocker()
    proxy = (Enforcer("http://127.0.0.1:7413", "in-feed", 0.0),)
    app = make_app(_with_blocks(_fleet(), BlocksStatus(proxies=proxy)), view="agents", blocker=blocker, sort="name")
    async with app.run_test(size=(120, 30)) as pilot:
        app.refresh_now()
        await pilot.pause()
        from tokentop.ui.table import BurnTable

        app.query_one(BurnTable).move_cursor_to("codex")
        await pilot.press("b")
        await pilot.pause()
        assert isinstance(app.screen, BlockScreen) and app.screen.mode == "block"
        await pilot.press("y")
        await pilot.pause()
        assert [(a, t.scope, t.key) for a, t in blocker.calls] == [("block", "agent", "codex")]
        await pilot.press("escape")
        # the feed now reports the block: the agent row and its session show BLOCKED, the header counts it
        blocked = ApiBlock("agent", "codex", "user-block", "ui", "agent codex is blocked by hand", "run it", 1.0)
        app.feed.push(_with_blocks(_fleet(), BlocksStatus(active=(blocked,), count=1, proxies=proxy)))
        app.refresh_now()
        await pilot.pause()
        assert [line.split()[0] for line in table_lines(app)[1:] if "BLOCKED" in line] == ["codex"]
        assert "1 BLOCKED at the API" in app.query_one("#meters").render().plain
        await pilot.press("2")
        await pilot.pause()
        assert [line.split()[0] for line in table_lines(app)[1:] if "BLOCKED" in line] == ["cx-1"]
        # a session blocked through its agent: b offers to block the session itself, and says what refuses it now
        app.query_one(BurnTable).move_cursor_to("cx-1")
        await pilot.press("b")
        await pilot.pause()
        screen = app.screen
        assert isinstance(screen, BlockScreen) and screen.mode == "block"
        assert screen.rows[0].covered is not None and screen.rows[0].covered.rule == "user-block"


async def test_a_model_block_covers_the_dated_row_of_the_same_model() -> None:
    blocked = ApiBlock("model", "claude-sonnet-4-5", "user-block", "cli", "model claude-sonnet-4-5 is blocked", "x", 1.0)
    status = BlocksStatus(active=(blocked,), count=1, proxies=(Enforcer("http://p", "following", 1.0),))
    app = make_app(_with_blocks(_fleet(), status), view="models")
    async with app.run_test(size=(120, 30)) as pilot:
        app.refresh_now()
        await pilot.pause()
        from tokentop.ui.table import BurnTable

        assert app.query_one(BurnTable).flags == {"claude-sonnet-4-5-20250929": "blocked"}
        assert [line.split()[0][:17] for line in table_lines(app)[1:] if "BLOCKED" in line] == ["claude-sonnet-4-5"]


async def test_read_only_hides_b_and_hosts_cannot_be_blocked() -> None:
    blocker = RecordingBlocker()
    status = BlocksStatus(proxies=(Enforcer("http://p", "in-feed", 1.0),))
    app = make_app(_with_blocks(_fleet(), status), view="agents", blocker=blocker, readonly=True)
    async with app.run_test(size=(120, 30)) as pilot:
        app.refresh_now()
        await pilot.pause()
        await pilot.press("b")
        await pilot.pause()
        assert not isinstance(app.screen, BlockScreen)
    app = make_app(_with_blocks(_fleet(), status), view="hosts", blocker=blocker)
    async with app.run_test(size=(120, 30)) as pilot:
        app.refresh_now()
        await pilot.pause()
        await pilot.press("b")
        await pilot.pause()
        assert not isinstance(app.screen, BlockScreen)
    assert blocker.calls == []


def test_plain_frame_says_how_many_blocks_hold(tmp_path: Path) -> None:
    blocked = (ApiBlock("global", "", "budget.daily", "policy:daily", 'budget "daily": $100.00 of $100.00 today', "x", 1.0),
               ApiBlock("session", "s-42", "user-block", "ui", "session s-42 is blocked", "x", 2.0))
    snap = _with_blocks(_fleet(), BlocksStatus(active=blocked, count=2))
    text = plain_frame(snap)
    assert "blocked at the API: 2 (every request by budget.daily; session s-42 by user-block) - no proxy enforces them now" \
        in text.splitlines()
    ledger = Ledger(tmp_path / "x.db")
    try:
        assert "blocked at the API" not in plain_frame(FeedService(ledger).snapshot())
    finally:
        ledger.close()
