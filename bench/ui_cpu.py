"""CPU of the live view (the TUI process only) idle and under load, and time to first frame.

The TUI runs as a real process in a pseudo-terminal (160x50 by default), as a user would run it,
watching a feed that runs in another process (`tokentop serve`), so the figures are the UI's own.
A load generator process posts events for N sessions at R events/s. CPU is the TUI process's
user+system time over wall time (psutil), after a warm-up. One extra line reports the same load
with the feed embedded in the TUI process (UI + ingest together), for comparison.

    python bench/ui_cpu.py                       # 200 sessions, 1000 events/s, 15 s windows
    python bench/ui_cpu.py --sessions 200 --rate 1000 --seconds 15 --size 160x50

Prints figures; asserts nothing (goals, issue 14: <= 0.3 % idle, <= 1.5 % loaded; first frame <= 1.0 s).
"""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import pty
import socket
import struct
import subprocess
import sys
import tempfile
import termios
import threading
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[1]
PY = sys.executable


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def env_for(tmp: Path, extra: dict[str, str] | None = None) -> dict[str, str]:
    env = dict(os.environ)
    env.update({
        "TOKENTOP_CONFIG_DIR": str(tmp / "cfg"), "TOKENTOP_DATA_DIR": str(tmp / "data"),
        "TOKENTOP_STATE_DIR": str(tmp / "state"), "PYTHONPATH": str(ROOT), "TERM": "xterm-256color",
        "COLORTERM": "truecolor",
    })
    env.pop("TOKENTOP_FEED", None)
    env.pop("NO_COLOR", None)
    env.update(extra or {})
    return env


def wait_healthy(url: str, timeout: float = 15.0) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(url + "/healthz", timeout=0.5).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"no feed at {url}")


class PtyApp:
    """A process on a pseudo-terminal of a given size; output drained (and watched) by a thread."""

    def __init__(self, argv: list[str], env: dict[str, str], cols: int, rows: int, marker: bytes) -> None:
        self.started = time.monotonic()
        master, slave = pty.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
        self.proc = subprocess.Popen(argv, stdin=slave, stdout=slave, stderr=slave, env=env, close_fds=True,
                                     start_new_session=True)
        os.close(slave)
        self.master = master
        self.marker = marker
        self.first_frame_s: float | None = None
        self.bytes = 0
        self._tail = b""
        self._thread = threading.Thread(target=self._drain, daemon=True)
        self._thread.start()

    def _drain(self) -> None:
        while True:
            try:
                chunk = os.read(self.master, 65536)
            except OSError:
                return
            if not chunk:
                return
            self.bytes += len(chunk)
            if self.first_frame_s is None:
                seen = self._tail + chunk  # look before cutting: one read can exceed the tail
                if self.marker in seen:
                    self.first_frame_s = time.monotonic() - self.started
                self._tail = seen[-4096:]

    def wait_first_frame(self, timeout: float = 10.0) -> float | None:
        deadline = time.monotonic() + timeout
        while self.first_frame_s is None and time.monotonic() < deadline:
            time.sleep(0.02)
        return self.first_frame_s

    def cpu_percent(self, seconds: float) -> float:
        p = psutil.Process(self.proc.pid)
        t0 = p.cpu_times()
        w0 = time.monotonic()
        time.sleep(seconds)
        t1 = p.cpu_times()
        w1 = time.monotonic()
        used = (t1.user - t0.user) + (t1.system - t0.system)
        return 100.0 * used / (w1 - w0)

    def stop(self) -> None:
        try:
            os.write(self.master, b"q")
            self.proc.wait(5)
        except Exception:
            self.proc.kill()
            self.proc.wait()
        os.close(self.master)


LOADGEN = r"""
import json, sys, time, httpx, os
url, sessions, rate, run = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), sys.argv[4]
models = ["gpt-4o", "gpt-4o-mini", "claude-sonnet-4-5", "gemini-2.5-flash"]
batch_per_s = 20
per_batch = max(1, int(rate / batch_per_s))
n = 0
with httpx.Client(timeout=5) as c:
    next_t = time.monotonic()
    while True:
        lines = []
        for _ in range(per_batch):
            s = n % sessions
            lines.append(json.dumps({"id": f"{run}-{n}", "agent": f"agent-{s % 12}", "session": f"{run}-s{s}",
                                     "model": models[s % 4], "provider": "openai" if s % 4 < 2 else "anthropic",
                                     "project": f"p{s % 7}", "pid": 100000 + s,
                                     "input_tokens": 1000 + s, "output_tokens": 100}))
            n += 1
        c.post(url + "/v1/events", content="\n".join(lines), headers={"content-type": "application/x-ndjson"})
        next_t += 1.0 / batch_per_s
        delay = next_t - time.monotonic()
        if delay > 0:
            time.sleep(delay)
"""


def start_loadgen(url: str, sessions: int, rate: float, env: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen([PY, "-c", LOADGEN, url, str(sessions), str(rate), f"b{os.getpid()}"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sessions", type=int, default=200)
    ap.add_argument("--rate", type=float, default=1000.0, help="events per second")
    ap.add_argument("--seconds", type=float, default=15.0, help="measurement window")
    ap.add_argument("--warmup", type=float, default=5.0)
    ap.add_argument("--size", default="160x50")
    ap.add_argument("--skip-embedded", action="store_true")
    args = ap.parse_args()
    cols, rows = (int(v) for v in args.size.split("x"))
    tmp = Path(tempfile.mkdtemp(prefix="tokentop-bench-"))
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = env_for(tmp)
    results: dict[str, float | str | None] = {"size": args.size, "sessions": args.sessions, "events_per_s": args.rate}
    print(f"tokentop UI bench: terminal {args.size}, {args.sessions} sessions, {args.rate:g} events/s, "
          f"{args.seconds:g} s windows after {args.warmup:g} s warm-up; cores {os.cpu_count()}", flush=True)

    feed = subprocess.Popen([PY, "-m", "tokentop", "serve", "--listen", f"127.0.0.1:{port}"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_healthy(url)
        # 1. idle, nothing ever arrived (empty state)
        ui = PtyApp([PY, "-m", "tokentop", "--feed", url], env, cols, rows, marker=b"No token usage")
        results["first_frame_empty_s"] = ui.wait_first_frame()
        time.sleep(args.warmup)
        results["idle_empty_cpu_pct"] = ui.cpu_percent(args.seconds)
        ui.stop()

        # 2. loaded: the generator runs, the UI redraws at 1 Hz
        gen = start_loadgen(url, args.sessions, args.rate, env)
        time.sleep(3)
        ui = PtyApp([PY, "-m", "tokentop", "--feed", url, "--view", "sessions"], env, cols, rows, marker=b"active")
        results["first_frame_with_data_s"] = ui.wait_first_frame()
        time.sleep(args.warmup)
        results["loaded_cpu_pct"] = ui.cpu_percent(args.seconds)
        ui.stop()
        # same load, redraw every 10 s: what receiving and decoding the stream alone costs
        ui = PtyApp([PY, "-m", "tokentop", "--feed", url, "--view", "sessions", "--refresh", "10"], env, cols, rows,
                    marker=b"active")
        ui.wait_first_frame()
        time.sleep(args.warmup)
        results["loaded_decode_only_cpu_pct"] = ui.cpu_percent(args.seconds)
        ui.stop()
        ui = PtyApp([PY, "-m", "tokentop", "--feed", url, "--view", "sessions"], env, cols, rows, marker=b"active")
        ui.wait_first_frame()
        gen.terminate()
        gen.wait()
        # 3. idle with the rows still on screen (no new events)
        time.sleep(2)
        results["idle_after_load_cpu_pct"] = ui.cpu_percent(args.seconds)
        ui.stop()
    finally:
        feed.terminate()
        feed.wait()

    if not args.skip_embedded:
        # 4. embedded feed: the UI process ingests the load itself (what a newcomer runs)
        eport = free_port()
        cfg = tmp / "embedded.toml"
        cfg.write_text(f'[feed]\nlisten = "127.0.0.1:{eport}"\n[ledger]\npath = "{tmp / "emb.db"}"\n')
        eenv = env_for(tmp, {"TOKENTOP_CONFIG": str(cfg)})
        ui = PtyApp([PY, "-m", "tokentop", "--view", "sessions"], eenv, cols, rows, marker=b"every 1 s")
        wait_healthy(f"http://127.0.0.1:{eport}")
        results["first_frame_embedded_s"] = ui.wait_first_frame()
        gen = start_loadgen(f"http://127.0.0.1:{eport}", args.sessions, args.rate, eenv)
        time.sleep(args.warmup)
        results["embedded_loaded_cpu_pct"] = ui.cpu_percent(args.seconds)
        gen.terminate()
        gen.wait()
        ui.stop()

    def pct(key: str) -> str:
        v = results.get(key)
        return "n/a" if v is None else f"{v:.2f} %"

    def sec(key: str) -> str:
        v = results.get(key)
        return "not seen" if v is None else f"{v:.2f} s"

    print(f"first frame (empty feed)          {sec('first_frame_empty_s')}")
    print(f"first frame (feed with data)      {sec('first_frame_with_data_s')}")
    print(f"TUI CPU idle, empty               {pct('idle_empty_cpu_pct')}   (goal <= 0.3 %)")
    print(f"TUI CPU, {args.sessions} sessions @ {args.rate:g} ev/s   {pct('loaded_cpu_pct')}   (goal <= 1.5 %)")
    print(f"  of which stream receive+decode  {pct('loaded_decode_only_cpu_pct')}   (same load, redraw every 10 s)")
    print(f"TUI CPU idle, {args.sessions} rows on screen   {pct('idle_after_load_cpu_pct')}   (goal <= 0.3 %; feed still streams 1 snapshot/s)")
    if not args.skip_embedded:
        print(f"first frame (embedded feed)       {sec('first_frame_embedded_s')}")
        print(f"UI + embedded feed, same load     {pct('embedded_loaded_cpu_pct')}   (includes ingest)")
    print(json.dumps(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
