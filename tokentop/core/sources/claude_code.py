"""Claude Code transcripts (``<config dir>/projects/**/*.jsonl``) → events.

The store, its traps and the rules as implemented are described in ``docs/sources.md``
("Claude Code"). In short:

* Only ``assistant`` lines with a ``message.usage`` object carry usage; a byte pre-filter on
  ``"usage"`` skips every other line without parsing it.
* One API response is logged as 1-3 lines (one per content block) sharing ``message.id`` and
  ``requestId``; early lines carry a *partial* ``output_tokens``. Per dedupe key the entry with the
  largest total (input + output + cache) wins; on a tie the later line wins (its timestamp dates
  the request, as the final streaming line does).
* The dedupe key is ``message.id`` (+ ``requestId`` when present) and the event ``id`` is derived
  from it: ``claude:<requestId>`` (the same request id Claude Code's OTLP ``api_request`` event
  carries, so the request seen through logs and OTLP counts once), else ``claude:msg:<message.id>``.
  The same response re-logged in another file or root (resume, compaction) therefore gets the same
  id and the feed keeps one copy. Lines without ``message.id`` are counted as they are
  (``claude:line:<uuid>``).
* Sidechain replays: a line with ``isSidechain: true`` whose ``message.id`` was already seen
  under another request id is a replay of a parent message and is dropped.
* ``<synthetic>`` models are locally generated messages, not usage. ``null`` fields are treated as
  missing. A non-integer count makes the line malformed (counted, skipped).
* Token semantics: Claude's ``input_tokens`` excludes the cache; the event's ``input_tokens`` is
  input + cache read + cache write. ``cache_creation.ephemeral_1h_input_tokens`` becomes
  ``cache_write_1h_tokens``; when the ``cache_creation`` split is present its sum is the cache write.
"""

from __future__ import annotations

import hashlib
import json
import os

try:  # orjson parses transcript lines ~2-3x faster; the stdlib is the fallback
    from orjson import loads as _loads
except ImportError:  # pragma: no cover
    from json import loads as _loads
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Final, Mapping, Sequence

from tokentop.core.events import Event
from tokentop.core.setting import Setting, string_list
from tokentop.core.sources.protocol import LogFormat

AGENT: Final = "claude-code"
PROVIDER: Final = "anthropic"
SYNTHETIC_MODEL: Final = "<synthetic>"
#: Seen message ids kept for the sidechain-replay rule; the oldest half is forgotten beyond this.
MAX_REMEMBERED_MESSAGES: Final = 400_000


class Malformed(ValueError):
    pass


def claude_roots(configured: list[str] | None = None, env: Mapping[str, str] | None = None) -> list[Path]:
    """The ``projects/`` directories to scan, existing or not, without duplicates.

    ``CLAUDE_CONFIG_DIR`` (comma-separated) wins over the config list; each entry may be a config
    dir (holding ``projects/``) or the ``projects/`` dir itself. Default: ``~/.claude`` and
    ``~/.config/claude`` (``$XDG_CONFIG_HOME/claude``).
    """
    env = os.environ if env is None else env
    raw = env.get("CLAUDE_CONFIG_DIR", "")
    entries = [p.strip() for p in raw.split(",") if p.strip()] if raw else list(configured or [])
    if not entries:
        home = Path(env.get("HOME") or Path.home())
        xdg = env.get("XDG_CONFIG_HOME") or str(home / ".config")
        entries = [str(home / ".claude"), str(Path(xdg) / "claude")]
    out: list[Path] = []
    for entry in entries:
        p = Path(entry).expanduser()
        if p.name != "projects":
            p = p / "projects"
        if p not in out:
            out.append(p)
    return out


def subagent_agent(path: Path) -> str | None:
    """``claude-code/<agentType>`` for a file under ``subagents/`` (type from its ``.meta.json``)."""
    if "subagents" not in path.parts:
        return None
    meta = path.with_name(path.name[: -len(".jsonl")] + ".meta.json")
    kind = "subagent"
    try:
        with open(meta, "rb") as fh:
            data = json.loads(fh.read(65536))
        value = data.get("agentType") if isinstance(data, dict) else None
        if isinstance(value, str) and value.strip():
            kind = value.strip()[:100]
    except (OSError, ValueError):
        pass
    return f"{AGENT}/{kind}"


@dataclass(slots=True)
class Candidate:
    """One usage line, counted but not yet converted: the best line per key becomes an event, and
    only then are its text fields and timestamp converted (streaming duplicates never are)."""

    id: str
    message_id: str | None
    sidechain: bool
    final: bool
    total: int
    offset: int
    obj: dict[str, Any]
    model: str | None
    inp: int
    out: int
    read: int
    write: int
    write_1h: int

    def event(self, agent: str, host: str | None) -> Event:
        """Raises :class:`Malformed` when the timestamp cannot be read."""
        obj = self.obj
        get = obj.get
        read, write = self.read, self.write
        # positional (Event's field order): keyword construction measured slower on this hot path
        return Event(
            self.id, parse_ts(get("timestamp")), agent, _text(get("sessionId")), project_of(_text(get("cwd"))),
            host, None, PROVIDER, self.model,
            self.inp + read + write,  # input_tokens: Claude's input excludes the cache; the contract's includes it
            self.out, read, write, self.write_1h, 0,  # output, cache read, cache write, of it 1h, reasoning
            None, None, "ok", "claude-code-log", _text(get("gitBranch")),  # cost_usd, latency_ms, status, source, branch
        )


def _count(usage: dict[str, Any], name: str) -> int:
    value = usage.get(name)
    if value is None:
        return 0
    if type(value) is int and value >= 0:
        return value
    if isinstance(value, float) and value.is_integer() and value >= 0:
        return int(value)
    raise Malformed(f"usage.{name} is not a non-negative integer: {str(value)[:40]!r}")


def _text(value: Any) -> str | None:
    if isinstance(value, str):
        value = value.strip()
        return value[:512] or None
    return None


def parse_ts(value: Any) -> float:
    if not isinstance(value, str) or len(value) < 19:
        raise Malformed(f"timestamp missing or not a string: {str(value)[:40]!r}")
    try:
        return datetime.fromisoformat(value).timestamp()
    except ValueError:
        raise Malformed(f"timestamp is not ISO-8601: {value[:40]!r}") from None


def project_of(cwd: str | None) -> str | None:
    if not cwd:
        return None
    name = cwd.rstrip("/\\").replace("\\", "/").rsplit("/", 1)[-1]
    return name[:512] or None


def parse_line(raw: bytes, offset: int) -> Candidate | None:
    """One transcript line → a :class:`Candidate` (``None`` when it carries no usage).

    Raises :class:`Malformed` for a line that looks like usage but cannot be read.
    """
    try:
        obj = _loads(raw)
    except ValueError:
        raise Malformed("not valid JSON") from None
    if not isinstance(obj, dict):
        raise Malformed("line is not a JSON object")
    kind = obj.get("type")
    if kind is not None and kind != "assistant":
        return None
    msg = obj.get("message")
    if not isinstance(msg, dict):
        return None
    usage = msg.get("usage")
    if not isinstance(usage, dict):
        return None
    model = msg.get("model")
    if type(model) is not str or not model or len(model) > 200 or model[0] == " " or model[-1] == " ":
        model = _text(model)
    if model == SYNTHETIC_MODEL:
        return None
    inp = usage.get("input_tokens")
    if type(inp) is not int or inp < 0:
        inp = _count(usage, "input_tokens")
    out = usage.get("output_tokens")
    if type(out) is not int or out < 0:
        out = _count(usage, "output_tokens")
    read = usage.get("cache_read_input_tokens")
    if type(read) is not int or read < 0:
        read = _count(usage, "cache_read_input_tokens")
    split = usage.get("cache_creation")
    if isinstance(split, dict):
        write_1h = _count(split, "ephemeral_1h_input_tokens")
        write = _count(split, "ephemeral_5m_input_tokens") + write_1h
        if write == 0:
            write = _count(usage, "cache_creation_input_tokens")
    else:
        write_1h = 0
        write = _count(usage, "cache_creation_input_tokens")
    total = inp + out + read + write
    if total == 0:
        return None  # API-error placeholders and the like: no usage
    stamp = obj.get("timestamp")
    if not isinstance(stamp, str) or len(stamp) < 19:
        raise Malformed(f"timestamp missing or not a string: {str(stamp)[:40]!r}")
    mid = msg.get("id")
    mid = mid if type(mid) is str and mid and len(mid) <= 200 else _text(mid)
    req = obj.get("requestId")
    req = req if type(req) is str and req and len(req) <= 200 else _text(req)
    if req:
        event_id = f"claude:{req}"
    elif mid:
        event_id = f"claude:msg:{mid}"
    else:
        line_id = _text(obj.get("uuid")) or hashlib.sha1(raw).hexdigest()
        event_id = f"claude:line:{line_id}"
    sidechain = obj.get("isSidechain") is True
    speed = usage.get("speed")
    if speed == "fast" and model:
        model = f"{model}-fast" if not model.endswith("-fast") else model
    return Candidate(event_id, mid, sidechain, msg.get("stop_reason") is not None, total, offset, obj, model,
                     inp, out, read, write, write_1h)


class MessageMemory:
    """Message ids seen across every file and root (the sidechain-replay rule), bounded."""

    def __init__(self, limit: int = MAX_REMEMBERED_MESSAGES) -> None:
        self.limit = limit
        self._ids: dict[str, str] = {}

    def admit(self, cand: Candidate) -> bool:
        """False when ``cand`` is a sidechain replay of a message already counted under another id."""
        mid = cand.message_id
        if mid is None:
            return True
        known = self._ids.get(mid)
        if known is not None and known != cand.id:
            if cand.sidechain:
                return False
        if known is None:
            if len(self._ids) >= self.limit:
                for k in list(self._ids)[: self.limit // 2]:
                    del self._ids[k]
            self._ids[mid] = cand.id
        return True


    def export(self) -> dict[str, str]:
        return self._ids

    def merge(self, ids: dict[str, str]) -> None:
        for mid, event_id in ids.items():
            self._ids.setdefault(mid, event_id)


class ClaudeFile:
    """Per-file reader state: responses whose final streaming line has not been seen yet."""

    prefilter = b'"usage"'

    def __init__(self, path: Path, host: str | None, memory: MessageMemory, state: dict[str, Any] | None = None) -> None:
        self.path = path
        self.host = host
        self.memory = memory
        self.agent = subagent_agent(path) or AGENT
        self.pending: dict[str, Candidate] = {}
        self.pending_since: dict[str, float] = {}

    def state(self) -> dict[str, Any] | None:
        return None  # pending lines are re-read from the cursor instead

    def first_pending_offset(self) -> int | None:
        return min((c.offset for c in self.pending.values()), default=None)

    def feed(self, raw: bytes, offset: int, live: bool, now: float, out: list[Event], stats: dict[str, int]) -> None:
        try:
            cand = parse_line(raw, offset)
        except Malformed:
            stats["malformed"] = stats.get("malformed", 0) + 1
            return
        if cand is None:
            return
        prev = self.pending.get(cand.id)
        if prev is not None:
            stats["streaming_duplicates"] = stats.get("streaming_duplicates", 0) + 1
            if cand.total >= prev.total:
                cand.offset = min(prev.offset, cand.offset)
                cand.final = cand.final or prev.final
                self.pending[cand.id] = cand
            else:
                prev.final = prev.final or cand.final
        else:
            self.pending[cand.id] = cand
            self.pending_since[cand.id] = now
        if live and self.pending[cand.id].final:
            self._emit(self.pending.pop(cand.id), out, stats)
            self.pending_since.pop(cand.id, None)

    def flush(self, out: list[Event], stats: dict[str, int], older_than: float | None = None) -> None:
        """Emit pending responses (all, or those first seen before ``older_than``)."""
        for key in list(self.pending):
            if older_than is not None and self.pending_since.get(key, 0.0) > older_than:
                continue
            self._emit(self.pending.pop(key), out, stats)
            self.pending_since.pop(key, None)

    def _emit(self, cand: Candidate, out: list[Event], stats: dict[str, int]) -> None:
        try:
            event = cand.event(self.agent, self.host)
        except Malformed:
            stats["malformed"] = stats.get("malformed", 0) + 1
            return
        if not self.memory.admit(cand):
            stats["sidechain_replays"] = stats.get("sidechain_replays", 0) + 1
            return
        out.append(event)


# -- what the shared tailer needs (protocol.LogFormat) -------------------------------------------------

def _roots(values: Mapping[str, Any], env: Mapping[str, str]) -> tuple[Path, ...]:
    return tuple(claude_roots(list(values["claude_roots"]), env))


def is_subagent(path: str) -> bool:
    """Subagent transcripts (``<session>/subagents/*.jsonl``) are read after their parents: the
    sidechain-replay rule needs the parent's message ids first."""
    return f"{os.sep}subagents{os.sep}" in path


def project_dir(path: str, roots: Sequence[Path]) -> str:
    """``<root>/<project>``: a project's files (a session and its subagents) stay in one backfill job."""
    for root in roots:
        prefix = str(root).rstrip(os.sep) + os.sep
        if path.startswith(prefix):
            return prefix + path[len(prefix):].split(os.sep, 1)[0]
    return path.rsplit(os.sep, 1)[0]


FORMAT: Final = LogFormat(
    name=AGENT,
    roots=_roots,
    reader=ClaudeFile,
    config_keys={
        "claude_roots": Setting(list, [], "Claude config dirs (each holding projects/); default ~/.claude and ~/.config/claude",
                                string_list),
    },
    suffixes=(".jsonl",),
    later=is_subagent,
    group=project_dir,
    shared=MessageMemory,
)
