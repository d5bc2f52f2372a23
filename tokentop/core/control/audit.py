"""The audit log: every control action tokentop attempted (or refused) and what came of it.

Lives in the ledger as the table ``control_audit`` (owned by this module). ``tokentop log``
prints it; the feed also keeps the last few outcomes in snapshot status (``control.outcomes``).

The ``action`` column holds the control port's action (``terminate``: TERM first, KILL after the
grace; ``kill``: KILL at once; ``pause``; ``resume``). People asked for a *kill* with a signal, so
the log shows :attr:`AuditRecord.requested` — ``kill (TERM)``, ``kill (KILL)``, ``pause``,
``resume`` — derived from ``action`` and ``signal`` (no column of its own: records written before
it read the same). The JSON carries both.

Blocks at the API (the budget stop, :mod:`.blocks`) are audited here too: ``action`` ``block`` or
``unblock``, and ``scope`` says what the ``session`` column names — a session (``session``, or
``NULL`` on every process action), an agent, a model, a project, or every request (``global``, with
an empty key). ``scope`` was added after the table first shipped: :meth:`AuditLog.__init__` adds
the column to an older table (``NULL``: a session, which every older record is about).
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

_COLUMNS: Final = ("ts", "session", "action", "origin", "pid", "signal", "ok", "code", "message", "scope")


def _add_scope(conn: sqlite3.Connection) -> None:
    """The table's one migration: ``scope`` (blocks at the API) on a table made before it."""
    columns = {r[1] for r in conn.execute("PRAGMA table_info(control_audit)")}
    if "scope" not in columns:
        conn.execute("ALTER TABLE control_audit ADD COLUMN scope TEXT")


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
    #: what ``session`` names: ``None`` / ``"session"`` a session; ``agent``, ``model``,
    #: ``project``; ``global`` every request (blocks at the API)
    scope: str | None = None

    @property
    def requested(self) -> str:
        """The action as the user asked for it: ``kill (TERM)``, ``kill (KILL)``, ``pause``, ``resume``,
        ``block``, ``unblock``."""
        return requested_action(self.action, self.signal)

    @property
    def target(self) -> str:
        """What was acted on, in words: ``s-42`` (a session), ``agent codex``, ``every request``."""
        if self.scope in (None, "session"):
            return self.session
        if self.scope == "global":
            return "every request"
        return f"{self.scope} {self.session}"

    def to_json(self) -> dict[str, Any]:
        """The record's columns, plus ``requested`` (added in place of renaming ``action``: readers of
        ``action`` see what they always saw)."""
        return dict(asdict(self), requested=self.requested)

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> AuditRecord:
        """A record from :meth:`to_json` (``GET /v1/control/audit``); ``requested`` is derived again."""
        scope = obj.get("scope")
        return cls(ts=float(obj["ts"]), session=str(obj["session"]), action=str(obj["action"]),
                   origin=str(obj.get("origin") or ""), pid=obj.get("pid"), signal=obj.get("signal"),
                   ok=bool(obj.get("ok")), code=obj.get("code"), message=str(obj.get("message") or ""),
                   seq=obj.get("seq"), scope=scope if isinstance(scope, str) else None)


def requested_action(action: str, signal: str | None) -> str:
    """``terminate``/``kill`` with the signal sent first are both a *kill* to the user."""
    if action in ("terminate", "kill"):
        return f"kill ({signal or ('TERM' if action == 'terminate' else 'KILL')})"
    return action


class AuditLog:
    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger
        ledger.ensure_schema(AUDIT_DDL)
        ledger.call(_add_scope)

    def _insert(self, conn: sqlite3.Connection, rec: AuditRecord) -> int:
        cur = conn.execute(
            f"INSERT INTO control_audit ({', '.join(_COLUMNS)}) VALUES ({', '.join('?' * len(_COLUMNS))})",
            (rec.ts, rec.session, rec.action, rec.origin, rec.pid, rec.signal, int(rec.ok), rec.code, rec.message,
             rec.scope),
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
            if session is not None:  # a session's records: its process actions and its own blocks
                q += " WHERE session = ? AND (scope IS NULL OR scope = 'session')"
                args.append(session)
            q += " ORDER BY seq DESC LIMIT ?"
            args.append(limit)
            return conn.execute(q, args).fetchall()

        rows = self.ledger.call(run)
        return [
            AuditRecord(ts=r[1], session=r[2], action=r[3], origin=r[4], pid=r[5], signal=r[6], ok=bool(r[7]),
                        code=r[8], message=r[9], seq=r[0], scope=r[10])
            for r in reversed(rows)
        ]
