#!/usr/bin/env python3
"""Deterministic generator of Factory Droid session stores, with exact ground truth.

Writes ``OUT/.factory/sessions/<project>/<session>.settings.json`` (the session's *cumulative*
``tokenUsage``, rewritten in place as Droid does) and ``<session>.jsonl`` transcripts, and
``OUT/ground_truth.json``. Traps: model labels as Droid writes them (``custom:Claude-Opus-4.5-
Thinking-[Anthropic]-0``, ``gpt-5.4-medium``), a session without ``model`` (its transcript names it),
thinking tokens apart from the output, sessions older than the backfill window (not counted), and
sessions without usage.

    python3 bench/gen_droid.py --out /tmp/droid --sessions 200 --seed 1
    python3 bench/gen_droid.py --out /tmp/droid --append-rate 1 --duration 30   # a session growing live
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import time
import uuid
from pathlib import Path
from typing import Any

MODELS = [("custom:Claude-Opus-4.5-Thinking-[Anthropic]-0", "claude-opus-4.5", "anthropic"),
          ("Claude-Sonnet-4-[Anthropic]", "claude-sonnet-4", "anthropic"),
          ("gpt-5.4-medium", "gpt-5.4", "openai"),
          ("custom:gpt-5.5 (high)", "gpt-5.5", "openai")]


def write_settings(path: Path, obj: dict[str, Any], mtime: float) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(obj, indent=2))
    os.replace(tmp, path)  # rewritten whole, as Droid does
    os.utime(path, (mtime, mtime))


def session_obj(label: str | None, provider: str, usage: list[int], started: float) -> dict[str, Any]:
    obj: dict[str, Any] = {"providerLock": provider,
                           "providerLockTimestamp": time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(started)),
                           "tokenUsage": dict(zip(("inputTokens", "outputTokens", "cacheCreationTokens", "cacheReadTokens",
                                                   "thinkingTokens"), usage))}
    if label is not None:
        obj = {"model": label, **obj}
    return obj


def price(model: str, provider: str, inp: int, out: int, cr: int, cw: int, ts: float) -> float:
    """genai-prices for one event (0 when the model is unknown to it)."""
    try:
        from datetime import UTC, datetime

        import genai_prices
    except ImportError:  # pragma: no cover - the bench runs in tokentop's environment
        return 0.0
    usage = genai_prices.Usage(input_tokens=inp, output_tokens=out, cache_read_tokens=cr or None,
                               cache_write_tokens=cw or None)
    for pid in (provider, None):
        try:
            return float(genai_prices.calc_price(usage, model, provider_id=pid,
                                                 genai_request_timestamp=datetime.fromtimestamp(ts, UTC)).total_price)
        except LookupError:
            continue
    return 0.0


def generate(args: argparse.Namespace) -> dict[str, Any]:
    rng = random.Random(args.seed)
    root = Path(args.out) / ".factory" / "sessions"
    now = time.time()
    truth: dict[str, Any] = {"agent": "droid", "cost_usd": 0.0, "requests": 0, "input_tokens": 0, "output_tokens": 0, "cache_read_tokens": 0,
             "cache_write_tokens": 0, "reasoning_tokens": 0, "traps": {}, "models": {}}

    def trap(name: str) -> None:
        truth["traps"][name] = truth["traps"].get(name, 0) + 1

    for _ in range(args.sessions):
        label, model, provider = rng.choice(MODELS)
        sid = str(uuid.UUID(int=rng.getrandbits(128), version=4))
        project = rng.choice(["webshop", "infra", "tokentop"])
        d = root / f"-home-dev-{project}"
        d.mkdir(parents=True, exist_ok=True)
        started = now - rng.uniform(3600, args.days * 86400)
        old = rng.random() < 0.1
        if old:
            started = now - (args.days + 20) * 86400
            trap("older_than_window")
        empty = rng.random() < 0.05
        usage = [0, 0, 0, 0, 0] if empty else [rng.randint(100, 50000), rng.randint(100, 20000), rng.randint(0, 30000),
                                               rng.randint(0, 900000), rng.randint(0, 8000) if "thinking" in label.lower() or "gpt" in model else 0]
        if empty:
            trap("no_usage")
        no_model = rng.random() < 0.1
        if no_model:
            trap("model_from_transcript")
        write_settings(d / f"{sid}.settings.json", session_obj(None if no_model else label, provider, usage, started),
                       started + rng.uniform(60, 3000))
        transcript = [{"type": "session_start", "cwd": f"/home/dev/{project}"},
                      {"type": "message", "text": f"<system-reminder>Model: {label.replace('custom:', '')}</system-reminder>"}]
        (d / f"{sid}.jsonl").write_text("\n".join(json.dumps(x) for x in transcript) + "\n")
        if not old and not empty:
            truth["requests"] += 1
            truth["models"][model] = truth["models"].get(model, 0) + 1
            inp, out, cw, cr, th = usage
            truth["input_tokens"] += inp + cw + cr
            truth["output_tokens"] += out + th
            truth["cache_read_tokens"] += cr
            truth["cache_write_tokens"] += cw
            truth["reasoning_tokens"] += th
            truth["cost_usd"] += price(model, provider, inp + cw + cr, out + th, cr, cw, started)
    truth["total_tokens"] = truth["input_tokens"] + truth["output_tokens"]
    truth["notes"] = ["one event per session here (each written once); input includes the cache; output includes thinking"]
    Path(args.out, "ground_truth.json").write_text(json.dumps(truth, indent=2) + "\n")
    return truth


def live(args: argparse.Namespace) -> None:
    """One session whose cumulative totals grow every 1/--append-rate s (the file rewritten each time)."""
    rng = random.Random(args.seed)
    d = Path(args.out) / ".factory" / "sessions" / "-home-dev-live"
    d.mkdir(parents=True, exist_ok=True)
    sid = str(uuid.uuid4())
    label, model, provider = MODELS[0]
    usage = [0, 0, 0, 0, 0]
    started = time.time()
    n = 0
    end = time.time() + args.duration
    while time.time() < end:
        t0 = time.time()
        for i, hi in enumerate((3000, 800, 2000, 40000, 500)):
            usage[i] += rng.randint(1, hi)
        write_settings(d / f"{sid}.settings.json", session_obj(label, provider, usage, started), time.time())
        n += 1
        print(json.dumps({"t": round(time.time(), 3), "requests": n, "total_tokens": sum(usage)}), flush=True)
        time.sleep(max(0.0, 1.0 / args.append_rate - (time.time() - t0)))
    print(json.dumps({"done": True, "t": round(time.time(), 3), "requests": n}), flush=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True)
    ap.add_argument("--sessions", type=int, default=50)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--days", type=float, default=20.0)
    ap.add_argument("--append-rate", type=float, default=None)
    ap.add_argument("--duration", type=float, default=30.0)
    args = ap.parse_args()
    if args.append_rate:
        live(args)
    else:
        print(json.dumps(generate(args)["traps"]), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
