"""Qwen Code chat recordings (``~/.qwen/projects/<cwd>/chats/<session id>.jsonl``) → events.

The store, its traps and the rules as implemented are described in ``docs/sources.md`` ("Qwen
Code"). In short:

* Append-only JSONL; one record per line (``uuid``, ``parentUuid``, ``sessionId``, ``timestamp``,
  ``type``, ``cwd``, ``gitBranch``, ...). Usage is on ``type: "assistant"`` records only, as Gemini's
  ``usageMetadata`` (Qwen Code is a Gemini CLI fork and converts every provider's answer to it).
  ``system`` records (``ui_telemetry`` carries the same request's token counts again,
  ``chat_compression``, ``rewind``, ...) are never counted.
* ``promptTokenCount`` **includes** ``cachedContentTokenCount`` — for every provider: the OpenAI
  converter copies ``prompt_tokens`` (which includes ``cached_tokens``), the Anthropic one sums input,
  cache reads and cache writes. So ``input_tokens = promptTokenCount`` and ``cache_read_tokens =
  cachedContentTokenCount``, never added on top (both big peers add it: a double count).
* ``thoughtsTokenCount`` is **part of** ``candidatesTokenCount`` on the OpenAI-compatible path (the
  usual one: ``completion_tokens`` includes ``reasoning_tokens``), but **beside** it on the native
  Gemini path. ``totalTokenCount`` tells them apart (``prompt + candidates [+ tool]`` vs ``prompt +
  candidates + thoughts [+ tool]``); without a total, thoughts larger than candidates can only be
  beside them, otherwise they are taken as part.
* The event id is ``qwen:<uuid>``: ``/branch`` copies records into a new session file with their
  uuid unchanged (``forkedFrom``), and archived copies keep it too, so each request counts once.
* Model = the record's ``model``; provider from the latest ``session_model`` record's ``authType``
  when it names one vendor (``gemini``/``vertex-ai`` → google, ``anthropic``), else none (an
  OpenAI-compatible endpoint can be anyone; pricing goes by the model id).
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Annotated, Any, Final, Mapping, Union

import msgspec

from tokentop.core.events import Event
from tokentop.core.setting import Setting
from tokentop.core.sources.claude_code import Malformed, loads_line, parse_ts, project_of
from tokentop.core.sources.protocol import LineReader, LogFormat

AGENT: Final = "qwen-code"
SOURCE: Final = "qwen-code-log"
_CHATS: Final = f"{os.sep}chats{os.sep}"
#: ``session_model.authType`` values that name one vendor (the others are OpenAI-compatible endpoints)
AUTH_PROVIDERS: Final = {"gemini": "google", "vertex-ai": "google", "anthropic": "anthropic"}


def qwen_dirs(configured: str = "", env: Mapping[str, str] | None = None) -> list[Path]:
    """Qwen Code's runtime dir (holding ``projects/``): ``$QWEN_RUNTIME_DIR``, else ``$QWEN_HOME``, else the
    configured dir, else ``~/.qwen`` (Qwen Code's own order, the config key standing in for its
    ``runtimeOutputDir`` setting)."""
    env = os.environ if env is None else env
    raw = env.get("QWEN_RUNTIME_DIR", "").strip() or env.get("QWEN_HOME", "").strip() or configured
    if raw:
        return [Path(raw).expanduser()]
    return [Path(env.get("HOME") or Path.home()) / ".qwen"]


def in_chats(path: str) -> bool:
    return _CHATS in path


# Records are decoded into these types, which name only the fields read (msgspec skips the message
# parts and tool results without building them). A field of the wrong type makes the line malformed.
Count = Annotated[int, msgspec.Meta(ge=0)]


class Usage(msgspec.Struct):
    promptTokenCount: Union[Count, None] = None
    candidatesTokenCount: Union[Count, None] = None
    thoughtsTokenCount: Union[Count, None] = None
    cachedContentTokenCount: Union[Count, None] = None
    toolUsePromptTokenCount: Union[Count, None] = None
    totalTokenCount: Union[Count, None] = None


class Record(msgspec.Struct):
    type: Union[str, None] = None
    uuid: Union[str, None] = None
    sessionId: Union[str, None] = None
    timestamp: Union[str, None] = None
    cwd: Union[str, None] = None
    gitBranch: Union[str, None] = None
    model: Union[str, None] = None
    usageMetadata: Union[Usage, None] = None
    isSidechain: Any = None
    agentId: Any = None
    agentName: Any = None


_RECORD: Final = msgspec.json.Decoder(Record)


def _text(value: Any) -> str | None:
    if isinstance(value, str) and value.strip():
        return value.strip()[:512]
    return None


def tokens(usage: Usage) -> tuple[int, int, int, int] | None:
    """``(input incl. cache, cache read, output incl. reasoning, reasoning)`` of one ``usageMetadata``
    (``None``: no usage)."""
    prompt = usage.promptTokenCount or 0
    cand = usage.candidatesTokenCount or 0
    thoughts = usage.thoughtsTokenCount or 0
    cached = usage.cachedContentTokenCount or 0
    tool = usage.toolUsePromptTokenCount or 0
    total = usage.totalTokenCount or 0
    if prompt == 0 and cand == 0 and thoughts == 0 and tool == 0:
        return None
    beside = thoughts > 0 and (total == prompt + cand + thoughts + tool if total else thoughts > cand)
    if beside:  # the native Gemini shape: thoughts billed as output beside the candidates
        output, reasoning = cand + thoughts, thoughts
    else:  # the OpenAI-compatible shape: reasoning is part of completion_tokens
        output, reasoning = cand, min(thoughts, cand)
    return prompt + tool, min(cached, prompt), output, reasoning


class QwenFile(LineReader):
    """One chat recording: the provider named by the latest ``session_model`` record."""

    prefilter = None  # assistant records with usage and session_model records are picked out in feed()

    def __init__(self, path: Path, host: str | None, shared: object = None, state: dict[str, Any] | None = None) -> None:
        super().__init__(path, host)
        self.provider: str | None = (state or {}).get("provider")

    def state(self) -> dict[str, Any] | None:
        return {"provider": self.provider} if self.provider else None

    def feed(self, raw: bytes, offset: int, live: bool, now: float, out: list[Event], stats: dict[str, int]) -> None:
        if b'"usageMetadata":' in raw:
            try:
                event = self._record(raw)
            except Malformed:
                stats["malformed"] = stats.get("malformed", 0) + 1
                return
            if event is not None:
                out.append(event)
        elif b'"session_model"' in raw:
            try:
                obj = loads_line(raw)
            except ValueError:
                stats["malformed"] = stats.get("malformed", 0) + 1
                return
            payload = obj.get("systemPayload") if isinstance(obj, dict) and obj.get("subtype") == "session_model" else None
            if isinstance(payload, dict) and isinstance(payload.get("authType"), str):
                self.provider = AUTH_PROVIDERS.get(payload["authType"].strip())

    def _record(self, raw: bytes) -> Event | None:
        try:
            rec = _RECORD.decode(raw)
        except msgspec.DecodeError as exc:
            raise Malformed(str(exc)) from None
        if rec.type != "assistant" or rec.usageMetadata is None:
            return None  # ui_telemetry and other system records repeat usage: never counted
        got = tokens(rec.usageMetadata)
        if got is None:
            return None
        inp, cached, output, reasoning = got
        ts = parse_ts(rec.timestamp)
        uuid = _text(rec.uuid)
        event_id = f"qwen:{uuid}" if uuid else f"qwen:line:{hashlib.blake2b(raw, digest_size=12).hexdigest()}"
        agent = AGENT
        if rec.isSidechain is True or rec.agentId:
            kind = _text(rec.agentName) or "subagent"
            agent = f"{AGENT}/{kind[:100]}"
        # positional (Event's field order): keyword construction measured slower on this hot path
        return Event(
            event_id, ts, agent, _text(rec.sessionId) or self.path.stem[:512], project_of(_text(rec.cwd)), self.host,
            None, self.provider, _text(rec.model),
            inp, output, cached, 0, 0, reasoning,  # input (incl. cache), output (incl. reasoning), read, write, 1h, reasoning
            None, None, "ok", SOURCE, _text(rec.gitBranch),  # cost_usd, latency_ms, status, source, branch
        )


# -- what the shared tailer needs (protocol.LogFormat) -------------------------------------------------

def _roots(values: Mapping[str, Any], env: Mapping[str, str]) -> tuple[Path, ...]:
    return tuple(d / "projects" for d in qwen_dirs(values["qwen_dir"], env))


FORMAT: Final = LogFormat(
    name=AGENT,
    roots=_roots,
    reader=QwenFile,
    config_keys={"qwen_dir": Setting(str, "", "Qwen Code runtime dir holding projects/ (QWEN_RUNTIME_DIR, then "
                                             "QWEN_HOME win); default ~/.qwen")},
    suffixes=(".jsonl",),
    accept=in_chats,
)
