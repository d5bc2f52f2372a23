"""The core commands as a user runs them: real processes, real feed."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx


def tokentop(*args: str, timeout: float = 30, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "tokentop", *args], capture_output=True, text=True,
                          timeout=timeout, env=os.environ.copy(), cwd=Path(__file__).parent.parent, **kw)


def free_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def test_emit_then_once_json(feed) -> None:
    r = tokentop("emit", "--feed", feed.address, "--agent", "cli", "--model", "gpt-5", "--input", "10000",
                 "--cache-read", "8000", "--output", "2000", "--session", "s9")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["accepted"] == 1
    r = tokentop("--feed", feed.address, "--once", "--json")
    snap = json.loads(r.stdout)
    assert snap["totals"]["usd_today"] == 0.0235
    assert snap["sessions"][0]["id"] == "s9"


def test_emit_rejection_is_reported(feed) -> None:
    r = tokentop("emit", "--feed", feed.address, "--input", "5", "--cache-read", "9")
    assert r.returncode == 1
    assert "rejected: input_tokens: must include cache reads and writes" in r.stderr


def test_emit_without_a_feed_says_how_to_start_one() -> None:
    r = tokentop("emit", "--feed", f"http://127.0.0.1:{free_port()}", "--input", "5")
    assert r.returncode == 2
    assert "tokentop serve" in r.stderr


def test_once_json_embeds_a_feed_when_none_answers(tmp_path: Path) -> None:
    r = tokentop("--feed", f"http://127.0.0.1:{free_port()}", "--once", "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["v"] == 1


def test_serve_runs_until_interrupted_and_refuses_a_taken_port(tmp_path: Path) -> None:
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "tokentop", "serve", "--listen", f"127.0.0.1:{port}"],
                            stderr=subprocess.PIPE, text=True, cwd=Path(__file__).parent.parent)
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=0.5).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "feed did not start"
            time.sleep(0.1)
        second = tokentop("serve", "--listen", f"127.0.0.1:{port}")
        assert second.returncode == 2
        assert f"cannot listen on 127.0.0.1:{port}" in second.stderr
    finally:
        proc.send_signal(2)
        proc.wait(10)
    assert proc.returncode == 0


def test_config_commands(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    assert tokentop("config", "--config", str(path), "path").stdout.strip() == str(path)
    assert tokentop("config", "--config", str(path), "init").returncode == 0
    assert tokentop("config", "--config", str(path), "init").returncode == 2  # no overwrite
    shown = tokentop("config", "--config", str(path), "show")
    assert "listen = \"127.0.0.1:7411\"" in shown.stdout
    path.write_text("[ui]\nsrot = 'x'\n")
    bad = tokentop("--config", str(path), "--once", "--json")
    assert bad.returncode == 2
    assert f"{path}:2: unknown key ui.srot (did you mean 'sort'?)" in bad.stderr
