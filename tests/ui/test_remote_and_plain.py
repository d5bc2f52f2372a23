"""Watching another feed over WS /v1/stream (connected, disconnected, reconnected) and the
``--once --plain`` text frame, against real feeds on loopback."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from tokentop import config as config_mod
from tokentop.core.feed.client import FeedClient
from tokentop.core.feed.runner import FeedRunner
from tokentop.ui.header import Meters
from tokentop.ui.feeds import RemoteFeed

from tests.ui.helpers import make_app, names_in_order


async def wait_for(predicate, timeout: float = 10.0) -> None:  # noqa: ANN001
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.05)


def post(url: str, agent: str) -> None:
    with FeedClient(url) as client:
        reply = client.post_events([{"agent": agent, "session": f"{agent}-1", "model": "gpt-4o", "provider": "openai",
                                     "input_tokens": 5000, "output_tokens": 500, "pid": 4242}])
    assert reply["accepted"] == 1


async def test_remote_feed_connects_disconnects_and_reconnects(feed, tmp_path: Path) -> None:  # noqa: ANN001
    await asyncio.to_thread(post, feed.address, "alpha")
    source = RemoteFeed(feed.address, retry_s=0.1)
    app = make_app(feed=source, clock=time.time)
    async with app.run_test(size=(120, 30)) as pilot:
        await wait_for(lambda: source.received > 0)
        await pilot.pause()
        assert names_in_order(app) == ["alpha"]  # drawn on arrival, not at the next tick
        header = app.query_one(Meters).render().plain
        assert f"feed {feed.address}" in header and "disconnected" not in header

        port = int(feed.address.rsplit(":", 1)[1])
        await asyncio.to_thread(feed.stop)
        await wait_for(lambda: not source.connected)
        app.refresh_now()
        await pilot.pause()
        header = app.query_one(Meters).render().plain
        assert "disconnected" in header and "retrying" in header
        assert names_in_order(app) == ["alpha"]  # the last frame stays on screen

        cfg = config_mod.from_mapping({"ledger": {"path": str(tmp_path / "second.db")}})
        second = FeedRunner(cfg, listen=f"127.0.0.1:{port}", host_name="test-host")
        second.start_in_thread(require_listen=True)
        try:
            await asyncio.to_thread(post, second.address, "beta")
            await wait_for(lambda: source.connected and source.latest() is not None
                           and any(r.key == "beta" for r in source.latest().agents))
            app.refresh_now()
            await pilot.pause()
            assert names_in_order(app) == ["beta"]
            assert "disconnected" not in app.query_one(Meters).render().plain
        finally:
            await asyncio.to_thread(second.stop)


def test_once_plain_prints_one_readable_frame(feed, capsys) -> None:  # noqa: ANN001
    from tokentop.cli import main

    post(feed.address, "[bold]literal[/]")
    with FeedClient(feed.address) as client:
        client.post_events([{"agent": "mystery", "model": "no-such-model-xyz", "input_tokens": 10, "output_tokens": 1}])
    assert main(["--feed", feed.address, "--once", "--plain"]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[0].startswith("tokentop Agents: burn $")
    assert "est" in lines[0]
    assert "1 requests today could not be priced" in out
    assert "NAME" in lines[2] and "$/H est" in lines[2]
    assert any(line.startswith("[bold]literal[/]") for line in lines)
    assert any(line.startswith("mystery") and "unpriced" in line for line in lines)
    assert "\x1b" not in out


def test_once_plain_with_no_data_points_to_the_demo(feed, capsys) -> None:  # noqa: ANN001
    from tokentop.cli import main

    assert main(["--feed", feed.address, "--once", "--plain", "--view", "sessions"]) == 0
    out = capsys.readouterr().out
    assert "tokentop Sessions" in out and "tokentop demo" in out


async def test_embedded_source_reads_the_running_feed(feed) -> None:  # noqa: ANN001
    from tokentop.ui.feeds import EmbeddedFeed

    await asyncio.to_thread(post, feed.address, "gamma")
    source = EmbeddedFeed(feed)
    assert f"embedded feed {feed.address}" == source.label
    snap = source.latest()
    assert snap is not None and [r.key for r in snap.agents] == ["gamma"]
    requests = await source.recent_requests("agents", "gamma", 5)
    assert len(requests) == 1 and requests[0]["input_tokens"] == 5000 and requests[0]["cost_kind"] == "estimated"
    app = make_app(feed=source, clock=time.time)
    async with app.run_test(size=(100, 30)) as pilot:
        app.refresh_now()
        await pilot.pause()
        assert names_in_order(app) == ["gamma"]
        await pilot.press("enter")
        await pilot.pause()
        assert app.screen.requests and app.screen.requests[0]["agent"] == "gamma"
