"""Metering proxy: what it adds per request, to the first byte of a stream, and its memory with
500 concurrent streams. Prints figures; goals from issue 15 beside them.

    .venv/bin/python bench/proxy_bench.py [--requests 2000] [--streams 500]

Four processes, so each figure is one process's own: the fake upstream (tests/proxy/fake_upstream.py,
a real uvicorn server speaking the OpenAI/Anthropic protocols), a real feed (`tokentop serve`), the
proxy (`tokentop proxy --feed ...`, exactly as a user runs it) and this client. Everything on
loopback, nothing reaches the internet.

The proxy enforces the feed's budget stop as a user's does: it follows the feed's blocks
(`GET /v1/blocks` every second) and its gate looks every request up in them. The feed holds a
budget rule with `block_at` (not reached) and a block of a session that is not the bench's, so
the gate does real lookups (session, agent and model scopes) on every request, and lets it through.

* overhead: sequential non-streaming Chat Completions on one keep-alive connection, alternating
  direct-to-upstream and through-the-proxy; p50/p95 of each and of the difference, and the
  proxy process's CPU time per request;
* time to first byte: the same for streamed Chat Completions (request sent -> first body byte);
* 500 streams: that many concurrent streamed Messages requests held open ~5 s; the proxy's RSS
  sampled every 50 ms (psutil), peak reported; then the feed is asked how many requests it counted.
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import json
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import psutil

ROOT = Path(__file__).resolve().parents[1]
GOALS = {"overhead_p50_ms": 2.0, "ttfb_added_ms": 5.0, "rss_mb": 150.0}
CHAT = json.dumps({"model": "gpt-5", "messages": [{"role": "user", "content": "hi"}]}).encode()
CHAT_STREAM = json.dumps({"model": "gpt-5", "messages": [{"role": "user", "content": "hi"}], "stream": True}).encode()
MESSAGES_STREAM = {"model": "claude-sonnet-4-5", "max_tokens": 100, "stream": True, "messages": [{"role": "user", "content": "hi"}]}


def free_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def wait_http(url: str, path: str = "/", timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            httpx.get(url + path, timeout=1.0)
            return
        except httpx.HTTPError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing answers at {url}")


def start(argv: list[str], env: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen(argv, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


class Conn:
    """One keep-alive HTTP/1.1 connection (http.client: the lightest client, so its own cost
    barely shows in the difference)."""

    def __init__(self, url: str) -> None:
        host, port = url.removeprefix("http://").split(":")
        self.c = http.client.HTTPConnection(host, int(port))

    def post(self, path: str, body: bytes, stream: bool = False) -> tuple[float, float]:
        """(seconds to first body byte, seconds to the whole answer)."""
        t0 = time.perf_counter()
        self.c.request("POST", path, body, {"content-type": "application/json", "authorization": "Bearer sk-bench"})
        r = self.c.getresponse()
        first = r.read1(65536) if stream else b""
        t_first = time.perf_counter()
        rest = r.read()
        t_end = time.perf_counter()
        assert r.status == 200 and (first or rest), r.status
        return t_first - t0, t_end - t0


def pct(values: list[float], p: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))]


def overhead(direct: str, proxy: str, n: int, path: str, body: bytes, stream: bool) -> dict[str, float]:
    d, p = Conn(direct), Conn(proxy)
    for _ in range(min(200, n // 5)):  # warm-up: connections, caches, the proxy's pools
        d.post(path, body, stream)
        p.post(path, body, stream)
    dd, pp = [], []
    for _ in range(n):
        dd.append(d.post(path, body, stream)[0 if stream else 1])
        pp.append(p.post(path, body, stream)[0 if stream else 1])
    ms = 1000.0
    return {
        "direct_p50": pct(dd, 50) * ms, "direct_p95": pct(dd, 95) * ms,
        "proxy_p50": pct(pp, 50) * ms, "proxy_p95": pct(pp, 95) * ms,
        "added_p50": (pct(pp, 50) - pct(dd, 50)) * ms, "added_p95": (pct(pp, 95) - pct(dd, 95)) * ms,
        "added_median_pairwise": statistics.median(b - a for a, b in zip(dd, pp)) * ms,
    }


def concurrent_streams(proxy: str, n: int, proxy_pid: int) -> dict[str, Any]:
    proc = psutil.Process(proxy_pid)
    base_rss = proc.memory_info().rss
    peak = [base_rss]
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            try:
                peak[0] = max(peak[0], proc.memory_info().rss)
            except psutil.Error:
                return
            time.sleep(0.05)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    open_now = [0]
    most_open = [0]

    async def one(client: httpx.AsyncClient) -> bool:
        headers = {"x-api-key": "sk-ant-bench", "anthropic-version": "2023-06-01", "x-fake-chunk-delay": "0.2"}
        async with client.stream("POST", proxy + "/v1/messages", json=MESSAGES_STREAM, headers=headers) as r:
            open_now[0] += 1
            most_open[0] = max(most_open[0], open_now[0])
            body = b"".join([c async for c in r.aiter_raw()])
            open_now[0] -= 1
        return r.status_code == 200 and b"message_stop" in body

    async def main() -> list[Any]:
        limits = httpx.Limits(max_connections=n + 10, max_keepalive_connections=n + 10)
        async with httpx.AsyncClient(limits=limits, timeout=120.0) as client:
            return await asyncio.gather(*(one(client) for _ in range(n)), return_exceptions=True)

    t0 = time.perf_counter()
    results = asyncio.run(main())
    elapsed = time.perf_counter() - t0
    stop.set()
    sampler.join()
    ok = sum(1 for r in results if r is True)
    return {"streams": n, "ok": ok, "errors": [repr(r) for r in results if r is not True][:3], "most_open_at_once": most_open[0],
            "seconds": elapsed, "rss_before_mb": base_rss / 2**20, "rss_peak_mb": peak[0] / 2**20,
            "rss_after_mb": proc.memory_info().rss / 2**20}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=2000, help="sequential requests per measurement")
    parser.add_argument("--streams", type=int, default=500, help="concurrent streams")
    args = parser.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="tokentop-proxy-bench-"))
    env = {**os.environ, "TOKENTOP_CONFIG_DIR": str(tmp / "cfg"), "TOKENTOP_DATA_DIR": str(tmp / "data"),
           "TOKENTOP_STATE_DIR": str(tmp / "state"), "HOME": str(tmp)}
    env.pop("TOKENTOP_FEED", None)
    procs: list[subprocess.Popen] = []
    try:
        fake = start([sys.executable, "tests/proxy/fake_upstream.py"], env)
        procs.append(fake)
        assert fake.stdout is not None
        upstream = fake.stdout.readline().strip()
        wait_http(upstream, "/v1/models")
        feed_port, proxy_port = free_port(), free_port()
        config = tmp / "config.toml"
        config.write_text(f'[sources]\nenabled = []\n[proxy.upstreams]\nopenai = "{upstream}"\nanthropic = "{upstream}"\n'
                          '[budget.bench]\nusd_per_day = 1000000.0\nblock_at = 1.0\n')
        feed_url = f"http://127.0.0.1:{feed_port}"
        procs.append(start([sys.executable, "-m", "tokentop", "--config", str(config), "serve", "--listen", f"127.0.0.1:{feed_port}"], env))
        wait_http(feed_url, "/healthz")
        token = (tmp / "state" / "token").read_text().strip()
        auth = {"authorization": f"Bearer {token}"}
        for scope, key in (("session", "not-the-bench"), ("agent", "not-the-bench"), ("model", "not-the-bench")):
            httpx.post(feed_url + "/v1/block", json={"scope": scope, "key": key}, headers=auth).raise_for_status()
        proxy_proc = start([sys.executable, "-m", "tokentop", "--config", str(config), "proxy",
                            "--listen", f"127.0.0.1:{proxy_port}", "--feed", feed_url], env)
        procs.append(proxy_proc)
        proxy = f"http://127.0.0.1:{proxy_port}"
        wait_http(proxy, "/_tokentop/healthz")

        print(f"tokentop proxy bench: {args.requests} sequential requests per figure, {args.streams} concurrent streams")
        print(f"machine: {os.cpu_count()} CPUs, shared with other work (figures are noisy; rerun to compare)\n")
        cpu = psutil.Process(proxy_proc.pid)
        before = cpu.cpu_times()
        o = overhead(upstream, proxy, args.requests, "/v1/chat/completions", CHAT, stream=False)
        after = cpu.cpu_times()
        n_sent = args.requests + min(200, args.requests // 5)
        cpu_us = ((after.user + after.system) - (before.user + before.system)) / n_sent * 1e6
        print("non-streaming Chat Completions, whole answer (ms)")
        print(f"  direct   p50 {o['direct_p50']:7.3f}   p95 {o['direct_p95']:7.3f}")
        print(f"  proxy    p50 {o['proxy_p50']:7.3f}   p95 {o['proxy_p95']:7.3f}")
        print(f"  added    p50 {o['added_p50']:7.3f}   p95 {o['added_p95']:7.3f}   "
              f"(median of pairwise differences {o['added_median_pairwise']:.3f})   goal p50 <= {GOALS['overhead_p50_ms']}")
        print(f"  proxy CPU per request {cpu_us:.0f} us (user+system; the steadiest figure on a shared machine)")
        t = overhead(upstream, proxy, args.requests, "/v1/chat/completions", CHAT_STREAM, stream=True)
        print("streamed Chat Completions, time to first body byte (ms)")
        print(f"  direct   p50 {t['direct_p50']:7.3f}   p95 {t['direct_p95']:7.3f}")
        print(f"  proxy    p50 {t['proxy_p50']:7.3f}   p95 {t['proxy_p95']:7.3f}")
        print(f"  added    p50 {t['added_p50']:7.3f}   p95 {t['added_p95']:7.3f}   goal <= {GOALS['ttfb_added_ms']}")
        s = concurrent_streams(proxy, args.streams, proxy_proc.pid)
        print(f"{s['streams']} concurrent streamed Messages (~5 s each): {s['ok']} complete, "
              f"{s['most_open_at_once']} open at once, {s['seconds']:.1f} s")
        print(f"  proxy RSS  before {s['rss_before_mb']:.1f} MB   peak {s['rss_peak_mb']:.1f} MB   after {s['rss_after_mb']:.1f} MB"
              f"   goal peak <= {GOALS['rss_mb']:.0f} MB")
        if s["errors"]:
            print(f"  errors: {s['errors']}")
        expected = 2 * (args.requests + min(200, args.requests // 5)) + s["ok"]
        deadline = time.monotonic() + 30
        counted = 0
        while time.monotonic() < deadline:
            counted = httpx.get(feed_url + "/v1/snapshot").json()["totals"]["requests_today"]
            if counted >= expected:
                break
            time.sleep(0.2)
        status = httpx.get(proxy + "/_tokentop/status", headers={"x-tokentop-token": token}).json()
        print(f"feed counted {counted} of {expected} metered requests; proxy events delivered {status['events']['delivered']}, "
              f"dropped {status['events']['dropped']}")
        follow = status.get("feed_blocks") or {}
        print(f"budget stop: following the feed's blocks: {follow.get('state')}, {follow.get('blocks')} blocks in force, "
              f"{follow.get('polls')} reads, {status['counters']['blocked']} requests refused")
        ok = follow.get("state") == "ok" and follow.get("blocks") == 3 and status["counters"]["blocked"] == 0
        return 0 if counted == expected and s["ok"] == s["streams"] and ok else 1
    finally:
        for p in reversed(procs):
            p.terminate()
        for p in procs:
            try:
                p.wait(15)
            except subprocess.TimeoutExpired:
                p.kill()


if __name__ == "__main__":
    sys.exit(main())
