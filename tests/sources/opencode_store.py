"""Real-shaped OpenCode stores for tests: a WAL database with OpenCode's schema (the generator's,
``bench/gen_opencode.py``) and the legacy JSON tree, filled row by row the way OpenCode writes them.

Token samples are real ``step-finish`` parts from ``opencode run --format json`` output (quoted in
public repositories): ``total`` = input + output + reasoning + cache, ``cost`` 0 on a subscription
route, and one from an older build without ``total``.
"""

from __future__ import annotations

import importlib.util
import json
import os
import sqlite3
import time
from pathlib import Path
from typing import Any

_GEN = Path(__file__).resolve().parents[2] / "bench" / "gen_opencode.py"
_spec = importlib.util.spec_from_file_location("gen_opencode", _GEN)
assert _spec is not None and _spec.loader is not None
gen_opencode = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(gen_opencode)
SCHEMA: str = gen_opencode.SCHEMA

NOW_MS = int(time.time() * 1000)

# Real step-finish token objects (two steps of one run, then an older build's step without ``total``).
STEP_A = {"total": 15233, "input": 15169, "output": 47, "reasoning": 17, "cache": {"write": 0, "read": 0}}
STEP_B = {"total": 15274, "input": 18, "output": 2, "reasoning": 22, "cache": {"write": 0, "read": 15232}}
STEP_OLD = {"input": 20923, "output": 154, "reasoning": 92, "cache": {"read": 467, "write": 0}}
STEP_CLAUDE = {"total": 48960, "input": 3, "output": 850, "reasoning": 0, "cache": {"read": 45000, "write": 3107}}


class Store:
    """``<home>/opencode.db`` (or another name) and ``<home>/storage``; ``writer`` is held open
    while the "agent runs" (``-wal``/``-shm`` exist) and closed by :meth:`exit` (they go)."""

    def __init__(self, home: Path, name: str = "opencode.db") -> None:
        self.home = home
        home.mkdir(parents=True, exist_ok=True)
        self.path = home / name
        self.writer: sqlite3.Connection | None = None
        self.n = 0
        self.start()
        assert self.writer is not None
        self.writer.executescript(SCHEMA)
        self.session("ses_main")

    def start(self) -> sqlite3.Connection:
        if self.writer is None:
            self.writer = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            self.writer.execute("PRAGMA journal_mode=WAL")
            self.writer.execute("PRAGMA busy_timeout=5000")
        return self.writer

    def exit(self) -> None:
        """The agent exits cleanly: SQLite checkpoints and removes ``-wal`` and ``-shm``."""
        if self.writer is not None:
            self.writer.close()
            self.writer = None

    def next_id(self, prefix: str) -> str:
        self.n += 1
        return f"{prefix}_{self.n:026d}"

    def session(self, sid: str, directory: str = "/home/dev/proj") -> str:
        w = self.start()
        w.execute("INSERT OR IGNORE INTO project VALUES ('prj_1', ?, 'git', 'proj', ?, ?, NULL, '[]')",
                  (directory, NOW_MS, NOW_MS))
        w.execute("INSERT OR IGNORE INTO session (id, project_id, slug, directory, title, version, time_created, "
                  "time_updated) VALUES (?, 'prj_1', 's', ?, 't', '1.14.2', ?, ?)", (sid, directory, NOW_MS, NOW_MS))
        return sid

    @staticmethod
    def message_data(*, created: int, provider: str = "anthropic", model: str = "claude-sonnet-4-5",
                     tokens: dict[str, Any] | None = None, cost: float = 0.0, completed: int | None = None,
                     cwd: str = "/home/dev/proj") -> dict[str, Any]:
        t: dict[str, Any] = {"created": created}
        if completed is not None:
            t["completed"] = completed
        return {"role": "assistant", "time": t, "parentID": "msg_user", "modelID": model, "providerID": provider,
                "mode": "build", "agent": "build", "path": {"cwd": cwd, "root": cwd}, "cost": cost,
                "tokens": tokens or {"input": 0, "output": 0, "reasoning": 0, "cache": {"read": 0, "write": 0}}}

    def message(self, data: dict[str, Any], sid: str = "ses_main", mid: str | None = None) -> str:
        mid = mid or self.next_id("msg")
        created = data["time"]["created"]
        self.start().execute("INSERT INTO message VALUES (?, ?, ?, ?, ?)", (mid, sid, created, created, json.dumps(data)))
        return mid

    def update_message(self, mid: str, data: dict[str, Any]) -> None:
        self.start().execute("UPDATE message SET data = ?, time_updated = ? WHERE id = ?", (json.dumps(data), NOW_MS, mid))

    def step(self, mid: str, tokens: dict[str, Any], *, cost: float = 0.0, sid: str = "ses_main",
             at: int | None = None, raw: str | None = None) -> str:
        pid = self.next_id("prt")
        at = at or NOW_MS
        data = raw if raw is not None else json.dumps(
            {"reason": "tool-calls", "snapshot": "b2a39d9a", "type": "step-finish", "tokens": tokens, "cost": cost})
        self.start().execute("INSERT INTO part VALUES (?, ?, ?, ?, ?, ?)", (pid, mid, sid, at, at, data))
        return pid

    def other_part(self, mid: str, data: dict[str, Any], sid: str = "ses_main") -> None:
        self.start().execute("INSERT INTO part VALUES (?, ?, ?, ?, ?, ?)",
                             (self.next_id("prt"), mid, sid, NOW_MS, NOW_MS, json.dumps(data)))

    def call(self, tokens: dict[str, Any], *, sid: str = "ses_main", provider: str = "anthropic",
             model: str = "claude-sonnet-4-5", created: int | None = None, cost: float = 0.0) -> str:
        """One message with one call, as OpenCode writes it: message, step-finish part, message update."""
        created = created or NOW_MS - 60_000
        mid = self.message(self.message_data(created=created, provider=provider, model=model), sid)
        self.step(mid, tokens, cost=cost, sid=sid, at=created + 5000)
        self.update_message(mid, self.message_data(created=created, provider=provider, model=model, tokens=tokens,
                                                   cost=cost, completed=created + 5100))
        return mid

    def v2(self, data: dict[str, Any], sid: str = "ses_v2", rid: str | None = None, seq: int | None = None) -> str:
        rid = rid or self.next_id("evt")
        self.n += 1
        created = data["time"]["created"]
        self.start().execute("INSERT INTO session_message VALUES (?, ?, 'assistant', ?, ?, ?, ?)",
                             (rid, sid, seq or self.n, created, created, json.dumps(data)))
        return rid

    def update_v2(self, rid: str, data: dict[str, Any]) -> None:
        self.start().execute("UPDATE session_message SET data = ?, time_updated = ? WHERE id = ?",
                             (json.dumps(data), NOW_MS, rid))

    def files(self) -> list[str]:
        return sorted(os.listdir(self.home))


def json_message(storage: Path, sid: str, mid: str, data: dict[str, Any], parts: list[dict[str, Any]]) -> None:
    """A message and its parts in the legacy JSON tree, ids inside the files as OpenCode wrote them."""
    (storage / "message" / sid).mkdir(parents=True, exist_ok=True)
    (storage / "message" / sid / f"{mid}.json").write_text(json.dumps({"id": mid, "sessionID": sid, **data}))
    for i, part in enumerate(parts):
        d = storage / "part" / mid
        d.mkdir(parents=True, exist_ok=True)
        (d / f"prt_{mid[-6:]}{i:04d}.json").write_text(json.dumps(
            {"id": f"prt_{mid[-6:]}{i:04d}", "sessionID": sid, "messageID": mid, **part}))
