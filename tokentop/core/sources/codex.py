"""Codex CLI rollouts (``$CODEX_HOME/{sessions,archived_sessions}/**/rollout-*.jsonl[.zst]``) → events.

The store, its traps and the rules as implemented are described in ``docs/sources.md`` ("Codex").
In short:

* Usage comes from ``event_msg`` lines with ``payload.type == "token_count"``; ``info: null``
  (rate-limit-only updates) carries none.
* A request's tokens are the delta of the cumulative ``info.total_token_usage`` against the previous
  one in the same file. A re-emit with an unchanged total adds nothing. A total that goes down is a
  new baseline: that line counts its ``last_token_usage``.
* The event id is ``codex:<session>:<cumulative input>:<cached>:<output>:<reasoning>`` — the same
  step of the same thread gets the same id wherever it is read (an archived copy, a re-read).
* Forked / subagent threads (first ``session_meta`` has ``forked_from_id`` or a
  ``source.subagent`` spawn) start by replaying the parent's history, ``token_count`` lines
  included, either re-stamped with the fork's second or with the parent's own timestamps over
  many seconds. They are told apart by content, never by time: the totals of every thread read
  are remembered (:class:`ThreadTotals`), and the child's lines are the parent's history while
  their cumulative totals are ones the parent had; the first total the parent never had is the
  child's own first response. When the parent was not read by this process (its file is elsewhere,
  or read by another process), a replayed line is recognised by its turn id (a UUIDv7, created
  before the child itself) or, without one, by coming before the child's first own turn; it is
  then emitted as the parent's own event (its id, session and ``revision`` 0), so it merges with
  the parent's record wherever that is read: counted once, in the parent. Forked rollouts are read
  after the others (their first line says so), so a parent on disk is read first.
* The model is the latest ``turn_context.payload.model`` (or a ``model`` on the token_count
  itself); without one the event is left unpriced, never guessed.
* Semantics already match the event contract: ``input_tokens`` includes ``cached_input_tokens``
  (clamped to it), ``output_tokens`` includes ``reasoning_output_tokens``.
* Files: ``sessions/`` wins over ``archived_sessions/`` for the same file name, and a plain
  ``.jsonl`` over its ``.jsonl.zst`` (:func:`pick_rollouts`); ``.zst`` rollouts are read whole.
* Every ``token_count`` line's ``rate_limits`` (the plan's 5-hour and weekly windows) goes to the
  format's shared :class:`~tokentop.core.limits.codex.RateLimitLog` (``CodexShared.rate_limits``) as
  the line is read, repeats and ``info: null`` lines included, a fork's replay of its parent's
  history excluded (:meth:`CodexFile._rate_limits`); the feed's limits part takes it from there
  (docs/limits.md).
"""

from __future__ import annotations

import os
import re
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, Mapping

from tokentop.core.events import Event
from tokentop.core.limits.codex import RateLimitLog, account_of
from tokentop.core.setting import Setting
from tokentop.core.sources.claude_code import Malformed, _text, loads_line, parse_ts, project_of
from tokentop.core.sources.protocol import Found, LineReader, LogFormat

if TYPE_CHECKING:
    from tokentop.config import Config

AGENT: Final = "codex"
PROVIDER: Final = "openai"
_FIELDS: Final = ("input_tokens", "cached_input_tokens", "output_tokens", "reasoning_output_tokens")
_UUID_TAIL = re.compile(r"([0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12})\.jsonl(?:\.zst)?$")
_UUID7 = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-7[0-9a-fA-F]{3}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
#: ``revision`` of a thread's own token_count and of a forked child's copy of its parent's
OWN_RECORD: Final = 1
REPLAYED_COPY: Final = 0
#: Threads whose totals are remembered for the fork rule; the oldest half is forgotten beyond this.
MAX_REMEMBERED_THREADS: Final = 2000
#: Bytes of a rollout's head read to learn whether it is a fork (its first line, session_meta)
HEAD_BYTES: Final = 16384


def uuid7_ms(value: object) -> int | None:
    """The creation time (ms) a UUIDv7 carries, else ``None``."""
    if isinstance(value, str) and _UUID7.match(value):
        return int(value[:8] + value[9:13], 16)
    return None


class ThreadTotals:
    """The cumulative totals each thread's rollout went through (hashed), shared by every Codex
    file of a process: a forked child's lines whose totals its parent had are the parent's history.
    A parent this process has not read (a restart, another worker's share) is looked up on disk."""

    def __init__(self, limit: int = MAX_REMEMBERED_THREADS) -> None:
        self.limit = limit
        self._threads: dict[str, set[int]] = {}
        #: threads whose rollout was looked for and not found
        self._absent: set[str] = set()

    def add(self, thread: str, total: tuple[int, int, int, int]) -> None:
        seen = self._threads.get(thread)
        if seen is None:
            if len(self._threads) >= self.limit:
                for k in list(self._threads)[: self.limit // 2]:
                    del self._threads[k]
            seen = self._threads[thread] = set()
        seen.add(hash(total))  # ints hash the same in every process (no salt)

    def had(self, thread: str) -> set[int] | None:
        return self._threads.get(thread)

    def had_or_load(self, thread: str, near: Path) -> set[int] | None:
        """:meth:`had`, reading the thread's rollout first when this process never did (found under
        the Codex home of ``near``, the child's rollout). ``None``: no such rollout."""
        known = self._threads.get(thread)
        if known is not None or thread in self._absent:
            return known
        path = find_rollout(thread, near)
        if path is None:
            self._absent.add(thread)
            return None
        try:
            data = read_zstd(str(path)) if path.name.endswith(".zst") else path.read_bytes()
        except Exception:  # noqa: BLE001 - unreadable: treated as absent (the fallbacks still count once)
            self._absent.add(thread)
            return None
        for raw in data.split(b"\n"):
            if b'"token_count"' not in raw or b'"total_token_usage"' not in raw:
                continue
            try:
                obj = loads_line(raw)
                total = _usage(obj["payload"]["info"]["total_token_usage"])
            except (Malformed, KeyError, TypeError):
                continue
            if total is not None:
                self.add(thread, total)
        return self._threads.setdefault(thread, set())

    def export(self) -> dict[str, set[int]]:
        return self._threads

    def merge(self, exported: dict[str, set[int]]) -> None:
        for thread, totals in exported.items():
            self._threads.setdefault(thread, set()).update(totals)


class CodexShared:
    """What every Codex file of a process shares: the threads' totals (the fork rule) and the quota
    figures (``rate_limits``, for the feed's limits part). A backfill worker's copy is exported and
    merged back like any :class:`~tokentop.core.sources.protocol.SharedState`."""

    def __init__(self) -> None:
        self.totals = ThreadTotals()
        self.rate_limits = RateLimitLog()

    def export(self) -> dict[str, Any]:
        return {"totals": self.totals.export(), "rate_limits": self.rate_limits.export()}

    def merge(self, exported: dict[str, Any]) -> None:
        self.totals.merge(exported.get("totals") or {})
        self.rate_limits.merge(exported.get("rate_limits") or ())


def codex_homes(configured: str = "", env: Mapping[str, str] | None = None) -> list[Path]:
    """Codex homes: ``CODEX_HOME`` (comma-separated allowed), else the config value, else ``~/.codex``."""
    env = os.environ if env is None else env
    raw = env.get("CODEX_HOME", "") or configured
    if raw:
        return [Path(p.strip()).expanduser() for p in raw.split(",") if p.strip()]
    return [Path(env.get("HOME") or Path.home()) / ".codex"]


def _usage(obj: Any) -> tuple[int, int, int, int] | None:
    if not isinstance(obj, dict):
        return None
    vals = []
    for name in _FIELDS:
        v = obj.get(name)
        if v is None:
            v = 0
        if type(v) is not int or v < 0:
            if isinstance(v, float) and v.is_integer() and v >= 0:
                v = int(v)
            else:
                raise Malformed(f"{name} is not a non-negative integer: {str(v)[:40]!r}")
        vals.append(v)
    return (vals[0], vals[1], vals[2], vals[3])


def find_rollout(thread: str, near: Path) -> Path | None:
    """The rollout of ``thread`` in the Codex home holding ``near``: the day directories around the
    thread's creation (a UUIDv7's time; rollout paths use local dates), then the whole home."""
    home = next((p.parent for p in near.parents if p.name in ("sessions", "archived_sessions")), None)
    if home is None or not _UUID_TAIL.search(f"{thread}.jsonl"):
        return None
    names = (f"rollout-*-{thread}.jsonl", f"rollout-*-{thread}.jsonl.zst")
    dirs: list[Path] = [home / "archived_sessions"]
    ms = uuid7_ms(thread)
    if ms is not None:
        for shift in (0, -86400, 86400):
            day = datetime.fromtimestamp(ms / 1000 + shift)
            dirs.append(home / "sessions" / f"{day:%Y}" / f"{day:%m}" / f"{day:%d}")
    for d in dirs:
        for name in names:
            found = sorted(d.glob(name))
            if found:
                return found[0]
    for sub in ("sessions", "archived_sessions"):
        for name in names:
            found = sorted((home / sub).rglob(name))
            if found:
                return found[0]
    return None


class CodexFile(LineReader):
    """Per-file reader state: session facts, current model, the last cumulative total, and for a
    forked thread where its replay of the parent's history stands."""

    prefilter = None  # lines are filtered by the kinds below

    def __init__(self, path: Path, host: str | None, shared: CodexShared | ThreadTotals | None = None,
                 state: dict[str, Any] | None = None) -> None:
        super().__init__(path, host)
        m = _UUID_TAIL.search(path.name)
        st = state or {}
        if isinstance(shared, CodexShared):
            self.totals = shared.totals
        else:
            self.totals = shared if shared is not None else ThreadTotals()
        self.session: str | None = st.get("session") or (m.group(1) if m else None)
        self.own_session_known: bool = bool(st.get("own"))
        self.model: str | None = st.get("model")
        self.cwd: str | None = st.get("cwd")
        self.branch: str | None = st.get("branch")
        self.prev: tuple[int, int, int, int] | None = tuple(st["prev"]) if st.get("prev") else None  # type: ignore[assignment]
        self.forked: bool = bool(st.get("forked"))
        #: the thread this one was forked from
        self.parent: str | None = st.get("parent")
        #: a forked thread is replaying its parent's history until its first own token_count
        self.replaying: bool = bool(st.get("replaying", self.forked))
        #: threads named by the session_meta lines of this file (the replayed ones): id -> (created ms, cwd, branch)
        self.threads: dict[str, list[Any]] = st.get("threads") or {}
        #: UUIDv7 time of the turn the next token_count belongs to
        self.turn_ms: int | None = st.get("turn_ms")
        #: where this file's quota figures go (the format's shared state), and its account
        self.rate_log: RateLimitLog | None = shared.rate_limits if isinstance(shared, CodexShared) else None
        self.account: str | None = None

    def state(self) -> dict[str, Any]:
        return {
            "session": self.session, "own": self.own_session_known, "model": self.model, "cwd": self.cwd,
            "branch": self.branch, "prev": list(self.prev) if self.prev else None, "forked": self.forked,
            "parent": self.parent, "replaying": self.replaying, "threads": self.threads, "turn_ms": self.turn_ms,
        }

    def feed(self, raw: bytes, offset: int, live: bool, now: float, out: list[Event], stats: dict[str, int]) -> None:
        if b'"token_count"' not in raw and b'"turn_context"' not in raw and b'"session_meta"' not in raw \
                and b'"task_started"' not in raw:
            return
        try:
            self._line(raw, out, stats)
        except Malformed:
            stats["malformed"] = stats.get("malformed", 0) + 1

    def _line(self, raw: bytes, out: list[Event], stats: dict[str, int]) -> None:
        obj = loads_line(raw)
        if not isinstance(obj, dict):
            raise Malformed("line is not a JSON object")
        kind = obj.get("type")
        payload = obj.get("payload")
        if not isinstance(payload, dict):
            return
        if kind == "session_meta":
            self._meta(payload)
            return
        if kind == "turn_context":
            model = _text(payload.get("model"))
            if model:
                self.model = model
            cwd = payload.get("cwd")
            if isinstance(cwd, str) and cwd:
                self.cwd = cwd
            self._turn(payload.get("turn_id"))
            return
        if kind != "event_msg":
            return
        if payload.get("type") == "task_started":
            self._turn(payload.get("turn_id"))
            return
        if payload.get("type") != "token_count":
            return
        info = payload.get("info")
        if not isinstance(info, dict):
            stats["info_null"] = stats.get("info_null", 0) + 1
            self._rate_limits(payload, obj)
            return
        total = _usage(info.get("total_token_usage"))
        last = _usage(info.get("last_token_usage"))
        ts = parse_ts(obj.get("timestamp"))
        for holder in (info, payload):
            m = _text(holder.get("model") or holder.get("model_name"))
            if m:
                self.model = m
        owner = self.session
        if self.replaying:
            owner = self._replay_owner(total)
            if owner is None:
                self.replaying = False  # the first total its parent never had: the child's own from here on
                owner = self.session
            elif owner == "":
                if total is not None:
                    self.prev = total  # the parent's history, already counted from the parent's file
                    self._remember(total)
                stats["fork_replays"] = stats.get("fork_replays", 0) + 1
                return
        self._rate_limits(payload, obj, ts)
        if total is None:
            if last is None:
                return
            delta = last
        elif self.prev is None:
            delta = total
        elif total == self.prev:
            stats["reemits"] = stats.get("reemits", 0) + 1
            return
        else:
            delta = tuple(a - b for a, b in zip(total, self.prev))  # type: ignore[assignment]
            if min(delta) < 0:
                delta = last if last is not None else total
        if total is not None:
            self.prev = total
            self._remember(total)
        inp, cached, output, reasoning = delta
        if inp == 0 and cached == 0 and output == 0 and reasoning == 0:
            return
        cached = min(cached, inp)
        reasoning = min(reasoning, output)
        mark = total if total is not None else delta
        own = owner == self.session
        if not own:
            stats["fork_replays_attributed"] = stats.get("fork_replays_attributed", 0) + 1
        cwd, branch = (self.cwd, self.branch) if own else self._thread_place(owner)
        out.append(Event(
            id=f"codex:{owner}:{mark[0]}:{mark[1]}:{mark[2]}:{mark[3]}",
            ts=ts,
            agent=AGENT,
            session=owner,
            project=project_of(cwd),
            host=self.host,
            provider=PROVIDER,
            model=self.model,
            input_tokens=inp,
            output_tokens=output,
            cache_read_tokens=cached,
            reasoning_tokens=reasoning,
            source="codex-log",
            branch=branch,
            revision=OWN_RECORD if own else REPLAYED_COPY,
        ))

    def _remember(self, total: tuple[int, int, int, int]) -> None:
        if self.session:
            self.totals.add(self.session, total)  # what a fork of this thread would replay

    def _replay_owner(self, total: tuple[int, int, int, int] | None) -> str | None:
        """During a forked thread's replay: ``""`` for a line of history the parent's own file
        already gave (its total is one the parent had), the thread whose history it is (to be
        emitted as that thread's event), or ``None`` for the child's own first response."""
        key = None if total is None else hash(total)
        ancestors = [t for t in self.threads if t != self.session]
        if self.parent and self.parent not in ancestors:
            ancestors.append(self.parent)
        known = [self.totals.had_or_load(t, self.path) for t in ancestors]
        if key is not None and any(k is not None and key in k for k in known):
            return ""
        own_ms = uuid7_ms(self.session)
        if self.turn_ms is not None and own_ms is not None:
            if self.turn_ms >= own_ms:
                return None  # a turn created after the child itself: its own
            # the latest thread created before this turn is the one whose history it is
            owner, best = self.parent, -1
            for t, (created, *_rest) in self.threads.items():
                if t != self.session and created is not None and best < created <= self.turn_ms:
                    owner, best = t, created
            return owner or None
        if all(k is not None for k in known) and known:
            return None  # every ancestor's history is known, and this total is in none of them
        return self.parent or next(iter(ancestors), None)  # undecidable: keep it as the parent's (counted once)

    def _thread_place(self, thread: str | None) -> tuple[str | None, str | None]:
        info = self.threads.get(thread or "")
        return (info[1], info[2]) if info else (self.cwd, self.branch)

    def _turn(self, turn_id: object) -> None:
        ms = uuid7_ms(turn_id)
        if ms is not None:
            self.turn_ms = ms

    def _rate_limits(self, payload: dict[str, Any], obj: dict[str, Any], ts: float | None = None) -> None:
        """Hand this token_count line's ``rate_limits`` to the quota log, whether or not the line
        added usage (a repeat of the previous totals often carries refreshed windows). A fork's
        replay of its parent's lines is skipped: those figures are the parent's, restamped."""
        if self.rate_log is None or "rate_limits" not in payload or self._in_replay():
            return
        if ts is None:
            try:
                ts = parse_ts(obj.get("timestamp"))
            except Malformed:
                return
        if self.account is None:
            self.account = account_of(self.path)
        self.rate_log.read(payload["rate_limits"], ts, self.account)

    def _in_replay(self) -> bool:
        """A forked thread still replaying its parent's history (until its own first response)."""
        return self.replaying

    def _meta(self, payload: dict[str, Any]) -> None:
        sid = _text(payload.get("id"))
        cwd = payload.get("cwd") if isinstance(payload.get("cwd"), str) and payload.get("cwd") else None
        git = payload.get("git")
        branch = _text(git.get("branch")) if isinstance(git, dict) else None
        if not self.own_session_known:  # the first session_meta is this thread's; later ones are replayed
            self.own_session_known = True
            if sid:
                self.session = sid
            source = payload.get("source")
            spawned = isinstance(source, dict) and "subagent" in source
            parent = _text(payload.get("forked_from_id"))
            if parent is None and spawned:
                spawn = source["subagent"].get("thread_spawn") if isinstance(source["subagent"], dict) else None
                parent = _text(spawn.get("parent_thread_id")) if isinstance(spawn, dict) else None
            if parent or spawned:
                self.forked = True
                self.replaying = True
                self.parent = parent
            if cwd:
                self.cwd = cwd
            if branch:
                self.branch = branch
            return
        if sid and sid != self.session and sid not in self.threads:
            self.threads[sid] = [uuid7_ms(sid), cwd, branch]
            if self.forked and self.parent is None:
                self.parent = sid


# -- what the shared tailer needs (protocol.LogFormat) -------------------------------------------------

def rollouts_enabled(config: Config) -> bool:
    """Whether ``[sources] enabled`` reads Codex rollout files. The OTLP receiver then leaves Codex's
    OTel events, which carry the same requests under no shared id, to the rollout reader."""
    return AGENT in config.sources.enabled


def _homes(values: Mapping[str, Any], env: Mapping[str, str]) -> tuple[Path, ...]:
    return tuple(codex_homes(values["codex_home"], env))


def _name(path: str) -> str:
    return path.rsplit(os.sep, 1)[-1]


def pick_rollouts(per_dir: list[list[Found]]) -> list[Found]:
    """Of the rollouts under one home (``[sessions/ files, archived_sessions/ files]``): a name in
    ``sessions/`` wins over the same name in ``archived_sessions/`` (``.zst`` or not), and a plain
    ``.jsonl`` wins over its ``.jsonl.zst`` (Codex keeps both while it compresses)."""
    active, archived = per_dir
    names = {_name(p).removesuffix(".zst") for p, _ in active}
    files = active + [(p, st) for p, st in archived if _name(p).removesuffix(".zst") not in names]
    plain = {_name(p) for p, _ in files if p.endswith(".jsonl")}
    return [(p, st) for p, st in files if not (p.endswith(".zst") and _name(p)[:-4] in plain)]


def read_zstd(path: str) -> bytes:
    """A whole ``.jsonl.zst`` rollout, decompressed (``zstandard`` is imported on first use)."""
    import zstandard

    with open(path, "rb") as fh:
        return zstandard.ZstdDecompressor().stream_reader(fh).read()


#: path -> whether its rollout is a forked thread (a file's first line never changes)
_FORKS: dict[str, bool] = {}


def is_fork(path: str) -> bool:
    """Forked / subagent rollouts are read after the others, so a parent on disk is read (and its
    totals known) before the child replays it. Learnt from the file's first line, once per path."""
    known = _FORKS.get(path)
    if known is None:
        try:
            if path.endswith(".zst"):
                import zstandard

                with open(path, "rb") as fh:
                    head = zstandard.ZstdDecompressor().stream_reader(fh).read(HEAD_BYTES)
            else:
                with open(path, "rb") as fh:
                    head = fh.read(HEAD_BYTES)
        except Exception:  # noqa: BLE001 - unreadable now: ordered as a parent, not remembered
            return False
        if b"\n" not in head and len(head) < HEAD_BYTES:
            return False  # its first line is not written yet: ask again next time
        first = head.split(b"\n", 1)[0]  # (a longer first line names its parent near its start)
        known = b'"forked_from_id"' in first or b'"thread_spawn"' in first or b'"subagent"' in first
        if len(_FORKS) > 100_000:
            _FORKS.clear()
        _FORKS[path] = known
    return known


FORMAT: Final = LogFormat(
    name=AGENT,
    roots=_homes,
    reader=CodexFile,
    config_keys={"codex_home": Setting(str, "", "Codex home (holding sessions/); default ~/.codex")},
    suffixes=(".jsonl", ".jsonl.zst"),
    prefix="rollout-",
    subdirs=("sessions", "archived_sessions"),
    pick=pick_rollouts,
    later=is_fork,
    whole=((".zst", read_zstd),),
    shared=CodexShared,
)
