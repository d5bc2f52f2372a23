"""Gemini CLI chat recordings (``~/.gemini/tmp/<project>/chats/``) → events.

The store, its traps and the rules as implemented are described in ``docs/sources.md``
("Gemini CLI"). In short:

* Gemini CLI (since April 2026) appends each session to ``chats/session-<time>-<id8>.jsonl``
  (subagents: ``chats/<parent session id>/<session id>.jsonl``): a metadata line, then one line per
  message write. The same message is **re-appended on every update** (first without tokens, then
  with them, then with tool calls merged), ``{"$set": ...}`` lines patch the metadata (a
  ``messages`` list re-states the whole conversation) and ``{"$rewindTo": id}`` drops messages from
  the conversation — not from the bill, so rewound messages still count.
* Older releases kept the session as one JSON document (``session-*.json``) rewritten in place; a
  resumed one is copied into a ``.jsonl`` twin with the same message ids. Those documents are read
  by the format's companion source (:mod:`tokentop.core.sources.documents`), with the same ids.
* Usage = ``type: "gemini"`` messages with a ``tokens`` object, Gemini's ``usageMetadata`` renamed:
  ``input`` (promptTokenCount) **includes** ``cached``; ``output`` (candidatesTokenCount)
  **excludes** ``thoughts``; ``tool`` (toolUsePromptTokenCount) is prompt-side input beside
  ``input``; ``total = input + output + thoughts + tool``. The event: ``input_tokens = input +
  tool``, ``cache_read_tokens = cached`` (never added on top), ``output_tokens = output +
  thoughts``, ``reasoning_tokens = thoughts``.
* One message is one API response. The event id is ``gemini:<message id>`` (random UUIDs): the
  re-appended copies, the ``.jsonl`` twin of a legacy session and an imported copy of a session (a
  new session id, the same message ids) all count once. A message is handed at first sight and
  again only when its tokens grow.
* Files outside a ``chats/`` directory (``logs/session-*.jsonl`` activity logs) are not sessions.
* The project is the basename of the path in ``<project dir>/.project_root`` (else the
  ``projects.json`` registry, else the directory's slug); the provider is ``google``.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path
from typing import Annotated, Any, Final, Mapping, Union

import msgspec

from tokentop.core.events import Event
from tokentop.core.setting import Setting
from tokentop.core.sources.claude_code import Malformed, parse_ts, project_of
from tokentop.core.sources.documents import Documents, DocumentSource, Unreadable
from tokentop.core.sources.protocol import LineReader, LogFormat, Source, SourceContext

AGENT: Final = "gemini-cli"
PROVIDER: Final = "google"
LOG_SOURCE: Final = "gemini-cli-log"
LEGACY_SOURCE: Final = "gemini-cli-json"
#: Message ids handed per file, remembered to skip re-appended copies; the oldest half is forgotten
#: beyond this (a forgotten id re-appended later is handed again and answered as a duplicate).
MAX_HANDED: Final = 100_000
_CHATS: Final = f"{os.sep}chats{os.sep}"
_HASH_DIR = re.compile(r"^[0-9a-f]{64}$")
_SHORT_ID = re.compile(r"-([0-9A-Za-z]{8})\.jsonl?$")


def gemini_dirs(configured: str = "", env: Mapping[str, str] | None = None) -> list[Path]:
    """Gemini CLI's ``.gemini`` dirs: under ``$GEMINI_CLI_HOME`` (which replaces the home dir, as in
    Gemini CLI), else the configured dir (a home dir or the ``.gemini`` dir itself), else ``~``."""
    env = os.environ if env is None else env
    raw = env.get("GEMINI_CLI_HOME", "") or configured
    base = Path(raw).expanduser() if raw else Path(env.get("HOME") or Path.home())
    return [base if base.name == ".gemini" else base / ".gemini"]


def in_chats(path: str) -> bool:
    """Chat recordings live in a ``chats/`` directory (subagents one level deeper)."""
    return _CHATS in path


# -- the project a chats dir belongs to ------------------------------------------------------------------

_PROJECTS: dict[str, str | None] = {}


def project_for(project_dir: Path) -> str | None:
    """The working directory's basename for ``~/.gemini/tmp/<slug>``: the ``.project_root`` marker
    Gemini CLI writes there, else the ``projects.json`` registry (also for the older sha256-named
    dirs), else the slug itself (made from the basename). Cached per dir."""
    key = str(project_dir)
    if key in _PROJECTS:
        return _PROJECTS[key]
    name: str | None = None
    try:
        with open(project_dir / ".project_root", "rb") as fh:
            name = project_of(fh.read(4096).decode("utf-8", "replace").strip())
    except OSError:
        slug = project_dir.name
        registry = project_dir.parent.parent / "projects.json"
        try:
            projects = json.loads(registry.read_bytes()).get("projects", {})
        except (OSError, ValueError, AttributeError):
            projects = {}
        if isinstance(projects, dict):
            for path, short in projects.items():
                if short == slug or (_HASH_DIR.match(slug) and hashlib.sha256(path.encode()).hexdigest() == slug):
                    name = project_of(path)
                    break
        if name is None and not _HASH_DIR.match(slug):
            name = slug[:512] or None
    if len(_PROJECTS) > 10_000:
        _PROJECTS.clear()
    _PROJECTS[key] = name
    return name


def _layout(path: Path) -> tuple[Path, str | None]:
    """``(project dir, parent session id)`` of a chat file; the parent is ``None`` for a main session."""
    if path.parent.name == "chats":
        return path.parent.parent, None
    return path.parent.parent.parent, path.parent.name[:512] or None


# -- one message → one event ---------------------------------------------------------------------------
# Lines are decoded into these types, which name only the fields read: msgspec skips the rest (the
# message text, thoughts, tool calls and their results) without building them, 3.5x faster than a
# full parse on generated recordings. A field of the wrong type makes the line malformed.

Count = Annotated[int, msgspec.Meta(ge=0)]


class Tokens(msgspec.Struct):
    input: Union[Count, None] = None
    output: Union[Count, None] = None
    cached: Union[Count, None] = None
    thoughts: Union[Count, None] = None
    tool: Union[Count, None] = None


class Message(msgspec.Struct):
    id: Union[str, None] = None
    timestamp: Union[str, None] = None
    type: Union[str, None] = None
    model: Union[str, None] = None
    tokens: Union[Tokens, None] = None


class Patch(msgspec.Struct):
    """``{"$set": ...}``: a metadata update, possibly re-stating the whole conversation."""

    sessionId: Union[str, None] = None
    kind: Union[str, None] = None
    messages: Union[list[Message], None] = None


class Line(msgspec.Struct):
    """Any line of a recording: the metadata record, a message, or a control record."""

    id: Union[str, None] = None
    timestamp: Union[str, None] = None
    type: Union[str, None] = None
    model: Union[str, None] = None
    tokens: Union[Tokens, None] = None
    sessionId: Union[str, None] = None
    kind: Union[str, None] = None
    messages: Union[list[Message], None] = None
    set: Union[Patch, None] = msgspec.field(name="$set", default=None)
    rewind: Union[str, None] = msgspec.field(name="$rewindTo", default=None)


class Document(msgspec.Struct):
    """A legacy whole-JSON session."""

    messages: list[Message]
    sessionId: Union[str, None] = None
    kind: Union[str, None] = None


_LINE: Final = msgspec.json.Decoder(Line)
_DOCUMENT: Final = msgspec.json.Decoder(Document)


def message_event(msg: Message | Line, model: str | None, session: str | None, project: str | None,
                  agent: str, host: str | None, source: str) -> Event | None:
    """The event of one ``type: "gemini"`` message with tokens (``None``: not a billed response).
    Raises :class:`Malformed` for one that claims tokens but cannot be read."""
    tokens = msg.tokens
    if tokens is None:
        return None
    inp = tokens.input or 0
    out = tokens.output or 0
    cached = tokens.cached or 0
    thoughts = tokens.thoughts or 0
    tool = tokens.tool or 0
    if inp == 0 and out == 0 and thoughts == 0 and tool == 0:
        return None
    ts = parse_ts(msg.timestamp)
    mid = msg.id
    if mid and mid.strip():
        event_id = f"gemini:{mid.strip()[:200]}"
    else:
        key = f"{session}|{msg.timestamp}|{inp}|{out}|{cached}|{thoughts}|{tool}"
        event_id = f"gemini:nomsgid:{hashlib.blake2b(key.encode(), digest_size=12).hexdigest()}"
    if msg.model and msg.model.strip():
        model = msg.model.strip()[:512]
    # positional (Event's field order), as on the Claude Code path: keyword construction measured slower
    return Event(
        event_id, ts, agent, session, project, host, None, PROVIDER, model,
        inp + tool,  # input_tokens: promptTokenCount already includes the cache; tool-use prompt is beside it
        out + thoughts,  # output_tokens: candidatesTokenCount excludes thoughts, billed as output
        min(cached, inp), 0, 0, thoughts,  # cache read, cache write, of it 1h, reasoning
        None, None, "ok", source, None,  # cost_usd, latency_ms, status, source, branch
    )


def _text(value: Any) -> str | None:
    if isinstance(value, str) and value.strip():
        return value.strip()[:512]
    return None


class GeminiFile(LineReader):
    """One ``.jsonl`` chat recording: session facts, the current model, and the message ids handed."""

    prefilter = None  # metadata lines and token-carrying messages are picked out in feed()

    def __init__(self, path: Path, host: str | None, shared: object = None, state: dict[str, Any] | None = None) -> None:
        super().__init__(path, host)
        st = state or {}
        project_dir, self.parent = _layout(path)
        self.project = project_for(project_dir)
        m = _SHORT_ID.search(path.name)
        fallback = path.name[:-len(".jsonl")] if self.parent else (m.group(1) if m else None)
        self.session: str | None = st.get("session") or fallback
        self.subagent: bool = bool(st.get("subagent")) or self.parent is not None
        self.model: str | None = st.get("model")
        self.handed: dict[str, int] = {}

    def state(self) -> dict[str, Any]:
        return {"session": self.session, "subagent": self.subagent, "model": self.model}

    def feed(self, raw: bytes, offset: int, live: bool, now: float, out: list[Event], stats: dict[str, int]) -> None:
        if b'"tokens":' not in raw and b'"sessionId":' not in raw:
            return
        try:
            line = _LINE.decode(raw)
        except msgspec.DecodeError:  # not JSON, not an object, or a field of the wrong type
            stats["malformed"] = stats.get("malformed", 0) + 1
            return
        if line.rewind is not None:
            return  # rewound messages leave the conversation, not the bill
        messages: list[Message] | list[Line] | None
        if line.set is not None:
            self._metadata(line.set.sessionId, line.set.kind)
            messages = line.set.messages
        elif line.id is not None:
            messages = [line]
        else:
            self._metadata(line.sessionId, line.kind)
            messages = line.messages  # a whole legacy record on one line
        if messages:
            for msg in messages:
                if msg.type == "gemini":
                    self._message(msg, out, stats)

    def _metadata(self, sid: str | None, kind: str | None) -> None:
        sid = _text(sid)
        if sid:
            self.session = sid
        if kind == "subagent":
            self.subagent = True

    def _message(self, msg: Message | Line, out: list[Event], stats: dict[str, int]) -> None:
        model = msg.model
        if model and model != self.model:
            self.model = model.strip()[:512] or self.model
        tokens = msg.tokens
        if tokens is None:
            return
        # a re-appended copy is recognised before any conversion: most token-carrying lines are copies
        total = (tokens.input or 0) + (tokens.output or 0) + (tokens.thoughts or 0) + (tokens.tool or 0)
        handed = self.handed
        mid = msg.id
        if mid is not None and handed.get(mid, -1) >= total:
            stats["reappended"] = stats.get("reappended", 0) + 1
            return
        agent = f"{AGENT}/subagent" if self.subagent else AGENT
        try:
            event = message_event(msg, self.model, self.parent or self.session, self.project, agent, self.host,
                                  LOG_SOURCE)
        except Malformed:
            stats["malformed"] = stats.get("malformed", 0) + 1
            return
        if event is None:
            return
        if mid is not None:
            if len(handed) >= MAX_HANDED:
                for k in list(handed)[: MAX_HANDED // 2]:
                    del handed[k]
            handed[mid] = total
        out.append(event)


# -- legacy whole-JSON sessions (the format's companion source) ------------------------------------------

def parse_legacy(data: bytes, path: str, host: str | None, counters: dict[str, int]) -> list[Event]:
    """One ``session-*.json`` document (``{sessionId, messages: [...]}``) → its events."""
    try:
        doc = _DOCUMENT.decode(data)
    except msgspec.ValidationError:
        doc = _tolerant(data, counters)  # one bad record must not cost the others
    except msgspec.DecodeError as exc:
        raise Unreadable(f"not valid JSON: {exc}") from None
    p = Path(path)
    project_dir, parent = _layout(p)
    project = project_for(project_dir)
    session = _text(doc.sessionId) or p.stem
    agent = f"{AGENT}/subagent" if parent is not None or doc.kind == "subagent" else AGENT
    model: str | None = None
    events = []
    for msg in doc.messages:
        if msg.type != "gemini":
            continue
        if msg.model and msg.model.strip():
            model = msg.model.strip()[:512]
        try:
            event = message_event(msg, model, parent or session, project, agent, host, LEGACY_SOURCE)
        except Malformed:
            counters["malformed"] = counters.get("malformed", 0) + 1
            continue
        if event is not None:
            events.append(event)
    return events


def _tolerant(data: bytes, counters: dict[str, int]) -> Document:
    """A document with a record of the wrong shape: its messages one by one, the bad ones counted."""
    obj = msgspec.json.decode(data)
    if not isinstance(obj, dict) or not isinstance(obj.get("messages"), list):
        raise Unreadable("not a Gemini CLI session (no messages list)")
    messages = []
    for raw in obj["messages"]:
        try:
            messages.append(msgspec.convert(raw, Message))
        except msgspec.ValidationError:
            counters["malformed"] = counters.get("malformed", 0) + 1
    sid, kind = obj.get("sessionId"), obj.get("kind")
    return Document(messages, sid if isinstance(sid, str) else None, kind if isinstance(kind, str) else None)


LEGACY: Final = Documents(kind=AGENT, suffix=".json", accept=in_chats, parse=parse_legacy)


def legacy_sessions(ctx: SourceContext) -> Source:
    """The companion source: the whole-JSON sessions older Gemini CLI releases rewrite in place."""
    return DocumentSource(ctx, LEGACY)


# -- what the shared tailer needs (protocol.LogFormat) -------------------------------------------------

def _roots(values: Mapping[str, Any], env: Mapping[str, str]) -> tuple[Path, ...]:
    return tuple(d / "tmp" for d in gemini_dirs(values["gemini_home"], env))


FORMAT: Final = LogFormat(
    name=AGENT,
    roots=_roots,
    reader=GeminiFile,
    config_keys={"gemini_home": Setting(str, "", "Gemini CLI home (the dir holding .gemini/; GEMINI_CLI_HOME wins); "
                                                 "default ~")},
    suffixes=(".jsonl",),
    accept=in_chats,
    companion=legacy_sessions,
)
