#!/usr/bin/env python3
"""Deterministic generator of Gemini CLI, Qwen Code, pi, Amp and Kimi stores (Python stdlib only).

Writes a fake HOME-like tree, one subcommand per agent (``all`` writes all five):

    OUT/.gemini/tmp/<slug>/chats/session-<time>-<id8>.jsonl      Gemini CLI chat recordings (JSONL)
    OUT/.gemini/tmp/<slug>/chats/<parent id>/<id>.jsonl           Gemini CLI subagent recordings
    OUT/.gemini/tmp/<slug>/chats/session-<time>-<id8>.json        older releases' whole-JSON sessions
    OUT/.gemini/tmp/<slug>/.project_root, OUT/.gemini/projects.json  the project registry
    OUT/.qwen/projects/<sanitised cwd>/chats/<session id>.jsonl   Qwen Code chat recordings
    OUT/.pi/agent/sessions/--<cwd>--/<time>_<uuid>.jsonl          pi sessions (v3, and a few v1)
    OUT/.local/share/amp/threads/T-<uuid>.json                    Amp threads (whole JSON documents)
    OUT/.kimi-code/sessions/wd_<project>_<key>/<session>/agents/<agent>/wire.jsonl   Kimi Code wire logs
    OUT/.kimi/sessions/<hash>/<session>/wire.jsonl                Kimi CLI (legacy) wire logs
    OUT/ground_truth.json                                         what a correct reader must count

``ground_truth.json`` gets one key per agent (``gemini-cli``, ``qwen-code``, ``pi``, ``amp``, ``kimi``) and keeps the
other keys it already has (run ``gen_agent_logs.py`` first: it rewrites the file whole). Token
counts follow tokentop's event contract: ``input_tokens`` includes cache reads and writes,
``output_tokens`` includes reasoning. Each request is counted once, at its final state.

The traps each agent's real store has, written here on purpose (counts in ``traps``):

* gemini-cli: a message re-appended on every update (tokens ``null`` first, then set, then tool calls
  merged); ``$set`` metadata lines and ``$set.messages`` checkpoints re-stating the conversation;
  ``$rewindTo`` (rewound responses were billed: they count); cache-inclusive ``input`` with
  ``thoughts`` and ``tool`` beside it; legacy whole-JSON sessions, some resumed into a ``.jsonl``
  twin holding every old message again; an imported copy of a session (new session id, same
  message ids); subagent recordings; ``logs/session-*.jsonl`` activity logs, ``.tmp-<pid>`` and
  ``.unreadable-<time>`` files that are not sessions; malformed lines.
* qwen-code: cache-inclusive ``promptTokenCount``; three usage shapes (OpenAI-compatible: thoughts
  part of candidates; native Gemini: thoughts beside them; Anthropic: prompt = input + cache read
  + cache write), some without ``totalTokenCount``; ``ui_telemetry`` system records repeating the
  usage; ``/branch`` copies (new session file, same uuids); subagent records; malformed lines.
* pi: an append-only tree with branches; forks copying entries verbatim into new files (``/branch``
  in the same project dir, ``forkFrom`` under another cwd); v1 files (no entry ids) beside v3 ones;
  older Google records whose ``input`` includes the cache (``totalTokens`` shows it); ``error``
  answers with tokens (count) and aborted ones with none (do not); malformed lines.
* amp: threads rewritten whole; older threads whose ``usageLedger`` wins over the messages (the cache
  split joined from the message); records whose ``totalInputTokens`` equal ``inputTokens`` (the
  cache already inside); a record of the wrong shape inside a thread; a thread left broken.
* kimi: Kimi Code turns whose ``step.end`` events repeat the usage (only ``usage.record`` counts),
  model aliases resolved through ``config.toml``, a subagent profile; Kimi CLI sessions whose model
  is the configured default; malformed lines.

Determinism: the same arguments (with ``--end``) write byte-identical trees.

Examples:
    python3 bench/gen_agents.py all --out /tmp/a10k --records 10000 --seed 1 --end 2026-11-26T12:00:00Z
    python3 bench/gen_agents.py gemini --out /tmp/g100k --records 100000 --sessions 400 --seed 7
    # live mode: add R responses/s to the newest session of each chosen agent, for D seconds
    python3 bench/gen_agents.py all --out /tmp/a10k --append-rate 2 --duration 30
"""

from __future__ import annotations

import argparse
import calendar
import hashlib
import json
import math
import os
import random
import sys
import time
from collections import defaultdict
from typing import Any, Callable

GEMINI_MODELS = [("gemini-2.5-pro", 35), ("gemini-2.5-flash", 30), ("gemini-3-pro-preview", 20),
                 ("gemini-3-flash-preview", 15)]
#: (model, shape, provider authType, weight); shape: openai (thoughts in candidates), gemini, anthropic
QWEN_MODELS = [("qwen3-coder-plus", "openai", "qwen-oauth", 40), ("qwen3.5-plus", "openai", "openai", 20),
               ("gpt-5", "openai", "openai", 10), ("gemini-2.5-pro", "gemini", "gemini", 15),
               ("claude-sonnet-4-5", "anthropic", "anthropic", 15)]
#: (provider, model, api, weight)
PI_MODELS = [("anthropic", "claude-sonnet-4-5", "anthropic-messages", 35),
             ("anthropic", "claude-opus-4-6", "anthropic-messages", 15),
             ("openai", "gpt-5.1-codex", "openai-responses", 25), ("google", "gemini-2.5-pro", "google-generative-ai", 15),
             ("openai", "gpt-4.1", "openai-completions", 10)]
#: pi's bundled per-million rates (input, output, cache read, cache write): what pi writes as usage.cost
PI_RATES = {"claude-sonnet-4-5": (3.0, 15.0, 0.3, 3.75), "claude-opus-4-6": (5.0, 25.0, 0.5, 6.25),
            "gpt-5.1-codex": (1.25, 10.0, 0.125, 0.0), "gemini-2.5-pro": (1.25, 10.0, 0.31, 0.0),
            "gpt-4.1": (2.0, 8.0, 0.5, 0.0)}
WORDS = ("the a to of and in is for that this with on it be as are was by not or from at function return const "
         "let import export class def self async await None True False null error test file path config value "
         "result data index node request response token usage model session project cache read write update "
         "parse build run check fix add remove refactor handle main util helper service client server api json "
         "déjà naïve café → ✓ 日本語 \"quoted\" back\\slash").split()
PROJECTS = ["webapp", "api-server", "infra", "ml-pipeline", "docs-site", "cli-tool", "mobile", "data-lake"]


def iso(ts: float) -> str:
    ms = int(round((ts - math.floor(ts)) * 1000))
    sec = math.floor(ts)
    if ms >= 1000:
        sec, ms = sec + 1, ms - 1000
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(sec)) + ".%03dZ" % ms


def uuid4(rng: random.Random) -> str:
    h = "%032x" % rng.getrandbits(128)
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{'89ab'[int(h[16], 16) % 4]}{h[17:20]}-{h[20:32]}"


def weighted(rng: random.Random, items: list[tuple]) -> tuple:
    return rng.choices(items, weights=[it[-1] for it in items], k=1)[0]


def lognorm(rng: random.Random, median: float, sigma: float, lo: int, hi: int) -> int:
    return max(lo, min(hi, int(median * math.exp(rng.gauss(0.0, sigma)))))


def dumps(obj: Any) -> str:
    """As the agents write them: compact, non-ASCII kept (JSON.stringify)."""
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False)


class Text:
    def __init__(self, rng: random.Random, size: int = 300_000) -> None:
        words = [rng.choice(WORDS) for _ in range(size // 5)]
        self.s = " ".join(words)

    def get(self, rng: random.Random, n: int) -> str:
        n = max(1, min(n, len(self.s) - 1))
        start = rng.randrange(0, len(self.s) - n)
        return self.s[start:start + n]


class Truth:
    """Ground truth per agent, in the event contract's semantics."""

    def __init__(self) -> None:
        self.totals: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
        self.models: dict[str, dict[str, dict[str, int]]] = defaultdict(lambda: defaultdict(lambda: defaultdict(int)))
        self.traps: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
        self.sessions: dict[str, set[str]] = defaultdict(set)
        self.span: dict[str, list[float]] = {}

    def add(self, agent: str, model: str, ts: float, session: str, inp: int, read: int, write: int, out: int,
            reasoning: int) -> None:
        for d in (self.totals[agent], self.models[agent][model]):
            d["requests"] += 1
            d["input_tokens"] += inp
            d["cache_read_tokens"] += read
            d["cache_write_tokens"] += write
            d["output_tokens"] += out
            d["reasoning_tokens"] += reasoning
        self.sessions[agent].add(session)
        lo_hi = self.span.setdefault(agent, [ts, ts])
        lo_hi[0], lo_hi[1] = min(lo_hi[0], ts), max(lo_hi[1], ts)

    def trap(self, agent: str, name: str, n: int = 1) -> None:
        self.traps[agent][name] += n

    def to_json(self, agent: str) -> dict[str, Any]:
        t = dict(self.totals[agent])
        t["sessions"] = len(self.sessions[agent])
        t["by_model"] = {m: dict(v) for m, v in sorted(self.models[agent].items())}
        t["traps"] = dict(sorted(self.traps[agent].items()))
        if agent in self.span:
            t["first"], t["last"] = iso(self.span[agent][0]), iso(self.span[agent][1])
        return t


def split(total: int, parts: int, rng: random.Random) -> list[int]:
    """``total`` split into ``parts`` positive sizes (lognormal-ish)."""
    weights = [math.exp(rng.gauss(0, 0.8)) for _ in range(parts)]
    s = sum(weights)
    sizes = [max(1, int(total * w / s)) for w in weights]
    sizes[-1] += total - sum(sizes)
    while sizes[-1] < 1:
        i = max(range(parts), key=lambda k: sizes[k])
        sizes[i] -= 1
        sizes[-1] += 1
    return sizes


#: context windows (tokens) by model family: agents compress or compact the conversation before it fills
WINDOWS = {"claude": 200_000, "gpt-5": 272_000, "gpt-4.1": 1_000_000, "gemini": 1_000_000, "qwen": 1_000_000}


class Context:
    """A conversation's prompt: grows per call, mostly read back from the cache, compressed when it
    reaches 70 % of the model's window (Gemini CLI's and Qwen Code's default threshold; pi compacts
    before the window fills too)."""

    def __init__(self, rng: random.Random, model: str = "gemini") -> None:
        self.rng = rng
        self.limit = int(0.7 * next((w for k, w in WINDOWS.items() if model.startswith(k)), 200_000))
        self.size = lognorm(rng, 9000, 0.5, 2000, 60000)

    def call(self) -> tuple[int, int]:
        """(prompt tokens incl. cache, of them cached)"""
        rng = self.rng
        self.size += lognorm(rng, 1500, 1.0, 50, 40000)
        if self.size > self.limit or rng.random() < 0.01:
            self.size = lognorm(rng, 12000, 0.4, 3000, 40000)  # compressed
            return self.size, 0
        cached = 0 if rng.random() < 0.12 else int(self.size * rng.uniform(0.55, 0.97))
        return self.size, cached


# -- Gemini CLI ------------------------------------------------------------------------------------------

class Gemini:
    AGENT = "gemini-cli"

    def __init__(self, g: Gen) -> None:
        self.g = g
        self.rng = random.Random(g.seed * 1009 + 11)
        self.tmp = os.path.join(g.out, ".gemini", "tmp")
        self.registry: dict[str, str] = {}

    def project_dir(self, i: int) -> tuple[str, str]:
        """(project dir, cwd) of project i: a slug dir with its marker, one older sha256-named dir known
        only through projects.json, one slug dir with neither (the slug names it)."""
        name = PROJECTS[i % len(PROJECTS)] + ("" if i < len(PROJECTS) else f"-{i // len(PROJECTS)}")
        cwd = f"/home/dev/code/{name}"
        if i == 1:
            slug = hashlib.sha256(cwd.encode()).hexdigest()
        else:
            slug = name
        d = os.path.join(self.tmp, slug)
        os.makedirs(os.path.join(d, "chats"), exist_ok=True)
        self.registry[cwd] = slug if i != 1 else name
        if i not in (1, 2):
            with open(os.path.join(d, ".project_root"), "w", encoding="utf-8") as fh:
                fh.write(cwd)
        return d, name

    def message(self, ctx: Context, model: str, ts: float, with_tools: bool) -> tuple[dict, dict, tuple]:
        rng = self.rng
        prompt, cached = ctx.call()
        out = lognorm(rng, 400, 1.0, 1, 30000)
        thoughts = 0 if rng.random() < 0.3 else lognorm(rng, 600, 0.9, 10, 24000)
        tool = lognorm(rng, 300, 1.0, 1, 8000) if rng.random() < 0.08 else 0
        tokens = {"input": prompt, "output": out, "cached": cached, "thoughts": thoughts, "tool": tool,
                  "total": prompt + out + thoughts + tool}
        msg = {"id": uuid4(rng), "timestamp": iso(ts), "type": "gemini",
               "content": self.g.text.get(rng, lognorm(rng, 500, 1.0, 5, 6000)),
               "thoughts": [{"subject": "Plan", "description": self.g.text.get(rng, 200), "timestamp": iso(ts)}]
               if thoughts else [], "tokens": None, "model": model}
        calls = []
        if with_tools:
            for _ in range(rng.randint(1, 3)):
                calls.append({"id": f"call_{rng.getrandbits(48):x}", "name": rng.choice(["read_file", "run_shell_command",
                              "replace", "glob", "search_file_content"]), "args": {"path": "src/main.py"},
                              "result": [{"functionResponse": {"id": "x", "name": "read_file",
                                         "response": {"output": self.g.text.get(rng, lognorm(rng, 1500, 1.2, 10, 40000))}}}],
                              "status": "success", "timestamp": iso(ts + 1), "displayName": "ReadFile",
                              "description": "Reads a file", "renderOutputAsMarkdown": False})
        truth = (prompt + tool, min(cached, prompt), 0, out + thoughts, thoughts)
        return msg, {"tokens": tokens, "calls": calls}, truth

    def writes(self, msg: dict, extra: dict, count: bool) -> list[dict]:
        """The lines one response makes: tokens attached after the message (re-append) or queued before
        it, then tool calls merged (re-append), then their results (re-append)."""
        rng = self.rng
        lines = []
        if rng.random() < 0.6:
            lines.append(dict(msg))  # tokens: null
        done = dict(msg, tokens=extra["tokens"])
        lines.append(done)
        if extra["calls"]:
            pending = [dict(c, status="scheduled", result=None) for c in extra["calls"]]
            lines.append(dict(done, toolCalls=pending))
            lines.append(dict(done, toolCalls=extra["calls"]))
        if count and len(lines) > 1:
            self.g.truth.trap(self.AGENT, "reappended_lines", len(lines) - 1)
        return lines

    def session(self, pdir: str, project: str, sid: str, t0: float, n_calls: int, kind: str = "main",
                parent: str | None = None, count_lines: bool = True) -> tuple[list[str], list[dict], float]:
        """(lines, final messages, end time) of one recording with n_calls responses; ``count_lines``:
        the lines are written (a legacy document keeps only the final messages)."""
        rng, g, truth = self.rng, self.g, self.g.truth
        model = weighted(rng, GEMINI_MODELS)[0]
        ctx = Context(rng, model)
        meta = {"sessionId": sid, "projectHash": hashlib.sha256(project.encode()).hexdigest(), "startTime": iso(t0),
                "lastUpdated": iso(t0), "kind": kind}
        if kind == "subagent":
            meta["directories"] = [f"/home/dev/code/{project}"]
        lines = [dumps(meta)]
        final: list[dict] = []
        t = t0
        session_for_truth = parent or sid
        agent_model = model
        made = 0
        while made < n_calls:
            t += rng.uniform(5, 120)
            user = {"id": uuid4(rng), "timestamp": iso(t), "type": "user",
                    "content": [{"text": g.text.get(rng, lognorm(rng, 200, 1.0, 5, 3000))}]}
            lines.append(dumps(user))
            final.append(user)
            lines.append(dumps({"$set": {"lastUpdated": iso(t)}}))
            for _ in range(min(n_calls - made, rng.randint(1, 4))):
                t += rng.uniform(2, 40)
                if rng.random() < 0.05:
                    agent_model = weighted(rng, GEMINI_MODELS)[0]
                msg, extra, tr = self.message(ctx, agent_model, t, with_tools=rng.random() < 0.6)
                tr_model = agent_model
                previous = self._last_model(final)
                if previous and rng.random() < 0.03:
                    del msg["model"]  # no model on the message: the file's previous one applies
                    truth.trap(self.AGENT, "message_without_model")
                    tr_model = previous
                for obj in self.writes(msg, extra, count_lines):
                    lines.append(dumps(obj))
                lines.append(dumps({"$set": {"lastUpdated": iso(t)}}))
                final_msg = dict(msg, tokens=extra["tokens"], toolCalls=extra["calls"]) if extra["calls"] \
                    else dict(msg, tokens=extra["tokens"])
                final.append(final_msg)
                truth.add(self.AGENT, tr_model, t, session_for_truth, *tr)
                made += 1
                if rng.random() < 0.02:
                    err = {"id": uuid4(rng), "timestamp": iso(t), "type": "error", "content": "Quota exceeded"}
                    lines.append(dumps(err))
                    final.append(err)
            r = rng.random()
            if r < 0.03 and len(final) > 4:
                lines.append(dumps({"$rewindTo": final[-2]["id"]}))  # rewound: still billed
                if count_lines:
                    truth.trap(self.AGENT, "rewinds")
            elif r < 0.035:
                # a checkpoint (a resume, an aborted turn rolled back, a compression): the whole conversation
                lines.append(dumps({"$set": {"messages": final, "lastUpdated": iso(t)}}))
                if count_lines:
                    truth.trap(self.AGENT, "checkpoints")
            if rng.random() < 0.01:
                lines.append(g.malformed(dumps(final[-1])))
                if count_lines:
                    truth.trap(self.AGENT, "malformed_lines")
        return lines, final, t

    @staticmethod
    def _last_model(final: list[dict]) -> str | None:
        for m in reversed(final):
            if m.get("model"):
                return m["model"]
        return None

    def run(self, n_records: int, n_sessions: int) -> None:
        rng, g, truth = self.rng, self.g, self.g.truth
        n_projects = max(3, min(12, n_sessions // 6))
        projects = [self.project_dir(i) for i in range(n_projects)]
        sizes = split(n_records, n_sessions, rng)
        starts = g.starts(sizes, rng)
        for i, (size, t0) in enumerate(zip(sizes, starts)):
            pdir, project = projects[rng.randrange(n_projects)]
            chats = os.path.join(pdir, "chats")
            sid = uuid4(rng)
            stamp = time.strftime("%Y-%m-%dT%H-%M", time.gmtime(t0))
            base = os.path.join(chats, f"session-{stamp}-{sid[:8]}")
            n_sub = size // 5 if size >= 10 and rng.random() < 0.15 else 0
            kind = rng.random()
            if kind < 0.12 and size >= 2:
                # an older release: one whole-JSON document, rewritten on every update (its final state)
                lines, final, t_end = self.session(pdir, project, sid, t0, size - n_sub, count_lines=False)
                doc = json.loads(lines[0])
                doc["messages"] = final
                doc["lastUpdated"] = iso(t_end)
                with open(base + ".json", "w", encoding="utf-8") as fh:
                    fh.write(json.dumps(doc, indent=2, ensure_ascii=False))
                truth.trap(self.AGENT, "legacy_json_sessions")
                if rng.random() < 0.4:
                    # resumed by a JSONL release: the .jsonl twin holds every message again, then goes on
                    more = max(1, size // 4)
                    twin = [dumps({k: v for k, v in doc.items() if k != "messages"})] + [dumps(m) for m in final]
                    twin.append(dumps({"$set": {"sessionId": sid}}))
                    extra, _, _ = self.session(pdir, project, sid, t_end + 60, more)
                    self._write(base + ".jsonl", twin + extra[1:])
                    truth.trap(self.AGENT, "legacy_resumed_twins")
            else:
                lines, final, t_end = self.session(pdir, project, sid, t0, size - n_sub)
                self._write(base + ".jsonl", lines)
                if rng.random() < 0.03:
                    # an imported copy: a new session id, the same message ids
                    new = uuid4(rng)
                    meta = dict(json.loads(lines[0]), sessionId=new, startTime=iso(t_end + 30))
                    info = {"id": uuid4(rng), "timestamp": iso(t_end + 30), "type": "info",
                            "content": f"Imported session from {os.path.basename(base)}.jsonl"}
                    copy = [dumps(meta)] + [dumps(m) for m in final] + [dumps(info)]
                    stamp2 = time.strftime("%Y-%m-%dT%H-%M", time.gmtime(t_end + 30))
                    self._write(os.path.join(chats, f"session-{stamp2}-{new[:8]}.jsonl"), copy)
                    truth.trap(self.AGENT, "imported_copies")
                if rng.random() < 0.02:
                    # a temp file left by an interrupted rewrite and a preserved unreadable copy: not sessions
                    self._write(base + f".jsonl.tmp-{rng.randint(1000, 99999)}", lines)
                    self._write(base + f".jsonl.unreadable-{int(t_end * 1000)}", lines)
                    truth.trap(self.AGENT, "tmp_and_backup_files", 2)
            if n_sub:
                sub = uuid4(rng)
                lines, _, _ = self.session(pdir, project, sub, t0 + 30, n_sub, kind="subagent", parent=sid)
                self._write(os.path.join(chats, sid, f"{sub}.jsonl"), lines)
                truth.trap(self.AGENT, "subagent_recordings")
            if rng.random() < 0.05:
                # the activity logger's network log: JSONL carrying usage, but not a session
                log = [dumps({"type": "network", "payload": {"usageMetadata": {"promptTokenCount": 9000},
                                                              "tokens": {"input": 9000, "output": 10}}})] * 3
                self._write(os.path.join(pdir, "logs", f"session-{sid}.jsonl"), log)
                truth.trap(self.AGENT, "activity_logs")
        reg = os.path.join(g.out, ".gemini", "projects.json")
        with open(reg, "w", encoding="utf-8") as fh:
            json.dump({"projects": self.registry}, fh, indent=2)

    def _write(self, path: str, lines: list[str]) -> None:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w", encoding="utf-8", newline="\n") as fh:
            fh.write("\n".join(lines) + "\n")


# -- Qwen Code -------------------------------------------------------------------------------------------

class Qwen:
    AGENT = "qwen-code"

    def __init__(self, g: Gen) -> None:
        self.g = g
        self.rng = random.Random(g.seed * 2003 + 17)
        self.root = os.path.join(g.out, ".qwen", "projects")

    def usage(self, ctx: Context, shape: str) -> tuple[dict, tuple]:
        rng = self.rng
        prompt, cached = ctx.call()
        out = lognorm(rng, 350, 1.0, 1, 20000)
        reasoning = 0 if rng.random() < 0.4 else lognorm(rng, 500, 0.9, 10, 16000)
        if shape == "openai":  # completion_tokens includes reasoning_tokens
            cand = out + reasoning
            u = {"promptTokenCount": prompt, "candidatesTokenCount": cand, "thoughtsTokenCount": reasoning,
                 "totalTokenCount": prompt + cand, "cachedContentTokenCount": cached}
            if rng.random() < 0.15:
                del u["totalTokenCount"]  # some records carry no total
                self.g.truth.trap(self.AGENT, "usage_without_total")
            return u, (prompt, cached, 0, cand, reasoning)
        if shape == "gemini":  # thoughts beside the candidates
            u = {"promptTokenCount": prompt, "candidatesTokenCount": out, "thoughtsTokenCount": reasoning,
                 "totalTokenCount": prompt + out + reasoning, "cachedContentTokenCount": cached}
            return u, (prompt, cached, 0, out + reasoning, reasoning)
        # anthropic: input, cache read and cache write summed into the prompt; the write is not kept apart
        u = {"promptTokenCount": prompt, "candidatesTokenCount": out, "totalTokenCount": prompt + out,
             "cachedContentTokenCount": cached}
        return u, (prompt, cached, 0, out, 0)

    def record(self, typ: str, sid: str, parent: str | None, t: float, cwd: str, **extra: Any) -> dict:
        rec = {"uuid": uuid4(self.rng), "parentUuid": parent, "sessionId": sid, "timestamp": iso(t), "type": typ,
               "cwd": cwd, "version": "0.14.2", "gitBranch": "main"}
        rec.update(extra)
        return rec

    def session(self, sid: str, cwd: str, t0: float, n_calls: int) -> tuple[list[dict], float]:
        rng, g, truth = self.rng, self.g, self.g.truth
        model, shape, auth, _ = weighted(rng, QWEN_MODELS)
        ctx = Context(rng, model)
        recs: list[dict] = []
        last: str | None = None
        t = t0

        def add(rec: dict) -> None:
            nonlocal last
            recs.append(rec)
            last = rec["uuid"]

        add(self.record("system", sid, None, t, cwd, subtype="session_model",
                        systemPayload={"modelId": model, "authType": auth}))
        made = 0
        while made < n_calls:
            t += rng.uniform(5, 120)
            add(self.record("user", sid, last, t, cwd, message={"role": "user", "parts": [
                {"text": g.text.get(rng, lognorm(rng, 200, 1.0, 5, 3000))}]}))
            for _ in range(min(n_calls - made, rng.randint(1, 4))):
                t += rng.uniform(2, 40)
                u, tr = self.usage(ctx, shape)
                side = rng.random() < 0.08
                extra: dict[str, Any] = {"agentId": "explore-7f3c", "agentName": "Explore", "isSidechain": True} if side else {}
                add(self.record("assistant", sid, last, t, cwd, model=model, message={"role": "model", "parts": [
                    {"text": g.text.get(rng, lognorm(rng, 400, 1.0, 5, 6000))}]}, usageMetadata=u,
                    contextWindowSize=1_000_000, **extra))
                truth.add(self.AGENT, model, t, sid, *tr)
                if side:
                    truth.trap(self.AGENT, "subagent_records")
                made += 1
                # the UI telemetry repeats the request's usage: never a second request
                add(self.record("system", sid, last, t, cwd, subtype="ui_telemetry", systemPayload={"uiEvent": {
                    "event.name": "qwen-code.api_response", "model": model, "duration_ms": rng.randint(300, 9000),
                    "input_token_count": u["promptTokenCount"], "output_token_count": u["candidatesTokenCount"],
                    "cached_content_token_count": u["cachedContentTokenCount"],
                    "thoughts_token_count": u.get("thoughtsTokenCount", 0), "usageMetadata": u}}))
                truth.trap(self.AGENT, "ui_telemetry_records")
                if rng.random() < 0.5:
                    add(self.record("tool_result", sid, last, t + 1, cwd, message={"role": "user", "parts": [
                        {"functionResponse": {"id": "c1", "name": "read_file", "response": {
                            "output": g.text.get(rng, lognorm(rng, 1500, 1.2, 10, 30000))}}}]},
                        toolCallResult={"callId": "c1", "status": "success"}))
            if rng.random() < 0.02:
                add(self.record("system", sid, last, t, cwd, subtype="chat_compression", systemPayload={
                    "info": {"originalTokenCount": ctx.size, "newTokenCount": 9000}, "compressedHistory": []}))
        return recs, t

    def run(self, n_records: int, n_sessions: int) -> None:
        rng, g, truth = self.rng, self.g, self.g.truth
        sizes = split(n_records, n_sessions, rng)
        starts = g.starts(sizes, rng)
        for size, t0 in zip(sizes, starts):
            name = rng.choice(PROJECTS)
            cwd = f"/home/dev/code/{name}"
            chats = os.path.join(self.root, "".join(c if c.isalnum() else "-" for c in cwd), "chats")
            sid = uuid4(rng)
            recs, t_end = self.session(sid, cwd, t0, size)
            lines = [dumps(r) for r in recs]
            if rng.random() < 0.05 and len(lines) > 3:
                lines.insert(rng.randrange(1, len(lines)), g.malformed(lines[-1]))
                truth.trap(self.AGENT, "malformed_lines")
            self._write(os.path.join(chats, f"{sid}.jsonl"), lines)
            if rng.random() < 0.06 and len(recs) > 4:
                # /branch: a new session holding copies of the records up to a point (same uuids)
                new = uuid4(rng)
                cut = rng.randrange(2, len(recs))
                copies, parent = [], None
                for r in recs[:cut]:
                    c = dict(r, sessionId=new, parentUuid=parent, forkedFrom={"sessionId": sid, "messageUuid": r["uuid"]})
                    copies.append(c)
                    parent = c["uuid"]
                more, _ = self.session(new, cwd, t_end + 60, max(1, size // 5))
                self._write(os.path.join(chats, f"{new}.jsonl"), [dumps(c) for c in copies + more])
                truth.trap(self.AGENT, "branch_copies", sum(1 for c in copies if c["type"] == "assistant"))

    def _write(self, path: str, lines: list[str]) -> None:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w", encoding="utf-8", newline="\n") as fh:
            fh.write("\n".join(lines) + "\n")


# -- pi --------------------------------------------------------------------------------------------------

class Pi:
    AGENT = "pi"

    def __init__(self, g: Gen) -> None:
        self.g = g
        self.rng = random.Random(g.seed * 3001 + 23)
        self.root = os.path.join(g.out, ".pi", "agent", "sessions")
        self.ids: set[str] = set()

    def entry_id(self) -> str:
        while True:
            e = "%08x" % self.rng.getrandbits(32)
            if e not in self.ids:
                self.ids.add(e)
                return e

    @staticmethod
    def dir_for(root: str, cwd: str) -> str:
        return os.path.join(root, "--" + cwd.lstrip("/").replace("/", "-").replace(":", "-") + "--")

    def assistant(self, ctx: Context, provider: str, model: str, api: str, t: float) -> tuple[dict, tuple | None]:
        rng = self.rng
        prompt, cached = ctx.call()
        out = lognorm(rng, 350, 1.0, 1, 20000)
        write = 0
        if api == "anthropic-messages":
            write = 0 if rng.random() < 0.5 else min(prompt - cached, lognorm(rng, 2000, 1.0, 1, 30000))
        uncached = prompt - cached - write
        stop = "toolUse" if rng.random() < 0.6 else "stop"
        if rng.random() < 0.02:
            stop = "aborted"  # stopped before the first token: no usage, no request
            self.g.truth.trap(self.AGENT, "aborted_without_usage")
            usage = {"input": 0, "output": 0, "cacheRead": 0, "cacheWrite": 0, "totalTokens": 0}
            truth = None
        else:
            if rng.random() < 0.02:
                stop = "error"  # failed mid-stream: the tokens were billed
                self.g.truth.trap(self.AGENT, "error_with_usage")
            if api == "google-generative-ai" and cached and rng.random() < 0.5:
                # an older pi release: Google's cache-inclusive promptTokenCount kept as input
                usage = {"input": prompt, "output": out, "cacheRead": cached, "cacheWrite": 0,
                         "totalTokens": prompt + out}
                self.g.truth.trap(self.AGENT, "google_cache_inclusive_input")
            else:
                usage = {"input": uncached, "output": out, "cacheRead": cached, "cacheWrite": write,
                         "totalTokens": uncached + out + cached + write}
            truth = (prompt, cached, write, out, 0)
        r = PI_RATES[model]
        cost = {"input": usage["input"] * r[0] / 1e6, "output": out * r[1] / 1e6 if truth else 0.0,
                "cacheRead": cached * r[2] / 1e6 if truth else 0.0, "cacheWrite": write * r[3] / 1e6 if truth else 0.0}
        cost["total"] = sum(cost.values())
        usage["cost"] = cost
        msg = {"role": "assistant", "content": [{"type": "text", "text": self.g.text.get(rng, lognorm(rng, 400, 1.0, 5, 6000))}],
               "api": api, "provider": provider, "model": model, "usage": usage, "stopReason": stop,
               "timestamp": int(t * 1000)}
        if stop == "error":
            msg["errorMessage"] = "terminated"
        return msg, truth

    def session(self, sid: str, cwd: str, t0: float, n_calls: int) -> tuple[list[dict], float]:
        rng, g, truth = self.rng, self.g, self.g.truth
        provider, model, api, _ = weighted(rng, PI_MODELS)
        ctx = Context(rng, model)
        entries = [{"type": "session", "version": 3, "id": sid, "timestamp": iso(t0), "cwd": cwd}]
        leaf: str | None = None
        t = t0

        def add(entry: dict) -> None:
            nonlocal leaf
            entry["id"] = self.entry_id()
            entry["parentId"] = leaf
            entries.append(entry)
            leaf = entry["id"]

        add({"type": "model_change", "timestamp": iso(t), "provider": provider, "modelId": model})
        add({"type": "thinking_level_change", "timestamp": iso(t), "thinkingLevel": "medium"})
        made = 0
        while made < n_calls:
            t += rng.uniform(5, 120)
            add({"type": "message", "timestamp": iso(t), "message": {"role": "user", "content": [
                {"type": "text", "text": g.text.get(rng, lognorm(rng, 200, 1.0, 5, 3000))}], "timestamp": int(t * 1000)}})
            for _ in range(min(n_calls - made, rng.randint(1, 4))):
                t += rng.uniform(2, 40)
                msg, tr = self.assistant(ctx, provider, model, api, t)
                add({"type": "message", "timestamp": iso(t + 0.002), "message": msg})
                if tr is not None:
                    truth.add(self.AGENT, model, t, sid, *tr)
                    made += 1
                if msg["stopReason"] == "toolUse":
                    add({"type": "message", "timestamp": iso(t + 1), "message": {"role": "toolResult", "toolCallId": "t1",
                         "toolName": "read", "content": [{"type": "text", "text": g.text.get(rng, lognorm(rng, 1500, 1.2, 10, 30000))}],
                         "isError": False, "timestamp": int((t + 1) * 1000)}})
            if rng.random() < 0.02 and len(entries) > 6:
                # navigate back in the tree and go on from there (no copy: the same file)
                leaf = entries[rng.randrange(2, len(entries) - 2)]["id"]
                add({"type": "branch_summary", "timestamp": iso(t), "fromId": leaf, "summary": "tried another way"})
                truth.trap(self.AGENT, "in_file_branches")
            if rng.random() < 0.01:
                add({"type": "compaction", "timestamp": iso(t), "summary": "summary", "firstKeptEntryId": leaf,
                     "tokensBefore": ctx.size})
        return entries, t

    def run(self, n_records: int, n_sessions: int) -> None:
        rng, g, truth = self.rng, self.g, self.g.truth
        sizes = split(n_records, n_sessions, rng)
        starts = g.starts(sizes, rng)
        for size, t0 in zip(sizes, starts):
            cwd = f"/home/dev/code/{rng.choice(PROJECTS)}"
            d = self.dir_for(self.root, cwd)
            sid = uuid4(rng)
            entries, t_end = self.session(sid, cwd, t0, size)
            name = iso(t0).replace(":", "-").replace(".", "-") + f"_{sid}.jsonl"
            if rng.random() < 0.05:
                # a v1 file: no version, no entry ids (written by an early release, never reopened)
                v1 = [{k: v for k, v in e.items() if k not in ("id", "parentId")} for e in entries[1:]]
                head = {"type": "session", "id": sid, "timestamp": iso(t0), "cwd": cwd, "provider": "anthropic",
                        "modelId": "claude-sonnet-4-5", "thinkingLevel": "off"}
                lines = [dumps(head)] + [dumps(e) for e in v1]
                truth.trap(self.AGENT, "v1_files")
            else:
                lines = [dumps(e) for e in entries]
            if rng.random() < 0.03 and len(lines) > 3:
                lines.insert(rng.randrange(1, len(lines)), g.malformed(lines[-1]))
                truth.trap(self.AGENT, "malformed_lines")
            self._write(os.path.join(d, name), lines)
            if rng.random() < 0.08 and len(entries) > 6 and "id" in entries[1]:
                # a fork: entries copied verbatim into a new file (/branch here, forkFrom under another cwd)
                new = uuid4(rng)
                cut = rng.randrange(3, len(entries))
                to_cwd = cwd if rng.random() < 0.6 else f"/home/dev/code/{rng.choice(PROJECTS)}-fork"
                head = {"type": "session", "version": 3, "id": new, "timestamp": iso(t_end + 60), "cwd": to_cwd,
                        "parentSession": "/home/dev/" + os.path.relpath(os.path.join(d, name), g.out)}
                copies = entries[1:cut]
                more, _ = self.session(new, to_cwd, t_end + 60, max(1, size // 5))
                fork = [dumps(head)] + [dumps(e) for e in copies] + [dumps(e) for e in more[1:]]
                fname = iso(t_end + 60).replace(":", "-").replace(".", "-") + f"_{new}.jsonl"
                self._write(os.path.join(self.dir_for(self.root, to_cwd), fname), fork)
                truth.trap(self.AGENT, "fork_copies", sum(1 for e in copies if e.get("type") == "message"
                                                          and e["message"].get("role") == "assistant"))

    def _write(self, path: str, lines: list[str]) -> None:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w", encoding="utf-8", newline="\n") as fh:
            fh.write("\n".join(lines) + "\n")


# -- Amp -------------------------------------------------------------------------------------------------

class Amp:
    AGENT = "amp"
    MODELS = [("claude-sonnet-4-5", 45), ("claude-opus-4-6", 25), ("claude-haiku-4-5-20251001", 20), ("gpt-5", 10)]

    def __init__(self, g: Gen) -> None:
        self.g = g
        self.rng = random.Random(g.seed * 4001 + 29)
        self.root = os.path.join(g.out, ".local", "share", "amp", "threads")

    def run(self, n_records: int, n_sessions: int) -> None:
        rng, g, truth = self.rng, self.g, self.g.truth
        os.makedirs(self.root, exist_ok=True)
        sizes = split(n_records, n_sessions, rng)
        starts = g.starts(sizes, rng)
        for size, t0 in zip(sizes, starts):
            tid = "T-" + uuid4(rng)
            project = rng.choice(PROJECTS)
            ledger = rng.random() < 0.15  # an older thread: usage in a ledger, the cache split on the messages
            model = weighted(rng, self.MODELS)[0]
            ctx = Context(rng, model)
            messages: list[dict] = []
            events: list[dict] = []
            t = t0
            for _ in range(size):
                t += rng.uniform(5, 90)
                messages.append({"role": "user", "messageId": len(messages),
                                 "content": [{"type": "text", "text": g.text.get(rng, lognorm(rng, 200, 1.0, 5, 2000))}]})
                prompt, cached = ctx.call()
                out = lognorm(rng, 350, 1.0, 1, 20000)
                write = 0 if rng.random() < 0.5 else min(prompt - cached, lognorm(rng, 2000, 1.0, 1, 30000))
                inp = prompt - cached - write
                u = {"model": model, "inputTokens": inp, "outputTokens": out, "cacheCreationInputTokens": write,
                     "cacheReadInputTokens": cached, "totalInputTokens": prompt, "timestamp": iso(t)}
                if model == "gpt-5" and rng.random() < 0.5:
                    u["inputTokens"] = u["totalInputTokens"] = prompt  # input already holding the cache
                    u["cacheCreationInputTokens"] = 0
                    write = 0
                    truth.trap(self.AGENT, "input_including_cache")
                mid = len(messages)
                msg = {"role": "assistant", "messageId": mid, "content": [{"type": "text", "text":
                       g.text.get(rng, lognorm(rng, 400, 1.0, 5, 5000))}], "state": {"type": "complete",
                       "stopReason": "end_turn"}, "usage": u}
                if rng.random() < 0.01:
                    msg["usage"] = dict(u, outputTokens="lots")  # a record of the wrong shape: counted, skipped
                    truth.trap(self.AGENT, "malformed_records")
                    messages.append(msg)
                    continue
                messages.append(msg)
                if ledger:
                    events.append({"id": f"ev-{mid}", "timestamp": iso(t), "model": model, "credits": round(out / 1e4, 4),
                                   "tokens": {"input": u["inputTokens"], "output": out}, "toMessageId": mid})
                truth.add(self.AGENT, model, t, tid, prompt, cached, write, out, 0)
            if rng.random() < 0.05:
                messages.append({"role": "assistant", "messageId": len(messages), "state": {"type": "cancelled"},
                                 "usage": {"model": model, "inputTokens": 0, "outputTokens": 0, "timestamp": iso(t)}})
                truth.trap(self.AGENT, "cancelled_without_usage")
            doc: dict[str, Any] = {"v": 1, "id": tid, "created": int(t0 * 1000), "title": "work", "agentMode": "smart",
                                   "env": {"initial": {"trees": [{"displayName": project,
                                                                  "uri": f"file:///home/dev/code/{project}"}]}},
                                   "messages": messages}
            if ledger:
                doc["usageLedger"] = {"events": events}
                truth.trap(self.AGENT, "ledger_threads")
            with open(os.path.join(self.root, f"{tid}.json"), "w", encoding="utf-8") as fh:
                json.dump(doc, fh, ensure_ascii=False, indent=2)
        if n_sessions:
            with open(os.path.join(self.root, "T-00000000-0000-4000-8000-00000000dead.json"), "w") as fh:
                fh.write('{"id": "T-00000000-0000-4000-8000-00000000dead", "messages": [')  # left broken
            old = g.end - 86400
            os.utime(os.path.join(self.root, "T-00000000-0000-4000-8000-00000000dead.json"), (old, old))
            truth.trap(self.AGENT, "unreadable_threads")


# -- Kimi ------------------------------------------------------------------------------------------------

class Kimi:
    AGENT = "kimi"

    def __init__(self, g: Gen) -> None:
        self.g = g
        self.rng = random.Random(g.seed * 5003 + 31)
        self.code = os.path.join(g.out, ".kimi-code")
        self.legacy = os.path.join(g.out, ".kimi")

    def usage(self, ctx: Context) -> tuple[int, int, int, int]:
        """(uncached input, cache read, cache creation, output) of one step"""
        rng = self.rng
        prompt, cached = ctx.call()
        write = 0 if rng.random() < 0.7 else min(prompt - cached, lognorm(rng, 1500, 1.0, 1, 20000))
        return prompt - cached - write, cached, write, lognorm(rng, 300, 1.0, 1, 16000)

    def run(self, n_records: int, n_sessions: int) -> None:
        rng, g, truth = self.rng, self.g, self.g.truth
        os.makedirs(self.code, exist_ok=True)
        os.makedirs(self.legacy, exist_ok=True)
        with open(os.path.join(self.code, "config.toml"), "w", encoding="utf-8") as fh:
            fh.write('default_model = "kimi-code/kimi-for-coding"\n\n[models."kimi-code/kimi-for-coding"]\n'
                     'provider = "moonshotai"\nmodel = "kimi-k2-0905-preview"\n\n[models."openai-pro/gpt-5.5"]\n'
                     'provider = "openai"\nmodel = "gpt-5"\n')
        with open(os.path.join(self.legacy, "config.json"), "w", encoding="utf-8") as fh:
            json.dump({"default_model": "kimi-k2-0905-preview"}, fh)
        sizes = split(n_records, n_sessions, rng)
        starts = g.starts(sizes, rng)
        for size, t0 in zip(sizes, starts):
            project = rng.choice(PROJECTS)
            sid = uuid4(rng)
            if rng.random() < 0.25:
                self.legacy_session(sid, t0, size)
                continue
            alias, model = ("openai-pro/gpt-5.5", "gpt-5") if rng.random() < 0.2 else \
                ("kimi-code/kimi-for-coding", "kimi-k2-0905-preview")
            base = os.path.join(self.code, "sessions", f"wd_{project}_{rng.getrandbits(24):06x}", sid, "agents")
            n_sub = size // 4 if size >= 8 and rng.random() < 0.3 else 0
            for agent, profile, n in (("main", "agent", size - n_sub), ("agent-0", "explore", n_sub)):
                if n <= 0:
                    continue
                ctx = Context(rng, "gpt-5" if model == "gpt-5" else "qwen")
                lines = [dumps({"type": "metadata", "protocol_version": "1.5"}),
                         dumps({"type": "config.update", "profileName": profile}),
                         dumps({"type": "config.update", "modelAlias": alias, "thinkingLevel": "high"})]
                t = t0
                for _ in range(n):
                    t += rng.uniform(5, 120)
                    turn = [0, 0, 0, 0]
                    for _step in range(rng.randint(1, 3)):  # each step's usage again inside the turn: not counted
                        # the step's output (the shape of these events is filler: readers skip them unparsed)
                        lines.append(dumps({"type": "context.append_loop_event", "time": int(t * 1000), "event": {
                            "type": "message.part", "part": {"type": "text", "text": g.text.get(
                                rng, lognorm(rng, 1200, 1.1, 20, 30000))}}}))
                        step = self.usage(ctx)
                        turn = [a + b for a, b in zip(turn, step)]
                        lines.append(dumps({"type": "context.append_loop_event", "time": int(t * 1000), "event": {
                            "type": "step.end", "usage": {"inputOther": step[0], "output": step[3],
                                                          "inputCacheRead": step[1], "inputCacheCreation": step[2]}}}))
                        truth.trap(self.AGENT, "step_end_usage")
                    other, read, write, out = turn
                    lines.append(dumps({"type": "usage.record", "time": int(t * 1000), "model": alias,
                                        "usageScope": "turn", "usage": {"inputOther": other, "output": out,
                                                                        "inputCacheRead": read,
                                                                        "inputCacheCreation": write}}))
                    truth.add(self.AGENT, model, t, sid, other + read + write, read, write, out, 0)
                    if rng.random() < 0.01:
                        lines.append(g.malformed(lines[-1]).replace('"output":', '"output":-'))
                        truth.trap(self.AGENT, "malformed_lines")
                self._write(os.path.join(base, agent, "wire.jsonl"), lines)

    def legacy_session(self, sid: str, t0: float, n: int) -> None:
        rng, truth = self.rng, self.g.truth
        ctx = Context(rng, "qwen")
        lines = [dumps({"type": "metadata", "protocol_version": "1.3"})]
        t = t0
        for i in range(n):
            t += rng.uniform(5, 120)
            lines.append(dumps({"timestamp": round(t, 3), "message": {"type": "TurnBegin", "payload": {
                "user_input": self.g.text.get(rng, 80)}}}))
            lines.append(dumps({"timestamp": round(t + 1, 3), "message": {"type": "ContentPart", "payload": {
                "type": "text", "text": self.g.text.get(rng, lognorm(rng, 1200, 1.1, 20, 30000))}}}))
            other, read, write, out = self.usage(ctx)
            lines.append(dumps({"timestamp": round(t + 2, 3), "message": {"type": "StatusUpdate", "payload": {
                "token_usage": {"input_other": other, "output": out, "input_cache_read": read,
                                "input_cache_creation": write}, "message_id": f"chatcmpl-{rng.getrandbits(64):x}"}}}))
            truth.add(self.AGENT, "kimi-k2-0905-preview", t + 2, sid, other + read + write, read, write, out, 0)
        truth.trap(self.AGENT, "legacy_sessions")
        self._write(os.path.join(self.legacy, "sessions", f"{rng.getrandbits(64):016x}", sid, "wire.jsonl"), lines)

    def _write(self, path: str, lines: list[str]) -> None:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w", encoding="utf-8", newline="\n") as fh:
            fh.write("\n".join(lines) + "\n")


# -- driver ----------------------------------------------------------------------------------------------

AGENTS: dict[str, type] = {"gemini": Gemini, "qwen": Qwen, "pi": Pi, "amp": Amp, "kimi": Kimi}


class Gen:
    def __init__(self, args: argparse.Namespace) -> None:
        self.out = args.out
        self.seed = args.seed
        self.end = parse_end(args.end)
        self.start = self.end - args.days * 86400.0
        self.text = Text(random.Random(args.seed))
        self.truth = Truth()
        self.mal = random.Random(args.seed + 99)

    def starts(self, sizes: list[int], rng: random.Random) -> list[float]:
        """A start time per session, early enough for the whole session to end before ``--end`` (a
        response takes at most ~170 s of session time, its user turn included; a fork or resumed copy
        goes on for up to a fifth more, an hour of margin besides)."""
        span = self.end - self.start
        return [self.start + rng.random() * max(0.0, span - size * 170.0 * 1.25 - 3600.0) for size in sizes]

    def malformed(self, line: str) -> str:
        """A damaged copy of a line: cut short, or a count that is not a number."""
        if self.mal.random() < 0.5:
            return line[: max(10, len(line) // 2)]
        return line.replace('"output":', '"output":"lots","was":', 1).replace('"candidatesTokenCount":',
                                                                            '"candidatesTokenCount":"x","was":', 1)


def parse_end(text: str | None) -> float:
    if text:
        return float(calendar.timegm(time.strptime(text.rstrip("Z"), "%Y-%m-%dT%H:%M:%S")))
    return float(int(time.time()) // 60 * 60)


def write_truth(out: str, truth: Truth, agents: list[str]) -> None:
    path = os.path.join(out, "ground_truth.json")
    try:
        with open(path, encoding="utf-8") as fh:
            data = json.load(fh)
    except (OSError, ValueError):
        data = {}
    for name in agents:
        data[AGENTS[name].AGENT] = truth.to_json(AGENTS[name].AGENT)
    with open(path, "w", encoding="utf-8") as fh:
        json.dump(data, fh, indent=2, sort_keys=True)


# -- live mode -------------------------------------------------------------------------------------------

def newest(root: str, accept: Callable[[str], bool], suffix: str = ".jsonl") -> str | None:
    best: tuple[float, str] | None = None
    for dp, _, fns in os.walk(root):
        for fn in fns:
            p = os.path.join(dp, fn)
            if fn.endswith(suffix) and accept(p):
                m = os.path.getmtime(p)
                if best is None or m > best[0]:
                    best = (m, p)
    return best[1] if best else None


class Live:
    """Adds one response at a time to the newest session of one agent, stamped with the wall clock:
    appended lines for the JSONL stores, the whole thread rewritten for Amp (as Amp does)."""

    MODELS = {"gemini": "gemini", "qwen": "qwen", "pi": "claude", "amp": "claude", "kimi": "qwen"}

    def __init__(self, g: Gen, name: str) -> None:
        self.g, self.name = g, name
        self.rng = random.Random(g.seed + 4242 + len(name))
        self.ctx = Context(self.rng, self.MODELS[name])
        sep = os.sep
        roots = {"gemini": (os.path.join(g.out, ".gemini", "tmp"),
                            lambda p: f"{sep}chats{sep}" in p and p.rsplit(sep, 2)[-2] == "chats"),
                 "qwen": (os.path.join(g.out, ".qwen", "projects"), lambda p: f"{sep}chats{sep}" in p),
                 "pi": (os.path.join(g.out, ".pi", "agent", "sessions"), lambda p: True),
                 "amp": (os.path.join(g.out, ".local", "share", "amp", "threads"), lambda p: "dead" not in p),
                 "kimi": (os.path.join(g.out, ".kimi-code", "sessions"), lambda p: p.endswith(f"{sep}main{sep}wire.jsonl"))}
        root, accept = roots[name]
        self.target = newest(root, accept, ".json" if name == "amp" else ".jsonl")
        if self.target is None:
            sys.exit(f"no {name} session under {g.out}: generate one first")
        self.session = None
        with open(self.target, encoding="utf-8") as fh:
            first = fh.readline()
        try:
            head = json.loads(first)
            self.session = head.get("sessionId") or head.get("id")
        except ValueError:
            pass
        self.session = self.session or uuid4(self.rng)
        self.leaf: str | None = None

    def add(self, t: float) -> int:
        """Writes one new response; returns its tokens (input + output, the contract's)."""
        rng = self.rng
        if self.name == "amp":
            with open(self.target, encoding="utf-8") as fh:
                doc = json.load(fh)
            prompt, cached = self.ctx.call()
            out = lognorm(rng, 300, 1.0, 1, 8000)
            doc["messages"].append({"role": "assistant", "messageId": len(doc["messages"]), "content": [],
                                    "state": {"type": "complete"}, "usage": {
                                        "model": "claude-sonnet-4-5", "inputTokens": prompt - cached, "outputTokens": out,
                                        "cacheCreationInputTokens": 0, "cacheReadInputTokens": cached,
                                        "totalInputTokens": prompt, "timestamp": iso(t)}})
            tmp = self.target + ".tmp"
            with open(tmp, "w", encoding="utf-8") as fh:
                json.dump(doc, fh, indent=2)
            os.replace(tmp, self.target)
            return prompt + out
        if self.name == "gemini":
            gm = Gemini(self.g)
            gm.rng = rng
            msg, extra, tr = gm.message(self.ctx, "gemini-2.5-pro", t, with_tools=False)
            lines, tokens = [dumps(msg), dumps(dict(msg, tokens=extra["tokens"])),
                             dumps({"$set": {"lastUpdated": iso(t)}})], tr[0] + tr[3]
        elif self.name == "qwen":
            q = Qwen(self.g)
            q.rng = rng
            u, tr = q.usage(self.ctx, "openai")
            rec = q.record("assistant", self.session, self.leaf, t, "/home/dev/code/live", model="qwen3-coder-plus",
                           message={"role": "model", "parts": [{"text": "ok"}]}, usageMetadata=u)
            self.leaf = rec["uuid"]
            lines, tokens = [dumps(rec)], tr[0] + tr[3]
        elif self.name == "kimi":
            k = Kimi(self.g)
            k.rng = rng
            other, read, write, out = k.usage(self.ctx)
            lines = [dumps({"type": "usage.record", "time": int(t * 1000), "model": "kimi-code/kimi-for-coding",
                            "usageScope": "turn", "usage": {"inputOther": other, "output": out, "inputCacheRead": read,
                                                            "inputCacheCreation": write}})]
            tokens = other + read + write + out
        else:
            p = Pi(self.g)
            p.rng = rng
            while True:
                msg, tr = p.assistant(self.ctx, "anthropic", "claude-sonnet-4-5", "anthropic-messages", t)
                if tr is not None:
                    break
            entry = {"type": "message", "id": "%08x" % rng.getrandbits(32), "parentId": self.leaf,
                     "timestamp": iso(t), "message": msg}
            self.leaf = entry["id"]
            lines, tokens = [dumps(entry)], tr[0] + tr[3]
        with open(self.target, "a", encoding="utf-8", newline="\n") as fh:
            fh.write("\n".join(lines) + "\n")
        return tokens


def live(g: Gen, names: list[str], rate: float, duration: float) -> int:
    writers = [Live(g, n) for n in names]
    t_end = time.time() + duration
    next_t = time.time()
    last_report = 0.0
    written = 0
    total = 0
    i = 0
    while time.time() < t_end:
        now = time.time()
        if now < next_t:
            time.sleep(min(next_t - now, 0.05))
            continue
        w = writers[i % len(writers)]
        i += 1
        total += w.add(now)
        written += 1
        next_t += 1.0 / rate
        if now - last_report >= 1.0:
            last_report = now
            print(json.dumps({"t": round(now, 3), "records": written, "total_tokens": total}), flush=True)
    print(json.dumps({"done": True, "t": round(time.time(), 3), "records": written, "total_tokens": total,
                      "files": {w.name: w.target for w in writers}}), flush=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("agent", choices=[*AGENTS, "all"], help="which store to write")
    ap.add_argument("--out", required=True, help="output root (a fake HOME)")
    ap.add_argument("--records", type=int, default=10000, help="API responses per agent (ground-truth requests)")
    ap.add_argument("--sessions", type=int, default=None, help="sessions per agent (default records/250, at least 3)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--days", type=float, default=30.0, help="time span ending at --end")
    ap.add_argument("--end", default=None, help="ISO UTC end time, e.g. 2026-11-26T12:00:00Z (default: now)")
    ap.add_argument("--append-rate", type=float, default=None,
                    help="live mode: append R responses/s (round robin over the chosen agents) to their newest sessions")
    ap.add_argument("--duration", type=float, default=30.0, help="live mode: seconds to append")
    args = ap.parse_args(argv)
    names = list(AGENTS) if args.agent == "all" else [args.agent]
    g = Gen(args)
    if args.append_rate:
        return live(g, names, args.append_rate, args.duration)
    sessions = args.sessions or max(3, args.records // 250)
    t0 = time.time()
    os.makedirs(args.out, exist_ok=True)
    for name in names:
        AGENTS[name](g).run(args.records, sessions)
    write_truth(args.out, g.truth, names)
    summary = ", ".join(f"{AGENTS[n].AGENT} {g.truth.totals[AGENTS[n].AGENT]['requests']:,} requests" for n in names)
    sys.stderr.write(f"wrote {summary} to {args.out} in {time.time() - t0:.1f} s\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
