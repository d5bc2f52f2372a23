"""The feed's heart, free of HTTP: validate → dedupe → price → ledger → aggregate → snapshot.

Every way in (HTTP, WebSocket, OTLP, log sources, NATS) ends in :meth:`FeedService.ingest_objects`
(raw contract objects) or :meth:`FeedService.ingest_events` (events a source already built). Both
are coroutines on the feed's event loop; sources running in threads use
:meth:`FeedService.ingest_events_threadsafe`.

Exactly-once and revisions: the ledger is the authority. It keeps, per ``id``, the largest record
ever offered under the revision rule (:mod:`tokentop.core.revision`): a record with a new id is
stored, a larger one replaces the stored record (a *revision*), anything else is a duplicate. The
aggregator applies new records and the difference of revisions, so a retried POST, a re-read log
line or the same request seen through two sources counts once, with its fullest figures.

An in-memory map of today's (and yesterday's) ids to a packed order key of the record stored
(:func:`~tokentop.core.revision.memory_key`) answers the common repeats without touching SQLite:
an exact repeat (a retried POST) or a record no larger than the stored one (Claude Code 2.1.97+
writes the same usage on every block line of a response) is a duplicate at once. The key is a
lower bound of the stored record (the ledger only ever replaces a record by a larger one), so the
answer stays right when another process (``tokentop import``) writes the same ledger. The rest goes
to the ledger, which compares and upserts in its write transaction; the answer is sent after the
commit, so it is durable.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field, replace
from typing import Any, Awaitable, Callable, Iterable, Mapping, Sequence

from tokentop.core.aggregate import Aggregator, AggregatorConfig, RecentRequest
from tokentop.core.events import DEFAULT_MAX_FUTURE_S, Event, EventError, parse_event
from tokentop.core.ledger import Ledger, Revised
from tokentop.core.limits.windows import Window
from tokentop.core.pricing import Cost, Pricer
from tokentop.core.revision import known_no_larger, memory_key, memory_ts
from tokentop.core.snapshot import Snapshot

log = logging.getLogger("tokentop.feed")

#: Most agent-session -> run-session aliases kept (cleared when exceeded; only new sessions need one).
MAX_SESSION_ALIASES = 10_000

#: How many per-line errors an ingest answer lists (the counts always cover all of them).
MAX_REPORTED_ERRORS = 100


@dataclass
class IngestResult:
    """What one ingest did: ``accepted`` new records, ``revised`` records that replaced the stored
    record of their id, ``duplicates`` (repeats, or no larger than the stored record), ``rejected``."""

    accepted: int = 0
    duplicates: int = 0
    rejected: int = 0
    revised: int = 0
    errors: list[dict[str, Any]] = field(default_factory=list)

    def reject(self, line: int | None, error: str) -> None:
        self.rejected += 1
        if len(self.errors) < MAX_REPORTED_ERRORS:
            self.errors.append({"line": line, "error": error})

    def merge(self, other: IngestResult) -> None:
        self.accepted += other.accepted
        self.duplicates += other.duplicates
        self.revised += other.revised
        for err in other.errors:
            if len(self.errors) < MAX_REPORTED_ERRORS:
                self.errors.append(err)
        self.rejected += other.rejected

    @property
    def taken(self) -> bool:
        """Something in it was valid (accepted, revised or a known duplicate): the answer is 202."""
        return bool(self.accepted or self.duplicates or self.revised)

    def to_json(self) -> dict[str, Any]:
        return {"accepted": self.accepted, "revised": self.revised, "duplicates": self.duplicates,
                "rejected": self.rejected, "errors": self.errors}


@dataclass
class IngestCounters:
    accepted: int = 0
    duplicates: int = 0
    rejected: int = 0
    revised: int = 0

    def to_json(self) -> dict[str, int]:
        return {"accepted": self.accepted, "revised": self.revised, "duplicates": self.duplicates,
                "rejected": self.rejected}


def recent_request_json(item: RecentRequest) -> dict[str, Any]:
    """One recent request as the API and the detail screen show it: the event's contract fields plus
    ``cost_kind``, ``usd`` (``null`` when it could not be priced, never 0) and, when tokentop priced
    it in this run, ``priced_as`` (the price used: the model id, with ``(fast)`` for a fast-mode rate)."""
    cost = item.cost
    out = dict(item.event.to_dict(), cost_kind=cost.kind, usd=None if cost.pusd is None else float(cost.usd))  # type: ignore[arg-type]
    if cost.kind == "estimated" and cost.priced_as:
        out["priced_as"] = cost.priced_as
    return out


#: Called with every record the ledger stored in one ingest: new ones and revisions (the new record).
AcceptListener = Callable[[Sequence[tuple[Event, Cost]]], Awaitable[None] | None]
#: ``now -> windows``: the subscription windows every snapshot carries (set by the limits part)
LimitsProvider = Callable[[float], tuple[Window, ...]]


class FeedService:
    def __init__(
        self,
        ledger: Ledger,
        pricer: Pricer | None = None,
        aggregator: Aggregator | None = None,
        *,
        clock: Callable[[], float] = time.time,
        max_future_s: float = DEFAULT_MAX_FUTURE_S,
        host: str | None = None,
    ) -> None:
        self.ledger = ledger
        self.pricer = pricer or Pricer()
        self.aggregator = aggregator or Aggregator(AggregatorConfig())
        self.clock = clock
        self.max_future_s = max_future_s
        self.host = host
        self.counters = IngestCounters()
        self.status: dict[str, Any] = {}
        #: session an agent reports -> the session `tokentop run` registered for its process (from the
        #: ``tokentop.session`` OTel resource attribute); lets the control layer bind the agent's own
        #: session ids (Claude Code's) to the run's process. Bounded by :data:`MAX_SESSION_ALIASES`.
        self.session_aliases: dict[str, str] = {}
        self.listeners: list[AcceptListener] = []
        #: the subscription windows each snapshot carries (``None``: none; the limits part sets it)
        self.limits: LimitsProvider | None = None
        #: id -> memory_key of the record stored (a lower bound), for today's and yesterday's ids
        self._seen: dict[str, int] = {}
        self._seen_floor = 0.0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._lock = asyncio.Lock()

    # -- start-up ------------------------------------------------------------------------------
    def rebuild(self) -> int:
        """Replay today's events (and yesterday's ids) from the ledger. Returns events replayed."""
        now = self.clock()
        start, _ = self.aggregator.days.today(now)
        floor = start - 86400.0
        self._seen_floor = floor
        n = 0
        for stored in self.ledger.events_since(floor):
            self._seen[stored.event.id] = memory_key(stored.event)
            if stored.event.ts >= start or stored.event.ts >= now - 130:
                self.aggregator.apply(stored.event, stored.cost, now)
                n += 1
        self.status["replayed"] = n
        return n

    # -- ingest --------------------------------------------------------------------------------
    def parse_objects(self, objs: Iterable[tuple[int | None, Any]], result: IngestResult) -> list[Event]:
        now = self.clock()
        defaults = {"host": self.host} if self.host else None
        events: list[Event] = []
        for line, obj in objs:
            try:
                events.append(parse_event(obj, now=now, max_future_s=self.max_future_s, defaults=defaults))
            except EventError as exc:
                result.reject(line, str(exc))
        return events

    async def ingest_objects(self, objs: Iterable[tuple[int | None, Any]]) -> IngestResult:
        """Validate and ingest raw contract objects given as (line number, parsed JSON)."""
        result = IngestResult()
        events = self.parse_objects(objs, result)
        self.counters.rejected += result.rejected
        if events:
            result.merge(await self.ingest_events(events))
        return result

    async def ingest_events(self, events: Sequence[Event]) -> IngestResult:
        """Dedupe, price, store (new or revised) and aggregate events. Durable when this returns."""
        result = IngestResult()
        if not events:
            return result
        now = self.clock()
        self._roll_seen(now)
        seen = self._seen
        candidates: list[Event] = []
        #: what each candidate's id mapped to before this ingest (None: unknown), to undo on failure
        before: list[int | None] = []
        # Record each key as it passes: a repeat inside the batch is compared with it too.
        for e in events:
            eid = e.id
            key = memory_key(e)
            known = seen.get(eid)
            if known is not None and known_no_larger(key, known):
                result.duplicates += 1
                continue
            seen[eid] = key
            candidates.append(e)
            before.append(known)
        if not candidates:
            self.counters.duplicates += result.duplicates
            return result
        price = self.pricer.price
        priced = [(e, price(e)) for e in candidates]
        try:
            outcomes = await self.ledger.append_async(priced, received_at=now)
        except Exception:
            # not stored: a retry must not be taken for a duplicate. Newest first, so an id offered twice
            # in the batch ends as it was before the batch.
            for e, known in reversed(list(zip(candidates, before))):
                if known is None:
                    seen.pop(e.id, None)
                else:
                    seen[e.id] = known
            raise
        aggregator = self.aggregator
        now = self.clock()
        if outcomes.count(True) == len(outcomes):  # the common case: all new
            stored = priced
            for e, cost in priced:
                aggregator.apply(e, cost, now)
            result.accepted = len(priced)
        else:
            stored = []
            for item, outcome in zip(priced, outcomes):
                if outcome is True:
                    aggregator.apply(item[0], item[1], now)
                    result.accepted += 1
                    stored.append(item)
                elif isinstance(outcome, Revised):
                    prev = outcome.previous
                    aggregator.revise(prev.event, prev.cost, item[0], item[1], now)
                    result.revised += 1
                    stored.append(item)
                else:
                    result.duplicates += 1
        self.counters.accepted += result.accepted
        self.counters.revised += result.revised
        self.counters.duplicates += result.duplicates
        if stored:
            for listener in list(self.listeners):
                try:
                    outcome = listener(stored)
                    if asyncio.iscoroutine(outcome):
                        await outcome
                except Exception:  # a listener's bug never loses an acknowledged event
                    log.exception("accept listener %r failed", listener)
        return result

    def bind_loop(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop

    def ingest_events_threadsafe(self, events: Sequence[Event], timeout: float | None = None) -> IngestResult:
        """From another thread: ingest on the feed's loop and wait for the result."""
        if self._loop is None:
            raise RuntimeError("the feed service is not running on a loop yet")
        fut = asyncio.run_coroutine_threadsafe(self.ingest_events(events), self._loop)
        return fut.result(timeout)

    def _roll_seen(self, now: float) -> None:
        start, _ = self.aggregator.days.today(now)
        floor = start - 86400.0
        if floor > self._seen_floor:
            self._seen_floor = floor
            self._seen = {k: key for k, key in self._seen.items() if memory_ts(key) >= floor}

    # -- output --------------------------------------------------------------------------------
    def snapshot(self, now: float | None = None) -> Snapshot:
        now = self.clock() if now is None else now
        status = dict(self.status)
        status["ingest"] = self.counters.to_json()
        status["host"] = self.host
        snap = self.aggregator.snapshot(now, **status)
        if self.limits is not None:
            try:
                snap = replace(snap, limits=self.limits(now))
            except Exception:  # a limits bug never costs the snapshot
                log.exception("subscription windows failed")
        return snap

    def recent_requests_json(self, dim: str | None = None, key: str | None = None, limit: int = 50) -> list[dict[str, Any]]:
        """``GET /v1/requests``'s list (docs/api.md): newest first, one row of one view when given.
        Raises ``ValueError`` for an unknown view."""
        return [recent_request_json(item) for item in self.aggregator.recent_requests(dim, key, limit)]

    def alias_session(self, session: str, run_session: str) -> None:
        """Record that ``session`` (as the agent names it) runs in ``run_session``'s process."""
        if session == run_session or self.session_aliases.get(session) == run_session:
            return
        if len(self.session_aliases) >= MAX_SESSION_ALIASES:
            self.session_aliases.clear()
        self.session_aliases[session] = run_session

    def set_status(self, key: str, value: Mapping[str, Any] | Any) -> None:
        """Publish a JSON-able status entry in every snapshot (e.g. ``sources``, ``providers``)."""
        self.status[key] = value
