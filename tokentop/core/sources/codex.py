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
  ``source.subagent`` spawn) start by replaying the parent's ``token_count`` lines, all stamped
  with the same second: those lines only set the baseline (ccusage's rule).
* The model is the latest ``turn_context.payload.model`` (or a ``model`` on the token_count
  itself); without one the event is left unpriced, never guessed.
* Semantics already match the event contract: ``input_tokens`` includes ``cached_input_tokens``
  (clamped to it), ``output_tokens`` includes ``reasoning_output_tokens``.
* Files: ``sessions/`` wins over ``archived_sessions/`` for the same file name, and a plain
  ``.jsonl`` over its ``.jsonl.zst`` (:func:`pick_rollouts`); ``.zst`` rollouts are read whole.
* Every ``token_count`` line's ``rate_limits`` (the plan's 5-hour and weekly windows) goes to the
  format's shared :class:`~tokentop.core.limits.codex.RateLimitLog` as the line is read, repeats and
  ``info: null`` lines included (:meth:`CodexFile._rate_limits`); the feed's limits part takes it
  from there (docs/limits.md).
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, Mapping

from tokentop.core.events import Event
from tokentop.core.limits.codex import RateLimitLog, account_of
from tokentop.core.setting import Setting
from tokentop.core.sources.claude_code import Malformed, _loads, parse_ts, project_of
from tokentop.core.sources.protocol import Found, LineReader, LogFormat

if TYPE_CHECKING:
    from tokentop.config import Config

AGENT: Final = "codex"
PROVIDER: Final = "openai"
_FIELDS: Final = ("input_tokens", "cached_input_tokens", "output_tokens", "reasoning_output_tokens")
_UUID_TAIL = re.compile(r"([0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12})\.jsonl(?:\.zst)?$")


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


class CodexFile(LineReader):
    """Per-file reader state: session facts, current model and the last cumulative total."""

    prefilter = None  # lines are filtered by the three kinds below

    def __init__(self, path: Path, host: str | None, shared: object = None, state: dict[str, Any] | None = None) -> None:
        super().__init__(path, host)
        m = _UUID_TAIL.search(path.name)
        st = state or {}
        self.session: str | None = st.get("session") or (m.group(1) if m else None)
        self.own_session_known: bool = bool(st.get("own"))
        self.model: str | None = st.get("model")
        self.cwd: str | None = st.get("cwd")
        self.branch: str | None = st.get("branch")
        self.prev: tuple[int, int, int, int] | None = tuple(st["prev"]) if st.get("prev") else None  # type: ignore[assignment]
        self.forked: bool = bool(st.get("forked"))
        self.replay_second: int | None = st.get("replay_second")
        self.replaying: bool = bool(st.get("replaying"))
        #: where this file's quota figures go (the format's shared state), and its account
        self.rate_log: RateLimitLog | None = shared if isinstance(shared, RateLimitLog) else None
        self.account: str | None = None

    def state(self) -> dict[str, Any]:
        return {
            "session": self.session, "own": self.own_session_known, "model": self.model, "cwd": self.cwd,
            "branch": self.branch, "prev": list(self.prev) if self.prev else None, "forked": self.forked,
            "replay_second": self.replay_second, "replaying": self.replaying,
        }

    def feed(self, raw: bytes, offset: int, live: bool, now: float, out: list[Event], stats: dict[str, int]) -> None:
        if b'"token_count"' not in raw and b'"turn_context"' not in raw and b'"session_meta"' not in raw:
            return
        try:
            self._line(raw, out, stats)
        except Malformed:
            stats["malformed"] = stats.get("malformed", 0) + 1

    def _line(self, raw: bytes, out: list[Event], stats: dict[str, int]) -> None:
        try:
            obj = _loads(raw)
        except ValueError:
            raise Malformed("not valid JSON") from None
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
            model = payload.get("model")
            if isinstance(model, str) and model.strip():
                self.model = model.strip()[:512]
            cwd = payload.get("cwd")
            if isinstance(cwd, str) and cwd:
                self.cwd = cwd
            return
        if kind != "event_msg" or payload.get("type") != "token_count":
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
            m = holder.get("model") or holder.get("model_name")
            if isinstance(m, str) and m.strip():
                self.model = m.strip()[:512]
        if self.forked and (self.replaying or self.replay_second is None):
            second = int(ts)
            if self.replay_second is None:
                self.replay_second = second
                self.replaying = True
            if self.replaying and second == self.replay_second:
                if total is not None:
                    self.prev = total
                stats["fork_replays"] = stats.get("fork_replays", 0) + 1
                return
            self.replaying = False
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
        inp, cached, output, reasoning = delta
        if inp == 0 and cached == 0 and output == 0 and reasoning == 0:
            return
        cached = min(cached, inp)
        reasoning = min(reasoning, output)
        mark = total if total is not None else delta
        out.append(Event(
            id=f"codex:{self.session}:{mark[0]}:{mark[1]}:{mark[2]}:{mark[3]}",
            ts=ts,
            agent=AGENT,
            session=self.session,
            project=project_of(self.cwd),
            host=self.host,
            provider=PROVIDER,
            model=self.model,
            input_tokens=inp,
            output_tokens=output,
            cache_read_tokens=cached,
            reasoning_tokens=reasoning,
            source="codex-log",
            branch=self.branch,
        ))

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
        """A forked thread still replaying (or about to replay) its parent's token_count lines."""
        return self.forked and (self.replay_second is None or self.replaying)

    def _meta(self, payload: dict[str, Any]) -> None:
        sid = payload.get("id")
        if not self.own_session_known:
            self.own_session_known = True
            if isinstance(sid, str) and sid:
                self.session = sid[:512]
            source = payload.get("source")
            spawned = isinstance(source, dict) and "subagent" in source
            if payload.get("forked_from_id") or spawned:
                self.forked = True
            cwd = payload.get("cwd")
            if isinstance(cwd, str) and cwd:
                self.cwd = cwd
            git = payload.get("git")
            if isinstance(git, dict) and isinstance(git.get("branch"), str):
                self.branch = git["branch"][:512] or None


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


FORMAT: Final = LogFormat(
    name=AGENT,
    roots=_homes,
    reader=CodexFile,
    config_keys={"codex_home": Setting(str, "", "Codex home (holding sessions/); default ~/.codex")},
    suffixes=(".jsonl", ".jsonl.zst"),
    prefix="rollout-",
    subdirs=("sessions", "archived_sessions"),
    pick=pick_rollouts,
    whole=((".zst", read_zstd),),
    shared=RateLimitLog,
)
