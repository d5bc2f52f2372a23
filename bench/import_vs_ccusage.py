#!/usr/bin/env python3
"""Cold import, tokentop against ccusage, paired on one corpus. Prints figures; installs nothing.

    python3 bench/gen_agent_logs.py --out /tmp/d1m --lines 1000000 --sessions 2000 --seed 42 --end 2026-11-26T12:00:00Z
    .venv/bin/python bench/import_vs_ccusage.py --corpus /tmp/d1m [--runs 5] [--ccusage PATH_OR_COMMAND]

Each round runs ``tokentop import`` (a fresh ledger every time: a cold import) and ccusage's
``daily --offline --json`` (what users run for a report of the same history), one after the
other, alternating which goes first; after one unmeasured warm-up round (the files then sit in the
page cache for both) it prints the median and range of each tool's wall time, CPU seconds (user +
sys of the whole process tree: tokentop's parser worker, ccusage's Node launcher and its native
binary) and peak RSS (the largest single process), and the ratios tokentop / ccusage. CPU seconds
are less sensitive than wall time to other load on a shared machine; the load average is printed.

ccusage is run only if you have it: ``--ccusage`` or ``$CCUSAGE`` (a path or a command, e.g.
``/tmp/ccu/node_modules/.bin/ccusage`` or ``npx --no-install ccusage@20.0.24``), else a
``ccusage`` on ``PATH``, else ``npx --no-install ccusage@20.0.24`` when npx finds it in its cache
(``--no-install``: nothing is downloaded). Without it, tokentop's figures are printed alone.

Both read the corpus as their user's home (``HOME=<corpus>``, ``TZ=UTC``, no ``CLAUDE_CONFIG_DIR``
or ``CODEX_HOME``): Claude Code transcripts and Codex rollouts. tokentop's window (``--days``)
covers the whole corpus (from ``ground_truth.json`` when the generator wrote one), as ccusage reads
everything. With a ``ground_truth.json`` both tools' totals are checked against it.

Measured 2026-12-06 on 2 cores shared with another job (load 1-3, so every figure is noisy), the
1M Claude + 100k Codex corpus (``--lines 1000000 --sessions 2000 --codex-lines 100000 --seed 42
--end 2026-11-26T12:00:00Z``), ``--runs 5``, ccusage 20.0.24: tokentop 11.9 s wall / 16.0 CPU-s /
250 MiB, ccusage 8.0 s / 13.0 CPU-s / 528 MiB: 1.50x its wall (per round median 1.36x), 1.23x its
CPU. Totals exact against the ground truth for both. ``TOKENTOP_FAST_JSON=0`` (the general JSON
path on every line), 3 paired rounds: 15.1 s / 21.7 CPU-s against 11.1 s / 16.7 CPU-s typed.
Again on an idle machine (load 0.1 before), ``--runs 3``: tokentop 16.4 s (14.2-16.7) / 27.9 CPU-s /
251 MiB, ccusage 10.6 s (10.2-11.3) / 18.3 CPU-s / 501 MiB: 1.54x its wall, 1.53x its CPU (this
machine ran both ~1.5x slower than the day above). ``--workers 1`` against the default 2, twice each:
17.5 / 16.7 s wall and 26.9 / 26.0 CPU-s against 15.6 / 15.2 s and 26.5 / 26.4 CPU-s.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CCUSAGE_VERSION = "20.0.24"


@dataclass
class Run:
    wall: float
    cpu: float
    rss_mib: float
    stdout: str


def measure(cmd: list[str], env: dict[str, str]) -> Run:
    """One run: wall time, CPU of the process and every descendant it waited for, and the peak RSS
    of the largest of them (``wait4``'s accounting on Linux)."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=err)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read().decode(errors="replace"), err.read().decode(errors="replace")
    if proc.returncode != 0:
        sys.exit(f"{shlex.join(cmd)} exited with {proc.returncode}:\n{stderr[-2000:]}")
    return Run(wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024, stdout)


def find_ccusage(given: str | None) -> list[str] | None:
    """The ccusage command to run, or ``None`` when there is none (nothing is installed)."""
    given = given or os.environ.get("CCUSAGE")
    if given:
        cmd = shlex.split(given)
        if not shutil.which(cmd[0]) and not Path(cmd[0]).is_file():
            sys.exit(f"ccusage not found: {given}")
        return cmd
    on_path = shutil.which("ccusage")
    if on_path:
        return [on_path]
    if shutil.which("npx"):
        cmd = ["npx", "--no-install", f"ccusage@{CCUSAGE_VERSION}"]
        try:
            probe = subprocess.run([*cmd, "--version"], capture_output=True, text=True, timeout=60)
        except (OSError, subprocess.TimeoutExpired):
            return None
        if probe.returncode == 0:
            return cmd
    return None


def corpus_days(corpus: Path) -> float:
    """A window reaching back past the corpus's first line (ccusage reads all of it)."""
    try:
        start = json.loads((corpus / "ground_truth.json").read_text())["meta"]["start"]
        first = datetime.fromisoformat(start.replace("Z", "+00:00"))
        return float(int((datetime.now(timezone.utc) - first).total_seconds() / 86400) + 2)
    except (OSError, KeyError, ValueError):
        return 3650.0


def base_env(corpus: Path) -> dict[str, str]:
    env = dict(os.environ, HOME=str(corpus), TZ="UTC")
    for var in ("CLAUDE_CONFIG_DIR", "CODEX_HOME", "XDG_CONFIG_HOME", "TOKENTOP_FEED", "TOKENTOP_CONFIG"):
        env.pop(var, None)
    return env


def tokentop_run(corpus: Path, days: float, python: str, workers: int | None) -> tuple[Run, dict]:
    with tempfile.TemporaryDirectory(prefix="tokentop-vs-ccusage-") as tmp:
        env = base_env(corpus)
        env.update(TOKENTOP_DATA_DIR=f"{tmp}/data", TOKENTOP_STATE_DIR=f"{tmp}/state", TOKENTOP_CONFIG_DIR=f"{tmp}/cfg",
                   PYTHONPATH=str(ROOT))
        cmd = [python, "-m", "tokentop", "import", "--days", f"{days:g}", "--json"]
        if workers is not None:
            cmd += ["--workers", str(workers)]
        run = measure(cmd, env)
        summary = json.loads(run.stdout)
        totals = tokentop_totals(env, python, days)
    return run, {"summary": summary, "totals": totals}


def tokentop_totals(env: dict[str, str], python: str, days: float) -> dict[str, float]:
    out = subprocess.run([python, "-m", "tokentop", "report", "--json", "--utc", "--days", f"{days:g}", "--by", "agent"],
                         env=env, capture_output=True, text=True, check=True).stdout
    rows = json.loads(out)["by_agent"]
    claude = [r for r in rows if r["agent"].startswith("claude-code")]
    codex = [r for r in rows if r["agent"] == "codex"]
    return {
        "claude_requests": sum(r["requests"] for r in claude),
        "claude_tokens": sum(r["input_tokens"] + r["output_tokens"] for r in claude),
        "claude_output": sum(r["output_tokens"] for r in claude),
        "codex_requests": sum(r["requests"] for r in codex),
        "codex_tokens": sum(r["input_tokens"] + r["output_tokens"] for r in codex),
        "usd": round(sum(r["usd"] for r in rows if r.get("usd") is not None), 2),
    }


def ccusage_run(corpus: Path, cmd: list[str]) -> tuple[Run, dict]:
    run = measure([*cmd, "daily", "--offline", "--json"], base_env(corpus))
    return run, json.loads(run.stdout).get("totals", {})


def fig(xs: list[float], unit: str, digits: int = 2) -> str:
    return f"{statistics.median(xs):.{digits}f}{unit} ({min(xs):.{digits}f}-{max(xs):.{digits}f})"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--corpus", required=True, type=Path, help="a fake HOME holding .claude/ and .codex/")
    ap.add_argument("--runs", type=int, default=5, help="counted rounds (each: one run of each tool), at least 3")
    ap.add_argument("--ccusage", default=None, help="ccusage command or path (default: $CCUSAGE, PATH, npx cache)")
    ap.add_argument("--no-ccusage", action="store_true", help="tokentop's figures alone")
    ap.add_argument("--days", type=float, default=None, help="tokentop's window (default: the whole corpus)")
    ap.add_argument("--workers", type=int, default=None, help="tokentop import --workers (default: its own)")
    ap.add_argument("--python", default=sys.executable, help="Python that runs tokentop (default: this one)")
    args = ap.parse_args()
    if args.runs < 3:
        ap.error("--runs must be at least 3 (medians of paired runs)")
    corpus = args.corpus.resolve()
    if not (corpus / ".claude").is_dir() and not (corpus / ".codex").is_dir():
        ap.error(f"{corpus} holds neither .claude/ nor .codex/")
    days = args.days if args.days is not None else corpus_days(corpus)
    cc = None if args.no_ccusage else find_ccusage(args.ccusage)
    if cc is None and not args.no_ccusage:
        print("ccusage not found (give --ccusage PATH or $CCUSAGE; nothing is installed): tokentop alone", file=sys.stderr)
    print(f"corpus {corpus}; tokentop import --days {days:g}" + (f"; ccusage: {shlex.join(cc)} daily --offline --json" if cc else ""))
    load0 = os.getloadavg()
    tt: list[Run] = []
    ccr: list[Run] = []
    tt_info: dict = {}
    cc_totals: dict = {}
    for i in range(args.runs + 1):  # round 0 warms the page cache and is not counted
        order = ["tokentop", "ccusage"] if i % 2 == 0 else ["ccusage", "tokentop"]
        for tool in order:
            if tool == "tokentop":
                run, tt_info = tokentop_run(corpus, days, args.python, args.workers)
                if i:
                    tt.append(run)
            elif cc is not None:
                run, cc_totals = ccusage_run(corpus, cc)
                if i:
                    ccr.append(run)
            else:
                continue
            print(f"  round {i}{' (warm-up)' if not i else ''} {tool:8s}: {run.wall:6.2f} s wall, {run.cpu:6.2f} CPU-s, "
                  f"{run.rss_mib:5.0f} MiB", flush=True)
    load1 = os.getloadavg()
    print(f"\ntokentop import: wall {fig([r.wall for r in tt], ' s')}, CPU {fig([r.cpu for r in tt], ' s')}, "
          f"peak RSS {fig([r.rss_mib for r in tt], ' MiB', 0)}")
    if ccr:
        print(f"ccusage daily:   wall {fig([r.wall for r in ccr], ' s')}, CPU {fig([r.cpu for r in ccr], ' s')}, "
              f"peak RSS {fig([r.rss_mib for r in ccr], ' MiB', 0)}")
        ratio_wall = [a.wall / b.wall for a, b in zip(tt, ccr)]
        ratio_cpu = [a.cpu / b.cpu for a, b in zip(tt, ccr)]
        print(f"tokentop / ccusage: wall {statistics.median(r.wall for r in tt) / statistics.median(r.wall for r in ccr):.2f}x "
              f"(per round {fig(ratio_wall, 'x')}), CPU {statistics.median(r.cpu for r in tt) / statistics.median(r.cpu for r in ccr):.2f}x "
              f"(per round {fig(ratio_cpu, 'x')})")
    summary = tt_info["summary"]
    print(f"tokentop read {summary['lines']:,} lines, {summary['bytes_read'] / 1e6:,.0f} MB: {summary['new']:,} requests "
          f"({summary['known']:,} known, {summary['revised']:,} revised), {summary['skipped']['malformed_lines']} malformed lines")
    check(corpus, tt_info["totals"], cc_totals)
    print(f"load average: {load0[0]:.2f} before, {load1[0]:.2f} after (1 min); {os.cpu_count()} cores, shared")
    return 0


def check(corpus: Path, tt: dict, cc: dict) -> None:
    """Both tools' totals against the generator's ground truth, when the corpus has one."""
    try:
        gt = json.loads((corpus / "ground_truth.json").read_text())
    except OSError:
        print(f"tokentop totals: {tt}")
        return
    c, x = gt["claude"], gt["codex"]
    want = {"claude_requests": c["messages"], "claude_output": c["output_tokens"],
            "claude_tokens": c["input_tokens"] + c["cache_read_tokens"] + c["cache_creation_tokens"] + c["output_tokens"],
            "codex_requests": x["events"], "codex_tokens": x["input_tokens"] + x["output_tokens"]}
    bad = {k: (tt[k], v) for k, v in want.items() if tt[k] != v}
    usd_gt = round(c["cost_usd"] + x["cost_usd"], 2)
    print(f"tokentop totals vs ground truth: {'tokens EXACT' if not bad else f'tokens DIFFER {bad}'}; "
          f"${tt['usd']:,.2f} vs ${usd_gt:,.2f}")
    if cc:
        tokens = want["claude_tokens"] + want["codex_tokens"]
        # (not judged here: ccusage's combined report counts Codex tokens its own way)
        print(f"ccusage totals: {cc.get('totalTokens', 0):,} tokens (ground truth {tokens:,}), "
              f"${cc.get('totalCost', 0):,.2f} (ground truth ${usd_gt:,.2f})")


if __name__ == "__main__":
    sys.exit(main())
