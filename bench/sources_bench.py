#!/usr/bin/env python3
"""Log-source benchmark: cold import, restart with nothing new, live-tail CPU. Prints figures.

    python3 bench/gen_agent_logs.py --out /tmp/d100k --lines 100000 --sessions 500 --seed 42 --end 2026-11-26T12:00:00Z
    /work/venv/bin/python bench/sources_bench.py --corpus /tmp/d100k --days 31 [--live 30] [--latency 60] [--workers 0]

One agent's store (``--agent``; the corpus from that agent's generator, whose ground truth it checks):

    python3 bench/gen_opencode.py --out /tmp/oc100k --steps 100000 --sessions 800 --seed 42
    python3 bench/sources_bench.py --corpus /tmp/oc100k --agent opencode [--live 30]
    python3 bench/gen_copilot.py --out /tmp/cp100k --calls 100000 --sessions 800 --seed 42
    python3 bench/sources_bench.py --corpus /tmp/cp100k --agent copilot-cli [--live 30]
    python3 bench/gen_agents.py all --out /tmp/a100k --records 100000 --seed 42 --end 2026-11-26T12:00:00Z
    python3 bench/sources_bench.py --corpus /tmp/a100k --days 31 --agent gemini-cli --agent qwen-code \
        --agent pi --agent amp --agent kimi [--live 15]

Figures are per record (event) so that agents compare with the Claude Code path; for an agent,
``--live`` runs the agent's generator at 1 record/s against a feed (a SQLite store: rows inserted
and updated as the agent does) and reports the feed's CPU and how long a record takes to show.

Each figure is one run of the real CLI in a subprocess (``tokentop import``, ``tokentop serve``)
with HOME pointing at the corpus and private tokentop dirs. CPU = user+sys of the process and its
worker; peak RSS = the largest single process. ``--live`` appends at 5 lines/s for that many
seconds with the generator's live mode (this modifies the corpus: run it last) and reports the
feed's CPU while appending and while idle. Totals are checked against ``ground_truth.json``.
``--latency`` appends with the block lines of each response written apart (``--block-gap``, as
Claude Code streams them, no ``stop_reason``) and reports, per line, the time from the line's write
to the feed's snapshot showing it: a response's first line (counted: first sight) and its last
line (its final usage: a revision), median and max; then checks the appended totals against the
generator's own ground truth.
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
    for var in ("CLAUDE_CONFIG_DIR", "CODEX_HOME", "TOKENTOP_FEED", "TOKENTOP_CONFIG", "XDG_DATA_HOME", "OPENCODE_DB",
                "COPILOT_HOME", "COPILOT_OTEL_FILE_EXPORTER_PATH", "GEMINI_CLI_HOME", "QWEN_RUNTIME_DIR", "QWEN_HOME",
                "PI_CODING_AGENT_DIR", "KIMI_CODE_HOME", "KIMI_SHARE_DIR"):
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


def check_agent_totals(corpus: Path, env: dict[str, str], days: float, agent: str) -> str:
    out = subprocess.run([PY, "-m", "tokentop", "report", "--json", "--utc", "--days", str(days), "--by", "agent"],
                         env=env, capture_output=True, text=True, check=True).stdout
    rows = [r for r in json.loads(out)["by_agent"] if r["agent"] == agent]
    gt = json.loads((corpus / "ground_truth.json").read_text())
    fields = ("input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens")
    want = {"requests": gt["requests"], **{f: gt[f] for f in fields}}
    got = {"requests": sum(r["requests"] for r in rows), **{f: sum(r[f] for r in rows) for f in fields}}
    bad = {k: (got[k], want[k]) for k in want if got[k] != want[k]}
    usd = sum(r["usd"] for r in rows)
    verdict = "tokens EXACT" if not bad else f"tokens DIFFER {bad}"
    want_usd = gt.get("cost_usd", 0.0)
    return f"{verdict}; cost ${usd:,.4f} vs ground truth ${want_usd:,.4f} (diff {usd - want_usd:+.6f})"


#: agents whose stores bench/gen_agents.py writes (one corpus, a ground-truth key per agent)
GEN_AGENTS = ("gemini-cli", "qwen-code", "pi", "amp", "kimi")
GENERATORS = {"opencode": ("gen_opencode.py", ["--app", "opencode"]), "kilo": ("gen_opencode.py", ["--app", "kilo"]),
              "copilot-cli": ("gen_copilot.py", []), "droid": ("gen_droid.py", [])}


def wait_backfilled(snapshot_url: str, timeout_s: float) -> dict:
    """Poll a feed's snapshot until its backfill is done and its sources run; its status then."""
    import httpx

    deadline = time.time() + timeout_s
    while True:
        try:
            status = httpx.get(snapshot_url, timeout=2).json().get("status", {})
            if status.get("import", {}).get("state") == "done" and status.get("sources", {}).get("state"):
                return status
        except httpx.HTTPError:
            pass
        if time.time() > deadline:
            sys.exit(f"feed did not finish its backfill in {timeout_s:g} s")
        time.sleep(0.05)


def live_agent(corpus: Path, env: dict[str, str], seconds: float, agent: str) -> None:
    """A feed over the agent's store while its generator writes 1 record/s: CPU and reflect latency."""
    import httpx
    import psutil

    port = free_port()
    feed = subprocess.Popen([PY, "-m", "tokentop", "serve", "--listen", f"127.0.0.1:{port}"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_backfilled(url + "/v1/snapshot", 120)
        p = psutil.Process(feed.pid)

        def cpu() -> float:
            t = p.cpu_times()
            return t.user + t.system

        time.sleep(2)
        c0, t0 = cpu(), time.perf_counter()
        time.sleep(10)
        idle = (cpu() - c0) / (time.perf_counter() - t0) * 100
        script, extra = GENERATORS[agent]
        tokens0 = httpx.get(url + "/v1/snapshot", timeout=2).json()["totals"]["tokens_today"]
        gen = subprocess.Popen([PY, str(ROOT / "bench" / script), "--out", str(corpus), *extra, "--append-rate", "1",
                                "--duration", str(seconds), "--seed", str(int(time.time()) % 100000)],
                               stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env)
        c0, t0 = cpu(), time.perf_counter()
        latencies = []
        polling_cpu = 0.0
        assert gen.stdout is not None
        for line in gen.stdout:
            rec = json.loads(line)
            if rec.get("done"):
                break
            while True:  # (polling the snapshot costs the feed CPU too: it is counted apart below)
                q0 = cpu()
                got = httpx.get(url + "/v1/snapshot", timeout=2).json()["totals"]["tokens_today"] - tokens0
                polling_cpu += cpu() - q0
                if got >= rec["total_tokens"]:
                    latencies.append(time.time() - rec["t"])
                    break
                if time.time() - rec["t"] > 5:
                    latencies.append(float("inf"))
                    break
                time.sleep(0.05)
        gen.wait()
        elapsed = time.perf_counter() - t0
        busy = (cpu() - c0) / elapsed * 100
        busy_net = (cpu() - c0 - polling_cpu) / elapsed * 100
        latencies.sort()
        print(f"live: idle CPU {idle:.2f} % of a core (10 s, store quiet)")
        print(f"live: 1 record/s for {seconds:g} s: {busy:.2f} % of a core ({busy_net:.2f} % without the "
              f"snapshot requests this bench makes); RSS {p.memory_info().rss / 2**20:.0f} MiB")
        if latencies:
            print(f"live: record → snapshot median {latencies[len(latencies) // 2]:.3f} s, max {latencies[-1]:.3f} s "
                  f"({len(latencies)} records)")
    finally:
        feed.terminate()
        feed.wait(10)


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
        t0 = time.perf_counter()
        status = wait_backfilled(url + "/v1/snapshot", 60)
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


def latency(corpus: Path, env: dict[str, str], seconds: float, gap: float) -> None:
    """Line write → snapshot latency, for first sight and for the final usage (see the module doc)."""
    import queue
    import threading

    import httpx

    port = free_port()
    feed = subprocess.Popen([PY, "-m", "tokentop", "serve", "--listen", f"127.0.0.1:{port}"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}/v1/snapshot"
    try:
        wait_backfilled(url, 120)
        base = httpx.get(url, timeout=2).json()["totals"]
        r0, t0, usd0 = base["requests_today"], base["tokens_today"], base["usd_today"]
        gen = subprocess.Popen([sys.executable, str(ROOT / "bench" / "gen_agent_logs.py"), "--out", str(corpus),
                                "--append-rate", "5", "--duration", str(seconds), "--block-gap", str(gap),
                                "--trace", "--seed", str(int(time.time()) % 100000)],
                               stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env)
        lines: queue.Queue[dict] = queue.Queue()

        def read() -> None:
            assert gen.stdout is not None
            for line in gen.stdout:
                lines.put(json.loads(line))

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        waiting: list[dict] = []
        first: list[float] = []
        final: list[float] = []
        summary: dict | None = None
        while summary is None or waiting:
            while True:
                try:
                    rec = lines.get_nowait()
                except queue.Empty:
                    break
                if rec.get("done"):
                    summary = rec
                else:
                    waiting.append(rec)
            if not waiting:
                if summary is None and not reader.is_alive() and lines.empty():
                    sys.exit("the generator stopped without its summary")
                time.sleep(0.005)
                continue
            totals = httpx.get(url, timeout=2).json()["totals"]
            now = time.time()
            for rec in list(waiting):
                shown = totals["requests_today"] - r0 >= rec["requests"] and \
                    totals["tokens_today"] - t0 >= rec["total_tokens"]
                if shown or now - rec["t"] > 10:
                    latency_s = now - rec["t"] if shown else float("inf")
                    if rec["first"]:
                        first.append(latency_s)
                    if rec["final"]:
                        final.append(latency_s)
                    waiting.remove(rec)
            time.sleep(0.02)
        gen.wait()

        def figures(xs: list[float]) -> str:
            xs = sorted(xs)
            return f"median {xs[len(xs) // 2]:.3f} s, max {xs[-1]:.3f} s ({len(xs)} lines)" if xs else "no samples"

        print(f"latency (line written -> feed snapshot; 5 lines/s, block lines {gap:g} s apart, {seconds:g} s):")
        print(f"  first sight of a response: {figures(first)}")
        print(f"  its final usage (last line): {figures(final)}")
        time.sleep(1.5)
        after = httpx.get(url, timeout=2).json()["totals"]
        c = summary["claude"]
        got_req, got_tok = after["requests_today"] - r0, after["tokens_today"] - t0
        got_usd = after["usd_today"] - usd0
        verdict = "EXACT" if (got_req, got_tok) == (c.get("messages", 0), c.get("total_tokens", 0)) else "DIFFER"
        print(f"  appended: generator {c.get('messages', 0)} requests, {c.get('total_tokens', 0):,} tokens, "
              f"${c.get('cost_usd', 0):.6f}; feed +{got_req} requests, +{got_tok:,} tokens, ${got_usd:.6f} "
              f"(tokens {verdict}, cost diff {got_usd - c.get('cost_usd', 0):+.6f})")
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
        wait_backfilled(url + "/v1/snapshot", 300)
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
    ap.add_argument("--latency", type=float, default=0,
                    help="seconds of live appends with block lines apart, timing each line to the snapshot (modifies the corpus)")
    ap.add_argument("--block-gap", type=float, default=1.5, help="seconds between the block lines of one response (--latency)")
    ap.add_argument("--agent", action="append", default=None,
                    help="benchmark this agent's store instead of Claude Code + Codex (repeatable): a corpus from "
                         f"its generator ({', '.join(sorted(GENERATORS))}: its own gen_*.py; "
                         f"{', '.join(sorted(GEN_AGENTS))}: bench/gen_agents.py)")
    args = ap.parse_args()
    if args.agent:
        unknown = [a for a in args.agent if a not in GENERATORS and a not in GEN_AGENTS]
        if unknown:
            ap.error(f"unknown agent(s) {unknown}")
        own = [a for a in args.agent if a in GENERATORS]
        shared = [a for a in args.agent if a in GEN_AGENTS]
        for agent in own:
            main_agent(args, agent)
        if shared:
            agent_imports(args.corpus, args.days, shared, args.workers)
            if args.live:
                with tempfile.TemporaryDirectory(prefix="tokentop-bench-") as tmp:
                    agent_live(args.corpus, env_for(args.corpus, Path(tmp), args.workers), shared, args.live)
            print(f"(load average during the run: {os.getloadavg()[0]:.2f}; 2 cores shared)")
        return 0
    with tempfile.TemporaryDirectory(prefix="tokentop-bench-") as tmp:
        env = env_for(args.corpus, Path(tmp), args.workers)
        cmd = [PY, "-m", "tokentop", "import", "--days", str(args.days)]
        wall, cpu, rss, err = timed(cmd, env)
        print(f"cold import: {wall:.2f} s wall, {cpu:.2f} CPU-s, peak RSS {rss:.0f} MiB")
        summary = err[err.rfind("imported "):] if "imported " in err else err  # after the progress bar
        print("\n".join(f"  {line.strip()}" for line in summary.splitlines()))
        wall2, cpu2, _, err2 = timed(cmd, env)
        print(f"restart, nothing new: {wall2:.3f} s wall, {cpu2:.2f} CPU-s (whole `tokentop import` process)")
        print(f"totals: {check_totals(args.corpus, env, args.days)}")
        if args.live:
            live(args.corpus, env, args.live)
        if args.latency:
            latency(args.corpus, env, args.latency, args.block_gap)
    load = os.getloadavg()
    print(f"(load average during the run: {load[0]:.2f}; 2 cores shared)")
    return 0


def main_agent(args: argparse.Namespace, agent: str) -> int:
    gt = json.loads((args.corpus / "ground_truth.json").read_text())
    with tempfile.TemporaryDirectory(prefix="tokentop-bench-") as tmp:
        env = env_for(args.corpus, Path(tmp), args.workers)
        cmd = [PY, "-m", "tokentop", "import", "--days", str(args.days), "--source", agent]
        wall, cpu, rss, err = timed(cmd, env)
        n = gt["requests"]
        print(f"{agent} cold import of {n:,} records: {wall:.2f} s wall, {cpu:.2f} CPU-s, peak RSS {rss:.0f} MiB "
              f"= {wall / n * 1e6:.1f} us wall, {cpu / n * 1e6:.1f} us CPU per record")
        print(f"  {err.splitlines()[-1] if err else ''}")
        wall2, cpu2, _, _ = timed(cmd, env)
        print(f"restart, nothing new: {wall2:.3f} s wall, {cpu2:.2f} CPU-s (whole `tokentop import` process)")
        print(f"totals: {check_agent_totals(args.corpus, env, args.days, agent)}")
        if args.live:
            live_agent(args.corpus, env, args.live, agent)
    load = os.getloadavg()
    print(f"(load average during the run: {load[0]:.2f}; 2 cores shared)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
