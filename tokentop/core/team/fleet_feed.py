"""A fleet feed on this machine: the fleet ledger, its one-reader lock, and the runner.

:func:`build_fleet_runner` is what ``serve --fleet`` and ``tokentop --nats`` run. What the feed
serves is :data:`tokentop.core.feed.assemble.FLEET_FEED`; the consumer itself is
:class:`tokentop.core.team.fleet.FleetConsumer`.
"""

from __future__ import annotations

import dataclasses
import secrets
import time
from pathlib import Path
from typing import IO, Callable

from tokentop.config import Config, data_dir
from tokentop.core.feed.assemble import FLEET_FEED
from tokentop.core.feed.runner import FeedRunner
from tokentop.core.ledger import Ledger
from tokentop.core.team.fleet import default_consumer_name
from tokentop.core.team.settings import NatsSettings


def fleet_ledger_path(cfg: Config, settings: NatsSettings) -> Path:
    p = settings.fleet_ledger_path
    return Path(p).expanduser() if p else data_dir() / "fleet.db"


class FleetBusy(RuntimeError):
    """Another fleet view on this machine uses the same fleet ledger (and so the same durable)."""


class _LedgerLock:
    """An exclusive lock beside the fleet ledger: two views sharing one durable consumer would each
    get a part of the messages, so one ledger (and its durable) has one reader at a time."""

    def __init__(self, ledger_path: Path) -> None:
        self.path = Path(str(ledger_path) + ".lock")
        self._file: IO[str] | None = None

    def acquire(self) -> bool:
        try:
            import fcntl
        except ImportError:  # no flock (Windows): no guard
            return True
        self.path.parent.mkdir(parents=True, exist_ok=True)
        f = open(self.path, "a+")  # noqa: SIM115 - held until release()
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            f.close()
            return False
        self._file = f
        return True

    def release(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


#: A private view's durable is removed by the server this long after the view went away.
PRIVATE_CONSUMER_INACTIVE_DAYS = 1 / 24


def build_fleet_runner(
    cfg: Config,
    *,
    url: str | None = None,
    listen: str | None = None,
    ledger_path: str | Path | None = None,
    consumer: str | None = None,
    clock: Callable[[], float] = time.time,
    private_if_busy: bool = False,
) -> FeedRunner:
    """A feed (HTTP/WS for viewers) whose input is the fleet's stream: the parts in
    :data:`~tokentop.core.feed.assemble.FLEET_FEED` (``runner.parts.fleet`` is the consumer).

    It has no log sources (they would count this machine's events a second time: its own host feed
    already publishes them) and never republishes what it reads.

    The fleet ledger is locked while the view runs (released by :meth:`FeedRunner.stop`). When it is
    taken (another view on this machine), raises :class:`FleetBusy`, or with ``private_if_busy``
    runs a private view: an in-memory ledger and a durable of its own (removed by the server an hour
    after the view stops), reading the stream's retention window from its start.
    """
    settings = NatsSettings.from_config(cfg, url=url)
    path = Path(ledger_path) if ledger_path else fleet_ledger_path(cfg, settings)
    name = consumer or settings.consumer or default_consumer_name(cfg.host_name, str(path))
    ledger_target: str | Path = path
    lock = _LedgerLock(path)
    held = lock.acquire()
    if not held:
        if not private_if_busy:
            raise FleetBusy(f"another fleet view on this machine uses {path} (and its NATS consumer {name}); "
                            "stop it, or give this one its own [nats] fleet_ledger_path")
        ledger_target = ":memory:"
        name = f"{name}-private-{secrets.token_hex(4)}"
        settings = dataclasses.replace(settings, consumer_inactive_days=PRIVATE_CONSUMER_INACTIVE_DAYS)
    ledger: Ledger | None = None
    try:
        ledger = Ledger(ledger_target, retention_days=float(cfg.ledger.retention_days))
        runner = FeedRunner(cfg, listen=listen, ledger=ledger, clock=clock,
                            nats=dataclasses.replace(settings, consumer=name), attachments=FLEET_FEED)
    except BaseException:
        if ledger is not None:
            ledger.close()
        lock.release()
        raise
    if held:
        # after the feed's thread ended, so a view restarted right after stop() finds the ledger free
        runner.stop_callbacks.append(lock.release)
    return runner
