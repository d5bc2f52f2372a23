"""Where the live view gets its snapshots: an embedded feed, a remote feed, or a manual slot.

The app only ever calls :meth:`WatchedFeed.latest` (once per redraw) and
:meth:`WatchedFeed.recent_requests` (detail screen); it never touches the aggregator. The feeds:

- :class:`EmbeddedFeed`: a :class:`~tokentop.core.feed.runner.FeedRunner` on its own thread;
  ``latest()`` hops onto the feed's loop for a fresh snapshot.
- :class:`RemoteFeed`: ``WS /v1/stream`` of another feed via
  :func:`~tokentop.core.feed.client.stream_snapshots`; tracks connected/disconnected and reconnects.
  It asks only for what the live view draws (:func:`live_view_shape`: its table views plus
  sessions, series in compact form), which is most of the cost of watching a busy feed.
- :class:`ManualFeed`: a slot someone pushes snapshots into (tests, screenshots, ``--once``).
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, Any, Callable, Protocol

from tokentop.core.feed.stream import StreamShape
from tokentop.core.snapshot import Snapshot

if TYPE_CHECKING:
    from tokentop.core.feed.runner import FeedRunner


class WatchedFeed(Protocol):
    @property
    def label(self) -> str:
        """Shown in the header: where the data comes from."""
        ...

    #: False while a remote feed cannot be reached
    connected: bool
    #: why it is disconnected (shown in the header)
    error: str | None
    #: the control API base URL and local token, when this feed can reach one
    control_url: str | None

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    def latest(self) -> Snapshot | None: ...

    async def recent_requests(self, view: str, key: str, limit: int = 20) -> list[dict[str, Any]]: ...


class ManualFeed:
    """Holds whatever snapshot was last :meth:`push`-ed."""

    def __init__(self, snapshot: Snapshot | None = None, *, label: str = "manual", requests: list[dict[str, Any]] | None = None) -> None:
        self.label = label
        self.connected = True
        self.error: str | None = None
        self.control_url: str | None = None
        self._snapshot = snapshot
        self.requests: list[dict[str, Any]] = list(requests or [])
        self.pulls = 0

    def push(self, snapshot: Snapshot) -> None:
        self._snapshot = snapshot

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None

    def latest(self) -> Snapshot | None:
        self.pulls += 1
        return self._snapshot

    async def recent_requests(self, view: str, key: str, limit: int = 20) -> list[dict[str, Any]]:
        return self.requests[:limit]


class EmbeddedFeed:
    """A feed running in this process on its own thread."""

    def __init__(self, runner: FeedRunner) -> None:
        self.runner = runner
        self.connected = True
        self.error: str | None = None
        self.control_url = runner.address

    @property
    def label(self) -> str:
        where = self.runner.address or "in-process only"
        return f"embedded feed {where}"

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        await asyncio.to_thread(self.runner.stop)

    def latest(self) -> Snapshot | None:
        try:
            snap = self.runner.snapshot()
        except Exception as exc:  # the feed thread died: say so rather than freeze silently
            self.connected = False
            self.error = f"embedded feed failed: {exc}"
            return None
        self.connected = True
        self.error = None
        return snap

    async def recent_requests(self, view: str, key: str, limit: int = 20) -> list[dict[str, Any]]:
        """Through the feed's public ``GET /v1/requests`` when it listens, else on its loop."""
        runner = self.runner
        if runner.address:
            return await _fetch_requests(runner.address, view, key, limit)

        async def take() -> list[dict[str, Any]]:
            return runner.service.recent_requests_json(view, key, limit)

        return await asyncio.to_thread(runner.run_coroutine, take())


def live_view_shape() -> StreamShape:
    """The stream the live view needs: its table views, sessions (kill flow, per-row sessions), burn
    series in compact form (integer micro-dollars: sparklines and the detail chart), as delta
    frames (only the rows that changed since the previous frame; a quiet row costs nothing)."""
    from tokentop.ui.views import TABLE_VIEWS

    dims = {spec.dim for spec in TABLE_VIEWS.values()} | {"sessions"}
    return StreamShape(views=tuple(sorted(dims)), series="compact", delta=1)


class RemoteFeed:
    """Another feed's snapshot stream; reconnects by itself when the feed restarts."""

    def __init__(self, url: str, *, retry_s: float = 1.0, clock: Callable[[], float] = time.time,
                 shape: StreamShape | None = None) -> None:
        self.url = url
        #: what is asked of the feed's ``WS /v1/stream``; ``None`` = :func:`live_view_shape` at start
        self.shape = shape
        self.label = f"feed {url}"
        self.connected = False
        self.error: str | None = "connecting…"
        self.control_url: str | None = url
        self.retry_s = retry_s
        self._clock = clock
        self._snapshot: Snapshot | None = None
        self._task: asyncio.Task[None] | None = None
        self.disconnected_since: float | None = None
        self.received = 0
        #: called (on the app's loop) when a snapshot arrives after none or after a disconnection,
        #: so the first frame is drawn at once rather than at the next tick
        self.on_fresh: Callable[[], None] | None = None

    async def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._consume(), name="tokentop-remote-stream")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except (asyncio.CancelledError, Exception):
                pass
            self._task = None

    async def _consume(self) -> None:
        from tokentop.core.feed.client import stream_snapshots

        if self.shape is None:
            self.shape = live_view_shape()
        async for item in stream_snapshots(self.url, retry_s=self.retry_s, shape=self.shape):
            if isinstance(item, Exception):
                if self.connected or self.disconnected_since is None:
                    self.disconnected_since = self._clock()
                self.connected = False
                self.error = _describe(item)
            else:
                fresh = self._snapshot is None or not self.connected
                self._snapshot = item
                self.connected = True
                self.error = None
                self.disconnected_since = None
                self.received += 1
                if fresh and self.on_fresh is not None:
                    self.on_fresh()

    def latest(self) -> Snapshot | None:
        return self._snapshot

    async def recent_requests(self, view: str, key: str, limit: int = 20) -> list[dict[str, Any]]:
        return await _fetch_requests(self.url, view, key, limit)


async def _fetch_requests(url: str, view: str, key: str, limit: int) -> list[dict[str, Any]]:
    """``GET /v1/requests`` of the feed at ``url``; raises ``FeedUnavailable`` / ``httpx.HTTPError``."""
    from tokentop.core.feed.client import FeedClient

    def fetch() -> list[dict[str, Any]]:
        with FeedClient(url, timeout=3.0) as client:
            r = client.get("/v1/requests", view=view, key=key, limit=limit)
            r.raise_for_status()
            return list(r.json().get("requests", []))

    return await asyncio.to_thread(fetch)


def _describe(exc: Exception) -> str:
    text = str(exc) or type(exc).__name__
    if "Connect call failed" in text or "refused" in text.lower():
        return "connection refused"
    return text if len(text) <= 80 else text[:79] + "…"
