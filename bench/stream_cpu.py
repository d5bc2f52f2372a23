"""CPU of consuming a busy feed's ``WS /v1/stream`` (receive + decode into Snapshot), per stream shape.

A feed (``tokentop serve``) runs in its own process with the ui_cpu.py load generator (N sessions,
R events/s). For each shape a separate consumer process runs ``stream_snapshots`` for a window and
reports its own CPU time, the frames it received and their mean size — the UI's decode cost without
any rendering. Shapes: the default (full) stream, the live view's views and compact series as
v1 frames (``live-v1``), and what the live view asks for (``live-view``: the same plus delta
frames, ``?delta=1``). The frame size is that of the second frame (a delta frame, for delta).

    python bench/stream_cpu.py                      # 200 sessions, 1000 events/s, 15 s per shape
    python bench/stream_cpu.py --sessions 200 --rate 1000 --seconds 15

Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from ui_cpu import PY, env_for, free_port, start_loadgen, wait_healthy  # noqa: E402

CONSUMER = r"""
import asyncio, json, sys, time
from tokentop.core.feed.client import stream_snapshots
from tokentop.core.feed.stream import StreamShape
from tokentop.ui.feeds import live_view_shape

url, which, warmup, seconds = sys.argv[1], sys.argv[2], float(sys.argv[3]), float(sys.argv[4])
live = live_view_shape()
shape = {"live-view": live, "live-v1": StreamShape(views=live.views, series=live.series)}.get(which, StreamShape())

async def main():
    frames = rows = 0
    t0 = c0 = None
    start = time.monotonic()
    async for snap in stream_snapshots(url, shape=shape):
        if isinstance(snap, Exception):
            continue
        now = time.monotonic()
        if t0 is None and now - start >= warmup:
            t0, c0 = now, time.process_time()
        elif t0 is not None:
            frames += 1
            rows += sum(len(snap.view(v)) for v in ("agents", "sessions", "models", "projects", "providers", "hosts"))
            if now - t0 >= seconds:
                cpu = time.process_time() - c0
                print(json.dumps({"cpu_pct": 100 * cpu / (now - t0), "frames": frames, "rows_per_frame": rows / frames,
                                  "ms_per_frame": 1000 * cpu / frames}))
                return

asyncio.run(main())
"""


def frame_bytes(url: str, query: str) -> int:
    import asyncio

    import websockets

    async def one() -> int:
        async with websockets.connect(url.replace("http://", "ws://") + "/v1/stream" + query, max_size=None,
                                      compression=None) as ws:
            await ws.recv()
            return len(await ws.recv())

    return asyncio.run(one())


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sessions", type=int, default=200)
    ap.add_argument("--rate", type=float, default=1000.0, help="events per second")
    ap.add_argument("--seconds", type=float, default=15.0, help="measurement window per shape")
    ap.add_argument("--warmup", type=float, default=3.0)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="tokentop-stream-bench-"))
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = env_for(tmp)
    print(f"tokentop stream bench: {args.sessions} sessions, {args.rate:g} events/s, {args.seconds:g} s per shape",
          flush=True)
    feed = subprocess.Popen([PY, "-m", "tokentop", "serve", "--listen", f"127.0.0.1:{port}"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    results: dict[str, dict] = {}
    try:
        wait_healthy(url)
        gen = start_loadgen(url, args.sessions, args.rate, env)
        time.sleep(5)  # let the 120 s series fill a little and the rows appear
        try:
            from tokentop.core.feed.stream import StreamShape
            from tokentop.ui.feeds import live_view_shape

            live = live_view_shape()
            v1_live = StreamShape(views=live.views, series=live.series)  # the live view's shape without delta frames
            queries = {"full": "", "live-v1": "?" + v1_live.query(), "live-view": "?" + live.query()}
            for which, query in queries.items():
                out = subprocess.run([PY, "-c", CONSUMER, url, which, str(args.warmup), str(args.seconds)], env=env,
                                     capture_output=True, text=True, timeout=args.warmup + args.seconds + 30)
                res = json.loads(out.stdout.strip().splitlines()[-1])
                res["frame_bytes"] = frame_bytes(url, query)
                results[which] = res
                print(f"{which:10s} {query or '(default)':50s} {res['frame_bytes'] / 1024:7.1f} KiB/frame  "
                      f"{res['ms_per_frame']:6.2f} ms/frame  CPU {res['cpu_pct']:.2f} %", flush=True)
        finally:
            gen.terminate()
            gen.wait()
    finally:
        feed.terminate()
        feed.wait()
    print(json.dumps(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
