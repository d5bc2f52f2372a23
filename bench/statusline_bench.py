"""Wall time of ``tokentop statusline`` as Claude Code runs it: Python start-up included.

Claude Code runs its statusLine command after every assistant message; tokentop's must stay under
50 ms, start-up included (docs/limits.md, "Speed"). This bench runs the command the way Claude
Code does (a fresh process, the JSON on stdin) N times — both the command ``tokentop setup
claude-statusline`` installs (``python -P -c LAUNCHER``) and the ``tokentop statusline`` console
script — with no feed answering and with a real feed (uvicorn on loopback), and prints the median
and maximum wall time and CPU time, next to a bare ``python -c pass`` of the same interpreter (the
floor no Python command can go below).

    python bench/statusline_bench.py [--runs 20] [--tokentop PATH] [--python PATH]

``--tokentop`` defaults to the ``tokentop`` script beside this Python. Note: an *editable* install
(``pip install -e``) adds the editable finder to every start-up (~15 ms measured), and
``PYTHONDONTWRITEBYTECODE=1`` makes every run recompile tokentop's modules; a regular install has
neither. Runs are interleaved (baseline, no feed, feed, ...) so a busy machine hurts them alike.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

PAYLOAD = {
    "session_id": "73cc9f9a-2775-4418-beec-bc36b62a1c6f", "transcript_path": "/tmp/x.jsonl", "cwd": "/tmp",
    "model": {"id": "claude-opus-4-7", "display_name": "Opus 4.7"}, "workspace": {"current_dir": "/tmp"},
    "version": "2.1.141", "cost": {"total_cost_usd": 1.23, "total_duration_ms": 164055},
    "rate_limits": {"five_hour": {"used_percentage": 62, "resets_at": int(time.time()) + 4320},
                    "seven_day": {"used_percentage": 40, "resets_at": int(time.time()) + 86400 * 3}},
}


def run_once(argv: list[str], data: bytes, env: dict[str, str]) -> tuple[float, float]:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    subprocess.run(argv, input=data, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, check=False)
    wall = (time.perf_counter() - t0) * 1000
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = ((after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)) * 1000
    return wall, cpu


def summary(name: str, runs: list[tuple[float, float]]) -> str:
    walls = [w for w, _ in runs]
    cpus = [c for _, c in runs]
    return (f"{name:<38} wall median {statistics.median(walls):6.1f} ms  max {max(walls):6.1f} ms   "
            f"cpu median {statistics.median(cpus):6.1f} ms  max {max(cpus):6.1f} ms")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--python", default=sys.executable)
    parser.add_argument("--tokentop", default=str(Path(sys.executable).with_name("tokentop")))
    args = parser.parse_args()
    from tokentop import config as config_mod
    from tokentop.commands.statusline import LAUNCHER
    from tokentop.core.feed.runner import FeedRunner

    data = json.dumps(PAYLOAD).encode()
    with tempfile.TemporaryDirectory() as tmp:
        env = dict(os.environ, HOME=tmp, TOKENTOP_STATE_DIR=f"{tmp}/state", TOKENTOP_CONFIG_DIR=f"{tmp}/cfg",
                   TOKENTOP_DATA_DIR=f"{tmp}/data", TOKENTOP_NO_SOURCES="1")
        os.environ.update({k: env[k] for k in ("TOKENTOP_STATE_DIR", "TOKENTOP_CONFIG_DIR", "TOKENTOP_DATA_DIR",
                                                "TOKENTOP_NO_SOURCES")})
        cfg = config_mod.from_mapping({"ledger": {"path": f"{tmp}/feed.db"}})
        runner = FeedRunner(cfg, listen="127.0.0.1:0").start_in_thread(require_listen=True)
        try:
            feed_env = dict(env, TOKENTOP_FEED=str(runner.url))
            none_env = dict(env, TOKENTOP_FEED="http://127.0.0.1:1")  # nothing listens on port 1: refused
            script = [args.tokentop, "statusline"]
            launcher = [args.python, "-P", "-c", LAUNCHER]  # what `tokentop setup claude-statusline` installs
            cases: dict[str, tuple[list[str], bytes, dict[str, str]]] = {
                "python -c pass (start-up floor)": ([args.python, "-c", "pass"], b"", env),
                "installed command, no feed": (launcher, data, none_env),
                "installed command, feed answering": (launcher, data, feed_env),
                "`tokentop statusline`, no feed": (script, data, none_env),
                "`tokentop statusline`, feed answering": (script, data, feed_env),
            }
            runs: dict[str, list[tuple[float, float]]] = {name: [] for name in cases}
            for argv, stdin, e in cases.values():
                run_once(argv, stdin, e)  # warm caches (and write .pyc where allowed)
            for _ in range(args.runs):
                for name, (argv, stdin, e) in cases.items():
                    runs[name].append(run_once(argv, stdin, e))
            received = runner.parts.limits.statusline_received if runner.parts.limits else 0
        finally:
            runner.stop()
    print(f"tokentop statusline, {args.runs} runs each, {args.python} / {args.tokentop}")
    for name, got in runs.items():
        print(summary(name, got))
    print(f"feed received {received} statusLine payloads (expected {2 * (args.runs + 1)})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
