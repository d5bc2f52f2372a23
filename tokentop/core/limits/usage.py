"""Who is eating the window: each session's tokens since a window started, on this host.

For every window the snapshot shows (5-hour windows: the ``5H%`` column), :class:`WindowUsage`
keeps the window's tokens per session since the window's start: one ledger query over the window
when it first appears (and again on a slow timer, :data:`RESYNC_S`, which also corrects anything
an incremental update missed), and between queries every accepted event of that agent adds to
its session — O(windows) per event, no rescan per tick. A revised record (the same id with more
usage: a streamed response's final usage after its first sight) adds only its difference.

Tokens here are *quota tokens* (:func:`quota_tokens`): input and output without cache reads.
Cache reads dominate an agent's raw token count (often 90 %) but are the cheapest part of a
request, and Anthropic's documented API rate limits do not count them; the same measure feeds
the 5-hour estimate (:mod:`.estimate`).
"""

from __future__ import annotations

import sqlite3
import time
from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable, Final, Iterable, Sequence

from tokentop.core.limits.windows import Share

if TYPE_CHECKING:
    from tokentop.core.events import Event
    from tokentop.core.ledger import Ledger
    from tokentop.core.pricing import Cost

#: a window's session totals are re-read from the ledger this often
RESYNC_S: Final = 60.0
#: the "recent" token rate (the ledger's burn inside a window) looks back this far
RECENT_S: Final = 900.0
#: sessions listed per window in the snapshot (the rest still count in ``tokens``)
MAX_SHARES: Final = 200
#: SQL for :func:`quota_tokens`
QUOTA_TOKENS_SQL: Final = "(input_tokens - cache_read_tokens + output_tokens)"


def quota_tokens(e: Event) -> int:
    """Input (uncached and cache writes) plus output: everything but cache reads."""
    return e.input_tokens - e.cache_read_tokens + e.output_tokens


def session_key(session: str | None) -> str:
    return session or "(none)"


@dataclass
class Tally:
    agent: str
    start: float
    sessions: dict[str, int] = field(default_factory=dict)
    total: int = 0
    #: (ts, tokens) of the last :data:`RECENT_S`, for the ledger's burn inside the window
    recent: deque[tuple[float, int]] = field(default_factory=deque)
    loaded_at: float = 0.0
    #: event id -> quota tokens counted for it: a revised record (the same id, more usage) adds
    #: only its difference
    ids: dict[str, int] = field(default_factory=dict)

    def add(self, eid: str, session: str, ts: float, tokens: int, now: float) -> None:
        old = self.ids.get(eid)
        self.ids[eid] = tokens
        if old is not None:
            tokens -= old
            if not tokens:
                return
        self.sessions[session] = self.sessions.get(session, 0) + tokens
        self.total += tokens
        if ts >= now - RECENT_S:
            self.recent.append((ts, tokens))
            while self.recent and self.recent[0][0] < now - RECENT_S:
                self.recent.popleft()

    def recent_tokens(self, now: float) -> int:
        recent = self.recent
        while recent and recent[0][0] < now - RECENT_S:
            recent.popleft()
        return sum(t for _, t in recent)

    def shares(self) -> tuple[Share, ...]:
        total = self.total
        if total <= 0:
            return ()
        top = sorted(self.sessions.items(), key=lambda kv: (-kv[1], kv[0]))[:MAX_SHARES]
        return tuple(Share(s, n, n / total) for s, n in top if n > 0)


class WindowUsage:
    """Session totals for the windows being shown, kept from the ledger and accepted events."""

    def __init__(self, ledger: Ledger | None, clock: Callable[[], float] = time.time) -> None:
        self.ledger = ledger
        self.clock = clock
        self.tallies: dict[tuple[str, float], Tally] = {}

    def want(self, wanted: Iterable[tuple[str, float]]) -> list[tuple[str, float]]:
        """Keep tallies for these (agent, window start) pairs only; returns the new ones (to load)."""
        wanted = {(a, round(s)) for a, s in wanted}
        for key in [k for k in self.tallies if k not in wanted]:
            del self.tallies[key]
        fresh = [k for k in wanted if k not in self.tallies]
        for agent, start in fresh:
            self.tallies[(agent, start)] = Tally(agent, float(start))
        return fresh

    def get(self, agent: str, start: float) -> Tally | None:
        return self.tallies.get((agent, round(start)))

    def due(self, now: float) -> list[tuple[str, float]]:
        """Tallies never loaded, or not re-read for :data:`RESYNC_S`."""
        return [k for k, t in self.tallies.items() if now - t.loaded_at >= RESYNC_S]

    # -- events -------------------------------------------------------------------------------------
    def on_accepted(self, items: Sequence[tuple[Event, Cost]]) -> None:
        """The feed's accept listener: add each event to its agent's windows."""
        if not self.tallies:
            return
        now = self.clock()
        tallies = list(self.tallies.values())
        for e, _ in items:
            for t in tallies:
                if e.agent == t.agent and e.ts >= t.start:
                    t.add(e.id, session_key(e.session), e.ts, quota_tokens(e), now)

    # -- the ledger ---------------------------------------------------------------------------------
    @staticmethod
    def _query(agent: str, start: float, now: float) -> Callable[[sqlite3.Connection], Tally]:
        def run(conn: sqlite3.Connection) -> Tally:
            tally = Tally(agent, start, loaded_at=now)
            rows = conn.execute(f"SELECT id, session, ts, {QUOTA_TOKENS_SQL} FROM events WHERE ts >= ? AND agent = ? "
                                f"ORDER BY ts", (start, agent))
            for eid, session, ts, tokens in rows:
                tally.add(eid, session_key(session), float(ts), int(tokens or 0), now)
            return tally

        return run

    async def resync(self, now: float) -> int:
        """Re-read the tallies that are due from the ledger (on the ledger's thread). Returns how
        many were read."""
        if self.ledger is None:
            return 0
        done = 0
        for agent, start in self.due(now):
            tally = await self.ledger.call_async(self._query(agent, float(start), now))
            if (agent, start) in self.tallies:  # still wanted
                self.tallies[(agent, start)] = tally
                done += 1
        return done

    def resync_now(self, now: float) -> None:
        """The same, blocking (a feed built only to answer once, e.g. ``tokentop check``)."""
        if self.ledger is None:
            return
        for agent, start in self.due(now):
            self.tallies[(agent, start)] = self.ledger.call(self._query(agent, float(start), now))
