"""Fixtures: a fake OpenAI/Anthropic upstream (real uvicorn on 127.0.0.1), a real feed, and the
proxy itself running in its own thread and loop, its events going into that feed."""

from __future__ import annotations

import asyncio
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from fake_upstream import FakeServer  # noqa: E402

from tokentop.core.events import Event  # noqa: E402
from tokentop.core.proxy.server import ProxyPart, build_proxy  # noqa: E402
from tokentop.core.proxy.settings import ProxySettings  # noqa: E402
from tokentop.core.proxy.sink import EventSink, ServiceSink  # noqa: E402

TOKEN = "local-token-for-tests"


@pytest.fixture
def upstream() -> Iterator[FakeServer]:
    server = FakeServer().start()
    try:
        yield server
    finally:
        server.stop()


class RunningProxy:
    """A :class:`ProxyPart` served on its own thread (the way a feed or ``tokentop proxy`` runs it)."""

    def __init__(self, part: ProxyPart, feed: Any | None) -> None:
        self.part = part
        self.feed = feed
        self.url = part.bind()
        self.loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[None] | None = None
        self._ready = threading.Event()
        self.thread = threading.Thread(target=self._main, name="test-proxy", daemon=True)
        self.thread.start()
        self._ready.wait(10)

    def _main(self) -> None:
        async def main() -> None:
            self.loop = asyncio.get_running_loop()
            self._task = asyncio.current_task()  # type: ignore[assignment]
            self._ready.set()
            await self.part.run()

        try:
            asyncio.run(main())
        except asyncio.CancelledError:
            pass

    def call(self, fn: Callable[[], Any]) -> Any:
        """Run ``fn`` on the proxy's loop (the block list is the loop's, like in a feed)."""
        assert self.loop is not None

        async def run() -> Any:
            return fn()

        return asyncio.run_coroutine_threadsafe(run(), self.loop).result(5)

    def events(self, n: int, timeout: float = 10.0) -> list[Event]:
        """Wait until the feed stored at least ``n`` events from the proxy; return them (by ts)."""
        assert self.feed is not None
        deadline = time.monotonic() + timeout
        while True:
            got = [s.event for s in self.feed.ledger.events_since(0) if s.event.source == "proxy"]
            if len(got) >= n or time.monotonic() > deadline:
                assert len(got) >= n, f"expected {n} proxy events in the feed, got {len(got)}: {got}"
                return got
            time.sleep(0.02)

    def stop(self) -> None:
        self.part.stop()
        self.thread.join(15)


@pytest.fixture
def make_proxy(feed: Any, upstream: FakeServer) -> Iterator[Callable[..., RunningProxy]]:
    """``make_proxy(**settings)``: a running proxy whose ``openai``, ``anthropic`` and ``compat``
    upstreams are the fake; events into the ``feed`` fixture's service."""
    running: list[RunningProxy] = []

    def make(sink: EventSink | None = None, **overrides: Any) -> RunningProxy:
        upstreams = {"openai": upstream.url, "anthropic": upstream.url, "compat": upstream.url + "/api"}
        upstreams.update(overrides.pop("upstreams", {}))
        settings = ProxySettings(listen="127.0.0.1:0", upstreams=upstreams, **overrides)
        part = build_proxy(settings, sink or ServiceSink(feed.service, feed.loop), token=TOKEN, host="test-host")
        proxy = RunningProxy(part, feed)
        running.append(proxy)
        return proxy

    try:
        yield make
    finally:
        for p in running:
            p.stop()


@pytest.fixture
def proxy(make_proxy: Callable[..., RunningProxy]) -> RunningProxy:
    return make_proxy()
