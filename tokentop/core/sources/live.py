"""Log sources inside a feed: backfill, then follow the stores live (zero set-up).

Attached to every host feed by :func:`tokentop.core.sources.attach.attach`: every feed — ``tokentop
serve`` or the one the live view embeds — reads the enabled agents' stores (``formats.py``). All
source work runs on one thread of its own; events reach the feed through
``FeedService.ingest_events`` on the feed's loop, in batches, so a large backfill never blocks the
loop. While the backfill runs, the snapshot status carries ``import`` = ``{"state": "importing",
"percent": 42, "text": "importing 42 %"}``.

Watching uses ``watchfiles`` (inotify/FSEvents) on the sources' directories; when it cannot run
(or ``sources.watch = false``) a cheap poll reads only recently active stores every
``poll_interval_s``. Either way a full scan every :data:`RESCAN_S` seconds finds new roots and
drops deleted files, and every :data:`~tokentop.core.sources.protocol.TICK_S` the sources check the
stores no watcher follows (``Source.poll_tick``: a SQLite database's size and mtime). The loop knows no agent: it drives a
:class:`~tokentop.core.sources.protocol.Source` (``sourceset.py``).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import os
import threading
import time
from typing import TYPE_CHECKING, Any, Final

from tokentop.core.events import Event
from tokentop.core.sources.protocol import TICK_S
from tokentop.core.sources.settings import SourceSettings
from tokentop.core.sources.sourceset import SourceSet
from tokentop.core.sources.status import ImportStatus, SourcesStatus

if TYPE_CHECKING:
    from tokentop.core.feed.service import FeedService
    from tokentop.core.ledger import Ledger

log = logging.getLogger("tokentop.sources")

RESCAN_S: Final = 10.0
#: With a watcher, the full scan is only a safety net (new roots, missed events): less often.
RESCAN_WATCHING_S: Final = 30.0
STATUS_EVERY_S: Final = 2.0


class Stopped(Exception):
    pass


class LiveSources:
    def __init__(self, service: FeedService, ledger: Ledger, settings: SourceSettings) -> None:
        self.service = service
        self.settings = settings
        self.sources = SourceSet.open(settings, ledger, host=service.host, clock=service.clock, workers=1)
        self.stop_event = threading.Event()
        self.loop: asyncio.AbstractEventLoop | None = None
        self.mode = "starting"
        self.thread: threading.Thread | None = None
        self._last_status = 0.0
        self._last_tick = 0.0

    # -- the feed's side -------------------------------------------------------------------------
    async def run(self) -> None:
        self.loop = asyncio.get_running_loop()
        self.thread = threading.Thread(target=self._main, name="tokentop-sources", daemon=True)
        self.thread.start()
        try:
            while self.thread.is_alive():
                await asyncio.sleep(0.5)
        finally:
            self.stop_event.set()
            await asyncio.to_thread(self.thread.join, 5.0)

    def _set_status(self, key: str, value: Any) -> None:
        if self.loop is not None and not self.loop.is_closed():
            try:
                self.loop.call_soon_threadsafe(self.service.set_status, key, value)
            except RuntimeError:
                pass

    def _sink(self, events: list[Event]) -> None:
        assert self.loop is not None
        fut = asyncio.run_coroutine_threadsafe(self.service.ingest_events(events), self.loop)
        while True:
            try:
                fut.result(0.5)
                return
            except concurrent.futures.TimeoutError:
                if self.stop_event.is_set():
                    fut.cancel()
                    raise Stopped from None

    # -- the thread ------------------------------------------------------------------------------
    def _main(self) -> None:
        try:
            self._backfill()
            if self.settings.watch and self._watch():
                return
            self._poll_forever()
        except Stopped:
            pass
        except Exception:  # a source bug never takes the feed down; it shows in the status
            log.exception("log sources stopped")
            self._set_status(SourcesStatus.KEY, SourcesStatus.failed().to_json())

    def _progress(self, done: int, total: int) -> None:
        pct = 100 if total <= 0 else min(100, int(done * 100 / total))
        self._set_status(ImportStatus.KEY, ImportStatus.importing(pct).to_json())
        if self.stop_event.is_set():
            raise Stopped

    def _backfill(self) -> None:
        self._set_status(ImportStatus.KEY, ImportStatus.importing(0).to_json())
        t0 = time.monotonic()
        n = self.sources.poll(self._sink, progress=self._progress)
        self._set_status(ImportStatus.KEY, ImportStatus.finished(n, time.monotonic() - t0).to_json())
        self._publish(force=True)

    def _publish(self, force: bool = False) -> None:
        now = time.monotonic()
        if force or now - self._last_status >= STATUS_EVERY_S:
            self._last_status = now
            status = SourcesStatus(self.mode, tuple(self.settings.enabled), self.sources.stats.to_json())
            self._set_status(SourcesStatus.KEY, status.to_json())

    def _existing_roots(self) -> list[str]:
        # a watched path may be a file (a root naming one export file): watchfiles follows it too
        return sorted({str(d) for d in self.sources.watch_dirs() if d.exists()})

    def _watch(self) -> bool:
        """Follow changes with watchfiles until stopped (True) or roots change / it fails (False)."""
        try:
            import watchfiles
        except ImportError:
            return False
        while not self.stop_event.is_set():
            roots = self._existing_roots()
            if not roots:
                changed = self.mode != "waiting for log dirs"
                self.mode = "waiting for log dirs"
                self._publish(force=changed)
                deadline = time.monotonic() + RESCAN_S
                while time.monotonic() < deadline:
                    if self.stop_event.wait(TICK_S):
                        return True
                    self._tick()
                    self._publish()
                self.sources.poll(self._sink)
                continue
            self.mode = "watching"
            self._publish(force=True)
            last_scan = time.monotonic()
            caught_up = False
            try:
                for changes in watchfiles.watch(*roots, stop_event=self.stop_event, yield_on_timeout=True,
                                                rust_timeout=int(TICK_S * 1000), debounce=50, step=20,
                                                raise_interrupt=False):
                    if not caught_up:
                        # the watcher is up now: read what was written between the last scan and its start
                        # (else a file created then would wait for the next full scan)
                        caught_up = True
                        self.sources.poll(self._sink)
                    if changes:
                        self.sources.poll_changed(self._sink, {p for _, p in changes})
                    self._tick()
                    if time.monotonic() - last_scan >= RESCAN_WATCHING_S:
                        last_scan = time.monotonic()
                        self.sources.poll(self._sink)
                        if self._existing_roots() != roots:
                            break
                    self._publish()
                else:
                    return True
            except Stopped:
                raise
            except Exception as exc:  # e.g. out of inotify watches: fall back to polling
                log.warning("file watcher failed (%s); polling instead", exc)
                return False
        return True

    def _tick(self) -> None:
        now = time.monotonic()
        if now - self._last_tick >= TICK_S * 0.8:  # a busy watcher yields more often than that
            self._last_tick = now
            self.sources.poll_tick(self._sink)

    def _poll_forever(self) -> None:
        self.mode = "polling"
        self._publish(force=True)
        last_scan = 0.0
        last_recent = time.monotonic()
        interval = self.settings.poll_interval_s
        while not self.stop_event.wait(min(interval, TICK_S)):
            self._tick()
            now = time.monotonic()
            if now - last_scan >= RESCAN_S:
                last_scan = now
                last_recent = now
                self.sources.poll(self._sink)
            elif now - last_recent >= interval:
                last_recent = now
                self.sources.poll_recent(self._sink)
            self._publish()

