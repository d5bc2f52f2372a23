"""A proxy in its own process enforcing a feed's blocks at the API (the budget stop).

``tokentop proxy`` sending its events to a feed over HTTP has no policy of its own: the feed
decides what is blocked (its budgets, runaway and window rules, a person's ``b`` or ``tokentop
block``). :class:`FollowedBlocks` reads the feed's ``GET /v1/blocks`` (with the local token, naming
this proxy in ``X-Tokentop-Proxy`` so the feed knows a proxy enforces its blocks) every
``[proxy] blocks_poll_s`` and keeps the answer as an immutable
:class:`~tokentop.core.proxy.gate.BlockIndex`: the gate's check on each request is the same few
dict lookups as in the feed's own process, never a round trip. Unchanged answers cost a 304
(``ETag`` / ``If-None-Match``).

When the feed cannot be read, the last blocks read stay in force for :func:`stale_after` seconds
(a feed restarting must not let a blocked runaway through); after that the proxy **fails open** by
default — requests pass unchecked by the feed's rules, with a warning in the log, in
``tokentop proxy status`` and in the proxy's status (``feed_blocks``) — because a metering proxy
that stops every agent whenever the feed restarts would be switched off. ``[proxy]
on_feed_unreachable = "closed"`` makes it answer every metered request 503 (retryable: not a
budget stop, no tokentop rule refused it) until the feed answers again.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any, Callable, Final

import httpx

from tokentop.core.control.blocks import ApiBlock, index_of
from tokentop.core.proxy.gate import Block, BlockIndex, GateRequest

log = logging.getLogger("tokentop.proxy")

BLOCKS_PATH: Final = "/v1/blocks"
#: the last blocks read stay in force at least this long while the feed does not answer
STALE_MIN_S: Final = 5.0
#: one read of the blocks may take at most this long
READ_TIMEOUT_S: Final = 2.0


def stale_after(poll_s: float) -> float:
    """Seconds without a successful read after which the proxy stops trusting the last one."""
    return max(STALE_MIN_S, 5.0 * poll_s)


class FollowedBlocks:
    """A :class:`~tokentop.core.proxy.gate.Gate` mirroring a feed's blocks (see the module docstring)."""

    def __init__(self, feed_url: str, token: str | None, *, poll_s: float = 1.0, fail_closed: bool = False,
                 me: str = "", stale_s: float | None = None, monotonic: Callable[[], float] = time.monotonic,
                 clock: Callable[[], float] = time.time) -> None:
        self.feed_url = feed_url
        self.poll_s = poll_s
        #: the last blocks read stay in force this long while the feed does not answer
        self.stale_s = stale_after(poll_s) if stale_s is None else stale_s
        self.fail_closed = fail_closed
        #: this proxy's URL, sent as ``X-Tokentop-Proxy`` (set once the proxy is bound)
        self.me = me
        self.monotonic = monotonic
        self.clock = clock
        self.index = BlockIndex((), clock)
        #: ``starting`` (nothing read yet), ``ok``, ``unreachable``, ``refused`` (the token),
        #: ``unsupported`` (a feed without /v1/blocks)
        self.state = "starting"
        self.error: str | None = None
        self.blocks = 0
        self.polls = 0
        self.failures = 0
        self.last_ok_at: float | None = None
        self._last_ok: float | None = None
        #: the feed's blocks are no longer trusted: failing open (or closed)
        self.failing = False
        self._etag: str | None = None
        headers = {"accept": "application/json"}
        if token:
            headers["x-tokentop-token"] = token
        if feed_url.startswith("unix:"):
            self._http = httpx.AsyncClient(base_url="http://tokentop", transport=httpx.AsyncHTTPTransport(uds=feed_url[5:]),
                                           headers=headers, timeout=READ_TIMEOUT_S, trust_env=False)
        else:
            if not feed_url.startswith(("http://", "https://")):
                raise ValueError(f"feed URL must start with http://, https:// or unix:, got {feed_url!r}")
            self._http = httpx.AsyncClient(base_url=feed_url.rstrip("/"), headers=headers, timeout=READ_TIMEOUT_S,
                                           trust_env=False)
        self._closed_block = Block(
            "feed-unreachable",
            f"tokentop proxy cannot read the budget blocks of the feed at {feed_url}, and is set to refuse requests "
            "until it can ([proxy] on_feed_unreachable = \"closed\")",
            "start the feed (`tokentop serve`), or set [proxy] on_feed_unreachable = \"open\"",
            status=503, retry=True,
        )

    # -- the gate ---------------------------------------------------------------------------------------
    def check(self, request: GateRequest) -> Block | None:
        if self.failing and self.fail_closed:
            return self._closed_block
        return self.index.check(request)

    # -- reading the feed -------------------------------------------------------------------------------
    async def poll_once(self) -> None:
        self.polls += 1
        headers = {"x-tokentop-proxy": self.me} if self.me else {}
        if self._etag is not None and not self.failing:
            headers["if-none-match"] = self._etag
        try:
            r = await self._http.get(BLOCKS_PATH, headers=headers)
        except httpx.HTTPError as exc:
            self._failed("unreachable", f"the feed at {self.feed_url} does not answer ({type(exc).__name__})")
            return
        if r.status_code == 304:
            self._ok()
            return
        if r.status_code in (401, 403):
            self._failed("refused", f"the feed at {self.feed_url} refused the local token ({r.status_code}): is it "
                                    "another user's feed?")
            return
        if r.status_code == 404:
            self._failed("unsupported", f"the feed at {self.feed_url} has no {BLOCKS_PATH} (an older tokentop?)")
            return
        try:
            data = r.json()
        except ValueError:
            data = None
        raw = data.get("blocks") if isinstance(data, dict) else None
        if r.status_code != 200 or not isinstance(raw, list):
            self._failed("unreachable", f"the feed at {self.feed_url} answered {r.status_code} to {BLOCKS_PATH}")
            return
        entries = [b for b in (ApiBlock.from_json(item) for item in raw) if b is not None]
        self.index = index_of(entries, self.clock)
        self.blocks = len(entries)
        self._etag = r.headers.get("etag")
        self._ok()

    async def prime(self) -> None:
        """One read before the proxy serves its first request (bounded: never holds the start up)."""
        try:
            await asyncio.wait_for(self.poll_once(), READ_TIMEOUT_S + 1.0)
        except asyncio.TimeoutError:
            self._failed("unreachable", f"the feed at {self.feed_url} did not answer within {READ_TIMEOUT_S + 1:g} s")

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self.poll_s)
            try:
                await self.poll_once()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # never let a bug here stop the proxy
                log.exception("proxy: reading the feed's blocks failed")
                self._failed("unreachable", f"reading the feed's blocks failed: {type(exc).__name__}")

    async def aclose(self) -> None:
        await self._http.aclose()

    def _ok(self) -> None:
        recovered = self.failing or self.state not in ("ok", "starting")
        self.state, self.error = "ok", None
        self._last_ok = self.monotonic()
        self.last_ok_at = self.clock()
        self.failing = False
        if recovered:
            log.warning("proxy: reading the blocks of the feed at %s again (%d active): the budget stop is back",
                        self.feed_url, self.blocks)

    def _failed(self, state: str, error: str) -> None:
        self.failures += 1
        first = self.state != state
        self.state, self.error = state, error
        if self.failing:
            return
        if self._last_ok is not None and self.monotonic() - self._last_ok < self.stale_s:
            if first:
                log.warning("proxy: %s; keeping the %d blocks read last for up to %g s", error, self.blocks, self.stale_s)
            return
        self.failing = True
        self.index = BlockIndex((), self.clock)
        self.blocks = 0
        if self.fail_closed:
            log.warning("proxy: %s: refusing every metered request with 503 until it answers "
                        "([proxy] on_feed_unreachable = \"closed\")", error)
        else:
            log.warning("proxy: %s: requests pass unchecked by the feed's budget stop until it answers "
                        "(fail open; [proxy] on_feed_unreachable = \"closed\" refuses them instead)", error)

    def status(self) -> dict[str, Any]:
        """``feed_blocks`` of the proxy's status (docs/proxy.md)."""
        failing = ("closed" if self.fail_closed else "open") if self.failing else None
        return {"feed": self.feed_url, "state": self.state, "blocks": self.blocks, "failing": failing,
                "error": self.error, "last_ok_at": self.last_ok_at, "polls": self.polls, "failures": self.failures,
                "poll_s": self.poll_s}
