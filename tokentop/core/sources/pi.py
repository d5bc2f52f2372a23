"""pi coding agent sessions (``~/.pi/agent/sessions/--<cwd>--/<time>_<uuid>.jsonl``) → events.

The store, its traps and the rules as implemented are described in ``docs/sources.md`` ("pi").
In short:

* One JSONL file per session: a header ``{"type": "session", "version": 3, "id", "cwd", ...}``,
  then entries ``{"type", "id", "parentId", "timestamp"}`` forming an append-only tree (branching only
  moves the leaf). Usage is on ``type: "message"`` entries whose ``message.role`` is ``assistant``:
  ``message.usage {input, output, cacheRead, cacheWrite, totalTokens, cost}``, with
  ``message.provider``, ``message.model``, ``message.api`` and ``message.timestamp`` (ms).
* pi normalises ``input`` to exclude the cache (``input + cacheRead + cacheWrite`` is the prompt)
  and folds reasoning into ``output``. Older pi releases left Google's ``promptTokenCount`` (which
  includes the cache) as ``input``; ``totalTokens`` tells: ``input + output + cacheWrite ==
  totalTokens`` with cache reads present means the cache is already inside ``input``.
* Forks copy entries verbatim into a new file (``/branch`` writes the path to a new session,
  ``forkFrom`` copies a whole session, possibly under another cwd), and v1/v2 files are rewritten
  on open with *new* entry ids. The event id is therefore built from the response itself — its
  ``message.timestamp``, provider, model and the four counts — which every copy keeps: each
  request counts once however often it is copied.
* ``usage.cost`` is pi's own estimate from the price table bundled with the pi release (flat rates:
  no long-context tiers, 5-minute cache writes only, and stale once prices change): tokentop prices
  the tokens with genai-prices instead and does not use pi's figure.
* An assistant message with ``stopReason: "error"`` that still carries tokens is counted, as an
  error; all-zero usage (aborted before the first token) is no request.
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

AGENT: Final = "pi"
SOURCE: Final = "pi-log"


def pi_dirs(configured: str = "", env: Mapping[str, str] | None = None) -> list[Path]:
    """pi's agent dir (holding ``sessions/``): ``$PI_CODING_AGENT_DIR`` (as pi reads it), else the
    configured dir, else ``~/.pi/agent``."""
    env = os.environ if env is None else env
    raw = env.get("PI_CODING_AGENT_DIR", "").strip() or configured
    home = Path(env.get("HOME") or Path.home())
    if raw:
        if raw == "~" or raw.startswith("~/"):
            return [home / raw[2:]] if raw != "~" else [home]
        return [Path(raw)]
    return [home / ".pi" / "agent"]


# Entries are decoded into these types, which name only the fields read (msgspec skips the message
# content and tool results without building them). A field of the wrong type makes the line malformed.
Count = Annotated[int, msgspec.Meta(ge=0)]


class Usage(msgspec.Struct):
    input: Union[Count, None] = None
    output: Union[Count, None] = None
    cacheRead: Union[Count, None] = None
    cacheWrite: Union[Count, None] = None
    totalTokens: Union[Count, None] = None


class Message(msgspec.Struct):
    role: Union[str, None] = None
    provider: Union[str, None] = None
    model: Union[str, None] = None
    usage: Union[Usage, None] = None
    stopReason: Union[str, None] = None
    timestamp: Union[int, float, None] = None


class Entry(msgspec.Struct):
    type: Union[str, None] = None
    timestamp: Union[str, None] = None
    message: Union[Message, None] = None


_ENTRY: Final = msgspec.json.Decoder(Entry)


def _text(value: Any) -> str | None:
    if isinstance(value, str) and value.strip():
        return value.strip()[:512]
    return None


def request_id(stamp: Any, provider: str | None, model: str | None, counts: tuple[int, int, int, int]) -> str:
    """``pi:<hash>`` of what every copy of a response keeps (forks and migrations change entry ids)."""
    key = f"{stamp}|{provider}|{model}|{counts[0]}|{counts[1]}|{counts[2]}|{counts[3]}"
    return "pi:" + hashlib.blake2b(key.encode(), digest_size=12).hexdigest()


class PiFile(LineReader):
    """One session file: the header's session id and cwd."""

    prefilter = None  # the header and assistant messages with usage are picked out in feed()

    def __init__(self, path: Path, host: str | None, shared: object = None, state: dict[str, Any] | None = None) -> None:
        super().__init__(path, host)
        st = state or {}
        stem = path.name[: -len(".jsonl")]
        self.session: str | None = st.get("session") or (stem.rsplit("_", 1)[-1][:512] or None)
        self.cwd: str | None = st.get("cwd")
        self.header: bool = bool(st.get("header"))

    def state(self) -> dict[str, Any]:
        return {"session": self.session, "cwd": self.cwd, "header": self.header}

    def feed(self, raw: bytes, offset: int, live: bool, now: float, out: list[Event], stats: dict[str, int]) -> None:
        if b'"usage"' in raw:
            try:
                event = self._message(raw)
            except Malformed:
                stats["malformed"] = stats.get("malformed", 0) + 1
                return
            if event is not None:
                out.append(event)
        elif not self.header and b'"session"' in raw:
            try:
                obj = loads_line(raw)
            except ValueError:
                stats["malformed"] = stats.get("malformed", 0) + 1
                return
            if isinstance(obj, dict) and obj.get("type") == "session":
                self.header = True
                self.session = _text(obj.get("id")) or self.session
                self.cwd = _text(obj.get("cwd")) or self.cwd

    def _message(self, raw: bytes) -> Event | None:
        try:
            entry = _ENTRY.decode(raw)
        except msgspec.DecodeError as exc:
            raise Malformed(str(exc)) from None
        msg = entry.message
        if entry.type != "message" or msg is None or msg.role != "assistant" or msg.usage is None:
            return None
        usage = msg.usage
        inp = usage.input or 0
        out = usage.output or 0
        read = usage.cacheRead or 0
        write = usage.cacheWrite or 0
        total = usage.totalTokens or 0
        if inp == 0 and out == 0 and read == 0 and write == 0:
            return None  # aborted before the first token
        # pi's convention: input excludes the cache. Older releases kept Google's cache-inclusive
        # promptTokenCount as input; their totalTokens (= prompt + output) shows it.
        if read and total and inp >= read and inp + out + write == total:
            prompt = inp + write
        else:
            prompt = inp + read + write
        stamp: Any = msg.timestamp
        if stamp is not None:
            if not 1e11 < stamp < 1e14:
                raise Malformed(f"message.timestamp is not epoch milliseconds: {stamp!r}")
            ts = stamp / 1000.0
        else:
            ts = parse_ts(entry.timestamp)
            stamp = entry.timestamp
        provider = _text(msg.provider)
        model = _text(msg.model)
        # positional (Event's field order): keyword construction measured slower on this hot path
        return Event(
            request_id(stamp, provider, model, (inp, out, read, write)), ts, AGENT, self.session,
            project_of(self.cwd), self.host, None, provider, model,
            prompt, out, read, write, 0, 0,  # input (incl. cache), output, cache read, cache write, of it 1h, reasoning
            None, None, "error" if msg.stopReason == "error" else "ok", SOURCE, None,
        )


# -- what the shared tailer needs (protocol.LogFormat) -------------------------------------------------

def _roots(values: Mapping[str, Any], env: Mapping[str, str]) -> tuple[Path, ...]:
    return tuple(d / "sessions" for d in pi_dirs(values["pi_agent_dir"], env))


FORMAT: Final = LogFormat(
    name=AGENT,
    roots=_roots,
    reader=PiFile,
    config_keys={"pi_agent_dir": Setting(str, "", "pi agent dir holding sessions/ (PI_CODING_AGENT_DIR wins); "
                                                  "default ~/.pi/agent")},
    suffixes=(".jsonl",),
)
