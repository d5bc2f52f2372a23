"""The fleet view: every host's events from JetStream, aggregated by the same code as local events.

A :class:`FleetConsumer` reads the stream through a durable pull consumer and hands each batch to
``FeedService.ingest_events`` (dedupe by id, ledger, aggregator); the event's ``host`` field gives
the host dimension. It acknowledges each message (explicit acks, never ack-all, which would skip a
delivery lost in flight) only after the fleet's ledger committed it, so a crash in between means a
redelivery, which the ledger's merge by id drops. On every (re)start a durable with unacknowledged
deliveries is recreated from its ack floor, so a restarted view resumes at once and without gaps.

Why one durable consumer per fleet view (named after the host and the fleet ledger), not a shared
one and not an ephemeral ordered consumer:

* a shared durable pull consumer splits messages among its readers: each view would see a part;
* an ephemeral consumer forgets its position, so every start would re-read the whole retention
  window (days of events) before the view is current;
* a durable of its own resumes exactly where this view's ledger stopped, and several views (each
  with its own ledger and therefore its own name) watch the same fleet independently. Abandoned
  views' consumers are removed by the server after ``consumer_inactive_days``.

The consumer is bound to its ledger: when the ledger is new (or was deleted) but the server still
has the durable, the durable is recreated from the start of the stream, so a fresh ledger is never
missing what an old one had consumed.

Header data (``status["fleet"]``, a :class:`~tokentop.core.team.status.FleetStatus`): hosts that
reported (an event or a heartbeat) in the last minute, and per host its lag: fleet receive time
minus the time the host accepted the event.

A fleet feed is assembled in :mod:`tokentop.core.team.fleet_feed` (the ledger lock, private views)
from :data:`tokentop.core.feed.assemble.FLEET_FEED`.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import time
from pathlib import Path
from typing import Any, Callable

import nats
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from nats.js.errors import NotFoundError

from tokentop.core.events import Event
from tokentop.core.feed.service import FeedService
from tokentop.core.ledger import Ledger
from tokentop.core.pricing import Cost, Pricer
from tokentop.core.team.settings import EVENTS_PREFIX, HEARTBEAT_PREFIX, NatsSettings, subject_token
from tokentop.core.team.status import FleetHost, FleetStatus
from tokentop.core.team.stream import StreamMismatch, ensure_stream
from tokentop.core.team.wire import WireError, decode_message

log = logging.getLogger("tokentop.team")

REPORTING_WINDOW_S = 60.0
FETCH_BATCH = 1000
FETCH_WAIT_S = 1.0
MAX_ACK_PENDING = FETCH_BATCH * 8
ACK_WAIT_S = 10.0
RETRY_MIN_S = 0.2
RETRY_MAX_S = 5.0


class CarriedCostPricer:
    """Prices an event at the cost its host accepted it at (carried on the wire), so fleet totals
    equal the sum of the hosts' totals exactly; anything without a carried cost is priced locally.

    Costs are carried per received record (keyed by the object, not the event id): one batch may
    hold a record and its revision, each with its own cost."""

    def __init__(self, fallback: Pricer) -> None:
        self.fallback = fallback
        #: id() of a received Event -> its host's cost (the events are alive while this is filled)
        self.carried: dict[int, Cost] = {}

    def price(self, event: Event) -> Cost:
        cost = self.carried.get(id(event))
        return cost if cost is not None else self.fallback.price(event)

    def __getattr__(self, name: str) -> Any:  # the rest of Pricer's interface (tables, lookups)
        return getattr(self.fallback, name)


def default_consumer_name(host: str, ledger_path: str) -> str:
    """The durable of a fleet view: one per (host, fleet ledger), see the module docstring."""
    digest = hashlib.sha256(str(Path(ledger_path).expanduser().resolve()).encode()).hexdigest()[:10]
    return f"fleet-{subject_token(host)}-{digest}"


class HostState:
    __slots__ = ("events", "last_seen", "lag_s", "last_heartbeat", "outbox_pending")

    def __init__(self) -> None:
        self.events = 0
        self.last_seen = 0.0
        self.lag_s: float | None = None
        self.last_heartbeat = 0.0
        self.outbox_pending: int | None = None


class FleetConsumer:
    def __init__(
        self,
        service: FeedService,
        settings: NatsSettings,
        *,
        consumer: str,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not settings.servers:
            raise ValueError("nats.url is empty: no NATS server to read the fleet from")
        self.service = service
        self.settings = settings
        self.consumer = consumer
        self.clock = clock
        if not isinstance(service.pricer, CarriedCostPricer):
            service.pricer = CarriedCostPricer(service.pricer)  # type: ignore[assignment]
        self.pricer: CarriedCostPricer = service.pricer  # type: ignore[assignment]
        self.hosts: dict[str, HostState] = {}
        self.received = 0
        self.bad_messages = 0
        self.last_bad: str | None = None
        self.pending: int | None = None
        self.connected = False
        self.last_error: str | None = None
        self.caught_up = asyncio.Event()
        self._report()

    # -- status ----------------------------------------------------------------------------------
    def status(self) -> FleetStatus:
        now = self.clock()
        hosts: dict[str, FleetHost] = {}
        for name, h in sorted(self.hosts.items()):
            last = max(h.last_seen, h.last_heartbeat)
            hosts[name] = FleetHost(
                reporting=now - last <= REPORTING_WINDOW_S,
                last_report_s_ago=round(now - last, 3) if last else None,
                lag_s=None if h.lag_s is None else round(h.lag_s, 3),
                events=h.events,
                outbox_pending=h.outbox_pending,
            )
        return FleetStatus(
            url=self.settings.redacted_url(), stream=self.settings.stream, consumer=self.consumer,
            connected=self.connected, hosts_reporting=sum(h.reporting for h in hosts.values()),
            reporting_window_s=REPORTING_WINDOW_S, hosts=hosts, received=self.received, pending=self.pending,
            bad_messages=self.bad_messages, last_bad=self.last_bad, last_error=self.last_error,
        )

    def _report(self) -> None:
        self.service.set_status(FleetStatus.KEY, self.status().to_json())

    # -- consuming -------------------------------------------------------------------------------
    @property
    def private(self) -> bool:
        """A private view (another view held the fleet ledger): an in-memory ledger and a durable of
        its own."""
        return self.service.ledger.path == ":memory:"

    async def run(self) -> None:
        retry = RETRY_MIN_S
        while True:
            nc: NATS | None = None
            try:
                nc = await nats.connect(**self.settings.connect_options(), name=f"tokentop-{self.consumer}")
                self.connected = True
                js = nc.jetstream(timeout=float(self.settings.ack_timeout_s))
                await ensure_stream(js, self.settings)
                await self._subscribe(js)
                await nc.subscribe(f"{HEARTBEAT_PREFIX}.>", cb=self._on_heartbeat)
                self.last_error = None
                retry = RETRY_MIN_S
                await self._consume(nc)
            except asyncio.CancelledError:
                raise
            except StreamMismatch as exc:
                self.last_error = str(exc)
                retry = 30.0
            except Exception as exc:  # noqa: BLE001 - report, back off, reconnect
                self.last_error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
                log.warning("fleet consumer: %s", self.last_error)
            finally:
                self.connected = False
                if nc is not None:
                    try:
                        await asyncio.wait_for(nc.close(), 2)
                    except (Exception, asyncio.TimeoutError):  # noqa: BLE001
                        pass
                self._report()
            await asyncio.sleep(retry)
            retry = min(retry * 2, RETRY_MAX_S)

    async def _subscribe(self, js: Any) -> None:
        """Make sure this view's durable exists (recreated from the start for a new ledger)."""
        ledger: Ledger = self.service.ledger
        meta_key = f"nats_consumer:{self.settings.stream}"
        bound = await asyncio.to_thread(ledger.get_meta, meta_key)
        if bound != self.consumer:
            # this ledger never consumed through this durable: start it over from the stream's start
            try:
                await js.delete_consumer(self.settings.stream, self.consumer)
            except NotFoundError:
                pass
        info = None
        try:
            info = await js.consumer_info(self.settings.stream, self.consumer)
        except NotFoundError:
            pass
        start_seq: int | None = None
        if info is not None and (info.num_ack_pending or 0) > 0:
            # messages delivered to an earlier run (stopped, or lost in flight on a reconnect) and
            # never acknowledged: start again right after the last acknowledged one, now, rather
            # than waiting ack_wait for their redelivery; what the ledger already has is deduped
            start_seq = (info.ack_floor.stream_seq if info.ack_floor else 0) + 1
            await js.delete_consumer(self.settings.stream, self.consumer)
            info = None
        if info is None:
            await js.add_consumer(self.settings.stream, ConsumerConfig(
                durable_name=self.consumer,
                deliver_policy=DeliverPolicy.ALL if start_seq is None else DeliverPolicy.BY_START_SEQUENCE,
                opt_start_seq=start_seq,
                # explicit, per message: a delivery lost in flight is redelivered, never acknowledged
                # implicitly by a later ack (ack-all would skip it: a gap)
                ack_policy=AckPolicy.EXPLICIT,
                ack_wait=ACK_WAIT_S,
                max_ack_pending=MAX_ACK_PENDING,
                filter_subject=f"{EVENTS_PREFIX}.>",
                inactive_threshold=float(self.settings.consumer_inactive_days) * 86400.0,
            ))
        if bound != self.consumer:
            await asyncio.to_thread(ledger.set_meta, meta_key, self.consumer)

    async def _consume(self, nc: NATS) -> None:
        """Pull in batches; messages land in a buffer from a subscription callback (no per-message
        task, unlike the client's ``fetch``), and are ingested and acknowledged batch by batch."""
        puller = _Puller(nc, self.settings.stream, self.consumer)
        await puller.start()
        try:
            while not nc.is_closed:
                msgs = await puller.take(FETCH_WAIT_S)
                if msgs:
                    await self.ingest(msgs)
                elif puller.idle:
                    if nc.is_connected:
                        self.pending = 0
                        self.caught_up.set()
                    self._report()
        finally:
            await puller.stop()

    async def ingest(self, msgs: list[Msg]) -> None:
        now = self.clock()
        events: list[Event] = []
        carried = self.pricer.carried
        for m in msgs:
            try:
                received, bad = decode_message(m.data, now)
            except WireError as exc:
                received, bad = [], [str(exc)]
            for reason in bad:  # a bad entry of a batch is skipped alone: the others count
                self.bad_messages += 1
                self.last_bad = f"{m.subject}: {reason}"
                log.warning("fleet: skipped a message on %s: %s", m.subject, reason)
            for got in received:
                events.append(got.event)
                carried[id(got.event)] = got.cost
                host = got.event.host or m.subject.rsplit(".", 1)[-1]
                h = self.hosts.get(host)
                if h is None:
                    h = self.hosts[host] = HostState()
                h.events += 1
                h.last_seen = now
                h.lag_s = max(0.0, now - got.accepted_at)
        try:
            await self.service.ingest_events(events)  # durable in the fleet ledger when this returns
        finally:
            carried.clear()
        self.received += len(events)
        for m in msgs:  # only now: the fleet ledger has them (bad ones are acknowledged as skipped)
            await m.ack()
        try:
            self.pending = msgs[-1].metadata.num_pending
        except Exception:  # noqa: BLE001 - metadata is informative only
            self.pending = None
        if self.pending == 0:
            self.caught_up.set()
        self._report()

    async def _on_heartbeat(self, msg: Msg) -> None:
        try:
            beat = json.loads(msg.data)
            host = str(beat["host"])
        except (ValueError, KeyError, TypeError):
            return
        h = self.hosts.get(host)
        if h is None:
            h = self.hosts[host] = HostState()
        h.last_heartbeat = self.clock()
        pending = beat.get("outbox_pending")
        h.outbox_pending = pending if isinstance(pending, int) else None


class ConsumerGone(RuntimeError):
    pass


class _Puller:
    """Pull requests for one durable, answered into one inbox subscription.

    One request (``FETCH_BATCH`` messages, expiring after ``FETCH_WAIT_S``) is outstanding at a
    time; the next is sent as soon as the current one is answered in full or ends (no messages,
    expired), so delivery overlaps with ingest. A request lost to a reconnect is re-sent when nothing
    arrived for a while. The server bounds what is buffered here by the consumer's max_ack_pending.
    """

    def __init__(self, nc: NATS, stream: str, consumer: str) -> None:
        self.nc = nc
        self.subject = f"$JS.API.CONSUMER.MSG.NEXT.{stream}.{consumer}"
        self.inbox = nc.new_inbox()
        self.buf: list[Msg] = []
        self.ready = asyncio.Event()
        self.remaining = 0
        self.sent_at = 0.0
        self.idle = False
        self.gone: str | None = None
        self.sub: Any = None

    async def start(self) -> None:
        self.sub = await self.nc.subscribe(self.inbox, cb=self._on_msg, pending_msgs_limit=MAX_ACK_PENDING * 2)
        await self._pull()

    async def stop(self) -> None:
        try:
            await self.sub.unsubscribe()
        except Exception:  # noqa: BLE001 - connection already gone
            pass

    async def _pull(self) -> None:
        self.remaining = FETCH_BATCH
        self.sent_at = time.monotonic()
        expires_ns = int(FETCH_WAIT_S * 1e9)
        await self.nc.publish(self.subject, json.dumps({"batch": FETCH_BATCH, "expires": expires_ns}).encode(),
                              reply=self.inbox)

    async def _on_msg(self, msg: Msg) -> None:
        status = msg.headers.get("Status") if msg.headers else None
        if status is None:
            self.buf.append(msg)
            self.idle = False
            self.remaining -= 1
            if self.remaining <= 0:
                await self._pull()
            self.ready.set()
            return
        if status == "100":  # idle heartbeat / flow control
            return
        description = (msg.headers or {}).get("Description", "")
        if status == "409" and "deleted" in description.lower():
            self.gone = f"consumer deleted: {description}"
        elif status in ("404", "408") and not self.buf:
            self.idle = True
        if status in ("404", "408", "409") and self.gone is None:
            await self._pull()  # that request is over: keep one outstanding
        self.ready.set()

    async def take(self, timeout: float) -> list[Msg]:
        if not self.buf:
            self.ready.clear()
            try:
                await asyncio.wait_for(self.ready.wait(), timeout)
            except asyncio.TimeoutError:
                pass
        if self.gone:
            raise ConsumerGone(self.gone)
        if not self.buf and self.nc.is_connected and time.monotonic() - self.sent_at > FETCH_WAIT_S * 2:
            self.idle = True
            await self._pull()  # the outstanding request was lost (reconnect): ask again
        msgs, self.buf = self.buf, []
        return msgs
