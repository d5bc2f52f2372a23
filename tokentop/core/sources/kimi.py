"""Kimi CLI and Kimi Code wire logs (``sessions/.../wire.jsonl``) → events.

The store, its traps and the rules as implemented are described in ``docs/sources.md`` ("Kimi").
In short, one agent in two generations, both append-only JSONL named ``wire.jsonl``:

* **Kimi Code** (current): ``${KIMI_CODE_HOME:-~/.kimi-code}/sessions/<workdir key>/<session
  id>/agents/<agent id>/wire.jsonl``, protocol 1.5. Usage = ``{"type": "usage.record", "time": <ms>,
  "model": "<alias>", "usageScope": "turn", "usage": {inputOther, output, inputCacheRead,
  inputCacheCreation}}``. ``step.end`` events inside a turn carry the same usage again and are not
  counted. The model alias resolves through ``[models."<alias>"] provider/model`` in
  ``config.toml``; ``config.update`` lines name the agent profile (``explore``, ``plan``, ...).
* **Kimi CLI** (legacy): ``${KIMI_SHARE_DIR:-~/.kimi}/sessions/<workdir hash>/<session id>/wire.jsonl``,
  protocol 1.3. Usage = ``{"timestamp": <s>, "message": {"type": "StatusUpdate", "payload":
  {"token_usage": {input_other, output, input_cache_read, input_cache_creation}, "message_id"}}}``;
  the model is not on the line: the configured default model (``config.toml``/``config.json``),
  else ``kimi-for-coding``.
* Input is **partitioned** (``input_other`` is the uncached part): ``input_tokens = other + cache
  read + cache creation``.
* Ids: Kimi CLI ``kimi:<session>:<message_id>`` (a later update of the same message is a revision);
  Kimi Code ``kimi:<session>:<agent>:<time>:<hash of model and counts>`` (its records carry no id).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tomllib
from pathlib import Path
from typing import Annotated, Any, Final, Mapping, Union

import msgspec

from tokentop.core.events import Event
from tokentop.core.setting import Setting
from tokentop.core.sources.claude_code import Malformed
from tokentop.core.sources.protocol import LineReader, LogFormat

AGENT: Final = "kimi"
SOURCE: Final = "kimi-wire"
DEFAULT_LEGACY_MODEL: Final = "kimi-for-coding"
_WORKDIR_KEY = re.compile(r"^wd_(.+)_[0-9a-f]{6,}$")

Count = Annotated[int, msgspec.Meta(ge=0)]


class CodeUsage(msgspec.Struct):
    inputOther: Union[Count, None] = None
    output: Union[Count, None] = None
    inputCacheRead: Union[Count, None] = None
    inputCacheCreation: Union[Count, None] = None


class LegacyUsage(msgspec.Struct):
    input_other: Union[Count, None] = None
    output: Union[Count, None] = None
    input_cache_read: Union[Count, None] = None
    input_cache_creation: Union[Count, None] = None


class Payload(msgspec.Struct):
    token_usage: Union[LegacyUsage, None] = None
    message_id: Union[str, int, None] = None


class LegacyMessage(msgspec.Struct):
    type: Union[str, None] = None
    payload: Union[Payload, None] = None


class Line(msgspec.Struct):
    type: Union[str, None] = None
    time: Union[int, float, None] = None
    model: Union[str, None] = None
    usageScope: Union[str, None] = None
    usage: Union[CodeUsage, None] = None
    profileName: Union[str, None] = None
    timestamp: Union[int, float, None] = None
    message: Union[LegacyMessage, None] = None


_LINE: Final = msgspec.json.Decoder(Line)


def kimi_dirs(configured: str = "", env: Mapping[str, str] | None = None) -> list[Path]:
    """Both generations' homes. ``$KIMI_CODE_HOME`` / ``$KIMI_SHARE_DIR`` win (either one set: both
    homes come from the environment, the unset one at its default); else the configured dirs
    (comma-separated); else ``~/.kimi-code`` and ``~/.kimi``."""
    env = os.environ if env is None else env
    home = Path(env.get("HOME") or Path.home())
    code, share = env.get("KIMI_CODE_HOME", "").strip(), env.get("KIMI_SHARE_DIR", "").strip()
    if not (code or share) and configured:
        return [Path(p.strip()).expanduser() for p in configured.split(",") if p.strip()]
    return [Path(code).expanduser() if code else home / ".kimi-code",
            Path(share).expanduser() if share else home / ".kimi"]


def is_wire(path: str) -> bool:
    return path.rsplit(os.sep, 1)[-1] == "wire.jsonl"


# -- what the home's config says --------------------------------------------------------------------------

_CONFIGS: dict[str, tuple[dict[str, tuple[str, str]], str | None]] = {}


def home_config(home: Path) -> tuple[dict[str, tuple[str, str]], str | None]:
    """``(model aliases → (provider, model), default model)`` from a home's ``config.toml`` (or the older
    ``config.json``); cached per home."""
    key = str(home)
    if key in _CONFIGS:
        return _CONFIGS[key]
    aliases: dict[str, tuple[str, str]] = {}
    default: str | None = None
    data: Any = None
    try:
        data = tomllib.loads((home / "config.toml").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        try:
            data = json.loads((home / "config.json").read_bytes())
        except (OSError, ValueError):
            data = None
    if isinstance(data, dict):
        models = data.get("models")
        if isinstance(models, dict):
            for alias, spec in models.items():
                if isinstance(spec, dict) and isinstance(spec.get("model"), str):
                    provider = spec.get("provider")
                    aliases[alias] = (provider if isinstance(provider, str) else "", spec["model"])
        for name in ("default_model", "model"):
            if isinstance(data.get(name), str) and data[name].strip():
                default = data[name].strip()
                break
    if len(_CONFIGS) > 1000:
        _CONFIGS.clear()
    _CONFIGS[key] = (aliases, default)
    return aliases, default


def _layout(path: Path) -> tuple[Path | None, str, str | None, str | None]:
    """``(home, session id, agent id, workdir key)`` of a wire file of either generation."""
    if path.parent.parent.name == "agents":  # Kimi Code: sessions/<wd>/<session>/agents/<agent>/wire.jsonl
        session_dir = path.parent.parent.parent
        agent: str | None = path.parent.name
    else:  # Kimi CLI: sessions/<wd>/<session>/wire.jsonl
        session_dir = path.parent
        agent = None
    sessions = session_dir.parent.parent
    home = sessions.parent if sessions.name == "sessions" else None
    return home, session_dir.name, agent, session_dir.parent.name


class KimiFile(LineReader):
    """One wire log: the agent profile and the model the home's config names."""

    prefilter = None  # usage lines and config updates are picked out in feed()

    def __init__(self, path: Path, host: str | None, shared: object = None, state: dict[str, Any] | None = None) -> None:
        super().__init__(path, host)
        home, self.session, self.agent_id, workdir = _layout(path)
        self.aliases, self.default_model = home_config(home) if home is not None else ({}, None)
        m = _WORKDIR_KEY.match(workdir or "")
        self.project = m.group(1)[:512] if m else None
        self.profile: str | None = (state or {}).get("profile")

    def state(self) -> dict[str, Any] | None:
        return {"profile": self.profile} if self.profile else None

    def feed(self, raw: bytes, offset: int, live: bool, now: float, out: list[Event], stats: dict[str, int]) -> None:
        if b'"usage.record"' not in raw and b'"token_usage"' not in raw and b'"config.update"' not in raw:
            return
        try:
            line = _LINE.decode(raw)
        except msgspec.DecodeError:
            stats["malformed"] = stats.get("malformed", 0) + 1
            return
        try:
            if line.type == "usage.record":
                event = self._record(line, stats)
            elif line.type == "config.update":
                if line.profileName and line.profileName.strip():
                    self.profile = line.profileName.strip()[:100]
                return
            elif line.message is not None and line.message.type == "StatusUpdate":
                event = self._status(line)
            else:
                return
        except Malformed:
            stats["malformed"] = stats.get("malformed", 0) + 1
            return
        if event is not None:
            out.append(event)

    def _agent(self) -> str:
        if self.profile and self.profile.lower() != "agent":
            return f"{AGENT}/{self.profile.lower()}"
        if self.agent_id and self.agent_id != "main" and not self.profile:
            return f"{AGENT}/subagent"
        return AGENT

    def _record(self, line: Line, stats: dict[str, int]) -> Event | None:
        if line.usageScope not in (None, "turn"):
            stats["other_usage_scopes"] = stats.get("other_usage_scopes", 0) + 1
            return None
        u = line.usage
        if u is None:
            return None
        other, out, read, write = u.inputOther or 0, u.output or 0, u.inputCacheRead or 0, u.inputCacheCreation or 0
        if other == 0 and out == 0 and read == 0 and write == 0:
            return None
        if line.time is None or not 1e11 < line.time < 1e14:
            raise Malformed(f"time is not epoch milliseconds: {line.time!r}")
        raw_model = (line.model or "").strip() or None
        provider, model = self.aliases.get(raw_model, ("", raw_model)) if raw_model else ("", None)
        key = f"{raw_model}|{other}|{out}|{read}|{write}"
        event_id = (f"kimi:{self.session}:{self.agent_id or '-'}:{int(line.time)}:"
                    f"{hashlib.blake2b(key.encode(), digest_size=6).hexdigest()}")
        return self._event(event_id, line.time / 1000.0, provider or None, model, other, out, read, write)

    def _status(self, line: Line) -> Event | None:
        payload = line.message.payload if line.message else None
        u = payload.token_usage if payload else None
        if u is None:
            return None
        other, out = u.input_other or 0, u.output or 0
        read, write = u.input_cache_read or 0, u.input_cache_creation or 0
        if other == 0 and out == 0 and read == 0 and write == 0:
            return None
        if line.timestamp is None or not 1e8 < line.timestamp < 1e11:
            raise Malformed(f"timestamp is not epoch seconds: {line.timestamp!r}")
        mid = payload.message_id if payload else None
        if mid is not None and str(mid).strip():
            event_id = f"kimi:{self.session}:{str(mid).strip()[:200]}"
        else:
            key = f"{line.timestamp}|{other}|{out}|{read}|{write}"
            event_id = f"kimi:{self.session}:{hashlib.blake2b(key.encode(), digest_size=8).hexdigest()}"
        model = self.default_model or DEFAULT_LEGACY_MODEL
        provider, model = self.aliases.get(model, ("", model))
        return self._event(event_id, float(line.timestamp), provider or None, model, other, out, read, write)

    def _event(self, event_id: str, ts: float, provider: str | None, model: str | None, other: int, out: int,
               read: int, write: int) -> Event:
        return Event(event_id, ts, self._agent(), self.session, self.project, self.host, None, provider, model,
                     other + read + write, out, read, write, 0, 0,  # input (partitioned → summed), output, read, write
                     None, None, "ok", SOURCE, None)


def _roots(values: Mapping[str, Any], env: Mapping[str, str]) -> tuple[Path, ...]:
    return tuple(d / "sessions" for d in kimi_dirs(values["kimi_dirs"], env))


FORMAT: Final = LogFormat(
    name=AGENT,
    roots=_roots,
    reader=KimiFile,
    config_keys={"kimi_dirs": Setting(str, "", "Kimi homes holding sessions/, comma-separated (KIMI_CODE_HOME and "
                                               "KIMI_SHARE_DIR win); default ~/.kimi-code and ~/.kimi")},
    suffixes=(".jsonl",),
    prefix="wire",
    accept=is_wire,
)
