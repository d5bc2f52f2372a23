"""The audit log: every control action tokentop attempted (or refused) and what came of it.

Lives in the ledger as the table ``control_audit`` (owned by this module). ``tokentop log``
prints it; the feed also keeps the last few outcomes in snapshot status (``control.outcomes``).
"""

from __future__ import annotations

import sqlite3
from dataclasses import asdict, dataclass
from typing import Any, Final

from tokentop.core.ledger import Ledger

AUDIT_DDL: Final = """
CREATE TABLE IF NOT EXISTS control_audit (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    ts REAL NOT NULL,
    session TEXT NOT NULL,
    action TEXT NOT NULL,
    origin TEXT NOT NULL,
    pid INTEGER,
    signal TEXT,
    ok INTEGER NOT NULL,
    code TEXT,
    message TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS control_audit_ts ON control_audit(ts);
"""

_COLUMNS: Final = ("ts", "session", "action", "origin", "pid", "signal", "ok", "code", "message")


@dataclass(frozen=True, slots=True)
class AuditRecord:
    ts: float
    session: str
    action: str
    #: who asked: "api", "cli", "ui", "policy:<rule>", ...
    origin: str
    pid: int | None
    signal: str | None
    ok: bool
    #: refusal / failure code ("recycled", "other_user", ...), None on success
    code: str | None
    message: str
    seq: int | None = None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


class AuditLog:
    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger
        ledger.ensure_schema(AUDIT_DDL)

    def _insert(self, conn: sqlite3.Connection, rec: AuditRecord) -> int:
        cur = conn.execute(
            f"INSERT INTO control_audit ({', '.join(_COLUMNS)}) VALUES ({', '.join('?' * len(_COLUMNS))})",
            (rec.ts, rec.session, rec.action, rec.origin, rec.pid, rec.signal, int(rec.ok), rec.code, rec.message),
        )
        return int(cur.lastrowid or 0)

    def record(self, rec: AuditRecord) -> int:
        return self.ledger.call(lambda c: self._insert(c, rec))

    async def record_async(self, rec: AuditRecord) -> int:
        return await self.ledger.call_async(lambda c: self._insert(c, rec))

    def recent(self, limit: int = 50, session: str | None = None) -> list[AuditRecord]:
        """Newest last (reading order), at most ``limit`` records."""
        def run(conn: sqlite3.Connection) -> list[Any]:
            q = f"SELECT seq, {', '.join(_COLUMNS)} FROM control_audit"
            args: list[Any] = []
            if session is not None:
                q += " WHERE session = ?"
                args.append(session)
            q += " ORDER BY seq DESC LIMIT ?"
            args.append(limit)
            return conn.execute(q, args).fetchall()

        rows = self.ledger.call(run)
        return [
            AuditRecord(ts=r[1], session=r[2], action=r[3], origin=r[4], pid=r[5], signal=r[6], ok=bool(r[7]),
                        code=r[8], message=r[9], seq=r[0])
            for r in reversed(rows)
        ]
