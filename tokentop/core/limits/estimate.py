"""The last resort: a 5-hour window estimated from the ledger, labelled "estimated".

Used for an agent only when no official figure (Codex log, Claude Code statusline, OAuth usage)
is known for it. The rules are the peers' (docs/limits.md):

* **Blocks** (ccusage): the agent's requests, in time order; a block starts at its first request
  floored to the UTC hour and lasts 5 hours; a request at or after the block's end, or 5 hours or
  more after the previous request, starts a new block. A block is *active* while
  ``now − last request < 5 h`` and ``now < end``.
* **Limit** (claude-monitor's P90): of the blocks completed in the last 192 hours, those that
  reached 95 % of a common plan limit (44k, 88k, 220k tokens) — or all of them when none did;
  their 90th percentile (``statistics.quantiles(n=10)[8]``), never below 44k tokens. At least
  :data:`MIN_BLOCKS` completed blocks are needed; before that there is no estimate.
* **Used** = the active block's quota tokens / the limit; resets at the block's end.

Tokens are quota tokens (:func:`~tokentop.core.limits.usage.quota_tokens`: no cache reads).
Incremental: a full read of the last 8 days happens at start and every :data:`RESCAN_S`; between
those, accepted events extend the blocks (an event older than the newest block marks the agent
for a rescan instead).
"""

from __future__ import annotations

import sqlite3
import statistics
from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable, Final, Iterable, Sequence

from tokentop.core.limits.usage import QUOTA_TOKENS_SQL, RECENT_S, quota_tokens
from tokentop.core.limits.windows import FIVE_HOURS_MIN, Observation

if TYPE_CHECKING:
    from tokentop.core.events import Event
    from tokentop.core.ledger import Ledger
    from tokentop.core.pricing import Cost

BLOCK_S: Final = FIVE_HOURS_MIN * 60.0
#: completed blocks older than this do not teach the limit (claude-monitor: the last 192 h)
LOOKBACK_S: Final = 192 * 3600.0
#: claude-monitor's common plan limits; a block within 95 % of one "hit a limit"
COMMON_LIMITS: Final = (44_000, 88_000, 220_000)
HIT_FRACTION: Final = 0.95
#: the learned limit is never below this (claude-monitor's custom-plan default)
FLOOR_TOKENS: Final = 44_000
#: completed blocks needed before anything is estimated
MIN_BLOCKS: Final = 2
#: a full re-read of the look-back this often ...
RESCAN_S: Final = 600.0
#: ... and after an event arrived out of order, but not sooner than this after the last one (a
#: backfill hands over weeks of events in file order, not time order)
DIRTY_RESCAN_S: Final = 30.0
#: the account an estimate is published under
ACCOUNT: Final = "local"
SOURCE: Final = "estimated"


def floor_hour(ts: float) -> float:
    return ts - ts % 3600.0


@dataclass
class Block:
    start: float
    first: float
    last: float
    tokens: int = 0

    @property
    def end(self) -> float:
        return self.start + BLOCK_S

    def active(self, now: float) -> bool:
        return now - self.last < BLOCK_S and now < self.end


def extend(blocks: list[Block], ts: float, tokens: int) -> bool:
    """Add one request at ``ts`` (not older than the newest block's last request) to ``blocks``.
    ``False`` (nothing added) for a request older than that: the caller re-reads instead."""
    cur = blocks[-1] if blocks else None
    if cur is not None and ts < cur.last:
        return False
    if cur is None or ts >= cur.end or ts - cur.last >= BLOCK_S:
        cur = Block(floor_hour(ts), ts, ts)
        blocks.append(cur)
    cur.tokens += tokens
    cur.last = ts
    return True


def blocks_of(points: Iterable[tuple[float, int]]) -> list[Block]:
    """Blocks of ``(ts, tokens)`` requests given in time order."""
    blocks: list[Block] = []
    for ts, tokens in points:
        extend(blocks, ts, tokens)
    return blocks


def learned_limit(blocks: Sequence[Block], now: float) -> int | None:
    """The P90 limit from the completed blocks of the last :data:`LOOKBACK_S`, or ``None`` with
    fewer than :data:`MIN_BLOCKS` of them."""
    done = [b.tokens for b in blocks if not b.active(now) and b.start >= now - LOOKBACK_S and b.tokens > 0]
    if len(done) < MIN_BLOCKS:
        return None
    hits = [t for t in done if any(t >= HIT_FRACTION * limit for limit in COMMON_LIMITS)]
    data = hits or done
    p90 = statistics.quantiles(data, n=10)[8] if len(data) >= 2 else data[0]
    return max(int(p90), FLOOR_TOKENS)


@dataclass
class AgentBlocks:
    agent: str
    blocks: list[Block] = field(default_factory=list)
    limit: int | None = None
    #: (ts, tokens) of the last :data:`RECENT_S` (the estimate's burn)
    recent: deque[tuple[float, int]] = field(default_factory=deque)
    scanned_at: float = float("-inf")
    dirty: bool = False
    #: event id -> quota tokens of the newest block's records: a revised record (the same id with
    #: more usage) adds only its difference
    ids: dict[str, int] = field(default_factory=dict)

    def add(self, eid: str, ts: float, tokens: int, now: float) -> None:
        old = self.ids.get(eid)
        if old is not None:
            self.ids[eid] = tokens
            self.blocks[-1].tokens += tokens - old
            tokens -= old
        else:
            before = len(self.blocks)
            if not extend(self.blocks, ts, tokens):
                self.dirty = True
                return
            if len(self.blocks) != before:  # a block was completed: the limit may move
                self.ids = {}
                self.limit = learned_limit(self.blocks, now)
            self.ids[eid] = tokens
        if ts >= now - RECENT_S:
            self.recent.append((ts, tokens))
            while self.recent and self.recent[0][0] < now - RECENT_S:
                self.recent.popleft()

    def observation(self, now: float) -> Observation | None:
        """The estimated 5-hour window now, or ``None`` (no active block, or nothing learned yet)."""
        if not self.blocks or self.limit is None:
            return None
        block = self.blocks[-1]
        if not block.active(now):
            return None
        used = block.tokens / self.limit * 100.0
        return Observation(self.agent, ACCOUNT, "5h", used, block.end, FIVE_HOURS_MIN, SOURCE, now,
                           limit_tokens=self.limit)

    def burn(self, now: float) -> float | None:
        """Percent per second over the last :data:`RECENT_S` inside the active block."""
        if not self.blocks or self.limit is None or not self.blocks[-1].active(now):
            return None
        start = max(self.blocks[-1].start, now - RECENT_S)
        while self.recent and self.recent[0][0] < start:
            self.recent.popleft()
        span = now - start
        if span <= 0:
            return None
        return sum(t for _, t in self.recent) / self.limit * 100.0 / span


class Estimator:
    """5-hour block estimates for the configured agents, kept from the ledger and accepted events."""

    def __init__(self, ledger: Ledger | None, agents: Iterable[str]) -> None:
        self.ledger = ledger
        self.agents: dict[str, AgentBlocks] = {a: AgentBlocks(a) for a in agents}

    def on_accepted(self, items: Sequence[tuple[Event, Cost]], now: float) -> None:
        agents = self.agents
        for e, _ in items:
            state = agents.get(e.agent)
            if state is not None:
                state.add(e.id, e.ts, quota_tokens(e), now)

    def due(self, now: float) -> list[str]:
        return [a for a, s in self.agents.items()
                if now - s.scanned_at >= RESCAN_S or (s.dirty and now - s.scanned_at >= DIRTY_RESCAN_S)]

    @staticmethod
    def _scan(agent: str, now: float) -> Callable[[sqlite3.Connection], AgentBlocks]:
        def run(conn: sqlite3.Connection) -> AgentBlocks:
            state = AgentBlocks(agent, scanned_at=now)
            rows = conn.execute(
                f"SELECT id, ts, {QUOTA_TOKENS_SQL} FROM events WHERE ts >= ? AND agent = ? ORDER BY ts",
                (now - LOOKBACK_S - BLOCK_S, agent))
            for eid, ts, tokens in rows:
                before = len(state.blocks)
                extend(state.blocks, float(ts), int(tokens or 0))
                if len(state.blocks) != before:
                    state.ids = {}
                state.ids[eid] = int(tokens or 0)
                if ts >= now - RECENT_S:
                    state.recent.append((float(ts), int(tokens or 0)))
            state.limit = learned_limit(state.blocks, now)
            return state

        return run

    async def rescan(self, now: float) -> int:
        """Re-read the agents that are due (on the ledger's thread). Returns how many."""
        if self.ledger is None:
            return 0
        done = 0
        for agent in self.due(now):
            state = await self.ledger.call_async(self._scan(agent, now))
            self.agents[agent] = state
            done += 1
        return done

    def rescan_now(self, now: float) -> None:
        """The same, blocking (a feed built only to answer once, e.g. ``tokentop check``)."""
        if self.ledger is None:
            return
        for agent in self.due(now):
            self.agents[agent] = self.ledger.call(self._scan(agent, now))

    def observation(self, agent: str, now: float) -> Observation | None:
        state = self.agents.get(agent)
        return None if state is None else state.observation(now)

    def burn(self, agent: str, now: float) -> float | None:
        state = self.agents.get(agent)
        return None if state is None else state.burn(now)
