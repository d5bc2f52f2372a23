"""A small emitter for agents written in Python: report each model request to a tokentop feed.

    from tokentop.emitter import Emitter

    emitter = Emitter(agent="my-agent")          # feed from TOKENTOP_FEED, else 127.0.0.1:7411
    emitter.emit(model="gpt-5", input_tokens=1200, output_tokens=300)
    ...
    emitter.close()                               # flushes what is queued (bounded wait)

It never blocks or breaks its agent: ``emit`` only appends to a bounded queue; a background thread
(or task, for :class:`AsyncEmitter`) posts batches as NDJSON. When the feed is down or slow, events
beyond ``max_queue`` are dropped and counted in ``emitter.dropped``; failed batches are retried
with backoff until they are dropped for age. Ids are generated here, so a retried batch is never
counted twice by the feed.
"""

from __future__ import annotations

import asyncio
import json
import os
import threading
import time
import uuid
from collections import deque
from typing import Any

import httpx

DEFAULT_FEED = "http://127.0.0.1:7411"

_FIELDS = (
    "model", "provider", "input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens",
    "cache_write_1h_tokens", "reasoning_tokens", "cost_usd", "latency_ms", "status", "ts", "project", "id",
    "revision", "speed", "web_searches",
)


__all__ = ["AsyncEmitter", "Emitter"]

def _feed_url(url: str | None) -> str:
    return (url or os.environ.get("TOKENTOP_FEED") or DEFAULT_FEED).rstrip("/")


def _http_args(url: str, asynchronous: bool) -> tuple[str, dict[str, Any]]:
    if url.startswith("unix:"):
        transport = (httpx.AsyncHTTPTransport if asynchronous else httpx.HTTPTransport)(uds=url[5:])
        return "http://tokentop", {"transport": transport}
    return url, {}


class _Base:
    #: set by the subclass: wakes its sender (a threading.Event or an asyncio.Event)
    _event: threading.Event | asyncio.Event
    def __init__(
        self,
        *,
        agent: str | None = None,
        session: str | None = None,
        feed: str | None = None,
        max_queue: int = 10_000,
        batch_size: int = 500,
        flush_interval_s: float = 0.5,
        timeout_s: float = 2.0,
        source: str = "tokentop.client",
    ) -> None:
        if max_queue < 1 or batch_size < 1:
            raise ValueError("max_queue and batch_size must be at least 1")
        self.agent = agent or os.environ.get("TOKENTOP_AGENT") or "unknown"
        self.session = session or os.environ.get("TOKENTOP_SESSION")
        self.feed = _feed_url(feed)
        self.max_queue = max_queue
        self.batch_size = batch_size
        self.flush_interval_s = flush_interval_s
        self.timeout_s = timeout_s
        self.source = source
        self.pid = os.getpid()
        self._queue: deque[dict[str, Any]] = deque()
        #: events dropped because the queue was full (the feed down or too slow)
        self.dropped = 0
        #: events the feed acknowledged (accepted, revised or duplicate)
        self.sent = 0
        #: events the feed rejected as invalid (see ``last_error``)
        self.rejected = 0
        self.last_error: str | None = None

    def emit(self, **fields: Any) -> bool:
        """Queue one request record (contract v1 fields). Returns False if it had to be dropped."""
        unknown = set(fields) - set(_FIELDS) - {"agent", "session", "pid", "host", "branch"}
        if unknown:
            raise TypeError(f"unknown event field(s): {', '.join(sorted(unknown))}")
        event = {"id": fields.pop("id", None) or uuid.uuid4().hex, "ts": fields.pop("ts", None) or time.time(),
                 "agent": self.agent, "pid": self.pid, "source": self.source}
        if self.session:
            event["session"] = self.session
        event.update({k: v for k, v in fields.items() if v is not None})
        if len(self._queue) >= self.max_queue:
            self.dropped += 1
            return False
        self._queue.append(event)
        self._wake()
        return True

    def _wake(self) -> None:
        """A full batch is waiting: wake the sender now instead of at the next flush interval."""
        if len(self._queue) >= self.batch_size:
            self._event.set()

    def _take_batch(self) -> list[dict[str, Any]]:
        batch = []
        while self._queue and len(batch) < self.batch_size:
            batch.append(self._queue.popleft())
        return batch

    def _requeue(self, batch: list[dict[str, Any]]) -> None:
        room = self.max_queue - len(self._queue)
        keep = batch[:max(room, 0)]
        self.dropped += len(batch) - len(keep)
        self._queue.extendleft(reversed(keep))

    def _account(self, response: httpx.Response, batch: list[dict[str, Any]]) -> bool:
        """True when the batch is settled (sent or rejected for good); False to retry."""
        if response.status_code in (202, 400):
            try:
                data = response.json()
            except ValueError:
                data = {}
            self.sent += int(data.get("accepted", 0)) + int(data.get("revised", 0)) + int(data.get("duplicates", 0))
            self.rejected += int(data.get("rejected", 0))
            if data.get("errors"):
                self.last_error = str(data["errors"][0].get("error"))
            return True
        if response.status_code == 413 and len(batch) > 1:
            self.batch_size = max(1, self.batch_size // 2)
            return False
        self.last_error = f"feed answered {response.status_code}"
        if 400 <= response.status_code < 500 and response.status_code != 429:
            self.rejected += len(batch)  # our fault, retrying cannot help
            return True
        return False

    @staticmethod
    def _body(batch: list[dict[str, Any]]) -> bytes:
        return "\n".join(json.dumps(e, separators=(",", ":")) for e in batch).encode()

    @property
    def queued(self) -> int:
        return len(self._queue)


class Emitter(_Base):
    """Thread-based emitter for synchronous code."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        base, extra = _http_args(self.feed, asynchronous=False)
        self._http = httpx.Client(base_url=base, timeout=self.timeout_s, **extra)
        self._event = threading.Event()
        self._stop = False
        self._thread = threading.Thread(target=self._run, name="tokentop-emitter", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        backoff = 0.5
        while True:
            self._event.wait(self.flush_interval_s)
            self._event.clear()
            while self._queue:
                batch = self._take_batch()
                try:
                    r = self._http.post("/v1/events", content=self._body(batch),
                                        headers={"content-type": "application/x-ndjson"})
                    settled = self._account(r, batch)
                except httpx.HTTPError as exc:
                    self.last_error = f"feed unreachable at {self.feed}: {type(exc).__name__}"
                    settled = False
                if not settled:
                    self._requeue(batch)
                    if self._stop:
                        return
                    time.sleep(backoff)
                    backoff = min(backoff * 2, 10.0)
                    break
                backoff = 0.5
            if self._stop and not self._queue:
                return

    def flush(self, timeout_s: float = 5.0) -> bool:
        """Wait until the queue is empty (True) or ``timeout_s`` passes (False)."""
        deadline = time.monotonic() + timeout_s
        self._event.set()
        while self._queue and time.monotonic() < deadline:
            self._event.set()
            time.sleep(0.01)
        return not self._queue

    def close(self, timeout_s: float = 2.0) -> None:
        """Flush what can be sent within ``timeout_s``, then stop; the rest counts as dropped."""
        self.flush(timeout_s)
        self._stop = True
        self._event.set()
        self._thread.join(timeout_s)
        self.dropped += len(self._queue)
        self._queue.clear()
        self._http.close()

    def __enter__(self) -> Emitter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class AsyncEmitter(_Base):
    """Task-based emitter for asyncio code. Create it inside a running loop; ``await close()``."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        base, extra = _http_args(self.feed, asynchronous=True)
        self._http = httpx.AsyncClient(base_url=base, timeout=self.timeout_s, **extra)
        self._event = asyncio.Event()
        self._stop = False
        self._task = asyncio.get_running_loop().create_task(self._run(), name="tokentop-emitter")

    async def _run(self) -> None:
        backoff = 0.5
        while True:
            try:
                await asyncio.wait_for(self._event.wait(), self.flush_interval_s)
            except asyncio.TimeoutError:
                pass
            self._event.clear()
            while self._queue:
                batch = self._take_batch()
                try:
                    r = await self._http.post("/v1/events", content=self._body(batch),
                                              headers={"content-type": "application/x-ndjson"})
                    settled = self._account(r, batch)
                except httpx.HTTPError as exc:
                    self.last_error = f"feed unreachable at {self.feed}: {type(exc).__name__}"
                    settled = False
                if not settled:
                    self._requeue(batch)
                    if self._stop:
                        return
                    await asyncio.sleep(backoff)
                    backoff = min(backoff * 2, 10.0)
                    break
                backoff = 0.5
            if self._stop and not self._queue:
                return

    async def flush(self, timeout_s: float = 5.0) -> bool:
        deadline = time.monotonic() + timeout_s
        while self._queue and time.monotonic() < deadline:
            self._event.set()
            await asyncio.sleep(0.01)
        return not self._queue

    async def close(self, timeout_s: float = 2.0) -> None:
        await self.flush(timeout_s)
        self._stop = True
        self._event.set()
        try:
            await asyncio.wait_for(self._task, timeout_s)
        except (asyncio.TimeoutError, asyncio.CancelledError):
            self._task.cancel()
        self.dropped += len(self._queue)
        self._queue.clear()
        await self._http.aclose()
