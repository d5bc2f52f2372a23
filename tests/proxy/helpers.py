"""Shared by the proxy tests: the local token, and a proxy served on its own thread and loop."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any, Callable

from tokentop.core.events import Event
from tokentop.core.proxy.server import ProxyPart

TOKEN = "local-token-for-tests"


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
