"""``tokentop proxy`` as a user runs it: a real process, a real feed (or an embedded one), the real
SDK, and ``tokentop proxy block|unblock|status`` against it."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import openai
import pytest

from tokentop import config as config_mod
from tokentop.core.ledger import Ledger

ROOT = Path(__file__).resolve().parents[2]


def tokentop(*args: str, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "tokentop", *args], capture_output=True, text=True, timeout=30, cwd=ROOT, **kw)


def start_proxy(config: Path, *extra: str) -> tuple[subprocess.Popen, str, str]:
    proc = subprocess.Popen([sys.executable, "-m", "tokentop", "--config", str(config), "proxy", "--listen", "127.0.0.1:0", *extra],
                            stderr=subprocess.PIPE, text=True, cwd=ROOT)
    assert proc.stderr is not None
    deadline = time.monotonic() + 30
    lines = []
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        lines.append(line)
        m = re.match(r"tokentop proxy on (http://127\.0\.0\.1:\d+), events to (.*); Ctrl-C stops", line)
        if m:
            return proc, m.group(1), m.group(2)
        if not line and proc.poll() is not None:
            break
    proc.kill()
    raise AssertionError("the proxy did not start: " + "".join(lines))


def stop(proc: subprocess.Popen, sig: int = signal.SIGINT) -> tuple[int, str]:
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=30)
    return proc.returncode, err


def write_config(tmp_path: Path, upstream_url: str, **sections) -> Path:
    path = tmp_path / "config.toml"
    text = f'[proxy.upstreams]\nopenai = "{upstream_url}"\nanthropic = "{upstream_url}"\n'
    for name, values in sections.items():
        text += f"[{name}]\n" + "".join(f"{k} = {json.dumps(v)}\n" for k, v in values.items())
    path.write_text(text)
    config_mod.load(path)  # valid
    return path


def test_proxy_command_sends_to_a_running_feed_and_blocks_on_request(feed, upstream, tmp_path: Path) -> None:
    config = write_config(tmp_path, upstream.url)
    proc, url, where = start_proxy(config, "--feed", feed.address)
    assert where == f"the feed at {feed.address}"
    try:
        client = openai.OpenAI(base_url=url + "/v1", api_key="k", max_retries=0, default_headers={"X-Tokentop-Session": "cli-1"})
        assert client.chat.completions.create(model="gpt-5", messages=[]).usage.prompt_tokens == 1200
        blocked = tokentop("--config", str(config), "proxy", "block", "--session", "cli-1", "--message", "paused by hand", "--proxy", url)
        assert blocked.returncode == 0, blocked.stderr
        assert "blocked session cli-1" in blocked.stdout
        with pytest.raises(openai.RateLimitError, match="paused by hand"):
            client.chat.completions.create(model="gpt-5", messages=[])
        status = tokentop("--config", str(config), "proxy", "status", "--json", "--proxy", url)
        data = json.loads(status.stdout)
        assert data["counters"]["blocked"] == 1 and data["blocks"][0]["key"] == "cli-1"
        text = tokentop("--config", str(config), "proxy", "status", "--proxy", url).stdout
        assert "1 blocked" in text and "blocked session cli-1 by block-list: paused by hand" in text
        assert tokentop("--config", str(config), "proxy", "unblock", "--session", "cli-1", "--proxy", url).stdout.strip() == "lifted"
        client.chat.completions.create(model="gpt-5", messages=[])
    finally:
        code, err = stop(proc, signal.SIGTERM)
    assert code == 0, err
    assert "3 requests (3 metered, 1 blocked), 3 events delivered, 0 dropped" in err
    events = [s.event for s in feed.ledger.events_since(0)]
    assert [(e.session, e.status) for e in events] == [("cli-1", "ok"), ("cli-1", "error"), ("cli-1", "ok")]


def test_proxy_command_embeds_a_feed_when_none_answers(upstream, tmp_path: Path) -> None:
    ledger = tmp_path / "embedded.db"
    config = write_config(tmp_path, upstream.url, feed={"listen": "127.0.0.1:0", "url": "http://127.0.0.1:9"},
                          ledger={"path": str(ledger)}, sources={"enabled": []})
    proc, url, where = start_proxy(config)
    assert where.startswith("a feed embedded here (http://127.0.0.1:")
    try:
        client = openai.OpenAI(base_url=url + "/v1", api_key="k", max_retries=0)
        client.chat.completions.create(model="gpt-5", messages=[])
    finally:
        code, err = stop(proc)
    assert code == 0, err
    with Ledger(ledger) as led:
        [stored] = list(led.events_since(0))
    assert stored.event.source == "proxy" and stored.event.input_tokens == 1200
    assert stored.cost.kind == "estimated"  # priced by the feed


def test_proxy_admin_commands_without_a_proxy_fail_clearly(tmp_path: Path) -> None:
    os.makedirs(os.environ["TOKENTOP_STATE_DIR"], exist_ok=True)
    from tokentop.core.feed.auth import load_or_create_token

    load_or_create_token(Path(os.environ["TOKENTOP_STATE_DIR"]))
    r = tokentop("proxy", "status", "--proxy", "http://127.0.0.1:9")
    assert r.returncode == 2 and "no proxy answers at http://127.0.0.1:9" in r.stderr


def test_proxy_listen_taken_is_a_clear_error(upstream, tmp_path: Path) -> None:
    import socket

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(1)
    port = s.getsockname()[1]
    try:
        config = write_config(tmp_path, upstream.url)
        r = tokentop("--config", str(config), "proxy", "--listen", f"127.0.0.1:{port}", "--feed", "http://127.0.0.1:9")
    finally:
        s.close()
    assert r.returncode == 2 and f"cannot listen on 127.0.0.1:{port}" in r.stderr


def test_proxy_section_in_config_is_validated(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text('[proxy]\nenabled = true\nmax_inflight = 0\n[proxy.upstreams]\nv1 = "https://x"\n')
    with pytest.raises(config_mod.ConfigError) as info:
        config_mod.load(path)
    text = str(info.value)
    assert "proxy.max_inflight must be greater than 0" in text
    assert "proxy.upstreams name 'v1' is reserved" in text
    path.write_text('[proxy]\nlisten = "127.0.0.1:9999"\n[proxy.upstreams]\nopenrouter = "https://openrouter.ai/api"\n')
    from tokentop.core.proxy.settings import ProxySettings

    s = ProxySettings.from_config(config_mod.load(path))
    assert s.listen == "127.0.0.1:9999"
    assert s.upstreams == {"openai": "https://api.openai.com", "anthropic": "https://api.anthropic.com",
                           "openrouter": "https://openrouter.ai/api"}


def test_ctrl_c_with_a_stream_in_flight_records_it_and_exits_cleanly(upstream, tmp_path: Path) -> None:
    import threading

    import httpx

    ledger = tmp_path / "embedded.db"
    config = write_config(tmp_path, upstream.url, feed={"listen": "127.0.0.1:0", "url": "http://127.0.0.1:9"},
                          ledger={"path": str(ledger)}, sources={"enabled": []})
    proc, url, _ = start_proxy(config)
    got_first = threading.Event()
    outcome: list = []

    def stream() -> None:
        body = {"model": "m", "max_tokens": 5, "stream": True, "messages": []}
        try:
            with httpx.stream("POST", url + "/v1/messages", json=body, timeout=20,
                              headers={"anthropic-version": "2023-06-01", "x-fake-chunk-delay": "0.5"}) as r:
                for _ in r.iter_raw():
                    got_first.set()
            outcome.append("complete")
        except httpx.HTTPError as exc:
            outcome.append(type(exc).__name__)

    t = threading.Thread(target=stream)
    t.start()
    assert got_first.wait(10)
    started = time.monotonic()
    code, err = stop(proc)
    t.join(10)
    assert code == 0, err
    assert time.monotonic() - started < 10
    assert outcome and outcome[0] != "complete"  # cut off by the shutdown, and the client was told
    assert "1 events delivered, 0 dropped" in err
    with Ledger(ledger) as led:
        [stored] = list(led.events_since(0))
    assert stored.event.status == "error" and stored.event.input_tokens > 0  # metered as what it was
