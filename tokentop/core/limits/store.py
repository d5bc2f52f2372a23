"""The latest figure of every subscription window, from every source, kept across restarts.

:class:`LimitStore` takes :class:`~tokentop.core.limits.windows.Observation`s from any thread (the
Codex reader runs on the sources thread, the statusline route and the OAuth poller on the feed's
loop). Per (agent, account, window) the figure seen *latest* wins — by the time the source saw it,
not by when it arrived: a backfill reading last week's rollout after today's never turns today's
62 % back into last week's 10 %. The figures of the latest one's window are also kept for a while,
so the window's own recent burn can be measured.

The latest figures are written to the ledger (table ``limit_windows``, by :meth:`flush`, a few
seconds after they change) and read back at start: a Codex rollout already read is not read
again after a restart, but its last window is still known.
"""

from __future__ import annotations

import bisect
import sqlite3
import threading
from typing import TYPE_CHECKING, Any, Final

from tokentop.core.limits.windows import BURN_LOOKBACK_S, Observation

if TYPE_CHECKING:
    from tokentop.core.ledger import Ledger

Key = tuple[str, str, str]

LIMITS_DDL: Final = """
CREATE TABLE IF NOT EXISTS limit_windows (
    agent TEXT NOT NULL,
    account TEXT NOT NULL,
    window TEXT NOT NULL,
    used_percent REAL NOT NULL,
    resets_at REAL,
    window_minutes INTEGER,
    source TEXT NOT NULL,
    observed_at REAL NOT NULL,
    plan TEXT,
    PRIMARY KEY (agent, account, window)
) WITHOUT ROWID;
"""

#: figures of one window kept for its burn (the newest ones, within the burn look-back)
MAX_POINTS: Final = 64
#: windows kept at most (accounts x windows; a bound against a source gone wrong)
MAX_WINDOWS: Final = 256


class LimitStore:
    """Latest figure per window (thread-safe), its recent history, persisted to the ledger."""

    def __init__(self, ledger: Ledger | None = None) -> None:
        self.ledger = ledger
        self._lock = threading.Lock()
        self._latest: dict[Key, Observation] = {}
        self._points: dict[Key, list[tuple[float, float]]] = {}
        self._dirty: set[Key] = set()
        self._removed: set[Key] = set()
        #: grows on every change of a latest figure (readers cache on it)
        self.version = 0
        #: figures refused because the store was full
        self.refused = 0
        if ledger is not None:
            ledger.ensure_schema(LIMITS_DDL)
            self._load()

    # -- intake ---------------------------------------------------------------------------------------
    def observe(self, obs: Observation) -> bool:
        """Take one figure; ``True`` when it became its window's latest."""
        key = obs.key
        with self._lock:
            current = self._latest.get(key)
            became = current is None or obs.observed_at >= current.observed_at
            if became:
                if current is None and len(self._latest) >= MAX_WINDOWS:
                    self.refused += 1
                    return False
                if current is None or not obs.same_window(current):
                    self._points[key] = []
                if current != obs:
                    self._latest[key] = obs
                    self._dirty.add(key)
                    self._removed.discard(key)
                    self.version += 1
            latest = self._latest[key]
            if obs.same_window(latest) and obs.observed_at >= latest.observed_at - BURN_LOOKBACK_S:
                points = self._points.setdefault(key, [])
                point = (obs.observed_at, obs.used_percent)
                at = bisect.bisect_left(points, point)
                if at == len(points) or points[at] != point:
                    points.insert(at, point)
                    if len(points) > MAX_POINTS:
                        del points[: len(points) - MAX_POINTS]
            return became

    # -- reading --------------------------------------------------------------------------------------
    def latest(self) -> list[Observation]:
        with self._lock:
            return list(self._latest.values())

    def get(self, key: Key) -> Observation | None:
        with self._lock:
            return self._latest.get(key)

    def points(self, key: Key) -> list[tuple[float, float]]:
        """``(observed_at, used_percent)`` figures of the latest one's window, oldest first."""
        with self._lock:
            return list(self._points.get(key, ()))

    def prune(self, now: float) -> int:
        """Forget windows too old to show (:meth:`Observation.stale`); removed from the ledger at
        the next :meth:`flush`."""
        with self._lock:
            old = [k for k, o in self._latest.items() if o.stale(now)]
            for k in old:
                del self._latest[k]
                self._points.pop(k, None)
                self._dirty.discard(k)
                self._removed.add(k)
            if old:
                self.version += 1
            return len(old)

    # -- persistence ----------------------------------------------------------------------------------
    def _load(self) -> None:
        assert self.ledger is not None
        rows = self.ledger.call(lambda c: c.execute(
            "SELECT agent, account, window, used_percent, resets_at, window_minutes, source, observed_at, plan "
            "FROM limit_windows").fetchall())
        with self._lock:
            for agent, account, window, used, resets_at, minutes, source, observed_at, plan in rows[:MAX_WINDOWS]:
                obs = Observation(agent, account, window, float(used), resets_at, minutes, source, float(observed_at), plan)
                self._latest[obs.key] = obs
            self.version += 1

    def pending(self) -> bool:
        with self._lock:
            return bool(self._dirty or self._removed)

    def _take(self) -> tuple[list[tuple[Any, ...]], list[Key]]:
        with self._lock:
            rows = [(o.agent, o.account, o.window, o.used_percent, o.resets_at, o.window_minutes, o.source,
                     o.observed_at, o.plan) for k in self._dirty if (o := self._latest.get(k)) is not None]
            removed = list(self._removed)
            self._dirty.clear()
            self._removed.clear()
        return rows, removed

    def _write(self, rows: list[tuple[Any, ...]], removed: list[Key]) -> Any:
        def run(conn: sqlite3.Connection) -> None:
            with conn:
                if rows:
                    conn.executemany("INSERT OR REPLACE INTO limit_windows VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
                if removed:
                    conn.executemany("DELETE FROM limit_windows WHERE agent = ? AND account = ? AND window = ?",
                                     removed)
        return run

    def flush(self) -> None:
        """Write the changed figures to the ledger (blocking; the feed uses :meth:`flush_async`)."""
        if self.ledger is None:
            return
        rows, removed = self._take()
        if rows or removed:
            self.ledger.call(self._write(rows, removed))

    async def flush_async(self) -> None:
        if self.ledger is None:
            return
        rows, removed = self._take()
        if rows or removed:
            await self.ledger.call_async(self._write(rows, removed))
