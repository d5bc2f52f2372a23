"""The ledger's retention: keep every event unless ``[ledger] retention_days`` asks otherwise.

The ledger is the durable record of what the agents spent; it outlives the agents' own logs (Claude
Code deletes transcripts after 30 days by default). So nothing is deleted by default
(``retention_days = 0``). When a retention is configured, a feed prunes at start
(:func:`apply_retention`) and says what it removed: a log line with the count and the date cut, the
snapshot's ``status.retention`` (:class:`RetentionStatus`), and the ledger's ``meta`` row
``last_prune`` that ``tokentop report`` reads to tell why days before the cut are empty.
"""

from __future__ import annotations

import calendar
import json
import logging
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    from tokentop.core.ledger import Ledger
    from tokentop.core.snapshot import Snapshot

log = logging.getLogger("tokentop.ledger")

#: the ledger ``meta`` key holding the last prune (:meth:`Pruned.to_json`)
LAST_PRUNE_KEY = "last_prune"


def _iso(ts: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))


def _num(value: object) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


@dataclass(frozen=True, slots=True)
class Pruned:
    """One prune: what a retention of ``retention_days`` removed, at ``at``."""

    retention_days: float
    #: events dated before this (epoch seconds) were deleted
    cut: float
    removed: int
    at: float

    @property
    def text(self) -> str:
        return (f"deleted {self.removed:,} events dated before {_iso(self.cut)} from the ledger "
                f"([ledger] retention_days = {self.retention_days:g}; 0 keeps everything)")

    def to_json(self) -> dict[str, Any]:
        return {"retention_days": self.retention_days, "removed": self.removed, "before": _iso(self.cut),
                "cut": self.cut, "at": _iso(self.at), "text": self.text}

    @classmethod
    def from_json(cls, obj: object) -> Pruned | None:
        if not isinstance(obj, dict):
            return None
        days, cut, removed = _num(obj.get("retention_days")), _num(obj.get("cut")), obj.get("removed")
        if days is None or cut is None or not isinstance(removed, int) or not isinstance(obj.get("at"), str):
            return None
        try:
            at = float(calendar.timegm(time.strptime(obj["at"], "%Y-%m-%dT%H:%M:%SZ")))
        except ValueError:
            return None
        return cls(days, cut, removed, at)


@dataclass(frozen=True, slots=True)
class RetentionStatus:
    """``status.retention`` of a feed whose ledger has a retention: the prune it made at start."""

    KEY: ClassVar[str] = "retention"

    pruned: Pruned

    def to_json(self) -> dict[str, Any]:
        return self.pruned.to_json()

    @classmethod
    def of(cls, snapshot: Snapshot | None) -> RetentionStatus | None:
        if snapshot is None:
            return None
        pruned = Pruned.from_json(snapshot.status.get(cls.KEY))
        return None if pruned is None else cls(pruned)


def apply_retention(ledger: Ledger, retention_days: float, now: float | None = None) -> Pruned | None:
    """Delete events older than ``retention_days`` (``None``, touching nothing, when it is 0: keep
    everything). The prune is logged and recorded in the ledger's ``meta`` table."""
    if retention_days <= 0:
        return None
    now = time.time() if now is None else now
    cut = now - retention_days * 86400.0
    removed = ledger.prune_before(cut)
    pruned = Pruned(retention_days, cut, removed, float(int(now)))  # whole seconds: as its JSON says
    ledger.set_meta(LAST_PRUNE_KEY, json.dumps(pruned.to_json()))
    if removed:
        log.warning("%s", pruned.text)
    else:
        log.info("retention: nothing older than %s in the ledger", _iso(cut))
    return pruned


def last_prune(ledger: Ledger) -> Pruned | None:
    """The last prune recorded in the ledger (``None``: never pruned)."""
    raw = ledger.get_meta(LAST_PRUNE_KEY)
    if raw is None:
        return None
    try:
        return Pruned.from_json(json.loads(raw))
    except ValueError:
        return None
