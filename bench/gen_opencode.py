#!/usr/bin/env python3
"""Deterministic generator of realistic OpenCode (or Kilo CLI) stores, with exact ground truth.

Writes a HOME-like tree:

    OUT/.local/share/opencode/opencode.db       SQLite in WAL mode, OpenCode's schema (1.x message/part,
                                                2.x session_message, session, project, event tables)
    OUT/.local/share/opencode/storage/...       the legacy JSON tree (message/<session>/<msg>.json,
                                                part/<msg>/<part>.json, session/<project>/<session>.json)
    OUT/ground_truth.json                       what a correct reader must report

(``--app kilo``: ``.local/share/kilo/kilo.db`` and ``ground_truth.json`` says agent ``kilo``.)

The shape follows OpenCode's own schema and writers (described in tokentop's docs/sources.md):
assistant messages with ``time.created`` in ms, ``modelID``/``providerID``, ``path{cwd,root}``,
``tokens{input (without cache), output, reasoning, cache{read,write}, total?}`` and ``cost``; one
``step-finish`` part per model call carrying that call's tokens and cost, the message's ``tokens``
overwritten by each step and its ``cost`` summed. Every trap a reader must survive is in the data:

* multi-step messages (the message-level tokens under-count; only the parts are exact),
* forks: sessions whose history rows are copied under new ids with identical data (count once),
* the legacy JSON tree: JSON-only sessions (count) and JSON mirrors of database rows (count once),
* 2.x ``session_message`` sessions, some also with stale 1.x copies of their calls (count once),
* old builds: parts without ``tokens.total`` (OpenAI output includes reasoning, Google's does not)
  and messages with no ``step-finish`` part (the message tokens are the call),
* ``cost: 0`` on subscription routes (github-copilot), an unknown model with a stored cost (that
  cost is the truth) and an unknown free model (unpriced),
* tool outputs that contain the text ``"step-finish"``, and malformed part rows (skipped).

Ground truth: requests, tokens in the event contract's semantics (input includes cache reads and
writes, output includes reasoning), and the cost from genai-prices (the stored cost where the model
is unknown to it). Deterministic for a given --seed, --steps, --sessions and --end.

    python3 bench/gen_opencode.py --out /tmp/oc --steps 100000 --sessions 400 --seed 42
    # live: a running OpenCode writing one call a second (--v2 for 2.x rows, --busy to lock now and then)
    python3 bench/gen_opencode.py --out /tmp/oc --append-rate 1 --duration 30 --seed 7
"""

from __future__ import annotations

import argparse
import calendar
import json
import os
import random
import sqlite3
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

# OpenCode's tables as its migrations create them (the columns a reader may touch, in their order).
SCHEMA = """
CREATE TABLE IF NOT EXISTS project (id text PRIMARY KEY, worktree text NOT NULL, vcs text, name text,
  time_created integer NOT NULL, time_updated integer NOT NULL, time_initialized integer, sandboxes text NOT NULL);
CREATE TABLE IF NOT EXISTS session (id text PRIMARY KEY, project_id text NOT NULL, workspace_id text, parent_id text,
  slug text NOT NULL, directory text NOT NULL, path text, title text NOT NULL, version text NOT NULL, share_url text,
  summary_additions integer, summary_deletions integer, summary_files integer, summary_diffs text, metadata text,
  cost real DEFAULT 0 NOT NULL, tokens_input integer DEFAULT 0 NOT NULL, tokens_output integer DEFAULT 0 NOT NULL,
  tokens_reasoning integer DEFAULT 0 NOT NULL, tokens_cache_read integer DEFAULT 0 NOT NULL,
  tokens_cache_write integer DEFAULT 0 NOT NULL, revert text, permission text, agent text, model text,
  time_created integer NOT NULL, time_updated integer NOT NULL, time_compacting integer, time_archived integer,
  CONSTRAINT fk_session_project FOREIGN KEY (project_id) REFERENCES project(id) ON DELETE CASCADE);
CREATE TABLE IF NOT EXISTS message (id text PRIMARY KEY, session_id text NOT NULL, time_created integer NOT NULL,
  time_updated integer NOT NULL, data text NOT NULL,
  CONSTRAINT fk_message_session FOREIGN KEY (session_id) REFERENCES session(id) ON DELETE CASCADE);
CREATE TABLE IF NOT EXISTS part (id text PRIMARY KEY, message_id text NOT NULL, session_id text NOT NULL,
  time_created integer NOT NULL, time_updated integer NOT NULL, data text NOT NULL,
  CONSTRAINT fk_part_message FOREIGN KEY (message_id) REFERENCES message(id) ON DELETE CASCADE);
CREATE TABLE IF NOT EXISTS session_message (id text PRIMARY KEY, session_id text NOT NULL, type text NOT NULL,
  seq integer NOT NULL, time_created integer NOT NULL, time_updated integer NOT NULL, data text NOT NULL,
  CONSTRAINT fk_session_message_session FOREIGN KEY (session_id) REFERENCES session(id) ON DELETE CASCADE);
CREATE TABLE IF NOT EXISTS event_sequence (aggregate_id text PRIMARY KEY, seq integer NOT NULL, owner_id text);
CREATE TABLE IF NOT EXISTS event (id text PRIMARY KEY, aggregate_id text NOT NULL, seq integer NOT NULL,
  type text NOT NULL, data text NOT NULL);
CREATE INDEX IF NOT EXISTS message_session_time_created_id_idx ON message (session_id, time_created, id);
CREATE INDEX IF NOT EXISTS part_message_id_id_idx ON part (message_id, id);
CREATE INDEX IF NOT EXISTS part_session_idx ON part (session_id);
CREATE UNIQUE INDEX IF NOT EXISTS session_message_session_seq_idx ON session_message (session_id, seq);
CREATE INDEX IF NOT EXISTS session_message_session_type_seq_idx ON session_message (session_id, type, seq);
CREATE INDEX IF NOT EXISTS session_message_time_created_idx ON session_message (time_created);
CREATE INDEX IF NOT EXISTS session_project_idx ON session (project_id);
CREATE INDEX IF NOT EXISTS session_parent_idx ON session (parent_id);
"""

# (providerID, modelID, genai-prices provider, reasoning?, cost per M tokens for OpenCode's own
# estimate: input, output, cache read, cache write; None = a subscription route, cost 0)
MODELS = [
    ("anthropic", "claude-sonnet-4-5", "anthropic", False, (3.0, 15.0, 0.30, 3.75)),
    ("anthropic", "claude-opus-4-5", "anthropic", False, (5.0, 25.0, 0.50, 6.25)),
    ("openai", "gpt-5", "openai", True, (1.25, 10.0, 0.125, 0.0)),
    ("google", "gemini-2.5-pro", "google", True, (1.25, 10.0, 0.31, 0.0)),
    ("github-copilot", "claude-sonnet-4.6", "github-copilot", False, None),
    ("github-copilot", "gpt-5-mini", "github-copilot", True, None),
    ("opencode", "zen-coder-x1", None, False, (0.9, 3.5, 0.09, 0.0)),   # unknown to genai-prices, cost stored
    ("opencode", "big-pickle", None, False, None),                      # unknown and free: unpriced
]
PROJECTS = ["tokentop", "webshop", "infra", "ml-pipeline", "docs-site", "mobile-app", "billing", "search"]
AGENTS = {"opencode": ".local/share/opencode", "kilo": ".local/share/kilo"}


def _id(prefix: str, rng: random.Random, n: int) -> str:
    alphabet = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
    return f"{prefix}_{n:012x}{''.join(rng.choice(alphabet) for _ in range(14))}"


def parse_end(text: str | None) -> int:
    if text is None:
        return int(time.time()) // 60 * 60
    return calendar.timegm(time.strptime(text.replace("Z", ""), "%Y-%m-%dT%H:%M:%S"))


class Truth:
    """What a correct reader reports (event contract semantics), plus counts of every trap."""

    def __init__(self, agent: str) -> None:
        self.agent = agent
        self.requests = 0
        self.tok = {k: 0 for k in ("input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens",
                                   "reasoning_tokens")}
        self.cost = 0.0
        self.provided_cost = 0.0
        self.unpriced = 0
        self.traps: dict[str, int] = {}
        self._calc: Any = None
        self._cache: dict[tuple[Any, ...], Any] = {}
        self.by_model: dict[str, int] = {}

    def trap(self, name: str, n: int = 1) -> None:
        self.traps[name] = self.traps.get(name, 0) + n

    def call(self, model: tuple[Any, ...], u: int, out: int, reas: int, cr: int, cw: int, ts: float, stored_cost: float) -> None:
        self.requests += 1
        self.by_model[model[1]] = self.by_model.get(model[1], 0) + 1
        inp = u + cr + cw
        output = out + reas
        for k, v in (("input_tokens", inp), ("output_tokens", output), ("cache_read_tokens", cr),
                     ("cache_write_tokens", cw), ("reasoning_tokens", reas)):
            self.tok[k] += v
        priced = self.price(model, inp, output, cr, cw, ts)
        if priced is not None:
            self.cost += priced
        elif stored_cost > 0:
            self.cost += stored_cost
            self.provided_cost += stored_cost
        else:
            self.unpriced += 1

    def price(self, model: tuple[Any, ...], inp: int, out: int, cr: int, cw: int, ts: float) -> float | None:
        try:
            import genai_prices
        except ImportError:  # pragma: no cover - the bench runs in tokentop's environment
            return None
        when = datetime.fromtimestamp(ts, UTC)
        usage = genai_prices.Usage(input_tokens=inp, output_tokens=out, cache_read_tokens=cr or None,
                                   cache_write_tokens=cw or None)
        for pid in ([model[2], None] if model[2] else [None]):
            try:
                return float(genai_prices.calc_price(usage, model[1], provider_id=pid, genai_request_timestamp=when).total_price)
            except LookupError:
                continue
        return None

    def to_json(self) -> dict[str, Any]:
        return {"agent": self.agent, "requests": self.requests, **self.tok,
                "total_tokens": self.tok["input_tokens"] + self.tok["output_tokens"],
                "cost_usd": round(self.cost, 9), "provided_cost_usd": round(self.provided_cost, 9),
                "unpriced_requests": self.unpriced, "traps": dict(sorted(self.traps.items())),
                "by_model": dict(sorted(self.by_model.items())),
                "notes": ["input_tokens includes cache reads and writes; output_tokens includes reasoning",
                          "cost_usd = genai-prices for known models + OpenCode's stored cost for unknown ones"]}


def opencode_cost(model: tuple[Any, ...], u: int, out: int, reas: int, cr: int, cw: int) -> float:
    rates = model[4]
    if rates is None:
        return 0.0
    return (u * rates[0] + (out + reas) * rates[1] + cr * rates[2] + cw * rates[3]) / 1e6


class Writer:
    """Writes calls into the database (and the JSON tree) and the truth as it goes."""

    def __init__(self, home: Path, app: str, rng: random.Random, truth: Truth, conn: sqlite3.Connection) -> None:
        self.home = home
        self.app = app
        self.rng = rng
        self.truth = truth
        self.conn = conn
        self.n = 0
        self.seq: dict[str, int] = {}

    def next_id(self, prefix: str) -> str:
        self.n += 1
        return _id(prefix, self.rng, self.n)

    def session(self, project: str, t_ms: int, *, parent: str | None = None) -> str:
        sid = self.next_id("ses")
        pid = "prj_" + project
        self.conn.execute("INSERT OR IGNORE INTO project VALUES (?, ?, 'git', ?, ?, ?, NULL, '[]')",
                          (pid, f"/home/dev/{project}", project, t_ms, t_ms))
        self.conn.execute(
            "INSERT INTO session (id, project_id, parent_id, slug, directory, title, version, time_created, time_updated) "
            "VALUES (?, ?, ?, ?, ?, ?, '1.14.2', ?, ?)",
            (sid, pid, parent, sid[-8:], f"/home/dev/{project}", f"work on {project}", t_ms, t_ms))
        return sid

    def call_tokens(self, model: tuple[Any, ...], step: int, ctx: int) -> tuple[int, int, int, int, int]:
        rng = self.rng
        u = rng.randint(3, 2500)
        cr = ctx if step > 0 or rng.random() < 0.7 else 0
        cw = rng.randint(200, 6000) if model[0] == "anthropic" or "claude" in model[1] else 0
        out = rng.randint(20, 1800)
        reas = rng.randint(0, 3000) if model[3] and rng.random() < 0.8 else 0
        return u, out, reas, cr, cw

    @staticmethod
    def stored_tokens(u: int, out: int, reas: int, cr: int, cw: int, *, total: bool, provider: str) -> dict[str, Any]:
        """The ``tokens`` object as an OpenCode build stores it."""
        if total:  # AI SDK 6 builds: output without reasoning, total = all five
            return {"total": u + out + reas + cr + cw, "input": u, "output": out, "reasoning": reas,
                    "cache": {"read": cr, "write": cw}}
        if provider in ("google", "google-vertex"):  # older builds, Google: reasoning apart already
            return {"input": u, "output": out, "reasoning": reas, "cache": {"read": cr, "write": cw}}
        return {"input": u, "output": out + reas, "reasoning": reas, "cache": {"read": cr, "write": cw}}

    def v1_message(self, sid: str, project: str, model: tuple[Any, ...], t_ms: int, steps: int, *,
                   new_build: bool, with_parts: bool = True, json_too: bool = False, count: bool = True,
                   malformed: bool = False) -> tuple[int, list[tuple[str, Any]]]:
        """One user prompt and the assistant's message with ``steps`` calls; returns the end time and
        the rows written (for forks)."""
        rng = self.rng
        rows: list[tuple[str, Any]] = []
        uid = self.next_id("msg")
        user = {"role": "user", "time": {"created": t_ms}, "agent": "build",
                "model": {"providerID": model[0], "modelID": model[1]}}
        rows.append(("message", (uid, sid, t_ms, t_ms, json.dumps(user))))
        t_ms += rng.randint(200, 3000)
        mid = self.next_id("msg")
        created = t_ms
        tokens_last: dict[str, Any] = {"input": 0, "output": 0, "reasoning": 0, "cache": {"read": 0, "write": 0}}
        cost = 0.0
        ctx = rng.randint(8000, 40000)
        parts: list[tuple[str, Any]] = []
        for step in range(steps):
            u, out, reas, cr, cw = self.call_tokens(model, step, ctx)
            ctx += u + cw + rng.randint(100, 3000)
            t_ms += rng.randint(800, 20000)
            stored = self.stored_tokens(u, out, reas, cr, cw, total=new_build, provider=model[0])
            step_cost = opencode_cost(model, u, out, reas, cr, cw)
            cost += step_cost
            tokens_last = stored
            if count:
                self.truth.call(model, u, out, reas, cr, cw, t_ms / 1000.0, step_cost)
            if with_parts:
                parts.append(("part", (self.next_id("prt"), mid, sid, t_ms - 500, t_ms - 500,
                                       json.dumps({"type": "step-start", "snapshot": "a1b2c3"}))))
                tool_out = "x" * rng.randint(100, 1500)
                if rng.random() < 0.05:  # a tool read a file that mentions the part type
                    tool_out += ' {"type":"step-finish","tokens":{"input":999999}} '
                    self.truth.trap("tool_output_mentions_step_finish")
                parts.append(("part", (self.next_id("prt"), mid, sid, t_ms - 300, t_ms - 200, json.dumps(
                    {"type": "tool", "tool": "read", "callID": f"call_{self.n}",
                     "state": {"status": "completed", "input": {"filePath": "/x"}, "output": tool_out,
                               "time": {"start": t_ms - 300, "end": t_ms - 200}}}))))
                parts.append(("part", (self.next_id("prt"), mid, sid, t_ms, t_ms, json.dumps(
                    {"reason": "tool-calls" if step < steps - 1 else "stop", "snapshot": "d4e5f6",
                     "type": "step-finish", "tokens": stored, "cost": step_cost}))))
        if malformed:
            parts.append(("part", (self.next_id("prt"), mid, sid, t_ms, t_ms, '{"type":"step-finish","tokens":{"input":')))
            self.truth.trap("malformed_parts")
        if steps > 1:
            self.truth.trap("multi_step_messages")
        if not new_build:
            self.truth.trap("steps_without_total", steps)
        completed = t_ms + rng.randint(10, 400)
        info = {"role": "assistant", "time": {"created": created, "completed": completed}, "parentID": uid,
                "modelID": model[1], "providerID": model[0], "mode": "build", "agent": "build",
                "path": {"cwd": f"/home/dev/{project}", "root": f"/home/dev/{project}"},
                "cost": cost, "tokens": tokens_last, "finish": "stop"}
        rows.append(("message", (mid, sid, created, completed, json.dumps(info))))
        rows.extend(parts)
        self.insert(rows)
        if json_too:
            self.json_mirror(sid, rows)
        return completed, rows

    def insert(self, rows: list[tuple[str, Any]]) -> None:
        msgs = [r for t, r in rows if t == "message"]
        parts = [r for t, r in rows if t == "part"]
        if msgs:
            self.conn.executemany("INSERT INTO message VALUES (?, ?, ?, ?, ?)", msgs)
        if parts:
            self.conn.executemany("INSERT INTO part VALUES (?, ?, ?, ?, ?, ?)", parts)

    def json_mirror(self, sid: str, rows: list[tuple[str, Any]]) -> None:
        """The same rows in the legacy JSON tree (ids in the files, as OpenCode wrote them)."""
        storage = self.home / "storage"
        for table, r in rows:
            if table == "message":
                mid, session, created, updated, data = r
                obj = {"id": mid, "sessionID": session, **json.loads(data)}
                path = storage / "message" / session / f"{mid}.json"
                stamp = updated
            else:
                pid, mid, session, created, updated, data = r
                try:
                    obj = {"id": pid, "sessionID": session, "messageID": mid, **json.loads(data)}
                except ValueError:
                    continue
                path = storage / "part" / mid / f"{pid}.json"
                stamp = created
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(obj))
            os.utime(path, ns=(stamp * 1_000_000, stamp * 1_000_000))

    def fork(self, sid: str, project: str, rows: list[tuple[str, Any]], t_ms: int) -> str:
        """A fork: the history copied under new ids, data unchanged (OpenCode's Session.fork)."""
        new = self.session(project, t_ms, parent=None)
        ids: dict[str, str] = {}
        copies: list[tuple[str, Any]] = []
        for table, r in rows:
            if table == "message":
                ids[r[0]] = self.next_id("msg")
                copies.append(("message", (ids[r[0]], new, t_ms, t_ms, r[4])))
        for table, r in rows:
            if table == "part":
                copies.append(("part", (self.next_id("prt"), ids[r[1]], new, t_ms, t_ms, r[5])))
        self.insert(copies)
        self.truth.trap("fork_copied_steps", sum(1 for t, r in rows if t == "part" and _is_step(r[5])))
        return new

    def v2_call(self, sid: str, model: tuple[Any, ...], t_ms: int, *, count: bool = True,
                tokens: bool = True) -> tuple[str, int, dict[str, Any]]:
        """One 2.x assistant row (one call)."""
        u, out, reas, cr, cw = self.call_tokens(model, 1, self.rng.randint(5000, 60000))
        rid = self.next_id("evt")
        done = t_ms + self.rng.randint(800, 20000)
        step_cost = opencode_cost(model, u, out, reas, cr, cw)
        data: dict[str, Any] = {"agent": "build", "model": {"id": model[1], "providerID": model[0]},
                                "content": [{"type": "text", "text": "done"}], "time": {"created": t_ms}}
        if tokens:
            data.update(finish="stop", cost=step_cost, time={"created": t_ms, "completed": done},
                        tokens={"input": u, "output": out, "reasoning": reas, "cache": {"read": cr, "write": cw}})
            if count:
                self.truth.call(model, u, out, reas, cr, cw, done / 1000.0, step_cost)
        seq = self.seq[sid] = self.seq.get(sid, 0) + 1
        self.conn.execute("INSERT INTO session_message VALUES (?, ?, 'assistant', ?, ?, ?, ?)",
                          (rid, sid, seq, t_ms, done if tokens else t_ms, json.dumps(data)))
        finished = {"input": u, "output": out, "reasoning": reas, "cache": {"read": cr, "write": cw}, "cost": step_cost,
                    "created": t_ms, "completed": done}
        return rid, done, finished


def _is_step(data: str) -> bool:
    try:
        return json.loads(data).get("type") == "step-finish"
    except ValueError:
        return False


def new_db(path: Path) -> sqlite3.Connection:
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("PRAGMA busy_timeout=5000")
    conn.executescript(SCHEMA)
    return conn


def generate(args: argparse.Namespace) -> dict[str, Any]:
    rng = random.Random(args.seed)
    home = Path(args.out) / AGENTS[args.app]
    db_path = home / f"{args.app}.db"
    for suffix in ("", "-wal", "-shm"):
        if os.path.exists(str(db_path) + suffix):
            os.remove(str(db_path) + suffix)
    truth = Truth(args.app)
    conn = new_db(db_path)
    w = Writer(home, args.app, rng, truth, conn)
    end_ms = parse_end(args.end) * 1000
    span_ms = int(args.days * 86400 * 1000)
    steps_left = args.steps
    per_session = max(1, args.steps // max(1, args.sessions))
    conn.execute("BEGIN")
    forks_to_make: list[tuple[str, str, list[tuple[str, Any]], int]] = []
    n_sessions = 0
    while steps_left > 0:
        n_sessions += 1
        project = rng.choice(PROJECTS)
        model = MODELS[rng.randrange(len(MODELS))] if rng.random() < 0.5 else MODELS[rng.randrange(4)]
        t_ms = end_ms - rng.randint(int(span_ms * 0.02), span_ms)
        kind = rng.random()
        budget = min(steps_left, max(1, int(rng.gauss(per_session, per_session / 3))))
        sid = w.session(project, t_ms)
        if kind < args.v2_share:  # a 2.x session: one session_message row per call
            truth.trap("v2_sessions")
            stale = rng.random() < 0.3
            for _ in range(budget):
                rid, t_ms, f = w.v2_call(sid, model, t_ms)
                if stale:  # the same call also in the stale 1.x tables (not counted again)
                    mid = w.next_id("msg")
                    info = {"role": "assistant", "time": {"created": f["created"], "completed": f["completed"]},
                            "modelID": model[1], "providerID": model[0],
                            "path": {"cwd": f"/home/dev/{project}", "root": f"/home/dev/{project}"},
                            "cost": f["cost"], "tokens": {k: f[k] for k in ("input", "output", "reasoning", "cache")}}
                    part = {"type": "step-finish", "reason": "stop", "cost": f["cost"],
                            "tokens": w.stored_tokens(f["input"], f["output"], f["reasoning"], f["cache"]["read"],
                                                      f["cache"]["write"], total=False, provider=model[0])}
                    w.insert([("message", (mid, sid, f["created"], f["completed"], json.dumps(info))),
                              ("part", (w.next_id("prt"), mid, sid, f["completed"], f["completed"], json.dumps(part)))])
                    truth.trap("v2_stale_v1_copies")
                t_ms += rng.randint(1000, 60000)
            steps_left -= budget
            continue
        json_only = kind < args.v2_share + args.json_share
        mirrored = not json_only and rng.random() < args.mirror_share
        history: list[tuple[str, Any]] = []
        done = 0
        while done < budget:
            steps = min(budget - done, max(1, int(rng.expovariate(1 / 3.0)) + 1))
            new_build = rng.random() < 0.75
            msg_only = not new_build and rng.random() < 0.15 and steps == 1
            if msg_only:
                truth.trap("message_level_only")
            malformed = rng.random() < 0.002
            if json_only:
                # written to the JSON tree only: rows built in a scratch table-less way
                rows_ms, rows = _json_only_message(w, sid, project, model, t_ms, steps, new_build, msg_only)
                t_ms = rows_ms
            else:
                t_ms, rows = w.v1_message(sid, project, model, t_ms, steps, new_build=new_build,
                                          with_parts=not msg_only, json_too=mirrored, malformed=malformed)
                history.extend(rows)
            done += steps
            t_ms += rng.randint(2000, 120000)
        if json_only:
            truth.trap("json_only_sessions")
        if mirrored:
            truth.trap("json_mirrored_sessions")
        if history and rng.random() < args.fork_share:
            forks_to_make.append((sid, project, history, min(end_ms - 1000, t_ms + rng.randint(1000, 600000))))
        steps_left -= budget
    for sid, project, history, t in forks_to_make:
        w.fork(sid, project, history, t)
        truth.trap("forks")
    conn.execute("COMMIT")
    conn.close()  # a clean exit: SQLite checkpoints and removes -wal and -shm
    out = truth.to_json()
    out.update(seed=args.seed, steps=args.steps, sessions=n_sessions, db=str(db_path),
               end=datetime.fromtimestamp(end_ms / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%SZ"), days=args.days)
    Path(args.out, "ground_truth.json").write_text(json.dumps(out, indent=2) + "\n")
    return out


def _json_only_message(w: Writer, sid: str, project: str, model: tuple[Any, ...], t_ms: int, steps: int,
                       new_build: bool, msg_only: bool) -> tuple[int, list[tuple[str, Any]]]:
    """A message that only the legacy JSON tree holds (written by OpenCode before its database)."""
    saved_insert = w.insert
    w.insert = lambda rows: None  # type: ignore[method-assign]
    try:
        t_ms, rows = w.v1_message(sid, project, model, t_ms, steps, new_build=new_build, with_parts=not msg_only)
    finally:
        w.insert = saved_insert  # type: ignore[method-assign]
    w.json_mirror(sid, rows)
    return t_ms, rows


# -- live: a running OpenCode ---------------------------------------------------------------------------

def live(args: argparse.Namespace) -> None:
    """Append calls at ``--append-rate`` per second for ``--duration`` seconds to the database as a
    running OpenCode does: the message inserted when the call starts (no tokens), the step-finish
    part inserted and the message updated when it ends (2.x with --v2: the assistant row inserted,
    then updated with its tokens). Prints one JSON line per call with the cumulative truth."""
    rng = random.Random(args.seed)
    home = Path(args.out) / AGENTS[args.app]
    db_path = home / f"{args.app}.db"
    truth = Truth(args.app)
    conn = new_db(db_path)  # held open while "running", like the agent: -wal and -shm exist meanwhile
    w = Writer(home, args.app, rng, truth, conn)
    w.n = int(time.time() * 1000) % 10**9 * 1000 + rng.randint(0, 999)  # ids unique across runs
    model = MODELS[rng.randrange(4)]
    project = rng.choice(PROJECTS)
    sid = w.session(project, int(time.time() * 1000))
    t_end = time.time() + args.duration
    interval = 1.0 / args.append_rate
    n = 0
    next_busy = time.time() + 3.0
    while time.time() < t_end:
        t0 = time.time()
        t_ms = int(t0 * 1000)
        if args.v2:
            rid, _, f = w.v2_call(sid, model, t_ms - 1500, count=False, tokens=False)   # the call starts
            time.sleep(min(0.2, interval / 4))
            data = json.loads(conn.execute("SELECT data FROM session_message WHERE id = ?", (rid,)).fetchone()[0])
            data.update(finish="stop", cost=f["cost"], time={"created": f["created"], "completed": t_ms},
                        tokens={k: f[k] for k in ("input", "output", "reasoning", "cache")})
            conn.execute("UPDATE session_message SET data = ?, time_updated = ? WHERE id = ?", (json.dumps(data), t_ms, rid))
            truth.call(model, f["input"], f["output"], f["reasoning"], f["cache"]["read"], f["cache"]["write"],
                       t_ms / 1000.0, f["cost"])
        else:
            mid = w.next_id("msg")
            info = {"role": "assistant", "time": {"created": t_ms - 1500}, "modelID": model[1], "providerID": model[0],
                    "path": {"cwd": f"/home/dev/{project}", "root": f"/home/dev/{project}"}, "cost": 0,
                    "tokens": {"input": 0, "output": 0, "reasoning": 0, "cache": {"read": 0, "write": 0}}}
            conn.execute("INSERT INTO message VALUES (?, ?, ?, ?, ?)", (mid, sid, t_ms - 1500, t_ms - 1500, json.dumps(info)))
            u, out, reas, cr, cw = w.call_tokens(model, 1, rng.randint(8000, 60000))
            stored = w.stored_tokens(u, out, reas, cr, cw, total=True, provider=model[0])
            cost = opencode_cost(model, u, out, reas, cr, cw)
            conn.execute("INSERT INTO part VALUES (?, ?, ?, ?, ?, ?)", (w.next_id("prt"), mid, sid, t_ms, t_ms, json.dumps(
                {"reason": "stop", "type": "step-finish", "tokens": stored, "cost": cost})))
            info.update(tokens=stored, cost=cost, time={"created": t_ms - 1500, "completed": t_ms})
            conn.execute("UPDATE message SET data = ?, time_updated = ? WHERE id = ?", (json.dumps(info), t_ms, mid))
            truth.call(model, u, out, reas, cr, cw, t_ms / 1000.0, cost)
        n += 1
        print(json.dumps({"t": round(time.time(), 3), "requests": n,
                          "total_tokens": truth.tok["input_tokens"] + truth.tok["output_tokens"]}), flush=True)
        if args.busy and time.time() >= next_busy:
            # a moment of exclusive locking (as a migration or VACUUM would): readers get SQLITE_BUSY
            conn.close()  # (the lock below needs the only connection)
            locker = sqlite3.connect(db_path, isolation_level=None, timeout=5)
            locker.execute("SELECT count(*) FROM session").fetchone()  # joins the WAL first, then locks it
            locker.execute("PRAGMA locking_mode=EXCLUSIVE")
            locker.execute("BEGIN EXCLUSIVE")
            locker.execute("INSERT OR REPLACE INTO event_sequence VALUES ('busy', 1, NULL)")
            time.sleep(0.3)
            locker.execute("COMMIT")
            locker.close()
            conn = w.conn = new_db(db_path)
            next_busy = time.time() + 3.0
        time.sleep(max(0.0, interval - (time.time() - t0)))
    print(json.dumps({"done": True, "t": round(time.time(), 3), "requests": n, "truth": truth.to_json()}), flush=True)
    conn.close()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True)
    ap.add_argument("--app", choices=sorted(AGENTS), default="opencode")
    ap.add_argument("--steps", type=int, default=2000, help="model calls to write (the requests)")
    ap.add_argument("--sessions", type=int, default=40)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--end", default=None, help="newest timestamp, e.g. 2026-11-26T12:00:00Z (default: now)")
    ap.add_argument("--days", type=float, default=20.0, help="history spread over this many days before --end")
    ap.add_argument("--v2-share", type=float, default=0.1, help="share of sessions written as 2.x session_message")
    ap.add_argument("--json-share", type=float, default=0.08, help="share of sessions only in the legacy JSON tree")
    ap.add_argument("--mirror-share", type=float, default=0.1, help="share of database sessions mirrored in JSON")
    ap.add_argument("--fork-share", type=float, default=0.1, help="share of sessions forked (history copied)")
    ap.add_argument("--append-rate", type=float, default=None, help="live mode: calls per second")
    ap.add_argument("--duration", type=float, default=30.0, help="live mode: seconds")
    ap.add_argument("--v2", action="store_true", help="live mode: write 2.x session_message rows")
    ap.add_argument("--busy", action="store_true", help="live mode: lock the database exclusively now and then")
    args = ap.parse_args()
    if args.append_rate:
        live(args)
        return 0
    t0 = time.time()
    out = generate(args)
    print(json.dumps({k: out[k] for k in ("agent", "requests", "total_tokens", "cost_usd", "traps")}), file=sys.stderr)
    print(f"wrote {out['db']} in {time.time() - t0:.1f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
