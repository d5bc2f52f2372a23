"""Which process is behind which session: records from ``tokentop run``, from events carrying ``pid``
(with ``host`` = this host), and from a discovery candidate the user picked.

Held by the feed; persisted in the ledger table ``control_processes`` so a restarted feed (or a
CLI acting without one) still knows. A stale record is harmless: every signal re-checks the
identity (pid + create time + uid) first, and records whose process is gone are dropped on load.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from typing import Any, Final, Iterator

from tokentop.core.control.process import CREATE_TIME_TOLERANCE_S, ProcessIdentity, Refused, alive, identify
from tokentop.core.ledger import Ledger

REGISTRY_DDL: Final = """
CREATE TABLE IF NOT EXISTS control_processes (
    session TEXT PRIMARY KEY,
    pid INTEGER NOT NULL,
    create_time REAL NOT NULL,
    uid INTEGER NOT NULL,
    cmd TEXT NOT NULL DEFAULT '',
    cwd TEXT,
    host TEXT,
    agent TEXT,
    source TEXT NOT NULL,
    registered_at REAL NOT NULL
);
"""

#: How many session→process records a feed keeps in memory (oldest dropped first).
MAX_RECORDS: Final = 10_000


@dataclass(frozen=True, slots=True)
class ProcessRecord:
    session: str
    identity: ProcessIdentity
    host: str | None
    agent: str | None
    #: "run" (tokentop run), "event" (pid on events), "picked" (a discovery candidate the user chose)
    source: str
    registered_at: float

    def facts(self) -> dict[str, object]:
        """What the aggregator shows on the session row."""
        return {"pid": self.identity.pid, "host": self.host, "cmd": self.identity.cmd, "cwd": self.identity.cwd,
                "start_time": self.identity.create_time, "uid": self.identity.uid, "source": self.source}

    def to_json(self) -> dict[str, Any]:
        return dict(self.identity.to_json(), session=self.session, host=self.host, agent=self.agent,
                    source=self.source, registered_at=self.registered_at)


class ProcessRegistry:
    def __init__(self, ledger: Ledger | None = None, *, max_records: int = MAX_RECORDS) -> None:
        self.ledger = ledger
        self.max_records = max_records
        self._records: dict[str, ProcessRecord] = {}
        if ledger is not None:
            ledger.ensure_schema(REGISTRY_DDL)

    def __len__(self) -> int:
        return len(self._records)

    def __iter__(self) -> Iterator[ProcessRecord]:
        return iter(list(self._records.values()))

    def get(self, session: str) -> ProcessRecord | None:
        return self._records.get(session)

    def has_binding(self, session: str, pid: int) -> bool:
        rec = self._records.get(session)
        return rec is not None and rec.identity.pid == pid

    def put(self, rec: ProcessRecord, *, persist: bool = True) -> None:
        self._records.pop(rec.session, None)  # re-inserted last: the newest binding is evicted last
        self._records[rec.session] = rec
        while len(self._records) > self.max_records:
            oldest = next(iter(self._records))
            self.remove(oldest)
        if persist and self.ledger is not None:
            ident = rec.identity
            self.ledger.call(lambda c: c.execute(
                "INSERT OR REPLACE INTO control_processes (session, pid, create_time, uid, cmd, cwd, host, agent, "
                "source, registered_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (rec.session, ident.pid, ident.create_time, ident.uid, ident.cmd, ident.cwd, rec.host, rec.agent,
                 rec.source, rec.registered_at),
            ))

    def remove(self, session: str) -> ProcessRecord | None:
        rec = self._records.pop(session, None)
        if rec is not None:
            if self.ledger is not None:
                self.ledger.call(lambda c: c.execute("DELETE FROM control_processes WHERE session = ?", (session,)))
        return rec

    def load(self) -> list[ProcessRecord]:
        """Read persisted records; keep those whose process still runs, delete the rest."""
        if self.ledger is None:
            return []

        def run(conn: sqlite3.Connection) -> list[Any]:
            return conn.execute(
                "SELECT session, pid, create_time, uid, cmd, cwd, host, agent, source, registered_at "
                "FROM control_processes ORDER BY registered_at"
            ).fetchall()

        kept: list[ProcessRecord] = []
        for r in self.ledger.call(run):
            rec = ProcessRecord(r[0], ProcessIdentity(r[1], r[2], r[3], r[4], r[5]), r[6], r[7], r[8], r[9])
            if alive(rec.identity):
                self.put(rec, persist=False)
                kept.append(rec)
            else:
                self.ledger.call(lambda c, s=rec.session: c.execute("DELETE FROM control_processes WHERE session = ?", (s,)))
        return kept


def identity_for_event_pid(pid: int, event_ts: float) -> ProcessIdentity | None:
    """The live process ``pid`` if it could have made an event at ``event_ts`` (it started before)."""
    try:
        ident = identify(pid)
    except Refused:
        return None
    if ident.create_time > event_ts + CREATE_TIME_TOLERANCE_S + 1.0:
        return None  # started after the event: the pid was reused since
    return ident
