"""The proxy as a part of a feed (what ``tokentop serve`` runs with ``[proxy] enabled = true``):
on the feed's own loop, events into its service, status in its snapshots; stopping flushes."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

import httpx

from tokentop.core.feed.service import FeedService
from tokentop.core.ledger import Ledger
from tokentop.core.proxy.server import build_proxy, proxy_part
from tokentop.core.proxy.settings import ProxySettings


def test_proxy_part_on_the_feeds_loop(upstream, tmp_path: Path) -> None:
    async def main() -> tuple[dict, list, int]:
        ledger = Ledger(tmp_path / "feed.db")
        service = FeedService(ledger, host="box")
        part = proxy_part(service, ProxySettings(listen="127.0.0.1:0", upstreams={"openai": upstream.url}), token="t")
        url = part.bind()
        task = asyncio.get_running_loop().create_task(part.run())
        async with httpx.AsyncClient() as client:
            r = await client.post(url + "/v1/chat/completions", json={"model": "gpt-5", "messages": []})
            assert r.status_code == 200
        await asyncio.sleep(1.3)  # one status publication
        status = service.status["proxy"]
        totals = service.snapshot().totals
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        stored = [s.event for s in ledger.events_since(0)]
        ledger.close()
        return status, stored, totals.requests_today

    status, stored, requests_today = asyncio.run(main())
    assert status["counters"]["metered"] == 1 and status["events"]["delivered"] == 1 and status["url"].startswith("http://127.0.0.1:")
    assert requests_today == 1
    [e] = stored
    assert e.host == "box" and e.source == "proxy" and e.input_tokens == 1200


def test_stopping_flushes_queued_events_to_a_slow_sink(upstream) -> None:
    got: list = []

    class SlowSink:
        async def __call__(self, events) -> None:
            await asyncio.sleep(0.3)
            got.extend(events)

    async def main() -> dict:
        part = build_proxy(ProxySettings(listen="127.0.0.1:0", upstreams={"openai": upstream.url}), SlowSink())
        url = part.bind()
        task = asyncio.get_running_loop().create_task(part.run())
        async with httpx.AsyncClient() as client:
            for _ in range(3):
                await client.post(url + "/v1/chat/completions", json={"model": "gpt-5", "messages": []})
        part.stop()
        await task
        return part.pump.status()

    status = asyncio.run(main())
    assert len(got) == 3 and status["delivered"] == 3 and status["dropped"] == 0 and status["queued"] == 0


def test_a_host_feed_serves_the_proxy_when_enabled(upstream, tmp_path: Path) -> None:
    """``[proxy] enabled = true``: the feed's assembly runs the proxy part, and a request through it
    is counted by that feed; without it the feed has no proxy."""
    import time

    from tokentop import config as config_mod
    from tokentop.core.feed.runner import FeedRunner
    from tokentop.core.proxy.server import bind

    free = bind("127.0.0.1:0")
    port = free.getsockname()[1]
    free.close()
    cfg = config_mod.from_mapping({
        "ledger": {"path": str(tmp_path / "feed.db")},
        "sources": {"enabled": []},
        "proxy": {"enabled": True, "listen": f"127.0.0.1:{port}", "upstreams": {"openai": upstream.url}},
    })
    runner = FeedRunner(cfg, listen="127.0.0.1:0", host_name="box")
    runner.start_in_thread(require_listen=True)
    try:
        assert runner.parts.proxy is not None
        deadline = time.monotonic() + 10
        while True:
            try:
                r = httpx.post(f"http://127.0.0.1:{port}/v1/chat/completions", json={"model": "gpt-5", "messages": []})
                break
            except httpx.ConnectError:
                assert time.monotonic() < deadline, "the proxy never started listening"
                time.sleep(0.05)
        assert r.status_code == 200
        while runner.snapshot().totals.requests_today < 1:
            assert time.monotonic() < deadline, "the proxied request never reached the feed"
            time.sleep(0.05)
    finally:
        runner.stop()
    plain = FeedRunner(config_mod.from_mapping({"ledger": {"path": str(tmp_path / "plain.db")}}), listen="127.0.0.1:0")
    try:
        assert plain.parts.proxy is None
    finally:
        plain.stop()
