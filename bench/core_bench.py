"""Core and feed benchmarks. Prints figures; not part of the test suite.

    python bench/core_bench.py all            # everything below
    python bench/core_bench.py aggregate      # in-process Aggregator.apply events/s (goal >= 300k/s)
    python bench/core_bench.py snapshot       # snapshot CPU per tick at steady load: 2000 active sessions (1k, 100 ev/s),
                                              # 4000 sessions, and the UI bench's 200 sessions (goal <= 20 ms at 2000)
    python bench/core_bench.py pricing        # Pricer.price events/s
    python bench/core_bench.py pipeline       # the feed's ingest in-process (no HTTP) events/s and CPU-us/event
    python bench/core_bench.py http [C B]     # POST /v1/events NDJSON end to end, events/s, C clients, batches of B
                                              # (default 4 x 2000; goal >= 100k/s from one sequential client: 1 2500)
    python bench/core_bench.py ws             # WS /v1/publish events/s (goal >= 30k/s)
    python bench/core_bench.py lag            # ingest-to-snapshot lag at 5k events/s
    python bench/core_bench.py memory         # RSS after 100k distinct sessions, with eviction

The HTTP/WS figures run the feed in a separate process (as `tokentop serve` would) and drive it
from this one, so both use a core each, like a real deployment on a 2-core machine.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tokentop.core.aggregate import Aggregator, AggregatorConfig  # noqa: E402
from tokentop.core.events import Event  # noqa: E402
from tokentop.core.pricing import Pricer  # noqa: E402

MODELS = ["gpt-5", "gpt-5-mini", "claude-sonnet-4-5", "claude-opus-4-1", "claude-haiku-4-5", "unknown-model"]


def make_events(n: int, sessions: int, now: float, spread_s: float = 100.0, seed: int = 1) -> list[Event]:
    rnd = random.Random(seed)
    out = []
    for i in range(n):
        s = rnd.randrange(sessions)
        out.append(Event(
            id=f"e{i}", ts=now - spread_s + spread_s * i / n, agent=f"agent-{s % 40}", session=f"sess-{s}",
            project=f"proj-{s % 12}", host="bench", provider=None, model=MODELS[s % len(MODELS)],
            input_tokens=rnd.randrange(1000, 80_000), cache_read_tokens=0, output_tokens=rnd.randrange(10, 4000),
        ))
    return out


def bench_aggregate(n: int = 500_000) -> None:
    now = time.time()
    events = make_events(n, 2000, now)
    pricer = Pricer()
    priced = [(e, pricer.price(e)) for e in events]
    agg = Aggregator(AggregatorConfig())
    gc.collect()
    t0 = time.perf_counter()
    apply = agg.apply
    for e, c in priced:
        apply(e, c, now)
    dt = time.perf_counter() - t0
    t1 = time.perf_counter()
    snap = agg.snapshot(now)
    ds = time.perf_counter() - t1
    print(f"aggregate: {n} events, 2000 sessions: {n / dt:,.0f} events/s ({dt * 1e6 / n:.2f} us/event); "
          f"snapshot of {len(snap.sessions)} sessions in {ds * 1000:.1f} ms")


def bench_snapshot(sessions: int = 2000, rate: int = 1000, ticks: int = 30, warmup_s: int = 130) -> None:
    """The feed's tick at a steady load: `sessions` sessions, `rate` events/s spread over them, one
    snapshot a second (a simulated clock; events applied between snapshots, as the feed does). After
    `warmup_s` (every window full) it times `ticks` snapshots: the median CPU time of one, what the
    builder read and rebuilt, and a snapshot from scratch of the same state for comparison."""
    pricer = Pricer()
    agg = Aggregator(AggregatorConfig())
    rnd = random.Random(7)
    now = float(int(time.time()))
    events_per_tick = rate
    n = 0
    times: list[float] = []
    read: list[int] = []
    rebuilt: list[int] = []
    shifted: list[int] = []
    priced = {}
    for tick in range(warmup_s + ticks):
        for _ in range(events_per_tick):
            s = rnd.randrange(sessions)
            n += 1
            e = Event(id=f"e{n}", ts=now + rnd.random(), agent=f"agent-{s % 40}", session=f"sess-{s}",
                      project=f"proj-{s % 12}", host="bench", model=MODELS[s % len(MODELS)],
                      input_tokens=1000 + s, output_tokens=100 + s % 50)
            key = (e.model, e.input_tokens, e.output_tokens)
            cost = priced.get(key)
            if cost is None:
                cost = priced[key] = pricer.price(e)
            agg.apply(e, cost, now + 1.0)
        now += 1.0
        if tick < warmup_s - 5:
            continue  # filling the windows (the first snapshot reads everything anyway)
        c0 = time.process_time()
        snap = agg.snapshot(now)
        dt = time.process_time() - c0
        if tick >= warmup_s:
            times.append(dt)
            builder = getattr(agg, "builder", None)
            if builder is not None:
                read.append(builder.cells_read)
                rebuilt.append(builder.rebuilt + getattr(builder, "rerated", 0))
                shifted.append(builder.shifted)
    active = sum(1 for r in snap.sessions if r.state == "active")
    line = (f"snapshot: {active} active sessions ({len(snap.sessions)} rows), {rate} events/s, one snapshot a second: "
            f"median {statistics.median(times) * 1000:.1f} ms CPU per snapshot over {ticks}")
    if read:
        line += (f"; per snapshot {statistics.median(read):.0f} cells read, {statistics.median(rebuilt):.0f} rows rebuilt, "
                 f"{statistics.median(shifted):.0f} only slid their sparkline")
    try:
        from tokentop.core.snapshot_builder import build_full_snapshot
    except ImportError:  # an older tokentop: every snapshot is one from scratch
        build_full_snapshot = None
    if build_full_snapshot is not None:
        fulls = []
        for k in range(3):
            c0 = time.process_time()
            full = build_full_snapshot(agg, now + k * 0.001)
            fulls.append(time.process_time() - c0)
        same = agg.snapshot(now + 0.002) == full
        line += f"; from scratch {statistics.median(fulls) * 1000:.0f} ms ({'same figures' if same else 'FIGURES DIFFER'})"
    print(line, flush=True)


def bench_pricing(n: int = 500_000) -> None:
    now = time.time()
    events = make_events(n, 2000, now)
    pricer = Pricer()
    for e in events[:100]:
        pricer.price(e)
    t0 = time.perf_counter()
    for e in events:
        pricer.price(e)
    dt = time.perf_counter() - t0
    print(f"pricing: {n / dt:,.0f} events/s ({dt * 1e6 / n:.2f} us/event)")


def free_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class FeedProcess:
    """`tokentop serve` in a child process with private dirs."""

    def __init__(self) -> None:
        self.dir = tempfile.TemporaryDirectory(prefix="tokentop-bench-")
        self.port = free_port()
        env = dict(os.environ, TOKENTOP_DATA_DIR=f"{self.dir.name}/data", TOKENTOP_STATE_DIR=f"{self.dir.name}/state",
                   TOKENTOP_CONFIG_DIR=f"{self.dir.name}/cfg", HOME=self.dir.name, PYTHONPATH=str(ROOT))
        self.proc = subprocess.Popen([sys.executable, "-m", "tokentop", "serve", "--listen", f"127.0.0.1:{self.port}"],
                                     env=env, stderr=subprocess.DEVNULL, cwd=ROOT)
        self.url = f"http://127.0.0.1:{self.port}"
        import httpx

        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if httpx.get(self.url + "/healthz", timeout=0.5).status_code == 200:
                    return
            except httpx.HTTPError:
                time.sleep(0.1)
        raise RuntimeError("feed did not start")

    def cpu_seconds(self) -> float:
        import psutil

        t = psutil.Process(self.proc.pid).cpu_times()
        return t.user + t.system

    def rss_mb(self) -> float:
        import psutil

        return psutil.Process(self.proc.pid).memory_info().rss / 2**20

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)
        self.dir.cleanup()


def ndjson_batches(n: int, batch: int, now: float) -> list[bytes]:
    events = make_events(n, 2000, now, spread_s=5)
    out = []
    for i in range(0, n, batch):
        out.append("\n".join(json.dumps(e.to_dict(), separators=(",", ":")) for e in events[i : i + batch]).encode())
    return out


def bench_http(n: int = 200_000, batch: int = 2000, clients: int = 4) -> None:
    """`clients` emitters posting NDJSON batches concurrently (as many agents would)."""
    import httpx

    feed = FeedProcess()
    try:
        bodies = ndjson_batches(n, batch, time.time())

        async def run() -> tuple[int, float]:
            async with httpx.AsyncClient(base_url=feed.url, timeout=60) as client:
                await client.post("/v1/events", content=bodies[0][: bodies[0].index(b"\n")])  # warm-up
                queue = list(reversed(bodies))
                accepted = 0

                async def worker() -> None:
                    nonlocal accepted
                    while queue:
                        body = queue.pop()
                        reply = await client.post("/v1/events", content=body)
                        accepted += reply.json()["accepted"]  # not `+= await ...`: that reads before awaiting

                t0 = time.perf_counter()
                await asyncio.gather(*(worker() for _ in range(clients)))
                return accepted, time.perf_counter() - t0

        cpu0 = feed.cpu_seconds()
        accepted, dt = asyncio.run(run())
        cpu = (feed.cpu_seconds() - cpu0) / dt * 100
        print(f"http ingest: {accepted} events, NDJSON batches of {batch} from {clients} concurrent clients: "
              f"{accepted / dt:,.0f} events/s end to end (each 202 after the ledger commit); "
              f"feed CPU {cpu:.0f} % of a core")
    finally:
        feed.close()


def bench_pipeline(n: int = 200_000, batch: int = 2000, clients: int = 4) -> None:
    """The feed's ingest without HTTP: `clients` coroutines hand NDJSON bodies to ingest_payload
    (split, validate, dedupe, price, ledger commit on its thread, aggregate, listeners) in this
    process, against a ledger file. Isolates tokentop's per-event cost from the HTTP client."""
    from tokentop.core.feed.server import ingest_payload
    from tokentop.core.feed.service import FeedService
    from tokentop.core.ledger import Ledger

    with tempfile.TemporaryDirectory(prefix="tokentop-bench-") as tmp:
        ledger = Ledger(f"{tmp}/ledger.sqlite")
        service = FeedService(ledger, host="bench")
        bodies = ndjson_batches(n, batch, time.time())

        async def run() -> int:
            queue = list(reversed(bodies))

            async def worker() -> int:
                accepted = 0
                while queue:
                    accepted += (await ingest_payload(service, queue.pop())).accepted
                return accepted

            return sum(await asyncio.gather(*(worker() for _ in range(clients))))

        gc.collect()
        t0, c0 = time.perf_counter(), time.process_time()
        accepted = asyncio.run(run())
        dt, cpu = time.perf_counter() - t0, time.process_time() - c0
        ledger.close()
    print(f"pipeline (in-process, no HTTP): {accepted} events in NDJSON batches of {batch} from {clients} coroutines: "
          f"{accepted / dt:,.0f} events/s, {cpu / accepted * 1e6:.1f} CPU-us/event (all threads)")


def bench_ws(n: int = 200_000, batch: int = 1000) -> None:
    import websockets

    feed = FeedProcess()
    try:
        bodies = [b.decode() for b in ndjson_batches(n, batch, time.time())]

        async def run() -> tuple[int, float]:
            async with websockets.connect(feed.url.replace("http", "ws") + "/v1/publish", max_size=None) as ws:
                t0 = time.perf_counter()
                accepted = 0
                window = 4  # frames in flight
                pending = 0
                for body in bodies:
                    await ws.send(body)
                    pending += 1
                    if pending >= window:
                        accepted += json.loads(await ws.recv())["accepted"]
                        pending -= 1
                while pending:
                    accepted += json.loads(await ws.recv())["accepted"]
                    pending -= 1
                return accepted, time.perf_counter() - t0

        accepted, dt = asyncio.run(run())
        print(f"ws publish: {accepted} events in frames of {batch}: {accepted / dt:,.0f} events/s")
    finally:
        feed.close()


def bench_lag(rate: int = 5000, seconds: float = 10.0) -> None:
    """Post at `rate` events/s in 20 ms batches; watch the WS stream for each marker event."""
    import httpx
    import websockets

    feed = FeedProcess()
    try:
        achieved = [0.0]

        async def run() -> list[float]:
            lags: list[float] = []
            sent_at: dict[int, float] = {}
            done = asyncio.Event()

            async def watch() -> None:
                async with websockets.connect(feed.url.replace("http", "ws") + "/v1/stream", max_size=None) as ws:
                    async for msg in ws:
                        snap = json.loads(msg)
                        count = snap["totals"]["requests_today"]
                        t = time.perf_counter()
                        for mark in [m for m in sent_at if m <= count]:
                            lags.append(t - sent_at.pop(mark))
                        if done.is_set() and not sent_at:
                            return

            watcher = asyncio.create_task(watch())
            await asyncio.sleep(0.5)
            async with httpx.AsyncClient(base_url=feed.url, timeout=10) as client:
                per_batch = max(1, rate // 50)
                total = 0
                start = time.perf_counter()
                i = 0
                while time.perf_counter() - start < seconds:
                    body = "\n".join(json.dumps({"id": f"l{i}-{k}", "agent": f"a{k % 10}", "model": "gpt-5",
                                                 "session": f"s{k % 200}", "input_tokens": 1000, "output_tokens": 50})
                                     for k in range(per_batch))
                    r = await client.post("/v1/events", content=body)
                    total += r.json()["accepted"]
                    sent_at[total] = time.perf_counter()
                    i += 1
                    await asyncio.sleep(max(0.0, start + i * 0.02 - time.perf_counter()))
                achieved[0] = total / (time.perf_counter() - start)
            done.set()
            try:
                await asyncio.wait_for(watcher, 5)
            except asyncio.TimeoutError:
                watcher.cancel()
            return lags

        cpu0 = feed.cpu_seconds()
        t0 = time.perf_counter()
        lags = asyncio.run(run())
        wall = time.perf_counter() - t0
        cpu = (feed.cpu_seconds() - cpu0) / wall * 100
        lags.sort()
        print(f"lag at {rate} events/s (achieved {achieved[0]:,.0f}/s) for {seconds:.0f} s: ingest (202) to snapshot on WS /v1/stream "
              f"median {statistics.median(lags) * 1000:.0f} ms, p95 {lags[int(len(lags) * 0.95)] * 1000:.0f} ms, "
              f"max {lags[-1] * 1000:.0f} ms (stream interval 1 s); feed CPU {cpu:.0f} % of a core, "
              f"RSS {feed.rss_mb():.0f} MB")
    finally:
        feed.close()


def bench_memory(sessions: int = 100_000, minutes: float = 100.0) -> None:
    """100k distinct sessions arriving over `minutes` simulated minutes, with the feed's periodic
    eviction (default session TTL 30 min) and a snapshot every 30 simulated seconds."""
    import psutil

    proc = psutil.Process()
    base = proc.memory_info().rss / 2**20
    start = time.time() - minutes * 60
    pricer = Pricer()
    agg = Aggregator(AggregatorConfig())
    span = minutes * 60
    next_tick = start + 30
    peak = base
    snap = None
    for i in range(sessions):
        now = start + span * i / sessions
        e = Event(id=f"m{i}", ts=now, agent=f"agent-{i % 50}", session=f"session-{i:06d}",
                  model=MODELS[i % 5], input_tokens=5000, output_tokens=500)
        agg.apply(e, pricer.price(e), now)
        if now >= next_tick:
            agg.evict(now)
            snap = agg.snapshot(now)
            next_tick += 30
            if i % 10_000 < 40:
                peak = max(peak, proc.memory_info().rss / 2**20)
    now = start + span
    agg.evict(now)
    snap = agg.snapshot(now)
    rss = proc.memory_info().rss / 2**20
    print(f"memory: {sessions} distinct sessions over {minutes:.0f} min with eviction (TTL "
          f"{agg.config.session_ttl_s / 60:.0f} min): RSS {rss:.0f} MB at the end, peak sampled {max(peak, rss):.0f} MB "
          f"(process baseline {base:.0f} MB); {len(snap.sessions)} session rows live, {agg.evicted} evicted; "
          f"totals intact: {snap.totals.requests_today} requests, ${snap.totals.usd_today:.2f} today")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("which", choices=("all", "aggregate", "snapshot", "snapshot-one", "pricing", "pipeline", "http", "ws",
                                     "lag", "memory"))
    p.add_argument("load", nargs="*", type=int,
                   help="snapshot-one: SESSIONS EVENTS_PER_S; http: CLIENTS BATCH (the issue's goal: 1 2500)")
    args = p.parse_args()
    if args.which == "snapshot-one":
        bench_snapshot(*args.load)
        return
    if args.which == "http" and args.load:
        clients, batch = (args.load + [2000])[:2]
        bench_http(clients=clients, batch=batch)
        return
    def snapshots() -> None:
        # each load in a fresh process: one load's garbage must not slow the next one down
        for sessions, rate in ((2000, 1000), (2000, 100), (4000, 2000), (200, 1000)):
            subprocess.run([sys.executable, __file__, "snapshot-one", str(sessions), str(rate)], check=True)

    jobs = {"aggregate": bench_aggregate, "snapshot": snapshots, "pricing": bench_pricing,
            "pipeline": bench_pipeline, "http": bench_http, "ws": bench_ws,
            "lag": bench_lag, "memory": bench_memory}
    for name, job in jobs.items():
        if args.which in ("all", name):
            job()


if __name__ == "__main__":
    main()
