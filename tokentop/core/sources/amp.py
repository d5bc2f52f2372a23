"""Amp threads (``~/.local/share/amp/threads/T-<uuid>.json``) → events.

The store, its traps and the rules as implemented are described in ``docs/sources.md`` ("Amp").
In short:

* One JSON document per thread, **rewritten whole** on every update: read by
  :class:`~tokentop.core.sources.documents.DocumentSource` (re-read when its size or mtime changes;
  a response is handed when first seen and again when its usage grows, e.g. while it streams).
* Usage: ``messages[].usage`` of assistant messages — ``model``, ``inputTokens``,
  ``outputTokens``, ``cacheCreationInputTokens``, ``cacheReadInputTokens``, ``totalInputTokens``,
  ``timestamp``. Anthropic's semantics: ``inputTokens`` excludes the cache and ``totalInputTokens``
  is their sum; when a record's ``totalInputTokens`` equals ``inputTokens`` instead, the cache is
  already inside it and is not added again.
* Older threads carry ``usageLedger.events[]`` (``{id, timestamp, model, tokens {input, output},
  toMessageId}``), which then win; their cache split comes from the message they point to.
* The event id is ``amp:<thread id>:<message id>`` (a ledger event without a message:
  ``amp:<thread id>:ledger:<event id>``), the same for both schemas of one thread.
* Project = the basename of ``env.initial.trees[0].uri`` (the workspace the thread started in).
  Amp's ``credits`` (its billing unit) are not used: tokentop prices the tokens with genai-prices.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any, Final, Mapping, Union
from urllib.parse import unquote, urlparse

import msgspec

from tokentop.core.events import Event
from tokentop.core.setting import Setting
from tokentop.core.sources.claude_code import Malformed, parse_ts, project_of
from tokentop.core.sources.documents import Documents, DocumentSource, Unreadable
from tokentop.core.sources.protocol import Source, SourceContext, StoreFormat

AGENT: Final = "amp"
SOURCE: Final = "amp-thread"

Count = Annotated[int, msgspec.Meta(ge=0)]


class Usage(msgspec.Struct):
    model: Union[str, None] = None
    inputTokens: Union[Count, None] = None
    outputTokens: Union[Count, None] = None
    cacheCreationInputTokens: Union[Count, None] = None
    cacheReadInputTokens: Union[Count, None] = None
    totalInputTokens: Union[Count, None] = None
    totalTokens: Union[Count, None] = None
    timestamp: Union[str, None] = None


class Message(msgspec.Struct):
    role: Union[str, None] = None
    messageId: Union[int, str, None] = None
    usage: Union[Usage, None] = None


class LedgerTokens(msgspec.Struct):
    input: Union[Count, None] = None
    output: Union[Count, None] = None
    total: Union[Count, None] = None


class LedgerEvent(msgspec.Struct):
    id: Union[str, int, None] = None
    timestamp: Union[str, None] = None
    model: Union[str, None] = None
    tokens: Union[LedgerTokens, None] = None
    toMessageId: Union[int, str, None] = None


class UsageLedger(msgspec.Struct):
    events: Union[list[LedgerEvent], None] = None


class Tree(msgspec.Struct):
    uri: Union[str, None] = None
    displayName: Union[str, None] = None


class Initial(msgspec.Struct):
    trees: Union[list[Tree], None] = None


class Env(msgspec.Struct):
    initial: Union[Initial, None] = None


class Thread(msgspec.Struct):
    id: Union[str, None] = None
    messages: Union[list[Message], None] = None
    usageLedger: Union[UsageLedger, None] = None
    env: Union[Env, None] = None


_THREAD: Final = msgspec.json.Decoder(Thread)


def amp_dirs(configured: str = "", env: Mapping[str, str] | None = None) -> list[Path]:
    """Amp's data dir (holding ``threads/``): the configured one, else ``$XDG_DATA_HOME/amp``, else
    ``~/.local/share/amp``."""
    env = os.environ if env is None else env
    if configured:
        return [Path(configured).expanduser()]
    home = Path(env.get("HOME") or Path.home())
    data = env.get("XDG_DATA_HOME", "").strip() or str(home / ".local" / "share")
    return [Path(data) / "amp"]


def _text(value: Any) -> str | None:
    if isinstance(value, str) and value.strip():
        return value.strip()[:512]
    return None


def _project(thread: Thread) -> str | None:
    trees = thread.env.initial.trees if thread.env and thread.env.initial else None
    if not trees:
        return None
    tree = trees[0]
    if tree.uri and tree.uri.startswith("file:"):
        return project_of(unquote(urlparse(tree.uri).path))
    return _text(tree.displayName)


#: one response's figures: (event id, timestamp, model, input, output, cache write, cache read, total input)
Row = tuple[str, Union[str, None], Union[str, None], int, int, int, int, Union[int, None]]


def _event(row: Row, session: str, project: str | None, host: str | None) -> Event | None:
    event_id, ts_text, model, inp, out, write, read, total_in = row
    if inp == 0 and out == 0 and write == 0 and read == 0:
        return None
    prompt = inp + write + read
    if total_in is not None and total_in == inp and inp >= write + read:
        prompt = inp  # this record's input already holds the cache
    return Event(event_id, parse_ts(ts_text), AGENT, session, project, host, None, None, model,
                 prompt, out, read, write, 0, 0,  # input (incl. cache), output, cache read, cache write, 1h, reasoning
                 None, None, "ok", SOURCE, None)


def _rows(thread: Thread, tid: str) -> list[Row]:
    messages = thread.messages or []
    ledger = thread.usageLedger.events if thread.usageLedger else None
    rows: list[Row] = []
    if ledger:  # the older schema: the ledger wins, the cache split comes from the message it points to
        cache = {str(m.messageId): m.usage for m in messages
                 if m.role == "assistant" and m.messageId is not None and m.usage is not None}
        for le in ledger:
            tokens = le.tokens or LedgerTokens()
            target = str(le.toMessageId) if le.toMessageId is not None else None
            u = cache.get(target) if target is not None else None
            out = tokens.output or 0
            if not (tokens.input or out) and tokens.total:
                out = tokens.total  # only a total: counted as output, the split is unknown
            rows.append((f"amp:{tid}:{target}" if target is not None else f"amp:{tid}:ledger:{le.id}",
                         le.timestamp, _text(le.model), tokens.input or 0, out,
                         (u.cacheCreationInputTokens or 0) if u else 0, (u.cacheReadInputTokens or 0) if u else 0,
                         u.totalInputTokens if u else None))
        return rows
    for i, m in enumerate(messages):
        u = m.usage
        if m.role != "assistant" or u is None:
            continue
        out = u.outputTokens or 0
        if not (u.inputTokens or out or u.cacheReadInputTokens or u.cacheCreationInputTokens) and u.totalTokens:
            out = u.totalTokens
        mid = str(m.messageId) if m.messageId is not None else f"index{i}"
        rows.append((f"amp:{tid}:{mid}", u.timestamp, _text(u.model), u.inputTokens or 0, out,
                     u.cacheCreationInputTokens or 0, u.cacheReadInputTokens or 0, u.totalInputTokens))
    return rows


def parse_thread(data: bytes, path: str, host: str | None, counters: dict[str, int]) -> list[Event]:
    """One ``T-*.json`` thread → its events."""
    try:
        thread = _THREAD.decode(data)
    except msgspec.ValidationError:
        thread = _tolerant(data, counters)  # one bad record must not cost the others
    except msgspec.DecodeError as exc:
        raise Unreadable(f"not valid JSON: {exc}") from None
    tid = _text(thread.id) or Path(path).stem
    project = _project(thread)
    events = []
    for row in _rows(thread, tid):
        try:
            event = _event(row, tid, project, host)
        except Malformed:
            counters["malformed"] = counters.get("malformed", 0) + 1
            continue
        if event is not None:
            events.append(event)
    return events


def _each(raw: Any, typ: type, counters: dict[str, int]) -> list[Any]:
    kept = []
    for item in raw if isinstance(raw, list) else []:
        try:
            kept.append(msgspec.convert(item, typ))
        except msgspec.ValidationError:
            counters["malformed"] = counters.get("malformed", 0) + 1
    return kept


def _tolerant(data: bytes, counters: dict[str, int]) -> Thread:
    """A thread with a record of the wrong shape: its readable records, the others counted."""
    obj = msgspec.json.decode(data)
    if not isinstance(obj, dict):
        raise Unreadable("not an Amp thread (not a JSON object)")
    ledger = obj.get("usageLedger")
    try:
        env = msgspec.convert(obj.get("env"), Union[Env, None])
    except msgspec.ValidationError:
        env = None
    return Thread(id=obj["id"] if isinstance(obj.get("id"), str) else None,
                  messages=_each(obj.get("messages"), Message, counters),
                  usageLedger=UsageLedger(_each(ledger.get("events"), LedgerEvent, counters))
                  if isinstance(ledger, dict) else None, env=env)


THREADS: Final = Documents(kind=AGENT, suffix=".json", prefix="T-", parse=parse_thread)


def threads(ctx: SourceContext) -> Source:
    return DocumentSource(ctx, THREADS)


def _roots(values: Mapping[str, Any], env: Mapping[str, str]) -> tuple[Path, ...]:
    return tuple(d / "threads" for d in amp_dirs(values["amp_dir"], env))


FORMAT: Final = StoreFormat(
    name=AGENT,
    roots=_roots,
    source=threads,
    config_keys={"amp_dir": Setting(str, "", "Amp data dir holding threads/; default $XDG_DATA_HOME/amp "
                                             "(~/.local/share/amp)")},
)
