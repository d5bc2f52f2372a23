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
from typing import Any, Final, Mapping

from tokentop.core.events import Event
from tokentop.core.setting import Setting
from tokentop.core.sources.claude_code import Malformed, _loads, parse_ts, project_of
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


def _count(usage: dict[str, Any], name: str) -> int:
    v = usage.get(name)
    if v is None:
        return 0
    if type(v) is int and v >= 0:
        return v
    if isinstance(v, float) and v.is_integer() and v >= 0:
        return int(v)
    raise Malformed(f"usageMetadata.{name} is not a non-negative integer: {str(v)[:40]!r}")


def _text(value: Any) -> str | None:
    if isinstance(value, str) and value.strip():
        return value.strip()[:512]
    return None


def tokens(usage: dict[str, Any]) -> tuple[int, int, int, int] | None:
    """``(input incl. cache, cache read, output incl. reasoning, reasoning)`` of one ``usageMetadata``
    (``None``: no usage). Raises :class:`Malformed` for a count that is not a non-negative integer."""
    prompt = _count(usage, "promptTokenCount")
    cand = _count(usage, "candidatesTokenCount")
    thoughts = _count(usage, "thoughtsTokenCount")
    cached = _count(usage, "cachedContentTokenCount")
    tool = _count(usage, "toolUsePromptTokenCount")
    total = _count(usage, "totalTokenCount")
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
                obj = _loads(raw)
            except ValueError:
                stats["malformed"] = stats.get("malformed", 0) + 1
                return
            payload = obj.get("systemPayload") if isinstance(obj, dict) and obj.get("subtype") == "session_model" else None
            if isinstance(payload, dict) and isinstance(payload.get("authType"), str):
                self.provider = AUTH_PROVIDERS.get(payload["authType"].strip())

    def _record(self, raw: bytes) -> Event | None:
        try:
            obj = _loads(raw)
        except ValueError:
            raise Malformed("not valid JSON") from None
        if not isinstance(obj, dict):
            raise Malformed("line is not a JSON object")
        if obj.get("type") != "assistant":
            return None  # ui_telemetry and other system records repeat usage: never counted
        usage = obj.get("usageMetadata")
        if not isinstance(usage, dict):
            return None
        got = tokens(usage)
        if got is None:
            return None
        inp, cached, output, reasoning = got
        ts = parse_ts(obj.get("timestamp"))
        uuid = _text(obj.get("uuid"))
        event_id = f"qwen:{uuid}" if uuid else f"qwen:line:{hashlib.blake2b(raw, digest_size=12).hexdigest()}"
        agent = AGENT
        if obj.get("isSidechain") is True or obj.get("agentId"):
            kind = _text(obj.get("agentName")) or "subagent"
            agent = f"{AGENT}/{kind[:100]}"
        return Event(
            id=event_id, ts=ts, agent=agent, session=_text(obj.get("sessionId")) or self.path.stem[:512],
            project=project_of(_text(obj.get("cwd"))), host=self.host, provider=self.provider,
            model=_text(obj.get("model")), input_tokens=inp, output_tokens=output, cache_read_tokens=cached,
            reasoning_tokens=reasoning, source=SOURCE, branch=_text(obj.get("gitBranch")),
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
