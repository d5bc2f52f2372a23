"""The team-mode command line: ``serve --nats``, ``serve --nats --fleet`` and ``tokentop --nats``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.team.helpers import events, wait_for
from tests.team.natsserver import NatsServer, free_port
from tokentop.cli import main
from tokentop.core.feed.client import FeedClient


def _serve(tmp_path: Path, name: str, *args: str) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    env = dict(os.environ, TOKENTOP_DATA_DIR=str(tmp_path / name / "data"), TOKENTOP_STATE_DIR=str(tmp_path / name / "state"))
    proc = subprocess.Popen([sys.executable, "-m", "tokentop", "serve", "--listen", f"127.0.0.1:{port}", *args],
                            env=env, stderr=open(tmp_path / f"{name}.log", "wb"))
    url = f"http://127.0.0.1:{port}"
    client = FeedClient(url)
    wait_for(client.healthy, timeout=15, what=f"{name} serving")
    client.close()
    return proc, url


def test_serve_nats_publishes_and_the_fleet_is_watched_by_serve_fleet_and_tokentop_nats(
    tmp_path: Path, nats_server: NatsServer, capsys: pytest.CaptureFixture[str]
) -> None:
    host, host_url = _serve(tmp_path, "h1", "--nats", nats_server.url, "--host-name", "box-1")
    fleet, fleet_url = _serve(tmp_path, "fleet", "--nats", nats_server.url, "--fleet")
    try:
        with FeedClient(host_url) as client:
            assert client.post_events(events("cli", 9))["accepted"] == 9

        def fleet_sees() -> bool:
            with FeedClient(fleet_url) as c:
                return c.snapshot().totals.requests_today == 9
        wait_for(fleet_sees, timeout=15, what="serve --fleet to see the host's events")

        capsys.readouterr()
        assert main(["--nats", nats_server.url, "--once", "--json"]) == 0
        snap = json.loads(capsys.readouterr().out)
        assert snap["totals"]["requests_today"] == 9
        assert [r["name"] for r in snap["hosts"]] == ["box-1"]
        assert {r["host"] for r in snap["sessions"]} == {"box-1"}
        assert snap["status"]["fleet"]["hosts"]["box-1"]["events"] == 9
    finally:
        for p in (host, fleet):
            p.terminate()
            p.wait(10)


def test_serve_fleet_without_a_nats_url_says_what_is_missing(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["serve", "--fleet"]) == 2
    assert "--fleet needs a NATS server" in capsys.readouterr().err


def test_serve_nats_with_a_missing_credentials_file_fails_naming_it(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text(f'[nats]\ncreds_file = "{tmp_path}/nope.creds"\n')
    assert main(["--config", str(cfg), "serve", "--nats", "nats://127.0.0.1:9", "--listen", "127.0.0.1:0"]) == 2
    err = capsys.readouterr().err
    assert "nats.creds_file: no such file" in err and "nope.creds" in err


def test_events_accepted_while_nats_is_down_survive_a_host_crash(tmp_path: Path, nats_server: NatsServer) -> None:
    from tests.team.helpers import stream_ids, stream_state

    host, host_url = _serve(tmp_path, "h1", "--nats", nats_server.url, "--host-name", "box-1")
    try:
        with FeedClient(host_url) as client:
            assert client.post_events(events("c", 10))["accepted"] == 10
        wait_for(lambda: stream_state(nats_server.url).messages == 10, what="first events published")
        nats_server.stop()
        with FeedClient(host_url) as client:
            assert client.post_events(events("c", 40, start=10))["accepted"] == 40  # acknowledged locally
        host.kill()  # SIGKILL: no shutdown, no flush, nothing graceful
        host.wait(10)
        nats_server.start()
        host, host_url = _serve(tmp_path, "h1", "--nats", nats_server.url, "--host-name", "box-1")
        wait_for(lambda: stream_state(nats_server.url).messages == 50, timeout=20, what="the backlog after the crash")
        assert sorted(stream_ids(nats_server.url)) == sorted(f"c-{i}" for i in range(50))
    finally:
        host.terminate()
        host.wait(10)
