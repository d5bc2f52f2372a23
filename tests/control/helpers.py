"""Helpers for control tests: real child processes that emit events and sleep."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import psutil

#: A child that optionally posts one event carrying its pid to a feed, then sleeps until killed.
CHILD = r"""
import json, os, signal, sys, time, urllib.request
feed, session, ignore_term = sys.argv[1], sys.argv[2], sys.argv[3] == "1"
if ignore_term:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
if feed != "-":
    body = json.dumps({"agent": "child-agent", "session": session, "model": "gpt-4o", "input_tokens": 1000,
                       "output_tokens": 100, "pid": os.getpid()}).encode()
    req = urllib.request.Request(feed + "/v1/events", data=body, headers={"content-type": "application/json"})
    urllib.request.urlopen(req, timeout=5).read()
print("ready", flush=True)
while True:
    time.sleep(0.05)
"""


def wait_for(pred, timeout: float = 5.0, step: float = 0.01) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(step)
    return pred()


def proc_status(pid: int) -> str | None:
    try:
        return psutil.Process(pid).status()
    except psutil.Error:
        return None


class Children:
    def __init__(self) -> None:
        self.procs: list[subprocess.Popen] = []

    def start(self, feed: str = "-", session: str = "s-child", *, ignore_term: bool = False, **kw) -> subprocess.Popen:
        p = subprocess.Popen(
            [sys.executable, "-c", CHILD, feed, session, "1" if ignore_term else "0"],
            stdout=subprocess.PIPE, process_group=0, **kw,
        )
        self.procs.append(p)
        line = p.stdout.readline()
        assert line.strip() == b"ready", line
        return p

    def cleanup(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                try:
                    os.killpg(p.pid, 18)  # SIGCONT, in case a test left it stopped
                    os.killpg(p.pid, 9)
                except OSError:
                    pass
            try:
                p.wait(5)
            except subprocess.TimeoutExpired:
                pass
            if p.stdout:
                p.stdout.close()


