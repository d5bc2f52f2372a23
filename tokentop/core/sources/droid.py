"""Factory Droid sessions (``~/.factory/sessions/**/<session>.settings.json``) → events.

The store and the rules as implemented are described in ``docs/sources.md`` ("Droid"). In short:

* Droid keeps no per-call record: each session's ``<session>.settings.json`` holds the session's
  *cumulative* ``tokenUsage`` (``inputTokens`` without the cache, ``outputTokens``,
  ``cacheCreationTokens``, ``cacheReadTokens``, ``thinkingTokens``) and is rewritten in place as the
  session goes on. Each change becomes one event: the difference to the last snapshot read (a count
  that went down is taken as 0), dated at the file's mtime. The first snapshot of a session counts
  whole; one older than the backfill window only sets the baseline.
* The event id is ``droid:<session>:<the five cumulative counts>``: the same snapshot read again (a
  restart, an unchanged rewrite) is the same event.
* Tokens: input = input + cache read + cache creation; ``thinkingTokens`` is kept apart from
  ``outputTokens`` by Droid and added to the output (as reasoning).
* Model: ``model`` as Droid names it, normalised (``custom:`` and ``[Provider]`` tags dropped,
  ``Claude-Opus-4.5-Thinking`` → ``claude-opus-4.5``, a trailing reasoning effort dropped); when
  absent, the first ``Model:`` in the session's transcript (``<session>.jsonl``). Provider =
  ``providerLock``.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, Final, Mapping, Sequence

from tokentop.core.events import Event
from tokentop.core.setting import Setting
from tokentop.core.sources.claude_code import loads_line, project_of
from tokentop.core.sources.protocol import Progress, Sink, SourceContext, Stats, StoreFormat
from tokentop.core.sources.store import StoreCursors

AGENT: Final = "droid"
SUFFIX: Final = ".settings.json"
_FIELDS: Final = ("inputTokens", "outputTokens", "cacheCreationTokens", "cacheReadTokens", "thinkingTokens")
#: Files modified within this are stat'ed by ``poll_recent`` (polling mode).
HOT_S: Final = 3600.0
_BRACKETS: Final = re.compile(r"\[[^\]]*\]")
_EFFORT: Final = re.compile(r"-(?:x?high|medium|low|minimal|none)$")
_THINKING: Final = re.compile(r"-thinking(?:-\d+)?$")
_MODEL_LINE: Final = re.compile(rb"Model:\s*([^\[\\\"\n<]+)")  # up to a [Provider] tag, a quote or a tag
_CWD: Final = re.compile(rb'"cwd"\s*:\s*"([^"\\]{1,1024})"')


def factory_home(configured: str, env: Mapping[str, str]) -> Path:
    if configured:
        return Path(configured).expanduser()
    return Path(env.get("HOME") or Path.home()) / ".factory"


def _roots(values: Mapping[str, Any], env: Mapping[str, str]) -> tuple[Path, ...]:
    return (factory_home(values["factory_home"], env) / "sessions",)


def normalise_model(name: str) -> str:
    """Droid's model labels → model ids (``custom:Claude-Opus-4.5-Thinking-[Anthropic]-0`` →
    ``claude-opus-4.5``, ``custom:gpt-5.5 (high)`` → ``gpt-5.5``)."""
    m = name.strip()
    if m.startswith("custom:"):
        m = m[len("custom:"):]
    m = _BRACKETS.sub("", m)
    m = re.sub(r"\((?:x?high|medium|low|minimal)\)", "", m, flags=re.I)
    m = re.sub(r"[\s\-]+", "-", m.strip().lower()).strip("-")
    m = re.sub(r"-\d+$", "", m) if "-thinking-" in m else m
    m = _THINKING.sub("", m)
    m = _EFFORT.sub("", m)
    if m.startswith(("opus-", "sonnet-", "haiku-")):
        m = "claude-" + m
    return m[:512]


def _counts(usage: Any) -> tuple[int, ...] | None:
    if not isinstance(usage, dict):
        return None
    out = []
    for name in _FIELDS:
        v = usage.get(name) or 0
        if isinstance(v, float) and v.is_integer():
            v = int(v)
        if type(v) is not int or v < 0:
            return None
        out.append(v)
    return tuple(out)


class DroidSource:
    """Follows each session's settings file; a :class:`~tokentop.core.sources.protocol.Source`."""

    def __init__(self, ctx: SourceContext) -> None:
        self.ctx = ctx
        self.stats = Stats()
        self.cursors = StoreCursors(ctx.ledger, AGENT)
        self.hot: list[str] = []

    # -- reading -------------------------------------------------------------------------------
    def _files(self) -> list[tuple[str, os.stat_result]]:
        found: list[tuple[str, os.stat_result]] = []
        for root in self.ctx.roots:
            for dirpath, _, names in os.walk(root):
                for n in names:
                    if n.endswith(SUFFIX):
                        p = os.path.join(dirpath, n)
                        try:
                            found.append((p, os.stat(p)))
                        except OSError:
                            continue
        return found

    def _read(self, files: Sequence[tuple[str, os.stat_result | None]], sink: Sink,
              progress: Progress | None = None) -> int:
        now = self.ctx.clock()
        cutoff = now - self.ctx.backfill_days * 86400.0
        out: list[Event] = []
        for i, (path, st) in enumerate(files):
            if st is None:
                try:
                    st = os.stat(path)
                except OSError:
                    self.cursors.drop(path)
                    continue
            cur = self.cursors.get(path)
            if cur is not None and cur.get("mtime_ns") == st.st_mtime_ns and cur.get("size") == st.st_size:
                continue
            self._file(path, st, cur, cutoff, out)
            if progress:
                progress(i + 1, len(files))
        if out:
            for j in range(0, len(out), self.ctx.batch_events):
                sink(out[j:j + self.ctx.batch_events])
            self.stats.events += len(out)
        self.cursors.commit(now)
        return len(out)

    def _file(self, path: str, st: os.stat_result, cur: dict[str, Any] | None, cutoff: float, out: list[Event]) -> None:
        try:
            with open(path, "rb") as fh:
                raw = fh.read()
        except OSError:
            return
        self.stats.files_read += 1
        self.stats.bytes_read += len(raw)
        self.stats.lines += 1
        try:
            obj = loads_line(raw)
        except ValueError:  # caught mid-rewrite (or broken): read again when it changes
            self.stats.counters["malformed"] = self.stats.counters.get("malformed", 0) + 1
            return
        counts = _counts(obj.get("tokenUsage")) if isinstance(obj, dict) else None
        state = {"mtime_ns": st.st_mtime_ns, "size": st.st_size, "usage": list(counts) if counts else
                 (cur or {}).get("usage"), "model": (cur or {}).get("model"), "project": (cur or {}).get("project")}
        if counts is None:
            self.cursors.put(path, state)
            return
        prev = tuple((cur or {}).get("usage") or (0, 0, 0, 0, 0))
        delta = tuple(max(0, a - b) for a, b in zip(counts, prev, strict=True))
        if any(a < b for a, b in zip(counts, prev, strict=True)):
            self.stats.counters["decreased_totals"] = self.stats.counters.get("decreased_totals", 0) + 1
        if state["model"] is None or isinstance(obj.get("model"), str):
            state["model"] = self._model(path, obj)
        if state["project"] is None:
            state["project"] = self._project(path)
        self.cursors.put(path, state)
        if not any(delta):
            return
        ts = st.st_mtime
        if ts < cutoff:
            self.stats.too_old += 1  # the baseline is kept: later changes count from it
            return
        inp, output, write, read, thinking = delta
        session = os.path.basename(path)[: -len(SUFFIX)]
        provider = obj.get("providerLock") if isinstance(obj.get("providerLock"), str) else None
        out.append(Event(
            id=f"droid:{session}:{':'.join(map(str, counts))}"[:512], ts=ts, agent=AGENT, session=session[:512],
            project=state["project"] if isinstance(state["project"], str) else None, host=self.ctx.host, provider=(provider or "").strip().lower()[:512] or None,
            model=state["model"] if isinstance(state["model"], str) else None, input_tokens=inp + read + write, output_tokens=output + thinking,
            cache_read_tokens=read, cache_write_tokens=write, reasoning_tokens=thinking, source="droid-settings",
        ))

    def _model(self, path: str, obj: dict[str, Any]) -> str | None:
        name = obj.get("model")
        if isinstance(name, str) and name.strip():
            return normalise_model(name)
        head = self._transcript_head(path)
        m = _MODEL_LINE.search(head)
        return normalise_model(m.group(1).decode("utf-8", "replace")) if m else None

    def _project(self, path: str) -> str | None:
        m = _CWD.search(self._transcript_head(path))
        return project_of(m.group(1).decode("utf-8", "replace")) if m else None

    @staticmethod
    def _transcript_head(path: str) -> bytes:
        try:
            with open(path[: -len(SUFFIX)] + ".jsonl", "rb") as fh:
                return fh.read(256 * 1024)
        except OSError:
            return b""

    # -- protocol.Source --------------------------------------------------------------------------
    def poll(self, sink: Sink, *, progress: Progress | None = None) -> int:
        files = self._files()
        self.stats.files = len(files)
        now = self.ctx.clock()
        self.hot = [p for p, st in files if st.st_mtime > now - HOT_S]
        present = {p for p, _ in files}
        for gone in [p for p in self.cursors.states if p not in present]:
            self.cursors.drop(gone)
        return self._read(files, sink, progress)

    def poll_changed(self, sink: Sink, paths: set[str]) -> int:
        mine: list[tuple[str, os.stat_result | None]] = [(p, None) for p in paths if p.endswith(SUFFIX)]
        return self._read(mine, sink) if mine else 0

    def poll_recent(self, sink: Sink) -> int:
        return self._read([(p, None) for p in self.hot], sink)

    def poll_tick(self, sink: Sink) -> int:
        return 0  # the watcher reports the rewrites

    def watch_dirs(self) -> list[Path]:
        return list(self.ctx.roots)


FORMAT: Final = StoreFormat(
    name=AGENT,
    roots=_roots,
    source=DroidSource,
    config_keys={"factory_home": Setting(str, "", "Factory Droid home (holding sessions/); default ~/.factory")},
)
