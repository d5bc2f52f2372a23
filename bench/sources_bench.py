#!/usr/bin/env python3
"""Log-source benchmark: cold import, restart with nothing new, live-tail CPU. Prints figures.

    python3 bench/gen_agent_logs.py --out /tmp/d100k --lines 100000 --sessions 500 --seed 42 --end 2026-11-26T12:00:00Z
    /work/venv/bin/python bench/sources_bench.py --corpus /tmp/d100k --days 31 [--live 30] [--workers 0]
    python3 bench/gen_agents.py all --out /tmp/a100k --records 100000 --seed 42 --end 2026-11-26T12:00:00Z
    /work/venv/bin/python bench/sources_bench.py --corpus /tmp/a100k --days 31 --agent gemini-cli --agent qwen-code \
        --agent pi --agent amp --agent kimi [--live 15]

Each figure is one run of the real CLI in a subprocess (``tokentop import``, ``tokentop serve``)
with HOME pointing at the corpus and private tokentop dirs. CPU = user+sys of the process and its
worker; peak RSS = the largest single process. ``--live`` appends at 5 lines/s for that many
seconds with the generator's live mode (this modifies the corpus: run it last) and reports the
feed's CPU while appending and while idle. Totals are checked against ``ground_truth.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PY = sys.executable


def env_for(corpus: Path, dirs: Path, workers: int | None = None) -> dict[str, str]:
    env = dict(os.environ)
    env.update(HOME=str(corpus), TOKENTOP_DATA_DIR=str(dirs / "data"), TOKENTOP_STATE_DIR=str(dirs / "state"),
               TOKENTOP_CONFIG_DIR=str(dirs / "cfg"), PYTHONPATH=str(ROOT), TZ="UTC")
    for var in ("CLAUDE_CONFIG_DIR", "CODEX_HOME", "TOKENTOP_FEED", "TOKENTOP_CONFIG"):
        env.pop(var, None)
    if workers is not None:
        env["TOKENTOP_IMPORT_WORKERS"] = str(workers)
    return env


def timed(cmd: list[str], env: dict[str, str]) -> tuple[float, float, float, str]:
    """Wall s, CPU s (user+sys incl. children), peak RSS MiB of one run, and its stderr."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed: {proc.stderr}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu, after.ru_maxrss / 1024, proc.stderr.strip()


def check_totals(corpus: Path, env: dict[str, str], days: float) -> str:
    out = subprocess.run([PY, "-m", "tokentop", "report", "--json", "--utc", "--days", str(days), "--by", "agent"],
                         env=env, capture_output=True, text=True, check=True).stdout
    rows = json.loads(out)["by_agent"]
    gt = json.loads((corpus / "ground_truth.json").read_text())
    claude = [r for r in rows if r["agent"].startswith("claude-code")]
    codex = [r for r in rows if r["agent"] == "codex"]
    c, x = gt["claude"], gt["codex"]
    want = {"claude requests": c["messages"], "claude output": c["output_tokens"],
            "claude input (incl. cache)": c["input_tokens"] + c["cache_read_tokens"] + c["cache_creation_tokens"],
            "claude cache write": c["cache_creation_tokens"], "codex requests": x["events"],
            "codex input": x["input_tokens"], "codex output": x["output_tokens"]}
    got = {"claude requests": sum(r["requests"] for r in claude), "claude output": sum(r["output_tokens"] for r in claude),
           "claude input (incl. cache)": sum(r["input_tokens"] for r in claude),
           "claude cache write": sum(r["cache_write_tokens"] for r in claude),
           "codex requests": sum(r["requests"] for r in codex), "codex input": sum(r["input_tokens"] for r in codex),
           "codex output": sum(r["output_tokens"] for r in codex)}
    bad = {k: (got[k], want[k]) for k in want if got[k] != want[k]}
    usd = sum(r["usd"] for r in claude) + sum(r["usd"] for r in codex)
    usd_gt = c["cost_usd"] + x["cost_usd"]
    verdict = "tokens EXACT" if not bad else f"tokens DIFFER {bad}"
    return f"{verdict}; cost ${usd:,.2f} vs ground truth ${usd_gt:,.2f} (diff {usd - usd_gt:+.4f})"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def live(corpus: Path, env: dict[str, str], seconds: float) -> None:
    import httpx
    import psutil

    port = free_port()
    feed = subprocess.Popen([PY, "-m", "tokentop", "serve", "--listen", f"127.0.0.1:{port}"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.time() + 60
        t0 = time.perf_counter()
        while True:
            try:
                status = httpx.get(url + "/v1/snapshot", timeout=2).json().get("status", {})
                if status.get("import", {}).get("state") == "done" and status.get("sources", {}).get("state"):
                    break
            except httpx.HTTPError:
                pass
            if time.time() > deadline:
                sys.exit("feed did not finish its backfill in 60 s")
            time.sleep(0.05)
        print(f"live: feed up and backfill checked in {time.perf_counter() - t0:.2f} s (mode {status['sources']['state']})")
        p = psutil.Process(feed.pid)

        def cpu() -> float:
            t = p.cpu_times()
            return t.user + t.system

        c0, t0 = cpu(), time.perf_counter()
        time.sleep(10)
        idle = (cpu() - c0) / (time.perf_counter() - t0) * 100
        def append(duration: float, seed: int) -> subprocess.Popen:
            # the live generator's request ids follow its seed: a second run needs another seed
            return subprocess.Popen([sys.executable, str(ROOT / "bench" / "gen_agent_logs.py"), "--out", str(corpus),
                                     "--append-rate", "5", "--duration", str(duration), "--seed", str(seed)],
                                    stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env)

        # 1) CPU while appending, nobody polling the feed
        before = httpx.get(url + "/v1/snapshot", timeout=2).json()["totals"]["requests_today"]
        gen = append(seconds, int(time.time()) % 100000)
        c0, t0 = cpu(), time.perf_counter()
        out, _ = gen.communicate()
        busy = (cpu() - c0) / (time.perf_counter() - t0) * 100
        time.sleep(1.0)
        after = httpx.get(url + "/v1/snapshot", timeout=2).json()["totals"]["requests_today"]
        # 2) reflect latency (separate window: polling the snapshot costs the feed CPU): the generator
        # prints its cumulative tokens about once a second right after writing them; time until the
        # feed's snapshot shows at least that many new tokens
        tokens0 = httpx.get(url + "/v1/snapshot", timeout=2).json()["totals"]["tokens_today"]
        gen2 = append(15, int(time.time()) % 100000 + 1)
        latencies = []
        assert gen2.stdout is not None
        for line in gen2.stdout:
            rec = json.loads(line)
            if rec.get("done"):
                break
            while True:
                got = httpx.get(url + "/v1/snapshot", timeout=2).json()["totals"]["tokens_today"] - tokens0
                if got >= rec["total_tokens"]:
                    latencies.append(time.time() - rec["t"])
                    break
                if time.time() - rec["t"] > 5:
                    latencies.append(float("inf"))
                    break
                time.sleep(0.02)
        gen2.wait()
        latencies.sort()
        if latencies:
            print(f"live: reflect latency median {latencies[len(latencies) // 2]:.3f} s, max {latencies[-1]:.3f} s "
                  f"({len(latencies)} samples, 5 lines/s for 15 s; includes the 20 ms snapshot polling)")
        summary = json.loads(out.strip().splitlines()[-1])
        print(f"live: idle CPU {idle:.2f} % of a core (10 s); while appending 5 lines/s for {seconds:g} s: "
              f"{busy:.2f} % of a core; RSS {p.memory_info().rss / 2**20:.0f} MiB")
        print(f"live: generator appended {summary['lines']} lines = {summary['claude'].get('messages', 0)} requests; "
              f"feed counted {after - before} new requests")
    finally:
        feed.terminate()
        feed.wait(10)


def agent_imports(corpus: Path, days: float, agents: list[str], workers: int | None) -> None:
    """``--agent NAME``: a cold ``tokentop import --source NAME`` per agent, on a private ledger each,
    with CPU per imported request; totals checked against the agent's key in ``ground_truth.json``
    (written by ``bench/gen_agents.py``) when it has one."""
    gt_path = corpus / "ground_truth.json"
    gt = json.loads(gt_path.read_text()) if gt_path.exists() else {}
    fields = ("requests", "input_tokens", "cache_read_tokens", "cache_write_tokens", "output_tokens", "reasoning_tokens")
    for agent in agents:
        with tempfile.TemporaryDirectory(prefix="tokentop-bench-") as tmp:
            env = env_for(corpus, Path(tmp), workers)
            wall, cpu, rss, err = timed([PY, "-m", "tokentop", "import", "--source", agent, "--days", str(days)], env)
            last = err.splitlines()[-1] if err else ""
            words = last.split()
            n = int(words[1].replace(",", "")) if len(words) > 1 and words[0] == "imported" else 0
            per = f"{cpu / n * 1e6:.1f} CPU-us and {wall / n * 1e6:.1f} wall-us per request" if n else "no requests"
            print(f"{agent}: cold import {wall:.2f} s wall, {cpu:.2f} CPU-s, peak RSS {rss:.0f} MiB, {n:,} requests: {per}")
            print(f"  {last}")
            want = gt.get(agent)
            if want:
                out = subprocess.run([PY, "-m", "tokentop", "report", "--json", "--utc", "--days", str(days), "--by", "agent"],
                                     env=env, capture_output=True, text=True, check=True).stdout
                rows = [r for r in json.loads(out)["by_agent"] if r["agent"] == agent or r["agent"].startswith(agent + "/")]
                got = {f: sum(r[f] for r in rows) for f in fields}
                bad = {f: (got[f], want[f]) for f in fields if got[f] != want[f]}
                print(f"  totals: {'tokens EXACT' if not bad else f'DIFFER {bad}'} "
                      f"({got['requests']:,} requests, ${sum(r['usd'] for r in rows):,.2f} estimated, "
                      f"{sum(r['unpriced_requests'] for r in rows):,} unpriced)")


def agent_live(corpus: Path, env: dict[str, str], agents: list[str], seconds: float) -> None:
    """``--agent NAME --live S``: a feed follows the corpus while ``bench/gen_agents.py`` adds 2
    responses/s to the newest session of the agent (of every agent it writes when more than one is
    named, round robin); how long until the snapshot shows what was written, and the feed's CPU.
    Modifies the corpus."""
    import httpx
    import psutil

    gen_names = {"gemini-cli": "gemini", "qwen-code": "qwen", "pi": "pi", "amp": "amp", "kimi": "kimi"}
    names = [gen_names[a] for a in agents if a in gen_names]
    if not names:
        return
    port = free_port()
    feed = subprocess.Popen([PY, "-m", "tokentop", "serve", "--listen", f"127.0.0.1:{port}"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 300
        while True:
            try:
                status = httpx.get(url + "/v1/snapshot", timeout=2).json().get("status", {})
                if status.get("import", {}).get("state") == "done" and status.get("sources", {}).get("state"):
                    break
            except httpx.HTTPError:
                pass
            if time.time() > deadline:
                sys.exit("feed did not finish its backfill in 300 s")
            time.sleep(0.1)
        proc = psutil.Process(feed.pid)
        tokens0 = httpx.get(url + "/v1/snapshot", timeout=2).json()["totals"]["tokens_today"]
        cpu0, t0 = sum(proc.cpu_times()[:2]), time.perf_counter()
        gen = subprocess.Popen([PY, str(ROOT / "bench" / "gen_agents.py"), "all" if len(names) > 1 else names[0],
                                "--out", str(corpus), "--append-rate", "2", "--duration", str(seconds),
                                "--seed", str(int(time.time()) % 100000)],
                               stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env)
        latencies = []
        assert gen.stdout is not None
        for line in gen.stdout:
            rec = json.loads(line)
            if rec.get("done"):
                break
            while True:
                got = httpx.get(url + "/v1/snapshot", timeout=2).json()["totals"]["tokens_today"] - tokens0
                if got >= rec["total_tokens"]:
                    latencies.append(time.time() - rec["t"])
                    break
                if time.time() - rec["t"] > 5:
                    latencies.append(float("inf"))
                    break
                time.sleep(0.02)
        gen.wait()
        busy = (sum(proc.cpu_times()[:2]) - cpu0) / (time.perf_counter() - t0) * 100
        latencies.sort()
        if latencies:
            print(f"live ({', '.join(agents)}): reflect latency median {latencies[len(latencies) // 2]:.3f} s, "
                  f"max {latencies[-1]:.3f} s ({len(latencies)} samples, 2 responses/s for {seconds:g} s; "
                  f"includes the 20 ms snapshot polling); feed CPU {busy:.1f} % of a core while appending and polled")
    finally:
        feed.terminate()
        feed.wait(10)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--corpus", required=True, type=Path)
    ap.add_argument("--days", type=float, default=31)
    ap.add_argument("--workers", type=int, default=None, help="parser processes besides the main one (default 1)")
    ap.add_argument("--live", type=float, default=0, help="seconds of live appends at 5 lines/s (modifies the corpus)")
    ap.add_argument("--agent", action="append", default=None,
                    help="only a cold `tokentop import --source NAME` of this agent, per request (repeatable)")
    args = ap.parse_args()
    if args.agent:
        agent_imports(args.corpus, args.days, args.agent, args.workers)
        if args.live:
            with tempfile.TemporaryDirectory(prefix="tokentop-bench-") as tmp:
                agent_live(args.corpus, env_for(args.corpus, Path(tmp), args.workers), args.agent, args.live)
        print(f"(load average during the run: {os.getloadavg()[0]:.2f}; 2 cores shared)")
        return 0
    with tempfile.TemporaryDirectory(prefix="tokentop-bench-") as tmp:
        env = env_for(args.corpus, Path(tmp), args.workers)
        cmd = [PY, "-m", "tokentop", "import", "--days", str(args.days)]
        wall, cpu, rss, err = timed(cmd, env)
        print(f"cold import: {wall:.2f} s wall, {cpu:.2f} CPU-s, peak RSS {rss:.0f} MiB")
        print(f"  {err.splitlines()[-1] if err else ''}")
        wall2, cpu2, _, err2 = timed(cmd, env)
        print(f"restart, nothing new: {wall2:.3f} s wall, {cpu2:.2f} CPU-s (whole `tokentop import` process)")
        print(f"totals: {check_totals(args.corpus, env, args.days)}")
        if args.live:
            live(args.corpus, env, args.live)
    load = os.getloadavg()
    print(f"(load average during the run: {load[0]:.2f}; 2 cores shared)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
