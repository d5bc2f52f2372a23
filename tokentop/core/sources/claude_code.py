"""Claude Code transcripts (``<config dir>/projects/**/*.jsonl``) → events.

The store, its traps and the rules as implemented are described in ``docs/sources.md``
("Claude Code"). In short:

* ``assistant`` lines with a ``message.usage`` object carry usage, and so do ``progress`` lines of
  ``data.type == "agent_progress"`` that embed a subagent's assistant message; a byte pre-filter on
  ``"usage"`` skips every other line without parsing it.
* One API response is logged as several lines (one per content block) sharing ``message.id`` and
  ``requestId``. Claude Code 2.x leaves ``stop_reason`` null on almost all of them, up to 2.1.96
  early lines carry a *partial* ``output_tokens`` (and often no line carries the final one), and
  2.1.97+ writes the final usage on every line. No line says "complete", so a response is emitted
  at first sight and emitted again when a later line carries more: the feed's ledger keeps the
  largest record per id (``tokentop.core.revision``), which makes the second one a *revision*.
  Within one read of a file only the largest line per response is emitted.
* The event ``id``: ``claude:<requestId>`` (the request id Claude Code's OTLP ``api_request`` event
  carries, so the request seen through logs and OTLP counts once), else
  ``claude:msg:<sessionId>:<message.id>`` (gateways without request ids reuse message ids across
  sessions), else ``claude:line:<uuid>``. The same response re-logged in another file or root
  (resume, compaction, a subagent's message embedded in its parent's progress line) gets the same
  id and the feed keeps one record.
* ``revision`` 1 for a transcript's own line, 0 for an ``agent_progress`` embed: at equal counts the
  subagent's own transcript line (with its agent type) replaces the embed, and either replaces
  Claude Code's OTLP record of the request (which has no 5-minute/1-hour cache split).
* Sidechain replays: a line with ``isSidechain: true`` whose ``message.id`` was already seen
  under another request id is a replay of a parent message and is dropped.
* ``<synthetic>`` models are locally generated messages, not usage. ``null`` fields are treated as
  missing. A non-integer count makes the line malformed (counted, skipped). A line orjson refuses
  but the standard library reads (a lone surrogate escape, written when Claude Code cuts text
  inside an emoji) is read by the standard library; text kept from it is made valid Unicode. A line
  nested too deep for either parser is malformed.
* Token semantics: Claude's ``input_tokens`` excludes the cache; the event's ``input_tokens`` is
  input + cache read + cache write. ``cache_creation.ephemeral_1h_input_tokens`` becomes
  ``cache_write_1h_tokens``; when the ``cache_creation`` split sums to less than
  ``cache_creation_input_tokens`` the remainder is booked as 5-minute writes (counted as
  ``cache_split_short``). ``usage.speed == "fast"`` and ``server_tool_use.web_search_requests``
  become the event's ``speed`` and ``web_searches`` (priced by ``pricing.py``).
"""

from __future__ import annotations

import hashlib
import json
import os
import re

try:  # orjson parses transcript lines ~2-3x faster; the stdlib is the fallback
    from orjson import loads as _fast_loads
except ImportError:  # pragma: no cover
    from json import loads as _fast_loads
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, Final, Mapping, Sequence

import msgspec
from msgspec import UNSET, Meta, Struct, UnsetType

from tokentop.core import fastjson
from tokentop.core.events import MAX_TOKENS, Event, normalise_speed
from tokentop.core.revision import wins
from tokentop.core.setting import Setting, string_list
from tokentop.core.sources.protocol import LogFormat

AGENT: Final = "claude-code"
PROVIDER: Final = "anthropic"
SOURCE: Final = "claude-code-log"
SYNTHETIC_MODEL: Final = "<synthetic>"
#: Seen message ids kept for the sidechain-replay rule; the oldest half is forgotten beyond this.
MAX_REMEMBERED_MESSAGES: Final = 400_000
#: ``revision`` of a transcript's own line and of a subagent message embedded in a progress line
OWN_RECORD: Final = 1
EMBEDDED_COPY: Final = 0
_AGENT_ID = re.compile(r"^[A-Za-z0-9_.-]{1,100}$")


class Malformed(ValueError):
    pass


def loads_line(raw: bytes) -> Any:
    """One JSON line: orjson, else the standard library for what only it accepts (a lone surrogate
    escape such as ``"\\ud83d"``; bytes that are not UTF-8, such as a write torn inside a character,
    read as U+FFFD, so the line's usage still counts). Raises :class:`Malformed` for invalid JSON and
    for nesting too deep for either parser (the standard library's RecursionError)."""
    try:
        return _fast_loads(raw)
    except ValueError:
        pass
    try:
        return json.loads(raw)
    except UnicodeDecodeError:
        pass
    except (ValueError, RecursionError):
        raise Malformed("not valid JSON") from None
    try:
        return json.loads(raw.decode("utf-8", "replace"))
    except (ValueError, RecursionError):
        raise Malformed("not valid JSON") from None


def valid_text(value: str) -> str:
    """``value`` with lone surrogates (which no UTF-8 store can hold) replaced by U+FFFD."""
    try:
        value.encode("utf-8")
        return value
    except UnicodeEncodeError:
        return "".join("\ufffd" if "\ud800" <= ch <= "\udfff" else ch for ch in value)


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
            kind = valid_text(value.strip()[:100])
    except (OSError, ValueError, RecursionError):
        pass
    return f"{AGENT}/{kind}"


class Candidate(Struct, gc=False):
    """One usage line, read but not yet converted: the largest line per response in a read becomes
    an event, and only then are its text fields and timestamp converted. (A ``msgspec.Struct``: one
    is built per usage line, and its C constructor measured 3x faster than a slotted dataclass's.)"""

    id: str
    message_id: str | None
    sidechain: bool
    total: int
    out: int
    model: str | None
    inp: int
    read: int
    write: int
    write_1h: int
    revision: int
    speed: str | None
    web_searches: int
    #: the cache_creation split summed to less than cache_creation_input_tokens
    split_short: bool
    # raw values of the line, converted by event()
    stamp: str
    session: Any
    cwd: Any
    branch: Any
    #: the subagent an agent_progress embed belongs to (its ``data.agentId``), else None
    subagent: str | None = None
    converted: Event | None = None

    def event(self, agent: str, host: str | None, places: Places | None = None) -> Event:
        """The event (built once). Raises :class:`Malformed` when the timestamp cannot be read.
        ``places``: the converted session, project and branch of the reader's previous event."""
        e = self.converted
        if e is None:
            session, project, branch = (places or Places()).of(self.session, self.cwd, self.branch)
            read, write = self.read, self.write
            # positional (Event's field order): keyword construction measured slower on this hot path
            e = self.converted = Event(
                self.id, parse_ts(self.stamp), agent, session, project, host, None, PROVIDER, self.model,
                self.inp + read + write,  # input_tokens: Claude's input excludes the cache; the contract's includes it
                self.out, read, write, self.write_1h, 0,  # output, cache read, cache write, of it 1h, reasoning
                None, None, "ok", SOURCE, branch,  # cost_usd, latency_ms, status, source, branch
                self.revision, self.speed, self.web_searches,
            )
        return e


class Places:
    """A file's lines name the same session, directory and branch over and over: their conversion
    (:func:`_text`, :func:`project_of`) is kept for the last values seen, compared by value."""

    __slots__ = ("raw", "converted")

    def __init__(self) -> None:
        self.raw: tuple[Any, Any, Any] = (None, None, None)
        self.converted: tuple[str | None, str | None, str | None] = (None, None, None)

    def of(self, session: Any, cwd: Any, branch: Any) -> tuple[str | None, str | None, str | None]:
        raw = self.raw
        # identity or equality of plain strings only (a value of another type is converted each time)
        if (session is raw[0] or (type(session) is str and session == raw[0])) \
                and (cwd is raw[1] or (type(cwd) is str and cwd == raw[1])) \
                and (branch is raw[2] or (type(branch) is str and branch == raw[2])):
            return self.converted
        converted = (_text(session), project_of(_text(cwd)), _text(branch))
        self.raw, self.converted = (session, cwd, branch), converted
        return converted


def _count(usage: dict[str, Any], name: str) -> int:
    value = usage.get(name)
    if value is None:
        return 0
    if type(value) is int and 0 <= value <= MAX_TOKENS:
        return value
    if isinstance(value, float) and value.is_integer() and 0 <= value <= MAX_TOKENS:
        return int(value)
    raise Malformed(f"usage.{name} is not an integer from 0 to 10^12: {str(value)[:40]!r}")


def _text(value: Any) -> str | None:
    if isinstance(value, str):
        value = value.strip()
        if not value.isascii():
            value = valid_text(value)
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


def _short_id(value: Any) -> str | None:
    # the common case (a plain ASCII id) without a copy; anything else through _text
    return value if type(value) is str and value and len(value) <= 200 and value.isascii() and value[0] != " " \
        and value[-1] != " " else _text(value)


def parse_line(raw: bytes, offset: int = 0) -> Candidate | None:
    """One transcript line → a :class:`Candidate` (``None`` when it carries no usage).

    Raises :class:`Malformed` for a line that looks like usage but cannot be read. Typed decoding
    (:func:`_parse_typed`) first when it is on (``tokentop.core.fastjson``); a line it refuses is read
    by :func:`parse_object`, which gives the same answer for every line the typed path accepts."""
    if fastjson.ENABLED:
        try:
            return _parse_typed(_decode_line(raw), raw)
        except _TYPED_REFUSED:
            pass
    return parse_object(loads_line(raw), raw)


def _cache_write_split(write: int, write_5m: int, write_1h: int) -> tuple[int, int, bool]:
    """Cache writes, 1-hour writes, and whether the split fell short of ``cache_creation_input_tokens``
    (then the rest is booked at the 5-minute rate); else the split's sum is the figure."""
    parts = write_5m + write_1h
    if parts < write:
        return write, write_1h, True
    return parts, write_1h, False


def parse_object(obj: Any, raw: bytes) -> Candidate | None:
    """:func:`parse_line` of a line already decoded by the general JSON path (any JSON value)."""
    if not isinstance(obj, dict):
        raise Malformed("line is not a JSON object")
    kind = obj.get("type")
    line = obj
    revision = OWN_RECORD
    subagent = None
    if kind == "progress":
        # a subagent's assistant message, embedded in its parent's transcript while it runs
        data = obj.get("data")
        if not isinstance(data, dict) or data.get("type") != "agent_progress":
            return None
        line = data.get("message")
        if not isinstance(line, dict) or line.get("type") != "assistant":
            return None
        revision = EMBEDDED_COPY
        agent_id = data.get("agentId")
        subagent = agent_id if isinstance(agent_id, str) and _AGENT_ID.match(agent_id) else ""
    elif kind is not None and kind != "assistant":
        return None
    msg = line.get("message")
    if not isinstance(msg, dict):
        return None
    usage = msg.get("usage")
    if not isinstance(usage, dict):
        return None
    model = msg.get("model")
    if type(model) is not str or not model or len(model) > 200 or not model.isascii() or model[0] == " " \
            or model[-1] == " ":
        model = _text(model)
    if model == SYNTHETIC_MODEL:
        return None
    inp = usage.get("input_tokens")
    if type(inp) is not int or inp < 0 or inp > MAX_TOKENS:
        inp = _count(usage, "input_tokens")
    out = usage.get("output_tokens")
    if type(out) is not int or out < 0 or out > MAX_TOKENS:
        out = _count(usage, "output_tokens")
    read = usage.get("cache_read_input_tokens")
    if type(read) is not int or read < 0 or read > MAX_TOKENS:
        read = _count(usage, "cache_read_input_tokens")
    write = _count(usage, "cache_creation_input_tokens")
    split = usage.get("cache_creation")
    write_1h = 0
    short = False
    if isinstance(split, dict):
        write, write_1h, short = _cache_write_split(write, _count(split, "ephemeral_5m_input_tokens"),
                                                    _count(split, "ephemeral_1h_input_tokens"))
    total = inp + out + read + write
    if total == 0:
        return None  # API-error placeholders and the like: no usage
    stamp = line.get("timestamp")
    if not isinstance(stamp, str) or len(stamp) < 19:
        raise Malformed(f"timestamp missing or not a string: {str(stamp)[:40]!r}")
    session = obj.get("sessionId")
    mid = _short_id(msg.get("id"))
    req = _short_id(line.get("requestId"))
    if req:
        event_id = f"claude:{req}"
    elif mid:
        scope = _text(session)
        event_id = f"claude:msg:{scope}:{mid}" if scope else f"claude:msg:{mid}"
    else:
        line_id = _text(line.get("uuid")) or hashlib.sha1(raw).hexdigest()
        event_id = f"claude:line:{line_id}"
    speed = usage.get("speed")
    if speed is not None:
        speed = normalise_speed(_text(speed))
    web = 0
    tools = usage.get("server_tool_use")
    if isinstance(tools, dict):
        web = _count(tools, "web_search_requests")
    return Candidate(event_id, mid, line.get("isSidechain", obj.get("isSidechain")) is True, total, out, model, inp,
                     read, write, write_1h, revision, speed, web, short, stamp, session, obj.get("cwd"),
                     obj.get("gitBranch"), subagent)


# -- typed decoding (tokentop.core.fastjson) ----------------------------------------------------------
# The fields parse_object reads, and nothing else: msgspec skips the rest of a line (the message's
# content, tool results, thinking) without building objects for it. Each field is declared with the
# one type the general path takes as is (counts: integers from 0 to 10^12, absent = 0; text: strings);
# any other value makes msgspec refuse the line, and parse_object decides (it takes a count of 12.0
# or null, treats a non-string session as absent, calls a count of -3 malformed, ...). So both paths
# give the same answer for every line; the tests run the readers with typed decoding on and off.
# gc=False: these objects hold no references back, so the collector need not track millions of them.

_Tokens = Annotated[int, Meta(ge=0, le=MAX_TOKENS)]


class _CacheSplit(Struct, gc=False):
    ephemeral_5m_input_tokens: _Tokens = 0
    ephemeral_1h_input_tokens: _Tokens = 0


class _ServerTools(Struct, gc=False):
    web_search_requests: _Tokens = 0


class _Usage(Struct, gc=False):
    input_tokens: _Tokens = 0
    output_tokens: _Tokens = 0
    cache_read_input_tokens: _Tokens = 0
    cache_creation_input_tokens: _Tokens = 0
    cache_creation: _CacheSplit | None = None
    speed: str | None = None
    server_tool_use: _ServerTools | None = None


class _Message(Struct, gc=False):
    id: str | None = None
    model: str | None = None
    usage: _Usage | None = None


class _Embedded(Struct, gc=False):
    """A subagent's line inside its parent's ``agent_progress`` line (``data.message``)."""

    type: str | None = None
    message: _Message | None = None
    requestId: str | None = None  # noqa: N815 - the transcript's spelling
    timestamp: str | None = None
    uuid: str | None = None
    #: unset: the outer line's value applies
    isSidechain: bool | None | UnsetType = UNSET  # noqa: N815


class _Progress(Struct, gc=False):
    type: str | None = None
    agentId: str | None = None  # noqa: N815
    message: _Embedded | None = None


class _Line(Struct, gc=False):
    type: str | None = None
    message: _Message | None = None
    data: _Progress | None = None
    requestId: str | None = None  # noqa: N815
    timestamp: str | None = None
    uuid: str | None = None
    isSidechain: bool | None = None  # noqa: N815
    sessionId: str | None = None  # noqa: N815
    cwd: str | None = None
    gitBranch: str | None = None  # noqa: N815


_decode_line = msgspec.json.Decoder(_Line).decode
#: what makes the typed path hand a line to the general one (a ValidationError is a DecodeError)
_TYPED_REFUSED: Final = (msgspec.DecodeError, RecursionError)


def _parse_typed(line: Any, raw: bytes) -> Candidate | None:
    """:func:`parse_object` for a line msgspec decoded into ``_Line`` (the same rules, in the same
    order; the types are known, so most checks are gone)."""
    kind = line.type
    top = line
    revision = OWN_RECORD
    subagent = None
    if kind == "progress":
        data = line.data
        if data is None or data.type != "agent_progress":
            return None
        line = data.message
        if line is None or line.type != "assistant":
            return None
        revision = EMBEDDED_COPY
        agent_id = data.agentId
        subagent = agent_id if agent_id is not None and _AGENT_ID.match(agent_id) else ""
    elif kind is not None and kind != "assistant":
        return None
    msg = line.message
    if msg is None:
        return None
    usage = msg.usage
    if usage is None:
        return None
    model = msg.model
    if model is not None and (not model or len(model) > 200 or not model.isascii() or model[0] == " "
                              or model[-1] == " "):
        model = _text(model)
    if model == SYNTHETIC_MODEL:
        return None
    inp = usage.input_tokens
    out = usage.output_tokens
    read = usage.cache_read_input_tokens
    write = usage.cache_creation_input_tokens
    split = usage.cache_creation
    write_1h = 0
    short = False
    if split is not None:
        write, write_1h, short = _cache_write_split(write, split.ephemeral_5m_input_tokens,
                                                    split.ephemeral_1h_input_tokens)
    total = inp + out + read + write
    if total == 0:
        return None
    stamp = line.timestamp
    if stamp is None or len(stamp) < 19:
        raise Malformed(f"timestamp missing or not a string: {str(stamp)[:40]!r}")
    session = top.sessionId
    mid = _short_id(msg.id)
    req = _short_id(line.requestId)
    if req:
        event_id = f"claude:{req}"
    elif mid:
        scope = _text(session)
        event_id = f"claude:msg:{scope}:{mid}" if scope else f"claude:msg:{mid}"
    else:
        line_id = _text(line.uuid) or hashlib.sha1(raw).hexdigest()
        event_id = f"claude:line:{line_id}"
    speed = usage.speed
    if speed is not None:
        speed = normalise_speed(_text(speed))
    web = 0
    tools = usage.server_tool_use
    if tools is not None:
        web = tools.web_search_requests
    sidechain = line.isSidechain
    if sidechain is UNSET:
        sidechain = top.isSidechain
    return Candidate(event_id, mid, sidechain is True, total, out, model, inp, read, write, write_1h, revision, speed,
                     web, short, stamp, session, top.cwd, top.gitBranch, subagent)


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


def _bump(stats: dict[str, int], name: str) -> None:
    stats[name] = stats.get(name, 0) + 1


class ClaudeFile:
    """Per-file reader: the largest line per response seen in the current read, emitted by
    :meth:`flush` at the end of the read. Nothing is held between reads: a later line of a response
    is emitted when it is read, and the feed's ledger keeps the largest record (a revision)."""

    prefilter = b'"usage"'

    def __init__(self, path: Path, host: str | None, memory: MessageMemory, state: dict[str, Any] | None = None) -> None:
        self.path = path
        self.host = host
        self.memory = memory
        self.agent = subagent_agent(path) or AGENT
        #: response id -> its largest line in this read
        self.batch: dict[str, Candidate] = {}
        #: agentId of a subagent embedded in this (parent) transcript -> its agent name
        self._subagents: dict[str, str] = {}
        self._places = Places()

    def state(self) -> dict[str, Any] | None:
        return None  # nothing is held between reads

    def feed(self, raw: bytes, offset: int, live: bool, now: float, out: list[Event], stats: dict[str, int]) -> None:
        try:
            # parse_line, unrolled: one call less per usage line
            if fastjson.ENABLED:
                try:
                    cand = _parse_typed(_decode_line(raw), raw)
                except _TYPED_REFUSED:
                    cand = parse_object(loads_line(raw), raw)
            else:
                cand = parse_object(loads_line(raw), raw)
        except Malformed:
            _bump(stats, "malformed")
            return
        if cand is None:
            return
        if cand.split_short:
            _bump(stats, "cache_split_short")
        if cand.subagent is not None:
            _bump(stats, "agent_progress")
        prev = self.batch.get(cand.id)
        if prev is None:
            self.batch[cand.id] = cand
            return
        _bump(stats, "streaming_duplicates")
        try:
            if self._larger(cand, prev):
                self.batch[cand.id] = cand
        except Malformed:
            _bump(stats, "malformed")

    def _larger(self, cand: Candidate, prev: Candidate) -> bool:
        """The revision rule between two lines of one response (cheap parts first)."""
        if cand.total != prev.total:
            return cand.total > prev.total
        if cand.out != prev.out:
            return cand.out > prev.out
        if cand.revision != prev.revision:
            return cand.revision > prev.revision
        if len(cand.stamp) == len(prev.stamp) and cand.stamp[-1:] == prev.stamp[-1:] == "Z":
            if cand.stamp != prev.stamp:  # one format, one zone: text order is time order
                return cand.stamp < prev.stamp
        return wins(self._event(cand), self._event(prev))

    def _event(self, cand: Candidate) -> Event:
        return cand.event(self._agent_of(cand), self.host, self._places)

    def _agent_of(self, cand: Candidate) -> str:
        sub = cand.subagent
        if sub is None:
            return self.agent
        name = self._subagents.get(sub)
        if name is None:
            # the subagent's own transcript's sidecar, if Claude Code wrote one
            twin = self.path.with_suffix("") / "subagents" / f"agent-{sub or 'x'}.jsonl"
            name = self._subagents[sub] = subagent_agent(twin) or f"{AGENT}/subagent"
        return name

    def flush(self, out: list[Event], stats: dict[str, int]) -> None:
        """Emit the largest line of each response read since the last flush."""
        batch, self.batch = self.batch, {}
        for cand in batch.values():
            try:
                event = self._event(cand)
            except Malformed:
                _bump(stats, "malformed")
                continue
            if not self.memory.admit(cand):
                _bump(stats, "sidechain_replays")
                continue
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
