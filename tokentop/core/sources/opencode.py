"""OpenCode's stores (``opencode.db``, the 2.x ``session_message`` table, legacy JSON) → events.

The store, its traps and the rules as implemented are described in ``docs/sources.md``
("OpenCode and Kilo"). In short:

* Where: ``$XDG_DATA_HOME/opencode`` (``~/.local/share/opencode``, on macOS too) or
  ``[sources] opencode_dir``; in it ``opencode.db`` and the install channels' ``opencode-<channel>.db``,
  plus ``$OPENCODE_DB`` (absolute, or relative to that directory) and the legacy JSON tree
  ``storage/``. Kilo CLI, an OpenCode fork, is the same with ``kilo`` for ``opencode``
  (``kilo.py``).
* One event per model call. OpenCode 1.x writes a ``step-finish`` part per call with that call's
  tokens and cost; the message row's ``tokens`` are overwritten by every step (so they hold the
  last call only) and are used only for a message that has no ``step-finish`` part (old builds).
  OpenCode 2.x writes one ``session_message`` row of type ``assistant`` per call; it is read first,
  and a session that has such rows is read from it only (its 1.x rows, if any, are stale copies).
* Token semantics: OpenCode's ``tokens.input`` excludes the cache (``cache.read``/``cache.write``
  are separate), so the event's input is the sum of the three. ``tokens.reasoning`` is separate
  from ``tokens.output`` in current builds (``output`` = the provider's output minus reasoning; their
  ``tokens.total`` is the sum of all five counts): the event's output adds it back. Builds without
  ``total`` (before the AI SDK 6 upgrade) stored the provider's output, which already includes
  reasoning, except for Google models.
* Forks copy a session's history rows under new ids with identical ``time.created``, model and
  tokens (peers counted such copies N times). The event id is a fingerprint of what a copy keeps:
  the message's ``time.created``, provider, model and the call's five token counts. A fork copy, the
  same message in the legacy JSON tree and in the database, and a re-read all get the same id.
* Cost: OpenCode's ``cost`` is its own estimate from models.dev list prices (0 on subscription
  routes such as ``github-copilot`` or a Claude Pro login). tokentop prices the tokens itself;
  OpenCode's figure is kept, as *provided*, only for a model genai-prices does not know.
* Reading: see ``store.py`` (read-only, nothing created beside the database, short statements, busy
  → retried). New rows are found by ``rowid`` (rows only get new rowids when inserted); the 2.x
  assistant rows, inserted at the start of a call and updated at its end, are re-read by id until
  they carry tokens. A ``stat`` of the database and its ``-wal`` every tick is the change signal.
"""

from __future__ import annotations

import hashlib
import logging
import os
import sqlite3
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, Iterable, Mapping

from tokentop.core.events import Event
from tokentop.core.setting import Setting
from tokentop.core.sources.claude_code import loads_line, project_of
from tokentop.core.sources.protocol import Progress, Sink, SourceContext, Stats, StoreFormat
from tokentop.core.sources.store import (
    Backoff,
    Busy,
    DbSignature,
    StoreCursors,
    is_busy,
    open_readonly,
    signature,
    table_columns,
)

if TYPE_CHECKING:
    from tokentop.core.pricing import Pricer

log = logging.getLogger("tokentop.sources")

#: OpenCode provider ids → the provider names tokentop (and genai-prices) use; others are kept as given.
PROVIDERS: Final = {
    "anthropic": "anthropic", "openai": "openai", "google": "google", "google-vertex": "google",
    "amazon-bedrock": "aws", "azure": "azure", "xai": "x-ai", "groq": "groq", "mistral": "mistral",
    "deepseek": "deepseek", "openrouter": "openrouter", "github-copilot": "github-copilot",
    "fireworks-ai": "fireworks", "togetherai": "together", "cerebras": "cerebras", "moonshotai": "moonshotai",
    "zai": "zai", "perplexity": "perplexity", "cohere": "cohere",
}
#: Providers whose SDK reported reasoning apart from the output before OpenCode stored ``tokens.total``.
_SEPARATE_REASONING_BEFORE_TOTAL: Final = frozenset({"google", "google-vertex"})
#: Rowids per statement: bounds how long one read holds its snapshot of the agent's database.
CHUNK_ROWS: Final = 20_000
#: Message metadata kept for parts whose message was read earlier.
MAX_CACHED_MESSAGES: Final = 200_000
#: Fingerprints emitted by this process, kept to count (and not re-hand) copies.
MAX_REMEMBERED_STEPS: Final = 400_000
#: 2.x assistant rows without tokens yet are re-read by id for this long (s).
PENDING_FOR_S: Final = 3600.0
#: JSON files modified this close to the last read's high-water mark are read again (s).
JSON_SLACK_NS: Final = 2_000_000_000
#: A legacy JSON directory modified within this is stat'ed every tick (s) ...
JSON_HOT_S: Final = 600.0
#: ... the newest this many of them
JSON_HOT_DIRS: Final = 16


class Malformed(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class App:
    """What differs between OpenCode and a fork that kept its stores (Kilo CLI)."""

    #: the ``agent`` of its events and its ``sources.enabled`` name
    agent: str
    #: the directory under the XDG data home, and the database file's stem
    name: str
    #: the ``[sources]`` key naming the data directory
    config_key: str
    #: the environment variable naming the database file, if the agent has one
    db_env: str | None = None

    @property
    def source_db(self) -> str:
        return f"{self.agent}-db"

    @property
    def source_json(self) -> str:
        return f"{self.agent}-json"


OPENCODE: Final = App(agent="opencode", name="opencode", config_key="opencode_dir", db_env="OPENCODE_DB")


# -- where ------------------------------------------------------------------------------------------

def data_dir(app: App, configured: str, env: Mapping[str, str]) -> Path:
    """The agent's data directory: the config value, else ``$XDG_DATA_HOME/<name>``, else
    ``~/.local/share/<name>`` (OpenCode uses the XDG layout on macOS as well)."""
    if configured:
        return Path(configured).expanduser()
    xdg = env.get("XDG_DATA_HOME")
    if xdg:
        return Path(xdg).expanduser() / app.name
    return Path(env.get("HOME") or Path.home()) / ".local" / "share" / app.name


def app_roots(app: App, values: Mapping[str, Any], env: Mapping[str, str]) -> tuple[Path, ...]:
    """The data directory, plus the database file the agent's environment variable names (absolute,
    or relative to the data directory; ``:memory:`` is not a store)."""
    home = data_dir(app, values[app.config_key], env)
    roots = [home]
    named = env.get(app.db_env, "").strip() if app.db_env else ""
    if named and named != ":memory:":
        path = Path(named).expanduser()
        roots.append(path if path.is_absolute() else home / path)
    return tuple(roots)


def databases(app: App, root: Path) -> list[str]:
    """The databases under one root: the root itself when it is a file, else ``<name>.db`` and the
    install channels' ``<name>-<channel>.db`` in it."""
    if root.is_file():
        return [str(root)]
    try:
        names = os.listdir(root)
    except OSError:
        return []
    stem = app.name
    return sorted(str(root / n) for n in names
                  if n == f"{stem}.db" or (n.startswith(f"{stem}-") and n.endswith(".db")))


# -- records → events ---------------------------------------------------------------------------------

def _count(obj: Mapping[str, Any], name: str) -> int:
    v = obj.get(name)
    if v is None:
        return 0
    if type(v) is int and v >= 0:
        return v
    if isinstance(v, float) and v >= 0 and v.is_integer():
        return int(v)
    raise Malformed(f"tokens.{name} is not a non-negative integer: {str(v)[:40]!r}")


@dataclass(slots=True)
class Tokens:
    """One call's counts as OpenCode stored them (``input`` without the cache). Treat as immutable
    (not declared frozen: one is built per call, and frozen construction costs several times more)."""

    input: int
    output: int
    reasoning: int
    cache_read: int
    cache_write: int
    total: int | None

    @classmethod
    def of(cls, obj: Any) -> Tokens | None:
        """``None`` when there are no tokens (a call still running); raises :class:`Malformed`."""
        if obj is None:
            return None
        if obj.__class__ is not dict:
            raise Malformed("tokens is not an object")
        # the common shape inline (plain non-negative ints); anything else through _count's checks
        g = obj.get
        i, o, r, t, c = g("input", 0), g("output", 0), g("reasoning", 0), g("total"), g("cache")
        if c.__class__ is dict:
            cr, cw = c.get("read", 0), c.get("write", 0)
            if i.__class__ is int and o.__class__ is int and r.__class__ is int and cr.__class__ is int \
                    and cw.__class__ is int and (t is None or t.__class__ is int) \
                    and i >= 0 and o >= 0 and r >= 0 and cr >= 0 and cw >= 0 and (t is None or t >= 0):
                return cls(i, o, r, cr, cw, t)
        cache = obj.get("cache")
        if cache is None:
            cache = {}
        elif not isinstance(cache, dict):
            raise Malformed("tokens.cache is not an object")
        total = obj.get("total")
        if total is not None:
            total = _count(obj, "total")
        return cls(_count(obj, "input"), _count(obj, "output"), _count(obj, "reasoning"),
                   _count(cache, "read"), _count(cache, "write"), total)

    def empty(self) -> bool:
        return not (self.input or self.output or self.reasoning or self.cache_read or self.cache_write)

    def reasoning_separate(self, provider: str | None, v2: bool) -> bool:
        """Whether ``output`` excludes ``reasoning`` (see the module docstring)."""
        if v2:
            return True
        if self.total is not None:
            return self.total != self.input + self.output + self.cache_read + self.cache_write or self.reasoning == 0
        return self.reasoning > self.output or provider in _SEPARATE_REASONING_BEFORE_TOTAL


def fingerprint(app: App, created: Any, provider: str | None, model: str | None, t: Tokens) -> str:
    """The event id: what a fork copy, a JSON copy and a re-read of one call have in common."""
    key = f"{created}|{provider}|{model}|{t.input}|{t.output}|{t.reasoning}|{t.cache_read}|{t.cache_write}"
    return f"{app.agent}:{hashlib.blake2b(key.encode(), digest_size=12).hexdigest()}"


@dataclass(frozen=True, slots=True)
class Message:
    """What a call's event takes from its (1.x) assistant message."""

    session: str | None
    created: Any
    provider: str | None
    model: str | None
    project: str | None
    completed: float | None
    tokens: Tokens | None
    cost: Any

    @classmethod
    def of(cls, data: Any, session: str | None) -> Message | None:
        """``None`` for a message that is not the assistant's."""
        if not isinstance(data, dict) or data.get("role") != "assistant":
            return None
        t = _dict(data.get("time"))
        path = _dict(data.get("path"))
        cwd = path.get("cwd") if isinstance(path.get("cwd"), str) else None
        root = path.get("root") if isinstance(path.get("root"), str) and path.get("root") != "/" else None
        completed = t.get("completed")
        return cls(
            session=session or _text(data.get("sessionID")),
            created=t.get("created"),
            provider=_text(data.get("providerID")),
            model=_text(data.get("modelID")),
            project=project_of(cwd or root),
            completed=completed / 1000.0 if isinstance(completed, (int, float)) and completed > 0 else None,
            tokens=Tokens.of(data.get("tokens")),
            cost=data.get("cost"),
        )

    @property
    def created_s(self) -> float | None:
        c = self.created
        return c / 1000.0 if isinstance(c, (int, float)) and c > 0 else None


def _dict(v: Any) -> dict[str, Any]:
    """``v`` when it is a JSON object, else an empty one (stores change shape between versions)."""
    return v if isinstance(v, dict) else {}


def _text(v: Any) -> str | None:
    if isinstance(v, str):
        v = v.strip()
        return v[:512] or None
    return None


class CostPolicy:
    """Which stored costs are kept: OpenCode's own figure only for models genai-prices cannot price
    (then as *provided*); everything else is priced by tokentop (the pricer is built on first need)."""

    def __init__(self) -> None:
        self._pricer: Pricer | None = None
        self._known: dict[tuple[str | None, str], bool] = {}

    def provided(self, cost: Any, provider: str | None, model: str | None, ts: float) -> float | None:
        if not isinstance(cost, (int, float)) or isinstance(cost, bool) or not cost > 0 or cost != cost or not model:
            return None
        key = (provider, model)
        known = self._known.get(key)
        if known is None:
            if self._pricer is None:
                from tokentop.core.pricing import Pricer

                self._pricer = Pricer()
            known = self._pricer.known(model, provider, ts)
            self._known[key] = known
        return None if known else float(cost)


class Emitter:
    """Builds events, remembers the fingerprints handed over (copies are counted, not re-handed)."""

    def __init__(self, app: App, host: str | None, stats: Stats, cutoff: float) -> None:
        self.app = app
        self.host = host
        self.stats = stats
        self.cutoff = cutoff
        self.costs = CostPolicy()
        self.seen: set[str] = set()
        self.out: list[Event] = []

    def add(self, *, created: Any, provider: str | None, model: str | None, tokens: Tokens, v2: bool, ts: float,
            session: str | None, project: str | None, cost: Any, source: str) -> None:
        if tokens.empty():
            return
        if ts < self.cutoff:
            self.stats.too_old += 1
            return
        eid = fingerprint(self.app, created, provider, model, tokens)
        if eid in self.seen:
            self._count("duplicates_skipped")  # a fork copy, the JSON twin of a row, or a row read again
            return
        if len(self.seen) >= MAX_REMEMBERED_STEPS:
            self.seen.clear()
        self.seen.add(eid)
        reasoning = tokens.reasoning
        output = tokens.output + reasoning if reasoning and tokens.reasoning_separate(provider, v2) else tokens.output
        mapped = PROVIDERS.get(provider, provider) if provider else None
        provided = self.costs.provided(cost, mapped, model, ts) \
            if (cost.__class__ is float or cost.__class__ is int) and cost > 0 else None
        read, write = tokens.cache_read, tokens.cache_write
        # positional (the field order of Event): ~2x faster than keywords on this per-call path
        self.out.append(Event(
            eid, ts, self.app.agent, session, project, self.host, None, mapped, model,
            tokens.input + read + write, output, read, write, 0, reasoning if reasoning <= output else output,
            provided, None, "ok", source,
        ))

    def _count(self, name: str) -> None:
        self.stats.counters[name] = self.stats.counters.get(name, 0) + 1

    def malformed(self) -> None:
        self._count("malformed")


# -- the SQLite database --------------------------------------------------------------------------

class Database:
    """One ``opencode.db`` (or channel / ``$OPENCODE_DB``) followed by rowid cursors."""

    def __init__(self, path: str, app: App, cursors: StoreCursors, clock: Any) -> None:
        self.path = path
        self.app = app
        self.cursors = cursors
        state = cursors.get(path) or {}
        self.inode: int | None = state.get("inode")
        self.part: int = int(state.get("part", 0))
        self.message: int = int(state.get("message", 0))
        self.v2: int = int(state.get("session_message", 0))
        self.pending: dict[str, float] = {str(k): float(v) for k, v in (state.get("pending") or {}).items()}
        self.sig: DbSignature | None = None
        self.backoff = Backoff(clock)
        self.clock = clock
        self.schema_version: int | None = None
        self.columns: dict[str, set[str]] = {}
        self.messages: OrderedDict[str, Message | None] = OrderedDict()
        self.projects: dict[str, str | None] = {}
        self.v2_sessions: set[str] | None = None
        self.with_steps: set[str] = set()

    def state(self) -> dict[str, Any]:
        return {"inode": self.inode, "part": self.part, "message": self.message, "session_message": self.v2,
                "pending": self.pending}

    def changed(self) -> DbSignature | None:
        """The new signature when the database may hold something new, else ``None``."""
        sig = signature(self.path)
        if sig is None or sig == self.sig or not self.backoff.ready():
            return None
        return sig

    # -- one read ----------------------------------------------------------------------------
    def read(self, sig: DbSignature, em: Emitter, stats: Stats) -> bool:
        """Read what is new into ``em.out``; False when the database was busy (retried later)."""
        try:
            conn = open_readonly(self.path, sig)
        except Busy:
            self.backoff.failed()
            stats.counters["busy_retries"] = stats.counters.get("busy_retries", 0) + 1
            return False
        except sqlite3.Error as exc:
            self.backoff.failed()
            stats.counters["unreadable_stores"] = stats.counters.get("unreadable_stores", 0) + 1
            log.warning("cannot read %s: %s", self.path, exc)
            return False
        try:
            if self.inode != sig.inode:
                if self.inode is not None:  # the file was replaced: a new database, read from the start
                    stats.counters["stores_restarted"] = stats.counters.get("stores_restarted", 0) + 1
                self.inode, self.part, self.message, self.v2, self.pending = sig.inode, 0, 0, 0, {}
                self.messages.clear()
                self.v2_sessions = None
            version = conn.execute("PRAGMA schema_version").fetchone()[0]
            if version != self.schema_version:
                self.columns = table_columns(conn)
                self.schema_version = version
            if {"id", "session_id", "type", "data"} <= self.columns.get("session_message", set()):
                self._read_v2(conn, em, stats)
            if {"id", "session_id", "data"} <= self.columns.get("message", set()) and \
                    {"id", "message_id", "session_id", "data"} <= self.columns.get("part", set()):
                self._read_v1(conn, em, stats)
        except sqlite3.Error as exc:
            self.backoff.failed()
            key = "busy_retries" if is_busy(exc) else "unreadable_stores"
            stats.counters[key] = stats.counters.get(key, 0) + 1
            if key == "unreadable_stores":
                log.warning("cannot read %s: %s", self.path, exc)
            return False
        finally:
            conn.close()
        self.sig = sig
        self.backoff.ok()
        stats.files_read += 1
        return True

    def _max_rowid(self, conn: sqlite3.Connection, table: str, cursor: int, stats: Stats) -> int:
        hi = conn.execute(f"SELECT max(rowid) FROM {table}").fetchone()[0] or 0
        if hi < cursor:  # rows at the top were deleted (or the file vacuumed): follow the new top
            stats.counters["rowid_resets"] = stats.counters.get("rowid_resets", 0) + 1
        return hi

    def _chunks(self, lo: int, hi: int) -> Iterable[tuple[int, int]]:
        while lo < hi:
            yield lo, min(hi, lo + CHUNK_ROWS)
            lo += CHUNK_ROWS

    # -- 2.x: session_message ----------------------------------------------------------------
    def _read_v2(self, conn: sqlite3.Connection, em: Emitter, stats: Stats) -> None:
        if self.v2_sessions is None:
            self.v2_sessions = {s for (s,) in conn.execute(
                "SELECT DISTINCT session_id FROM session_message WHERE type = 'assistant'").fetchall()}
        now = self.clock()
        if self.pending:
            ids = list(self.pending)
            for i in range(0, len(ids), 500):
                part = ids[i:i + 500]
                rows = conn.execute(
                    f"SELECT id, session_id, time_updated, data FROM session_message WHERE id IN ({','.join('?' * len(part))})",
                    part).fetchall()
                found = {r[0] for r in rows}
                for gone in set(part) - found:
                    self.pending.pop(gone, None)
                for row in rows:
                    self._v2_row(conn, row, em, stats, now)
            for k, first in list(self.pending.items()):
                if now - first > PENDING_FOR_S:
                    del self.pending[k]
        hi = self._max_rowid(conn, "session_message", self.v2, stats)
        cutoff_ms = int(em.cutoff * 1000)
        for lo, up in self._chunks(min(self.v2, hi), hi):
            rows = conn.execute(
                "SELECT id, session_id, time_updated, data FROM session_message "
                "WHERE rowid > ? AND rowid <= ? AND type = 'assistant' AND time_updated >= ?", (lo, up, cutoff_ms)).fetchall()
            stats.lines += len(rows)
            for row in rows:
                self.v2_sessions.add(row[1])
                self._v2_row(conn, row, em, stats, now)
        self.v2 = hi

    def _v2_row(self, conn: sqlite3.Connection, row: tuple[Any, ...], em: Emitter, stats: Stats, now: float) -> None:
        mid, session, updated, raw = row
        try:
            data = loads_line(raw)
            if not isinstance(data, dict):
                raise Malformed("data is not an object")
            tokens = Tokens.of(data.get("tokens"))
        except (ValueError, Malformed):
            em.malformed()
            self.pending.pop(mid, None)
            return
        t = _dict(data.get("time"))
        if tokens is None or tokens.empty():
            if not t.get("completed") and mid not in self.pending:
                self.pending[mid] = now  # the call is running: its tokens arrive with its end
            elif t.get("completed"):
                self.pending.pop(mid, None)
            return
        self.pending.pop(mid, None)
        model = _dict(data.get("model"))
        completed = t.get("completed")
        ts = completed / 1000.0 if isinstance(completed, (int, float)) and completed > 0 else (updated or 0) / 1000.0
        em.add(created=t.get("created"), provider=_text(model.get("providerID")), model=_text(model.get("id")),
               tokens=tokens, v2=True, ts=ts, session=session, project=self._project(conn, session),
               cost=data.get("cost"), source=self.app.source_db)

    def _project(self, conn: sqlite3.Connection, session: str | None) -> str | None:
        if not session:
            return None
        if session in self.projects:
            return self.projects[session]
        project = None
        if "directory" in self.columns.get("session", set()):
            row = conn.execute("SELECT directory FROM session WHERE id = ?", (session,)).fetchone()
            project = project_of(row[0]) if row and isinstance(row[0], str) else None
        if len(self.projects) > 100_000:
            self.projects.clear()
        self.projects[session] = project
        return project

    # -- 1.x: message + part ------------------------------------------------------------------
    def _remember(self, mid: str, msg: Message | None) -> None:
        self.messages[mid] = msg
        if len(self.messages) > MAX_CACHED_MESSAGES:
            self.messages.popitem(last=False)

    def _read_v1(self, conn: sqlite3.Connection, em: Emitter, stats: Stats) -> None:
        v2 = self.v2_sessions or set()
        cutoff_ms = int(em.cutoff * 1000)
        from_start = self.part == 0
        # messages first: a part's message is inserted before the part, and a message that already
        # carries tokens when first seen may have no step-finish part (old builds, migrated history)
        candidates: dict[str, Message] = {}
        hi = self._max_rowid(conn, "message", self.message, stats)
        for lo, up in self._chunks(min(self.message, hi), hi):
            rows = conn.execute(
                "SELECT id, session_id, data FROM message WHERE rowid > ? AND rowid <= ? AND time_created >= ? "
                "AND instr(data, '\"assistant\"') > 0", (lo, up, cutoff_ms)).fetchall()
            stats.lines += len(rows)
            for mid, session, raw in rows:
                msg = self._message(mid, session, raw, em)
                if msg is not None and msg.tokens is not None and not msg.tokens.empty() and session not in v2:
                    candidates[mid] = msg
        self.message = hi
        hi = self._max_rowid(conn, "part", self.part, stats)
        for lo, up in self._chunks(min(self.part, hi), hi):
            rows = conn.execute(
                "SELECT message_id, session_id, time_created, data FROM part WHERE rowid > ? AND rowid <= ? "
                "AND time_created >= ? AND instr(data, '\"step-finish\"') > 0", (lo, up, cutoff_ms)).fetchall()
            stats.lines += len(rows)
            missing = [r[0] for r in rows if r[0] not in self.messages]
            if missing:
                self._load_messages(conn, missing, em)
            for mid, session, created, raw in rows:
                if session in v2:
                    continue
                try:
                    data = loads_line(raw)
                    if not isinstance(data, dict) or data.get("type") != "step-finish":
                        continue  # the words appear in some other part (a tool's output)
                    tokens = Tokens.of(data.get("tokens"))
                except (ValueError, Malformed):
                    em.malformed()
                    continue
                self.with_steps.add(mid)
                msg = self.messages.get(mid)
                if msg is None or tokens is None:
                    stats.counters["steps_without_message"] = stats.counters.get("steps_without_message", 0) + 1
                    continue
                em.add(created=msg.created, provider=msg.provider, model=msg.model, tokens=tokens, v2=False,
                       ts=(created or 0) / 1000.0 or msg.completed or msg.created_s or 0.0,
                       session=msg.session or session, project=msg.project, cost=data.get("cost"),
                       source=self.app.source_db)
        self.part = hi
        if len(self.with_steps) > MAX_CACHED_MESSAGES:
            self.with_steps.clear()
        for mid, msg in candidates.items():
            if mid in self.with_steps:
                continue
            if not from_start and conn.execute(
                    "SELECT 1 FROM part WHERE message_id = ? AND instr(data, '\"step-finish\"') > 0 LIMIT 1",
                    (mid,)).fetchone():
                continue
            stats.counters["message_level_usage"] = stats.counters.get("message_level_usage", 0) + 1
            assert msg.tokens is not None
            em.add(created=msg.created, provider=msg.provider, model=msg.model, tokens=msg.tokens, v2=False,
                   ts=msg.completed or msg.created_s or 0.0, session=msg.session, project=msg.project,
                   cost=msg.cost, source=self.app.source_db)

    def _message(self, mid: str, session: str | None, raw: Any, em: Emitter) -> Message | None:
        try:
            msg = Message.of(loads_line(raw), session)
        except (ValueError, Malformed):
            em.malformed()
            msg = None
        self._remember(mid, msg)
        return msg

    def _load_messages(self, conn: sqlite3.Connection, ids: list[str], em: Emitter) -> None:
        ids = list(dict.fromkeys(ids))
        for i in range(0, len(ids), 500):
            part = ids[i:i + 500]
            for mid, session, raw in conn.execute(
                    f"SELECT id, session_id, data FROM message WHERE id IN ({','.join('?' * len(part))})", part).fetchall():
                self._message(mid, session, raw, em)

    def has_messages(self, ids: list[str]) -> set[str]:
        """Which of these message ids the database holds (the legacy JSON defers to it)."""
        sig = signature(self.path)
        if sig is None or not ids:
            return set()
        try:
            conn = open_readonly(self.path, sig)
        except (Busy, sqlite3.Error):
            return set()
        try:
            if "message" not in table_columns(conn):
                return set()
            found: set[str] = set()
            for i in range(0, len(ids), 500):
                part = ids[i:i + 500]
                found.update(r[0] for r in conn.execute(
                    f"SELECT id FROM message WHERE id IN ({','.join('?' * len(part))})", part).fetchall())
            return found
        except sqlite3.Error:
            return set()
        finally:
            conn.close()


# -- the legacy JSON tree (OpenCode before 1.2) ---------------------------------------------------

class JsonTree:
    """``storage/message/<session>/<message>.json`` and ``storage/part/<message>/<part>.json``,
    written by OpenCode before its SQLite store (and left behind by the migration). Files whose
    mtime passed the high-water mark are read; a message the database holds is read from there."""

    def __init__(self, root: Path, app: App, cursors: StoreCursors, clock: Any) -> None:
        self.root = root
        self.key = str(root)
        self.app = app
        self.cursors = cursors
        self.clock = clock
        state = cursors.get(self.key) or {}
        self.hw: int = int(state.get("hw", 0))
        self.top_mtime: int | None = None
        self.hot: dict[str, int] = {}
        self.messages: dict[str, Message | None] = {}

    def state(self) -> dict[str, Any]:
        return {"hw": self.hw}

    def changed(self) -> bool:
        """Cheap check for the tick: a new message directory, or a file added in a recent one."""
        try:
            top = os.stat(self.root / "part").st_mtime_ns
        except OSError:
            return False
        if top != self.top_mtime:
            return True
        for d, m in self.hot.items():
            try:
                if os.stat(d).st_mtime_ns != m:
                    return True
            except OSError:
                return True
        return False

    def read(self, em: Emitter, stats: Stats, databases: list[Database]) -> None:
        parts_dir = self.root / "part"
        messages_dir = self.root / "message"
        try:
            self.top_mtime = os.stat(parts_dir).st_mtime_ns
        except OSError:
            self.top_mtime = None
        floor = max(self.hw - JSON_SLACK_NS, int(em.cutoff * 1e9))
        hot_floor = int((self.clock() - JSON_HOT_S) * 1e9)
        steps: list[tuple[dict[str, Any], float]] = []
        new_hw = self.hw
        hot: list[tuple[int, str]] = []
        # A directory's mtime moves when a file is added to it (parts are written once): a directory
        # older than the high-water mark has nothing new, and a newer one is read whole (a message's
        # parts are a handful of small files; a file read again yields the same ids).
        for d in _subdirs(parts_dir):
            if d.stat_mtime < floor:
                continue
            new_hw = max(new_hw, d.stat_mtime)
            if d.stat_mtime >= hot_floor:
                hot.append((d.stat_mtime, d.path))
            for f in _files(d.path):
                try:
                    with open(f, "rb") as fh:
                        raw = fh.read()
                except OSError:
                    continue
                stats.lines += 1
                stats.bytes_read += len(raw)
                if b'"step-finish"' not in raw:
                    continue
                try:
                    data = loads_line(raw)
                    mtime = os.stat(f).st_mtime  # the part has no time of its own: written at the call's end
                except (ValueError, OSError):
                    em.malformed()
                    continue
                if isinstance(data, dict) and data.get("type") == "step-finish":
                    steps.append((data, mtime))
        # the newest few message directories are stat'ed every tick (a running old build adds parts there)
        self.hot = {path: m for m, path in sorted(hot, reverse=True)[:JSON_HOT_DIRS]}
        # messages changed since the last read that may need their own tokens (no step-finish part)
        candidates: list[tuple[str, str]] = []
        for d in _subdirs(messages_dir):
            if d.stat_mtime < floor:
                continue
            new_hw = max(new_hw, d.stat_mtime)
            session = os.path.basename(d.path)
            candidates.extend((session, f) for f in _files(d.path))
        wanted = {str(p.get("messageID")) for p, _ in steps} | {_stem(f) for _, f in candidates}
        in_db: set[str] = set()
        for db in databases:
            in_db |= db.has_messages(sorted(wanted))
        if in_db:
            stats.counters["json_in_database"] = stats.counters.get("json_in_database", 0) + len(in_db)
        with_steps: set[str] = set()
        for data, mtime in steps:
            step_of, step_session = _text(data.get("messageID")), _text(data.get("sessionID"))
            if step_of is None or step_of in in_db:
                continue
            msg = self._message(step_session, step_of, em)
            try:
                tokens = Tokens.of(data.get("tokens"))
            except Malformed:
                em.malformed()
                continue
            with_steps.add(step_of)
            if msg is None or tokens is None:
                continue
            em.add(created=msg.created, provider=msg.provider, model=msg.model, tokens=tokens, v2=False, ts=mtime,
                   session=msg.session, project=msg.project, cost=data.get("cost"), source=self.app.source_json)
        for session, f in candidates:
            mid = _stem(f)
            if mid in in_db or mid in with_steps:
                continue
            msg = self._message(session, mid, em)
            if msg is None or msg.tokens is None or msg.tokens.empty() or self._has_step(mid):
                continue
            stats.counters["message_level_usage"] = stats.counters.get("message_level_usage", 0) + 1
            em.add(created=msg.created, provider=msg.provider, model=msg.model, tokens=msg.tokens, v2=False,
                   ts=msg.completed or msg.created_s or 0.0, session=msg.session, project=msg.project,
                   cost=msg.cost, source=self.app.source_json)
        self.hw = new_hw
        stats.files_read += 1

    def _message(self, session: str | None, mid: str, em: Emitter) -> Message | None:
        if mid in self.messages:
            return self.messages[mid]
        msg = None
        if session:
            try:
                with open(os.path.join(self.key, "message", session, mid + ".json"), "rb") as fh:
                    msg = Message.of(loads_line(fh.read()), session)
            except OSError:
                msg = None
            except (ValueError, Malformed):
                em.malformed()
        if len(self.messages) > MAX_CACHED_MESSAGES:
            self.messages.clear()
        self.messages[mid] = msg
        return msg

    def _has_step(self, mid: str) -> bool:
        for f in _files(os.path.join(self.key, "part", mid)):
            try:
                with open(f, "rb") as fh:
                    if b'"step-finish"' in fh.read():
                        return True
            except OSError:
                continue
        return False


@dataclass(frozen=True, slots=True)
class _Dir:
    path: str
    stat_mtime: int


def _subdirs(path: Path) -> list[_Dir]:
    try:
        it = os.scandir(path)
    except OSError:
        return []
    out = []
    with it:
        for e in it:
            try:
                if e.is_dir(follow_symlinks=False):
                    out.append(_Dir(e.path, e.stat(follow_symlinks=False).st_mtime_ns))
            except OSError:
                continue
    return out


def _files(path: str) -> list[str]:
    """The ``.json`` files in a directory, in name order (OpenCode's ids ascend with time)."""
    try:
        names = os.listdir(path)
    except OSError:
        return []
    return [os.path.join(path, n) for n in sorted(names) if n.endswith(".json")]


def _stem(path: str) -> str:
    return os.path.basename(path)[:-5]


# -- the source -----------------------------------------------------------------------------------------

class OpenCodeSource:
    """The databases and JSON trees of OpenCode (or a fork), driven like the tailer
    (:class:`~tokentop.core.sources.protocol.Source`)."""

    def __init__(self, ctx: SourceContext, app: App) -> None:
        self.ctx = ctx
        self.app = app
        self.stats = Stats()
        self.cursors = StoreCursors(ctx.ledger, app.agent)
        self.dbs: dict[str, Database] = {}
        self.trees: dict[str, JsonTree] = {}
        self.emitter: Emitter | None = None
        #: each root's mtime at the last discovery: a new database (a first run, a new channel) is
        #: found by the next tick, not the next full scan
        self.root_mtimes: dict[Path, int | None] = {}

    def _emitter(self) -> Emitter:
        cutoff = self.ctx.clock() - self.ctx.backfill_days * 86400.0
        if self.emitter is None:
            self.emitter = Emitter(self.app, self.ctx.host, self.stats, cutoff)
        self.emitter.cutoff = cutoff
        return self.emitter

    def _root_mtimes(self) -> dict[Path, int | None]:
        out: dict[Path, int | None] = {}
        for root in self.ctx.roots:
            try:
                out[root] = os.stat(root).st_mtime_ns
            except OSError:
                out[root] = None
        return out

    def _discover(self) -> None:
        self.root_mtimes = self._root_mtimes()
        found: set[str] = set()
        for root in self.ctx.roots:
            for path in databases(self.app, root):
                found.add(path)
                if path not in self.dbs:
                    self.dbs[path] = Database(path, self.app, self.cursors, self.ctx.clock)
            storage = root / "storage"
            if not root.is_file() and storage.is_dir() and str(storage) not in self.trees:
                self.trees[str(storage)] = JsonTree(storage, self.app, self.cursors, self.ctx.clock)
        for gone in [p for p in self.dbs if p not in found]:
            del self.dbs[gone]
            self.cursors.drop(gone)
        self.stats.files = len(self.dbs) + len(self.trees)

    def _hand(self, sink: Sink, em: Emitter) -> int:
        batch, em.out = em.out, []
        if batch:
            for i in range(0, len(batch), self.ctx.batch_events):
                sink(batch[i:i + self.ctx.batch_events])
            self.stats.events += len(batch)
        return len(batch)

    def _read(self, sink: Sink, *, force: bool, progress: Progress | None = None) -> int:
        em = self._emitter()
        handed = 0
        stores = list(self.dbs.values())
        total = sum(max(1, os.path.getsize(d.path)) if os.path.exists(d.path) else 1 for d in stores) + len(self.trees)
        done = 0
        for db in stores:
            sig = signature(db.path) if force and db.backoff.ready() else db.changed()
            if sig is not None:
                # a read that stopped half-way (busy) keeps what it got: its cursors moved only past
                # the sections it finished, and the rest is read again on the retry
                db.read(sig, em, self.stats)
                handed += self._hand(sink, em)
                self.cursors.put(db.path, db.state())
            done += max(1, sig.size) if sig is not None else 1
            if progress:
                progress(done, total)
        for tree in self.trees.values():
            if force or tree.changed():
                tree.read(em, self.stats, stores)
                handed += self._hand(sink, em)
                self.cursors.put(tree.key, tree.state())
            done += 1
            if progress:
                progress(done, total)
        self.cursors.commit(self.ctx.clock())
        return handed

    # -- protocol.Source ------------------------------------------------------------------------
    def poll(self, sink: Sink, *, progress: Progress | None = None) -> int:
        # The first poll reads every store (the backfill); later full scans (every 10-30 s) only find
        # new stores and read the ones whose signature changed, like a tick: walking a large legacy
        # JSON tree every scan measured ~2 % of a core.
        first = self.emitter is None
        self._discover()
        return self._read(sink, force=first, progress=progress)

    def poll_changed(self, sink: Sink, paths: set[str]) -> int:
        return 0  # nothing is watched: poll_tick stats the databases

    def poll_recent(self, sink: Sink) -> int:
        return self.poll_tick(sink)

    def poll_tick(self, sink: Sink) -> int:
        if self._root_mtimes() != self.root_mtimes:
            self._discover()
        if not self.dbs and not self.trees:
            return 0
        return self._read(sink, force=False)

    def watch_dirs(self) -> list[Path]:
        # The data directory also holds OpenCode's snapshot repositories and, for old installs, one
        # directory per message: watching it recursively could exhaust inotify watches. The tick's
        # stat of each database (and of the JSON tree's recent directories) replaces the watcher.
        return []


def _opencode_roots(values: Mapping[str, Any], env: Mapping[str, str]) -> tuple[Path, ...]:
    return app_roots(OPENCODE, values, env)


def _opencode_source(ctx: SourceContext) -> OpenCodeSource:
    return OpenCodeSource(ctx, OPENCODE)


FORMAT: Final = StoreFormat(
    name=OPENCODE.agent,
    roots=_opencode_roots,
    source=_opencode_source,
    config_keys={OPENCODE.config_key: Setting(str, "", "OpenCode data dir (holding opencode.db); default "
                                                       "$XDG_DATA_HOME/opencode or ~/.local/share/opencode")},
)

