"""GitHub Copilot CLI → events: its OpenTelemetry file export (exact, per call) and its session
logs' totals (``events.jsonl``, one figure per model per process lifetime).

The stores, their traps and the rules as implemented are described in ``docs/sources.md``
("Copilot CLI"). In short:

* Where: ``$COPILOT_HOME`` (else ``[sources] copilot_home``, else ``~/.copilot``):
  ``otel/*.jsonl`` and ``session-state/<session>/events.jsonl``; plus the file
  ``$COPILOT_OTEL_FILE_EXPORTER_PATH`` names (the CLI writes its OTel export there when told to).
* **OTel export** (``COPILOT_OTEL_ENABLED=true``, ``COPILOT_OTEL_EXPORTER_TYPE=file``): JSON lines of
  spans (``{"type": "span", "traceId", "spanId", "name", "startTime": [s, ns], "endTime", "attributes"}``)
  and metrics. Each ``chat`` span (``gen_ai.operation.name = chat``, or a name ``chat <model>``) is one
  model call, with GenAI semantic-convention tokens: ``gen_ai.usage.input_tokens`` *includes* the
  cache (``cache_read.input_tokens``/``cache_creation.input_tokens``, also spelled
  ``cache_read_input_tokens``/``cache_creation_input_tokens`` by the CLI: both are read), output
  includes ``reasoning.output_tokens``. ``invoke_agent`` spans sum their children's calls and are
  skipped (counting both doubles), as are metrics. Event id ``otel-span:<traceId>:<spanId>``: the
  same id tokentop's OTLP receiver gives the span, so a CLI exporting to both counts once.
* **Session totals**: ``events.jsonl`` persists no per-call input tokens; its ``session.shutdown``
  record carries ``modelMetrics.<model>.usage`` (``inputTokens`` including the cache, ``outputTokens``,
  ``cacheReadTokens``, ``cacheWriteTokens``) for the process lifetime that ends there (a resumed
  session appends another). Each (shutdown, model) becomes one event dated at the shutdown, source
  ``copilot-cli-session-total`` (the OTel calls have source ``copilot-cli-otel``): the detail view
  says which a session's figures are. A lifetime that the OTel export also covers (same session id
  with spans in its time span, or spans of an unknown conversation in it) is skipped.
* Model names are the CLI's (``claude-sonnet-4.6``, ``gpt-5-mini``); provider ``github-copilot``,
  whose per-token rates genai-prices has (the same rates GitHub meters in AI units).
"""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path
from typing import Any, Final, Mapping

from tokentop.core.events import Event
from tokentop.core.setting import Setting
from tokentop.core.sources.claude_code import Malformed, loads_line, parse_ts, project_of
from tokentop.core.sources.protocol import Found, LineReader, LogFormat

AGENT: Final = "copilot-cli"
PROVIDER: Final = "github-copilot"
SOURCE_OTEL: Final = "copilot-cli-otel"
SOURCE_TOTAL: Final = "copilot-cli-session-total"
EXPORT_ENV: Final = "COPILOT_OTEL_FILE_EXPORTER_PATH"
#: Seconds of clock skew allowed when matching a session total with the OTel spans of its lifetime.
OVERLAP_SLACK_S: Final = 120.0

_CACHE_READ: Final = ("gen_ai.usage.cache_read.input_tokens", "gen_ai.usage.cache_read_input_tokens")
_CACHE_WRITE: Final = ("gen_ai.usage.cache_creation.input_tokens", "gen_ai.usage.cache_creation_input_tokens",
                       "gen_ai.usage.cache_write.input_tokens", "gen_ai.usage.cache_write_input_tokens")
_REASONING: Final = ("gen_ai.usage.reasoning.output_tokens", "gen_ai.usage.reasoning_tokens")
_SESSION_ATTRS: Final = ("gen_ai.conversation.id", "session.id", "copilot_chat.session_id")
_CONV_RE: Final = re.compile(rb'"gen_ai\.conversation\.id"\s*:\s*"([^"]{1,512})"')
_END_RE: Final = re.compile(rb'"endTime"\s*:\s*\[\s*(\d+)')


def copilot_home(configured: str = "", env: Mapping[str, str] | None = None) -> Path:
    """``COPILOT_HOME``, else the config value, else ``~/.copilot``."""
    env = os.environ if env is None else env
    raw = env.get("COPILOT_HOME", "") or configured
    if raw:
        return Path(raw).expanduser()
    return Path(env.get("HOME") or Path.home()) / ".copilot"


def _roots(values: Mapping[str, Any], env: Mapping[str, str]) -> tuple[Path, ...]:
    roots = [copilot_home(values["copilot_home"], env)]
    export = env.get(EXPORT_ENV, "").strip()
    if export:
        roots.append(Path(export).expanduser())
    return tuple(roots)


def _int(obj: Mapping[str, Any], *names: str) -> int:
    for name in names:
        v = obj.get(name)
        if v is None:
            continue
        if type(v) is int and v >= 0:
            return v
        if isinstance(v, float) and v >= 0 and v.is_integer():
            return int(v)
        if isinstance(v, str) and v.isdigit():
            return int(v)
        raise Malformed(f"{name} is not a non-negative integer: {str(v)[:40]!r}")
    return 0


def _dict(v: Any) -> dict[str, Any]:
    """``v`` when it is a JSON object, else an empty one (stores change shape between versions)."""
    return v if isinstance(v, dict) else {}


def _text(v: Any) -> str | None:
    if isinstance(v, str):
        v = v.strip()
        return v[:512] or None
    return None


def _hrtime(v: Any) -> float | None:
    """An OTel JS ``HrTime`` (``[seconds, nanoseconds]``) or a plain epoch number (s, ms, µs or ns)."""
    if isinstance(v, list) and len(v) == 2 and all(isinstance(x, (int, float)) for x in v):
        return float(v[0]) + float(v[1]) / 1e9
    if isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0:
        x = float(v)
        while x > 1e11:  # ms, µs, ns → s
            x /= 1000.0
        return x
    return None


class CopilotShared:
    """What the format's readers share: the time span of each OTel conversation, so a session
    total the OTel export already counted call by call is skipped. Filled by the OTel readers as
    they parse, and by one quick scan of the OTel files (for spans read by an earlier process)
    the first time a session total needs the answer."""

    def __init__(self) -> None:
        self.conversations: dict[str, list[float]] = {}
        #: OTel files scanned: path → bytes scanned
        self.scanned: dict[str, int] = {}

    def saw(self, conversation: str, ts: float) -> None:
        span = self.conversations.get(conversation)
        if span is None:
            self.conversations[conversation] = [ts, ts]
        else:
            span[0] = min(span[0], ts)
            span[1] = max(span[1], ts)

    def export(self) -> Any:
        return {"conversations": self.conversations, "scanned": self.scanned}

    def merge(self, exported: Any) -> None:
        for conv, (lo, hi) in exported.get("conversations", {}).items():
            self.saw(conv, lo)
            self.saw(conv, hi)
        for path, n in exported.get("scanned", {}).items():
            self.scanned[path] = max(self.scanned.get(path, 0), n)

    def _scan(self, home: Path) -> None:
        files = []
        try:
            files = [str(home / "otel" / n) for n in os.listdir(home / "otel") if n.endswith(".jsonl")]
        except OSError:
            pass
        export = os.environ.get(EXPORT_ENV, "").strip()
        if export:
            files.append(str(Path(export).expanduser()))
        for path in files:
            try:
                size = os.path.getsize(path)
            except OSError:
                continue
            done = self.scanned.get(path, 0)
            if size < done:
                done = 0
            if size == done:
                continue
            try:
                with open(path, "rb") as fh:
                    fh.seek(done)
                    data = fh.read(size - done)
            except OSError:
                continue
            end = data.rfind(b"\n") + 1
            for line in data[:end].split(b"\n"):
                if b'"chat' not in line:
                    continue
                conv = _CONV_RE.search(line)
                t = _END_RE.search(line)
                if conv and t:
                    self.saw(conv.group(1).decode("utf-8", "replace"), float(t.group(1)))
            self.scanned[path] = done + end

    def covered(self, session: str, start: float | None, end: float, home: Path) -> bool:
        """Whether the OTel export holds calls of this session's lifetime ``[start, end]``."""
        self._scan(home)
        lo_end, hi_start = end + OVERLAP_SLACK_S, (start if start is not None else end - 86400.0) - OVERLAP_SLACK_S
        span = self.conversations.get(session)
        if span is not None:
            return span[0] <= lo_end and span[1] >= hi_start
        # a conversation id that names no session of this home: the export may use its own ids
        try:
            known = set(os.listdir(home / "session-state"))
        except OSError:
            known = set()
        return any(c not in known and lo <= lo_end and hi >= hi_start for c, (lo, hi) in self.conversations.items())


class CopilotFile(LineReader):
    """One file: an OTel export (any ``*.jsonl`` but ``events.jsonl``) or a session log."""

    prefilter = None  # each mode has its own byte checks

    def __init__(self, path: Path, host: str | None, shared: object = None, state: dict[str, Any] | None = None) -> None:
        super().__init__(path, host)
        self.shared: CopilotShared = shared if isinstance(shared, CopilotShared) else CopilotShared()
        self.session_log = path.name == "events.jsonl"
        st = state or {}
        self.session: str | None = st.get("session") or (path.parent.name if self.session_log else None)
        self.cwd: str | None = st.get("cwd")
        self.branch: str | None = st.get("branch")
        self.started: float | None = st.get("started")
        home_guess = path.parent.parent.parent if self.session_log else (
            path.parent.parent if path.parent.name == "otel" else None)
        self.home: Path = home_guess or copilot_home()
        self.projects: dict[str, str | None] = {}

    def state(self) -> dict[str, Any] | None:
        if not self.session_log:
            return None
        return {"session": self.session, "cwd": self.cwd, "branch": self.branch, "started": self.started}

    def feed(self, raw: bytes, offset: int, live: bool, now: float, out: list[Event], stats: dict[str, int]) -> None:
        try:
            if self.session_log:
                if b'"session.' in raw:
                    self._session_line(raw, offset, out, stats)
            elif b"gen_ai.usage." in raw:
                self._span(raw, out, stats)
        except Malformed:
            stats["malformed"] = stats.get("malformed", 0) + 1

    # -- the OTel export -------------------------------------------------------------------------
    def _span(self, raw: bytes, out: list[Event], stats: dict[str, int]) -> None:
        try:
            obj = loads_line(raw)
        except ValueError:
            raise Malformed("not valid JSON") from None
        if not isinstance(obj, dict):
            raise Malformed("line is not a JSON object")
        kind = obj.get("type")
        if kind is not None and kind != "span":
            return  # metrics (and logs) repeat what the spans say
        attrs = obj.get("attributes")
        if not isinstance(attrs, dict):
            return
        name = obj.get("name")
        if not isinstance(name, str):
            name = ""
        op = attrs.get("gen_ai.operation.name")
        if op != "chat" and not (op is None and name.startswith("chat ")):
            if op == "invoke_agent" or name.startswith("invoke_agent"):
                stats["agent_rollups_skipped"] = stats.get("agent_rollups_skipped", 0) + 1
            return
        inp = _int(attrs, "gen_ai.usage.input_tokens", "gen_ai.usage.prompt_tokens")
        output = _int(attrs, "gen_ai.usage.output_tokens", "gen_ai.usage.completion_tokens")
        read = _int(attrs, *_CACHE_READ)
        write = _int(attrs, *_CACHE_WRITE)
        reasoning = min(output, _int(attrs, *_REASONING))
        if read + write > inp:  # an exporter that reported input without its cache: add it
            inp += read + write
            stats["input_without_cache"] = stats.get("input_without_cache", 0) + 1
        if not (inp or output):
            return
        ctx = _dict(obj.get("spanContext"))
        trace = _text(obj.get("traceId")) or _text(ctx.get("traceId"))
        span_id = _text(obj.get("spanId")) or _text(ctx.get("spanId")) or _text(obj.get("id"))
        start = _hrtime(obj.get("startTime")) or _hrtime(obj.get("timestamp"))  # (the console exporter's name)
        end = _hrtime(obj.get("endTime"))
        ts = end or start
        if ts is None:
            raise Malformed("span without a time")
        if trace and span_id:
            eid = f"otel-span:{trace}:{span_id}"
        else:
            eid = "copilot-otel:" + hashlib.blake2b(raw, digest_size=16).hexdigest()
        session = next((s for s in (_text(attrs.get(k)) for k in _SESSION_ATTRS) if s), None) or trace
        if session:
            self.shared.saw(session, ts)
        status = obj.get("status")
        failed = isinstance(status, dict) and status.get("code") == 2
        out.append(Event(
            id=eid, ts=ts, agent=AGENT, session=session, project=self._project(session), host=self.host,
            provider=PROVIDER, model=_text(attrs.get("gen_ai.response.model")) or _text(attrs.get("gen_ai.request.model")),
            input_tokens=inp, output_tokens=output, cache_read_tokens=read, cache_write_tokens=write,
            reasoning_tokens=reasoning, latency_ms=(end - start) * 1000.0 if end and start and end >= start else None,
            status="error" if failed else "ok", source=SOURCE_OTEL,
        ))

    def _project(self, session: str | None) -> str | None:
        """The session's working directory, from its session log's first record (read once)."""
        if not session or "/" in session or session.startswith("."):
            return None
        if session in self.projects:
            return self.projects[session]
        project = None
        try:
            with open(self.home / "session-state" / session / "events.jsonl", "rb") as fh:
                for _ in range(20):
                    line = fh.readline()
                    if not line:
                        break
                    if b'"session.start"' in line:
                        data = loads_line(line).get("data") or {}
                        ctx = _dict(data.get("context"))
                        project = project_of(_text(ctx.get("cwd")))
                        break
        except (OSError, ValueError, AttributeError):
            project = None
        if len(self.projects) > 10_000:
            self.projects.clear()
        self.projects[session] = project
        return project

    # -- the session log -------------------------------------------------------------------------
    def _session_line(self, raw: bytes, offset: int, out: list[Event], stats: dict[str, int]) -> None:
        try:
            obj = loads_line(raw)
        except ValueError:
            raise Malformed("not valid JSON") from None
        if not isinstance(obj, dict):
            raise Malformed("line is not a JSON object")
        kind = obj.get("type")
        data = _dict(obj.get("data"))
        if kind in ("session.start", "session.resume"):
            self.session = _text(data.get("sessionId")) or self.session
            ctx = _dict(data.get("context"))
            self.cwd = _text(ctx.get("cwd")) or self.cwd
            self.branch = _text(ctx.get("branch")) or self.branch
            self.started = parse_ts(obj.get("timestamp")) if obj.get("timestamp") else self.started
            return
        if kind != "session.shutdown":
            return
        ts = parse_ts(obj.get("timestamp"))
        metrics = data.get("modelMetrics")
        started, self.started = self.started, ts  # a resumed session's next lifetime starts here
        if not isinstance(metrics, dict) or not metrics:
            stats["shutdowns_without_metrics"] = stats.get("shutdowns_without_metrics", 0) + 1
            return
        session = self.session or "unknown"
        if started is None and isinstance(data.get("sessionStartTime"), (int, float)):
            started = _hrtime(data["sessionStartTime"])
        if self.shared.covered(session, started, ts, self.home):
            stats["session_totals_covered_by_otel"] = stats.get("session_totals_covered_by_otel", 0) + 1
            return
        mark = _text(obj.get("id")) or str(offset)
        for model, m in sorted(metrics.items()):
            usage = m.get("usage") if isinstance(m, dict) else None
            if not isinstance(usage, dict):
                continue
            inp = _int(usage, "inputTokens", "input")
            output = _int(usage, "outputTokens", "output")
            read = _int(usage, "cacheReadTokens")
            write = _int(usage, "cacheWriteTokens")
            reasoning = min(output, _int(usage, "reasoningTokens"))
            if read + write > inp:
                inp += read + write
            if not (inp or output):
                continue
            out.append(Event(
                id=f"copilot-session:{session}:{mark}:{model}"[:512], ts=ts, agent=AGENT, session=session,
                project=project_of(self.cwd), host=self.host, provider=PROVIDER, model=_text(model),
                input_tokens=inp, output_tokens=output, cache_read_tokens=read, cache_write_tokens=write,
                reasoning_tokens=reasoning, source=SOURCE_TOTAL, branch=self.branch,
            ))


def pick_files(per_dir: list[list[Found]]) -> list[Found]:
    """``otel/``: every ``*.jsonl``; ``session-state/``: each session's ``events.jsonl`` only."""
    otel, sessions = per_dir
    return otel + [(p, st) for p, st in sessions if p.endswith(os.sep + "events.jsonl")]


def is_session_log(path: str) -> bool:
    """Session logs are read after the OTel files (their totals defer to the calls read there)."""
    return path.endswith(os.sep + "events.jsonl")


FORMAT: Final = LogFormat(
    name=AGENT,
    roots=_roots,
    reader=CopilotFile,
    config_keys={"copilot_home": Setting(str, "", "Copilot CLI home (holding otel/ and session-state/); "
                                                  "default ~/.copilot")},
    suffixes=(".jsonl",),
    subdirs=("otel", "session-state"),
    pick=pick_files,
    later=is_session_log,
    shared=CopilotShared,
)
