"""The NATS outbox: ledger rows of accepted events JetStream has not acknowledged yet.

SQLite triggers on the ledger's ``events`` table enqueue every newly stored event, and every
revision of a stored one (a larger record replacing it, see :mod:`tokentop.core.revision`), in the
SAME transaction that stores it, so there is no moment (no crash window) where a record is committed
locally but missing from the outbox; the record itself is read back from ``events`` by id, as it is
when it is sent. ``INSERT OR IGNORE`` of a duplicate id fires neither trigger, so a duplicate is
never enqueued. Order: ``seq`` is the order of commit. The publisher sends a revision under its own
``Nats-Msg-Id`` (:func:`tokentop.core.team.wire.msg_id` with the revision count), so JetStream does
not drop it as a copy of the first record; the fleet applies it with the same rule (idempotent).

The trigger exists only while team mode is on for this ledger (:func:`install`); :func:`uninstall`
drops it (rows already queued stay and are sent when team mode comes back).
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from typing import Final

from tokentop.core.events import EVENT_FIELDS, ROW_FIELDS, Event, event_from_row
from tokentop.core.ledger import Ledger
from tokentop.core.pricing import Cost

TABLE: Final = "nats_outbox"
_DDL: Final = f"""
CREATE TABLE IF NOT EXISTS {TABLE} (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id TEXT NOT NULL
);
"""
_TRIGGER: Final = f"""
CREATE TRIGGER IF NOT EXISTS {TABLE}_enqueue AFTER INSERT ON events
BEGIN
    INSERT INTO {TABLE}(event_id) VALUES (NEW.id);
END;
CREATE TRIGGER IF NOT EXISTS {TABLE}_enqueue_revision AFTER UPDATE OF revisions ON events
BEGIN
    INSERT INTO {TABLE}(event_id) VALUES (NEW.id);
END;
"""



@dataclass(frozen=True, slots=True)
class Pending:
    seq: int
    event_id: str
    #: None when the event is no longer in the ledger (pruned by retention before it could be sent)
    event: Event | None
    cost: Cost | None
    accepted_at: float
    #: how often the record was revised when it was read (0: as first stored)
    revisions: int = 0


def install(ledger: Ledger) -> None:
    ledger.ensure_schema(_DDL + _TRIGGER)


def uninstall(ledger: Ledger) -> None:
    # queued rows stay; no table is created
    ledger.ensure_schema(f"DROP TRIGGER IF EXISTS {TABLE}_enqueue; DROP TRIGGER IF EXISTS {TABLE}_enqueue_revision;")


def _reader(limit: int, after_seq: int):  # noqa: ANN202
    cols = ", ".join(f"e.{c}" for c in (*ROW_FIELDS, "revisions"))
    q = f"SELECT o.seq, o.event_id, {cols} FROM {TABLE} o LEFT JOIN events e ON e.id = o.event_id WHERE o.seq > ? ORDER BY o.seq LIMIT ?"
    n = len(EVENT_FIELDS)

    def run(conn: sqlite3.Connection) -> list[Pending]:
        out = []
        for r in conn.execute(q, (after_seq, limit)):
            seq, eid, vals = r[0], r[1], r[2:]
            if vals[0] is None:
                out.append(Pending(seq, eid, None, None, 0.0))
                continue
            out.append(Pending(seq, eid, event_from_row(vals), Cost(vals[n], vals[n + 1]), vals[n + 2], vals[n + 3]))
        return out

    return run


def read(ledger: Ledger, limit: int, after_seq: int = 0) -> list[Pending]:
    """The oldest ``limit`` queued events after ``after_seq``, in commit order."""
    return ledger.call(_reader(limit, after_seq))


async def read_async(ledger: Ledger, limit: int, after_seq: int = 0) -> list[Pending]:
    return await ledger.call_async(_reader(limit, after_seq))


async def delete_through(ledger: Ledger, seq: int) -> None:
    """Forget every row up to ``seq`` (all acknowledged by JetStream)."""
    await ledger.call_async(lambda c: c.execute(f"DELETE FROM {TABLE} WHERE seq <= ?", (seq,)))


def _count(conn: sqlite3.Connection) -> int:
    lo, hi = conn.execute(f"SELECT MIN(seq), MAX(seq) FROM {TABLE}").fetchone()
    return 0 if lo is None else hi - lo + 1  # seqs are contiguous: only the publisher deletes, from the front


def count(ledger: Ledger) -> int:
    """Rows waiting (O(log n): min/max of the key, not a scan)."""
    return ledger.call(_count)


async def count_async(ledger: Ledger) -> int:
    return await ledger.call_async(_count)
