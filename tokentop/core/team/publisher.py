"""Every accepted event of this host, to JetStream subject ``tokentop.events.<host>``, exactly once.

Path of an event: the feed commits it to the ledger, and in the same SQLite transaction a trigger
queues its id in the outbox (see :mod:`tokentop.core.team.outbox`). This publisher drains the
outbox in commit order, publishing each event with ``Nats-Msg-Id`` = its id, up to
``publish_window`` at a time, and deletes outbox rows only up to the last one JetStream
acknowledged (every earlier one acknowledged too). So:

* NATS down: the host keeps working; the outbox grows; on reconnect the backlog goes out in order.
* Ack lost (or tokentop crashed after the publish and before the delete): the row is published
  again; JetStream drops the copy within its duplicate window, and the fleet's ledger (which keeps
  one record per event id, the largest offered) drops it after that, so nothing is counted twice.
* A revision (a larger record replacing a stored one) is queued by the outbox's update trigger and
  sent with ``Nats-Msg-Id`` ``<id>#<revision count>``: not a JetStream duplicate of the first
  record, and applied by the fleet's ledger with the same rule as on the host.
* A crash before the ledger commit: the feed never acknowledged the event, the emitter retries.

The feed's accept listener only wakes the publisher; the data path is the ledger.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from dataclasses import replace
from typing import Any, Callable, Sequence

import nats
from nats.aio.client import Client as NATS

from tokentop.core.events import Event
from tokentop.core.feed.service import FeedService
from tokentop.core.pricing import Cost
from tokentop.core.team import outbox
from tokentop.core.team.settings import NatsSettings, events_subject, heartbeat_subject, quiet_nats_error
from tokentop.core.team.status import NatsStatus
from tokentop.core.team.stream import StreamMismatch, ensure_stream
from tokentop.core.team.wire import MSG_ID_HEADER, encode, msg_id

log = logging.getLogger("tokentop.team")

RETRY_MIN_S = 0.2
RETRY_MAX_S = 5.0
IDLE_POLL_S = 1.0


class PublishFailed(RuntimeError):
    pass


class Publisher:
    def __init__(
        self,
        service: FeedService,
        settings: NatsSettings,
        host: str,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not settings.servers:
            raise ValueError("nats.url is empty: no NATS server to publish to")
        self.service = service
        self.ledger = service.ledger
        self.settings = settings
        self.host = host
        self.subject = events_subject(host)
        self.clock = clock
        self.published = 0
        self.duplicates = 0
        self.expired = 0
        self.failures = 0
        self.connected = False
        self.last_error: str | None = None
        self.stream_status: dict[str, Any] | None = None
        self.outbox_pending = 0
        self._wake = asyncio.Event()
        self._up = asyncio.Event()
        self.nc: NATS | None = None
        outbox.install(self.ledger)
        service.listeners.append(self._on_accept)
        self._report()

    # -- feed side -------------------------------------------------------------------------------
    def _on_accept(self, items: Sequence[tuple[Event, Cost]]) -> None:
        self._wake.set()

    def status(self) -> NatsStatus:
        return NatsStatus(
            connected=self.connected, last_error=self.last_error, url=self.settings.redacted_url(),
            subject=self.subject, stream=self.stream_status, outbox_pending=self.outbox_pending,
            published=self.published, duplicates=self.duplicates, expired=self.expired, failures=self.failures,
        )

    def _report(self) -> None:
        self.service.set_status(NatsStatus.KEY, self.status().to_json())

    def _error(self, message: str) -> None:
        self.last_error = message
        self.failures += 1
        log.warning("nats publisher: %s", message)
        self._report()

    # -- connection ------------------------------------------------------------------------------
    async def _disconnected(self) -> None:
        self.connected = False
        self._up.clear()
        self._report()

    async def _reconnected(self) -> None:
        self.connected = True
        self._up.set()
        self._report()

    async def _error_cb(self, exc: Exception) -> None:
        self.last_error = f"{type(exc).__name__}: {exc}"
        await quiet_nats_error(exc)

    async def run(self) -> None:
        """Connect (retrying forever), make sure the stream is there, drain the outbox forever."""
        retry = RETRY_MIN_S
        while True:
            nc: NATS | None = None
            try:
                nc = await nats.connect(**{
                    **self.settings.connect_options(), "name": f"tokentop-publisher-{self.host}",
                    "disconnected_cb": self._disconnected, "reconnected_cb": self._reconnected, "error_cb": self._error_cb,
                })
                self.nc = nc
                self.connected = True
                self._up.set()
                js = nc.jetstream(timeout=float(self.settings.ack_timeout_s))
                self.stream_status = await ensure_stream(js, self.settings)
                self.last_error = None
                self._report()
                retry = RETRY_MIN_S
                beat = asyncio.create_task(self._heartbeat(nc))
                try:
                    await self._drain(nc, js)
                finally:
                    beat.cancel()
            except asyncio.CancelledError:
                raise
            except StreamMismatch as exc:
                self._error(str(exc))
                retry = 30.0
            except Exception as exc:  # noqa: BLE001 - any failure: report, back off, reconnect
                self._error(f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__)
            finally:
                self.connected = False
                self.nc = None
                if nc is not None:
                    try:
                        await asyncio.wait_for(nc.close(), 2)
                    except (Exception, asyncio.TimeoutError):  # noqa: BLE001
                        pass
                self._report()
            await asyncio.sleep(retry)
            retry = min(retry * 2, RETRY_MAX_S)

    # -- the outbox ------------------------------------------------------------------------------
    async def _drain(self, nc: NATS, js: Any) -> None:
        retry = RETRY_MIN_S
        while not nc.is_closed:
            if not nc.is_connected:
                # publishing into the client's reconnect buffer only fills it: wait for the reconnect.
                # Clear first: the flag can still be set before the disconnect callback ran, and
                # waiting on a set event never yields (a busy loop that starves the feed's loop).
                self._up.clear()
                try:
                    await asyncio.wait_for(self._up.wait(), IDLE_POLL_S)
                except asyncio.TimeoutError:
                    pass
                continue
            rows = await outbox.read_async(self.ledger, self.settings.publish_window)
            if not rows:
                self._wake.clear()
                rows = await outbox.read_async(self.ledger, self.settings.publish_window)  # no lost wake-up
                if not rows:
                    self.outbox_pending = 0
                    self._report()
                    try:
                        await asyncio.wait_for(self._wake.wait(), IDLE_POLL_S)
                    except asyncio.TimeoutError:
                        pass
                    continue
            try:
                await self._publish(js, rows)
                retry = RETRY_MIN_S
            except PublishFailed as exc:
                self._error(str(exc))
                await asyncio.sleep(retry)
                retry = min(retry * 2, RETRY_MAX_S)
            self.outbox_pending = await outbox.count_async(self.ledger)
            self._report()

    async def _publish(self, js: Any, rows: list[outbox.Pending]) -> None:
        futures: list[asyncio.Future[Any] | None] = []
        error: str | None = None
        try:
            for p in rows:
                if p.event is None or p.cost is None:
                    futures.append(None)  # pruned from the ledger before it could be sent
                    continue
                event = p.event if p.event.host else replace(p.event, host=self.host)
                futures.append(await js.publish_async(
                    self.subject, encode(event, p.cost, p.accepted_at),
                    headers={MSG_ID_HEADER: msg_id(event.id, p.revisions)},
                ))
        except Exception as exc:  # noqa: BLE001 - connection lost mid-batch, buffer full...
            error = f"publish failed: {type(exc).__name__}: {exc}"
        live = [f for f in futures if f is not None]
        pending: set[asyncio.Future[Any]] = set()
        if live:
            _, pending = await asyncio.wait(live, timeout=float(self.settings.ack_timeout_s))
        last_ok: int | None = None
        broken = False
        for p, fut in zip(rows, futures):
            if broken:
                break
            if fut is None:
                self.expired += 1
                last_ok = p.seq
                continue
            if not fut.done():
                error = error or f"no JetStream ack within {self.settings.ack_timeout_s} s"
                broken = True
            elif fut.cancelled() or fut.exception() is not None:
                exc = None if fut.cancelled() else fut.exception()
                error = error or f"publish not acknowledged: {type(exc).__name__}: {exc}"
                broken = True
            else:
                if getattr(fut.result(), "duplicate", False):
                    self.duplicates += 1
                else:
                    self.published += 1
                last_ok = p.seq
        for fut in pending:
            fut.cancel()
        for fut in live:  # retrieve every outcome, so none is logged as "never retrieved"
            if fut.done() and not fut.cancelled():
                fut.exception()
        if last_ok is not None:
            await outbox.delete_through(self.ledger, last_ok)
        if error is not None or (len(futures) < len(rows)):
            raise PublishFailed(error or "publish interrupted")

    async def _heartbeat(self, nc: NATS) -> None:
        subject = heartbeat_subject(self.host)
        while True:
            if nc.is_connected:
                try:
                    await nc.publish(subject, json.dumps({
                        "host": self.host, "ts": self.clock(), "outbox_pending": self.outbox_pending,
                        "published": self.published,
                    }).encode())
                except Exception:  # noqa: BLE001 - a lost heartbeat is only a late status
                    pass
            await asyncio.sleep(float(self.settings.heartbeat_s))
