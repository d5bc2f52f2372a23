"""Control-layer costs. Prints figures; not part of the test suite.

    /work/venv/bin/python bench/control.py

* per-event cost the control listener adds to ingest (events with and without a bound pid);
* one policy evaluation over N sessions (budgets + runaway rules), the feed runs this each second;
* identity verification (psutil) and pause→state T latency on a real child process;
* discovery (one walk of the process table).
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import tempfile
import time
import uuid
from decimal import Decimal

import psutil

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from tokentop.core.control import discovery, process
from tokentop.core.control.policy import BudgetRule, PolicyEngine, RunawayRule
from tokentop.core.control.service import ControlService
from tokentop.core.events import Event
from tokentop.core.feed.service import FeedService
from tokentop.core.ledger import Ledger
from tokentop.core.pricing import Cost
from tokentop.core.snapshot import Row, Snapshot, Totals


def bench_listener() -> None:
    with tempfile.TemporaryDirectory() as d:
        ledger = Ledger(os.path.join(d, "b.db"))
        svc = FeedService(ledger, host="h")
        ctl = ControlService(svc)
        me = process.identify(os.getpid())
        ctl.registry.put(__import__("tokentop.core.control.registry", fromlist=["x"]).ProcessRecord(
            "bound", me, "h", "a", "run", 0.0), persist=False)
        now = time.time()
        cost = Cost(1, "estimated")
        n = 200_000
        plain = [(Event(id=str(i), ts=now, agent="a", session=f"s{i % 100}"), cost) for i in range(n)]
        with_pid = [(Event(id=str(i), ts=now, agent="a", session="bound", pid=os.getpid(), host="h"), cost) for i in range(n)]
        for name, batch in (("no pid", plain), ("pid already bound", with_pid)):
            t = time.perf_counter()
            for i in range(0, n, 500):
                ctl.on_events(batch[i:i + 500])
            dt = time.perf_counter() - t
            print(f"control listener, {name:<18}: {dt / n * 1e9:8.0f} ns/event")
        ledger.close()


def bench_policy() -> None:
    for n in (100, 2000):
        rows = tuple(Row(key=f"s{i}", usd_per_hour=float(i % 50), usd_today=Decimal("1.5"), agent=f"a{i % 10}",
                         model="m", project="p", state="active") for i in range(n))
        agents = tuple(Row(key=f"a{i}", usd_per_hour=100.0, usd_today=Decimal("30")) for i in range(10))
        snap = Snapshot(0.0, Totals(usd_per_hour=1000.0, usd_today=Decimal("300")), sessions=rows, agents=agents)
        engine = PolicyEngine(
            [BudgetRule("g", usd_per_day=1000, usd_per_hour=5000), BudgetRule("ag", scope="agent", usd_per_hour=500),
             BudgetRule("sess", usd_per_session=10)],
            [RunawayRule("abs", usd_per_hour_above=60), RunawayRule("med", median_multiple=4)],
        )
        for t in range(200):  # warm the medians
            engine.evaluate(snap, float(t))
        k = 50
        t0 = time.perf_counter()
        for t in range(k):
            engine.evaluate(snap, 200.0 + t)
        dt = (time.perf_counter() - t0) / k
        print(f"policy evaluation, {n:>5} sessions, 3 budgets + 2 runaway rules: {dt * 1e3:7.2f} ms/tick")


def bench_process() -> None:
    child = subprocess.Popen([sys.executable, "-c", "import time\nwhile True: time.sleep(0.05)"], process_group=0)
    try:
        time.sleep(0.1)
        ident = process.identify(child.pid)
        k = 200
        t0 = time.perf_counter()
        for _ in range(k):
            process.verify(ident)
        print(f"identity verify (psutil, incl. ancestor walk): {(time.perf_counter() - t0) / k * 1e6:7.0f} µs")
        t0 = time.perf_counter()
        process.pause(ident)
        while psutil.Process(child.pid).status() != psutil.STATUS_STOPPED:
            time.sleep(0.0005)
        print(f"pause → state T observed: {(time.perf_counter() - t0) * 1e3:7.2f} ms")
        process.resume(ident)
        t0 = time.perf_counter()
        asyncio.run(process.terminate(ident, grace_s=5))
        print(f"terminate (TERM, process exits): {(time.perf_counter() - t0) * 1e3:7.2f} ms")
    finally:
        child.kill()
        child.wait()
    t0 = time.perf_counter()
    discovery.find_candidates(agent="claude-code", project=None, first_seen=None)
    n = len(psutil.pids())
    print(f"discovery walk over {n} processes: {(time.perf_counter() - t0) * 1e3:7.2f} ms")


if __name__ == "__main__":
    bench_listener()
    bench_policy()
    bench_process()
