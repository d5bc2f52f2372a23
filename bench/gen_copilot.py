#!/usr/bin/env python3
"""Deterministic generator of GitHub Copilot CLI stores, with exact ground truth.

Writes a HOME-like tree:

    OUT/.copilot/otel/copilot-<n>.jsonl                       the CLI's OpenTelemetry file export
    OUT/.copilot/session-state/<session>/events.jsonl         session logs (totals at each shutdown)
    OUT/.copilot/session-state/<session>/workspace.yaml
    OUT/ground_truth.json

The shapes follow what the CLI writes (described in tokentop's docs/sources.md): span lines
``{"type":"span","traceId","spanId","parentSpanId","name","kind","startTime":[s,ns],"endTime":[s,ns],
"attributes":{...},"status":{"code":..},"resource":{...}}`` — an ``invoke_agent`` span per turn that
sums its ``chat <model>`` children (one per model call), ``execute_tool`` spans, and metric lines;
session logs with ``session.start`` (``sessionId``, ``context.cwd``), messages, and
``session.shutdown`` whose ``modelMetrics.<model>.usage`` holds that process lifetime's totals
(``inputTokens`` including the cache).

Traps: sessions run with the OTel export on (their shutdown totals repeat the spans: count the
spans only) and off (count the totals), resumed sessions (two lifetimes, two totals), the
``invoke_agent`` roll-ups, both spellings of the cache attributes (``cache_read.input_tokens`` and
``cache_read_input_tokens``), a shutdown with empty ``modelMetrics`` (the CLI recorded only AI units:
nothing to count), metric lines and malformed lines.

    python3 bench/gen_copilot.py --out /tmp/cp --calls 100000 --sessions 400 --seed 42
    python3 bench/gen_copilot.py --out /tmp/cp --append-rate 1 --duration 30 --seed 7   # live OTel spans
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

import calendar

MODELS = ["claude-sonnet-4.6", "claude-haiku-4.5", "gpt-5-mini", "gpt-5.4", "claude-opus-4.7"]
PROJECTS = ["tokentop", "webshop", "infra", "ml-pipeline", "docs-site"]


def parse_end(text: str | None) -> int:
    if text is None:
        return int(time.time()) // 60 * 60
    return calendar.timegm(time.strptime(text.replace("Z", ""), "%Y-%m-%dT%H:%M:%S"))


def iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{int(ts * 1000) % 1000:03d}Z"


def hr(ts: float) -> list[int]:
    return [int(ts), int(round((ts - int(ts)) * 1e9)) % 1_000_000_000]


class Truth:
    def __init__(self) -> None:
        self.requests = 0
        self.tok = {k: 0 for k in ("input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens",
                                   "reasoning_tokens")}
        self.by_source = {"copilot-cli-otel": 0, "copilot-cli-session-total": 0}
        self.cost = 0.0
        self.unpriced = 0
        self.traps: dict[str, int] = {}

    def trap(self, name: str, n: int = 1) -> None:
        self.traps[name] = self.traps.get(name, 0) + n

    def add(self, source: str, model: str, inp: int, out: int, cr: int, cw: int, reas: int, ts: float) -> None:
        self.requests += 1
        self.by_source[source] += 1
        for k, v in (("input_tokens", inp), ("output_tokens", out), ("cache_read_tokens", cr),
                     ("cache_write_tokens", cw), ("reasoning_tokens", reas)):
            self.tok[k] += v
        try:
            import genai_prices

            usage = genai_prices.Usage(input_tokens=inp, output_tokens=out, cache_read_tokens=cr or None,
                                       cache_write_tokens=cw or None)
            self.cost += float(genai_prices.calc_price(usage, model, provider_id="github-copilot",
                                                       genai_request_timestamp=datetime.fromtimestamp(ts, UTC)).total_price)
        except (ImportError, LookupError):
            self.unpriced += 1

    def to_json(self) -> dict[str, Any]:
        return {"agent": "copilot-cli", "requests": self.requests, **self.tok,
                "total_tokens": self.tok["input_tokens"] + self.tok["output_tokens"], "by_source": self.by_source,
                "cost_usd": round(self.cost, 9), "unpriced_requests": self.unpriced,
                "traps": dict(sorted(self.traps.items())),
                "notes": ["input_tokens includes cache reads and writes; output_tokens includes reasoning",
                          "a session run with the OTel export counts its spans, not its shutdown totals"]}


class Gen:
    def __init__(self, home: Path, rng: random.Random, truth: Truth) -> None:
        self.home = home
        self.rng = rng
        self.truth = truth
        self.n = 0

    def hex(self, n: int) -> str:
        return "".join(self.rng.choice("0123456789abcdef") for _ in range(n))

    def call(self, model: str, ctx: int) -> tuple[int, int, int, int, int]:
        rng = self.rng
        cr = ctx if rng.random() < 0.85 else 0
        cw = rng.randint(0, 4000) if model.startswith("claude") else 0
        inp = cr + cw + rng.randint(5, 3000)             # semantic conventions: input includes the cache
        reas = rng.randint(0, 1500) if model.startswith("gpt") and rng.random() < 0.7 else 0
        out = reas + rng.randint(10, 1500)                 # output includes reasoning
        return inp, out, cr, cw, reas

    def span(self, fh: TextIO, *, trace: str, span: str, parent: str | None, name: str, start: float, end: float,
             attrs: dict[str, Any]) -> None:
        obj: dict[str, Any] = {"type": "span", "traceId": trace, "spanId": span, "name": name, "kind": 2 if name.startswith("chat") else 1,
                               "startTime": hr(start), "endTime": hr(end), "attributes": attrs, "status": {"code": 0},
                               "events": [], "links": [],
                               "resource": {"attributes": {"service.name": "github-copilot", "service.version": "1.0.88"}},
                               "instrumentationScope": {"name": "github.copilot", "version": "1.0.88"}}
        if parent:
            obj["parentSpanId"] = parent
        fh.write(json.dumps(obj) + "\n")

    def turn(self, otel: TextIO | None, session: str, model: str, t: float, calls: int, ctx: int,
             count_otel: bool) -> tuple[float, dict[str, list[int]]]:
        """One user turn: ``calls`` model calls under an invoke_agent span; returns the end time and
        the per-model sums (what the session's shutdown reports)."""
        rng = self.rng
        trace = self.hex(32)
        root = self.hex(16)
        start = t
        sums: dict[str, list[int]] = {}
        total = [0, 0, 0, 0, 0]
        for _ in range(calls):
            inp, out, cr, cw, reas = self.call(model, ctx)
            ctx += rng.randint(200, 4000)
            t0 = t + rng.uniform(0.05, 0.5)
            t = t0 + rng.uniform(0.8, 25)
            s = sums.setdefault(model, [0, 0, 0, 0, 0])
            for i, v in enumerate((inp, out, cr, cw, reas)):
                s[i] += v
                total[i] += v
            if otel is not None:
                attrs: dict[str, Any] = {"gen_ai.operation.name": "chat", "gen_ai.provider.name": "github",
                                         "gen_ai.request.model": model, "gen_ai.response.model": model,
                                         "gen_ai.conversation.id": session, "gen_ai.response.id": f"resp_{self.hex(12)}",
                                         "gen_ai.usage.input_tokens": inp, "gen_ai.usage.output_tokens": out,
                                         "github.copilot.interaction_id": trace[:16]}
                if rng.random() < 0.5:  # the CLI's own spelling of the cache attributes
                    attrs["gen_ai.usage.cache_read_input_tokens"] = cr
                    attrs["gen_ai.usage.cache_creation_input_tokens"] = cw
                    self.truth.trap("underscore_cache_attributes")
                else:
                    attrs["gen_ai.usage.cache_read.input_tokens"] = cr
                    attrs["gen_ai.usage.cache_creation.input_tokens"] = cw
                if reas:
                    attrs["gen_ai.usage.reasoning.output_tokens"] = reas
                self.span(otel, trace=trace, span=self.hex(16), parent=root, name=f"chat {model}", start=t0, end=t,
                          attrs=attrs)
                if count_otel:
                    self.truth.add("copilot-cli-otel", model, inp, out, cr, cw, reas, t)
                if rng.random() < 0.6:
                    t1 = t + rng.uniform(0.05, 2)
                    self.span(otel, trace=trace, span=self.hex(16), parent=root, name="execute_tool bash", start=t,
                              end=t1, attrs={"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "bash"})
                    t = t1
        if otel is not None:
            self.span(otel, trace=trace, span=root, parent=None, name="invoke_agent copilot", start=start, end=t + 0.01,
                      attrs={"gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": "copilot",
                             "gen_ai.conversation.id": session, "gen_ai.request.model": model,
                             "gen_ai.usage.input_tokens": total[0], "gen_ai.usage.output_tokens": total[1],
                             "gen_ai.usage.cache_read.input_tokens": total[2]})
            self.truth.trap("invoke_agent_rollups")
            if self.rng.random() < 0.2:
                otel.write(json.dumps({"type": "metric", "name": "gen_ai.client.token.usage", "unit": "{token}",
                                       "dataPoints": [{"attributes": {"gen_ai.token.type": "input"}, "sum": total[0]}]}) + "\n")
                self.truth.trap("metric_lines")
        return t + 0.01, sums

    def session(self, otel: TextIO | None, calls: int, t: float) -> None:
        rng = self.rng
        sid = str(uuid.UUID(int=rng.getrandbits(128), version=4))
        project = rng.choice(PROJECTS)
        d = self.home / "session-state" / sid
        d.mkdir(parents=True, exist_ok=True)
        (d / "workspace.yaml").write_text(f"id: {sid}\ncwd: /home/dev/{project}\nsummary: work\n")
        lines: list[str] = []

        def rec(kind: str, ts: float, data: dict[str, Any]) -> None:
            self.n += 1
            lines.append(json.dumps({"type": kind, "data": data, "id": f"e{self.n}", "timestamp": iso(ts), "parentId": None}))

        model = rng.choice(MODELS)
        rec("session.start", t, {"sessionId": sid, "version": 1, "producer": "copilot-agent", "copilotVersion": "1.0.88",
                                 "startTime": iso(t), "selectedModel": model,
                                 "context": {"cwd": f"/home/dev/{project}", "gitRoot": f"/home/dev/{project}", "branch": "main"}})
        lifetimes = 2 if rng.random() < 0.2 else 1
        if lifetimes == 2:
            self.truth.trap("resumed_sessions")
        with_otel = otel is not None
        left = calls
        for life in range(lifetimes):
            n_life = left if life == lifetimes - 1 else max(1, left // 2)
            left -= n_life
            sums: dict[str, list[int]] = {}
            if life:
                t += rng.uniform(600, 7200)
                rec("session.resume", t, {"sessionId": sid, "context": {"cwd": f"/home/dev/{project}"}})
            done = 0
            while done < n_life:
                k = min(n_life - done, rng.randint(1, 6))
                rec("user.message", t, {"content": "please fix it", "messageId": f"u{self.n}"})
                t, got = self.turn(otel if with_otel else None, sid, model, t + 1, k, rng.randint(8000, 60000), with_otel)
                for m, s in got.items():
                    acc = sums.setdefault(m, [0, 0, 0, 0, 0])
                    for i in range(5):
                        acc[i] += s[i]
                rec("assistant.message", t, {"messageId": f"m{self.n}", "content": "done", "outputTokens": sum(s[1] for s in got.values())})
                done += k
                if rng.random() < 0.01:
                    lines.append('{"type":"session.shutdown","data":{"modelMetrics":')  # torn write
                    self.truth.trap("malformed_lines")
            t += rng.uniform(1, 30)
            if rng.random() < 0.03 and not with_otel:
                rec("session.shutdown", t, {"shutdownType": "routine", "totalNanoAiu": 4513400000, "modelMetrics": {}})
                self.truth.trap("shutdown_without_metrics")
                continue
            metrics = {m: {"requests": {"count": n_life, "cost": 1}, "usage": {
                "inputTokens": s[0], "outputTokens": s[1], "cacheReadTokens": s[2], "cacheWriteTokens": s[3],
                "reasoningTokens": s[4]}} for m, s in sums.items()}
            rec("session.shutdown", t, {"shutdownType": "routine", "totalPremiumRequests": 1, "totalApiDurationMs": 1200,
                                        "sessionStartTime": int(t * 1000) - 1000, "modelMetrics": metrics,
                                        "currentModel": model})
            if with_otel:
                self.truth.trap("totals_covered_by_otel", len(metrics))
            else:
                for m, s in sums.items():
                    self.truth.add("copilot-cli-session-total", m, s[0], s[1], s[2], s[3], s[4], t)
        (d / "events.jsonl").write_text("\n".join(lines) + "\n")


def generate(args: argparse.Namespace) -> dict[str, Any]:
    rng = random.Random(args.seed)
    home = Path(args.out) / ".copilot"
    truth = Truth()
    g = Gen(home, rng, truth)
    (home / "otel").mkdir(parents=True, exist_ok=True)
    for old in (home / "otel").glob("*.jsonl"):
        old.unlink()
    end = parse_end(args.end)
    per = max(1, args.calls // max(1, args.sessions))
    left = args.calls
    files: list[TextIO] = [open(home / "otel" / f"copilot-{i}.jsonl", "w") for i in range(3)]
    starts = sorted(end - rng.uniform(3600, args.days * 86400) for _ in range(args.sessions * 2))
    i = 0
    try:
        while left > 0:
            n = min(left, max(1, int(rng.gauss(per, per / 3))))
            otel = files[i % 3] if rng.random() < args.otel_share else None
            t = starts[i % len(starts)]
            g.session(otel, n, t)
            left -= n
            i += 1
    finally:
        for fh in files:
            fh.close()
    out = truth.to_json()
    out.update(seed=args.seed, calls=args.calls, sessions=i, end=datetime.fromtimestamp(end, UTC).isoformat())
    Path(args.out, "ground_truth.json").write_text(json.dumps(out, indent=2) + "\n")
    return out


def live(args: argparse.Namespace) -> None:
    """A running CLI with the OTel file export on: one call (a chat span, plus its turn's
    invoke_agent span) every 1/--append-rate s appended to ``otel/copilot-live.jsonl``."""
    rng = random.Random(args.seed)
    home = Path(args.out) / ".copilot"
    truth = Truth()
    g = Gen(home, rng, truth)
    (home / "otel").mkdir(parents=True, exist_ok=True)
    sid = str(uuid.UUID(int=rng.getrandbits(128), version=4))
    model = rng.choice(MODELS[:3])
    t_end = time.time() + args.duration
    interval = 1.0 / args.append_rate
    n = 0
    with open(home / "otel" / "copilot-live.jsonl", "a") as fh:
        while time.time() < t_end:
            t0 = time.time()
            g.turn(fh, sid, model, t0 - 30.0, 1, rng.randint(8000, 40000), True)  # a call that just ended
            fh.flush()
            n += 1
            print(json.dumps({"t": round(time.time(), 3), "requests": n,
                              "total_tokens": truth.tok["input_tokens"] + truth.tok["output_tokens"]}), flush=True)
            time.sleep(max(0.0, interval - (time.time() - t0)))
    print(json.dumps({"done": True, "t": round(time.time(), 3), "requests": n, "truth": truth.to_json()}), flush=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True)
    ap.add_argument("--calls", type=int, default=2000, help="model calls to write")
    ap.add_argument("--sessions", type=int, default=40)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--end", default=None, help="newest timestamp, e.g. 2026-11-26T12:00:00Z (default: now)")
    ap.add_argument("--days", type=float, default=20.0)
    ap.add_argument("--otel-share", type=float, default=0.6, help="share of sessions run with the OTel file export")
    ap.add_argument("--append-rate", type=float, default=None, help="live mode: calls per second")
    ap.add_argument("--duration", type=float, default=30.0)
    args = ap.parse_args()
    if args.append_rate:
        live(args)
        return 0
    t0 = time.time()
    out = generate(args)
    print(json.dumps({k: out[k] for k in ("requests", "total_tokens", "cost_usd", "by_source", "traps")}), file=sys.stderr)
    print(f"wrote {args.out} in {time.time() - t0:.1f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
