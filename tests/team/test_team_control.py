"""Remote pause/resume/kill of a real child process on another "host", through NATS request/reply."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from tests.team.helpers import host_runner, wait_for
from tests.team.natsserver import NatsServer
from tokentop.cli import main
from tokentop.core.control.port import Outcome, Plan, Target
from tokentop.core.team.control import create_secret

SIGNALS = {"pause": signal.SIGSTOP, "resume": signal.SIGCONT, "terminate": signal.SIGTERM, "kill": signal.SIGKILL}


class ChildController:
    """A small real Controller: it knows the processes it started (pid + create time) and signals
    only those, after checking the process is still the one it recorded."""

    def __init__(self) -> None:
        self.known: dict[str, tuple[int, float]] = {}
        self.acted: list[tuple[str, str]] = []

    def record(self, session: str, proc: subprocess.Popen[bytes]) -> None:
        self.known[session] = (proc.pid, psutil.Process(proc.pid).create_time())

    def plan(self, target: Target) -> Plan:
        if target.session not in self.known:
            return Plan(target, False, f"no process recorded for session {target.session}")
        pid, _ = self.known[target.session]
        return Plan(target, True, pid=pid)

    async def act(self, target: Target, action, *, pid=None, signal=None) -> Outcome:  # type: ignore[no-untyped-def]
        plan = self.plan(target)
        if not plan.can_act or plan.pid is None:
            return Outcome(target.session, action, False, plan.reason or "cannot act")
        recorded_pid, created = self.known[target.session]
        try:
            proc = psutil.Process(recorded_pid)
            if proc.create_time() != created or proc.uids().real != os.getuid() or recorded_pid <= 1:
                return Outcome(target.session, action, False, "the process is not the recorded one")
            proc.send_signal(SIGNALS[action])
        except psutil.NoSuchProcess:
            return Outcome(target.session, action, False, "the process has exited")
        self.acted.append((target.session, action))
        return Outcome(target.session, action, True, f"sent {SIGNALS[action].name} to {recorded_pid}")


def _secret(path: Path) -> Path:
    return create_secret(path)


def _config(tmp_path: Path, name: str, url: str, secret: Path | None) -> Path:
    p = tmp_path / f"{name}.toml"
    lines = ["[nats]", f'url = "{url}"', "control_timeout_s = 3"]
    if secret is not None:
        lines.append(f'control_secret_file = "{secret}"')
    p.write_text("\n".join(lines) + "\n")
    return p


@pytest.fixture
def child():  # type: ignore[no-untyped-def]
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    yield proc
    if proc.poll() is None:
        proc.kill()
    proc.wait()


def _status(proc: subprocess.Popen[bytes]) -> str:
    try:
        return psutil.Process(proc.pid).status()
    except psutil.NoSuchProcess:
        return "gone"


def test_remote_pause_resume_kill_with_the_secret_and_refused_without(
    tmp_path: Path, nats_server: NatsServer, child: subprocess.Popen[bytes], capsys: pytest.CaptureFixture[str]
) -> None:
    secret = _secret(tmp_path / "b" / "fleet.secret")
    b = host_runner(tmp_path, "host-b", nats_server.url,
                    nats={"allow_remote_control": True, "control_secret_file": str(secret)})
    controller = ChildController()
    controller.record("sess-1", child)
    b.parts.responder.controller_for = lambda origin: controller
    try:
        wait_for(lambda: b.parts.responder.answered >= 0 and _responding(nats_server.url, "host-b"),
                 what="host-b listening for control")
        # the requester is another machine: its own copy of the secret, its own config
        requester_secret = tmp_path / "a" / "fleet.secret"
        requester_secret.parent.mkdir()
        requester_secret.write_bytes(secret.read_bytes())
        os.chmod(requester_secret, 0o600)
        cfg_ok = _config(tmp_path, "a", nats_server.url, requester_secret)

        assert main(["pause", "sess-1", "--config", str(cfg_ok), "--host", "host-b"]) == 0
        wait_for(lambda: _status(child) == psutil.STATUS_STOPPED, what="child stopped")
        assert main(["resume", "sess-1", "--config", str(cfg_ok), "--host", "host-b"]) == 0
        wait_for(lambda: _status(child) != psutil.STATUS_STOPPED, what="child running again")

        # a wrong secret: the host refuses and says why; the process is untouched
        wrong = create_secret(tmp_path / "c" / "fleet.secret")
        cfg_wrong = _config(tmp_path, "c", nats_server.url, wrong)
        capsys.readouterr()
        assert main(["kill", "sess-1", "--config", str(cfg_wrong), "--host", "host-b"]) == 1
        err = capsys.readouterr().err
        assert "refused" in err and "not signed with the fleet secret" in err
        assert child.poll() is None
        assert secret.read_text().strip() not in err

        # no secret at all on the requester: nothing is sent, the reason names the setting
        cfg_none = _config(tmp_path, "d", nats_server.url, None)
        assert main(["kill", "sess-1", "--config", str(cfg_none), "--host", "host-b"]) == 1
        assert "control_secret_file" in capsys.readouterr().err
        assert child.poll() is None

        # a secret file others can read is not used
        os.chmod(requester_secret, 0o644)
        assert main(["kill", "sess-1", "--config", str(cfg_ok), "--host", "host-b"]) == 1
        assert "readable by others" in capsys.readouterr().err
        os.chmod(requester_secret, 0o600)

        # with the secret: the host applies its own rules and kills exactly the recorded process
        assert main(["kill", "sess-1", "--config", str(cfg_ok), "--host", "host-b"]) == 0
        assert child.wait(5) == -signal.SIGTERM
        assert controller.acted == [("sess-1", "pause"), ("sess-1", "resume"), ("sess-1", "terminate")]
        # an unknown session: the host's controller answers with its reason
        assert main(["pause", "nope", "--config", str(cfg_ok), "--host", "host-b"]) == 1
        assert "no process recorded for session nope" in capsys.readouterr().err
    finally:
        b.stop()


def test_host_with_remote_control_off_refuses_with_a_reason(
    tmp_path: Path, nats_server: NatsServer, child: subprocess.Popen[bytes], capsys: pytest.CaptureFixture[str]
) -> None:
    secret = _secret(tmp_path / "b" / "fleet.secret")
    b = host_runner(tmp_path, "host-b", nats_server.url, nats={"control_secret_file": str(secret)})
    controller = ChildController()
    controller.record("sess-1", child)
    b.parts.responder.controller_for = lambda origin: controller
    try:
        wait_for(lambda: _responding(nats_server.url, "host-b"), what="host-b listening")
        assert main(["pause", "sess-1", "--config", str(_config(tmp_path, "a", nats_server.url, secret)),
                     "--host", "host-b"]) == 1
        assert "remote control is off on this host" in capsys.readouterr().err
        assert _status(child) != psutil.STATUS_STOPPED and controller.acted == []
        # a host nobody runs: no responders, said plainly
        assert main(["pause", "sess-1", "--config", str(_config(tmp_path, "a", nats_server.url, secret)),
                     "--host", "host-z"]) == 1
        assert "host-z is not listening for control" in capsys.readouterr().err
    finally:
        b.stop()


def test_replayed_request_is_refused(tmp_path: Path, nats_server: NatsServer, child: subprocess.Popen[bytes]) -> None:
    import asyncio

    from tokentop.core.team.control import request, sign
    from tokentop.core.team.settings import NatsSettings

    secret_path = _secret(tmp_path / "b" / "fleet.secret")
    secret = secret_path.read_bytes().strip()
    b = host_runner(tmp_path, "host-b", nats_server.url,
                    nats={"allow_remote_control": True, "control_secret_file": str(secret_path)})
    controller = ChildController()
    controller.record("sess-1", child)
    b.parts.responder.controller_for = lambda origin: controller
    try:
        wait_for(lambda: _responding(nats_server.url, "host-b"), what="host-b listening")
        settings = NatsSettings(url=nats_server.url, control_timeout_s=3)
        body = {"v": 1, "host": "host-b", "session": "sess-1", "action": "pause", "pid": None, "signal": None,
                "ts": time.time(), "nonce": "n-1", "from": "test"}
        payload = sign(secret, body)
        first = asyncio.run(request(settings, "host-b", payload, secret, "sess-1", "pause"))
        again = asyncio.run(request(settings, "host-b", payload, secret, "sess-1", "pause"))
        assert first.ok and not again.ok and "replay" in again.message
        stale = sign(secret, {**body, "nonce": "n-2", "ts": time.time() - 3600})
        old = asyncio.run(request(settings, "host-b", stale, secret, "sess-1", "pause"))
        assert not old.ok and "stale" in old.message
        assert controller.acted == [("sess-1", "pause")]
    finally:
        b.stop()


def _responding(url: str, host: str) -> bool:
    import asyncio

    import nats

    async def go() -> bool:
        nc = await nats.connect(url)
        try:
            await nc.request(f"tokentop.control.{host}", b"{}", timeout=0.5)
            return True
        except Exception:
            return False
        finally:
            await nc.close()

    return asyncio.run(go())


def test_kill_modal_controller_plans_remote_sessions_and_acts_through_their_host(
    tmp_path: Path, nats_server: NatsServer, child: subprocess.Popen[bytes]
) -> None:
    import asyncio

    from tokentop import config as config_mod
    from tokentop.commands.team_cli import remote_controller

    secret = _secret(tmp_path / "b" / "fleet.secret")
    b = host_runner(tmp_path, "host-b", nats_server.url,
                    nats={"allow_remote_control": True, "control_secret_file": str(secret)})
    on_b = ChildController()
    on_b.record("sess-1", child)
    b.parts.responder.controller_for = lambda origin: on_b
    local = ChildController()  # this viewer's own host: nothing recorded
    cfg = config_mod.from_mapping({"feed": {"host_name": "viewer-host"},
                                   "nats": {"url": nats_server.url, "control_secret_file": str(secret)}})
    try:
        wait_for(lambda: _responding(nats_server.url, "host-b"), what="host-b listening")
        c = remote_controller(cfg, local=local)
        remote = Target(session="sess-1", host="host-b", pid=child.pid)
        plan = c.plan(remote)
        assert plan.can_act and "host-b decides" in (plan.reason or "")
        assert not c.plan(Target(session="sess-1", host="viewer-host")).can_act  # local: local rules
        assert not c.plan(Target(session="x", host=None)).can_act
        outcome = asyncio.run(c.act(remote, "pause", pid=child.pid))
        assert outcome.ok, outcome.message
        wait_for(lambda: _status(child) == psutil.STATUS_STOPPED, what="child stopped")
        assert on_b.acted == [("sess-1", "pause")] and local.acted == []
    finally:
        b.stop()


CHILD_POSTING_ITS_PID = r"""
import json, os, sys, time, urllib.request
body = json.dumps({"agent": "claude-code", "session": sys.argv[2], "model": "gpt-4o", "provider": "openai",
                   "input_tokens": 100, "output_tokens": 10, "pid": os.getpid()}).encode()
req = urllib.request.Request(sys.argv[1] + "/v1/events", data=body, headers={"content-type": "application/json"})
urllib.request.urlopen(req, timeout=5).read()
print("ready", flush=True)
while True:
    time.sleep(0.05)
"""


def test_remote_control_goes_through_the_hosts_own_control_layer_and_is_audited(
    tmp_path: Path, nats_server: NatsServer, capsys: pytest.CaptureFixture[str]
) -> None:
    """No test controller: host-b's real control layer (identity checks, signals, audit) acts."""
    
    secret = _secret(tmp_path / "b" / "fleet.secret")
    b = host_runner(tmp_path, "host-b", nats_server.url,
                    nats={"allow_remote_control": True, "control_secret_file": str(secret)})
    proc = subprocess.Popen([sys.executable, "-c", CHILD_POSTING_ITS_PID, b.address, "agent-7"],
                            stdout=subprocess.PIPE, process_group=0)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == b"ready"
        wait_for(lambda: _responding(nats_server.url, "host-b"), what="host-b listening")
        cfg = _config(tmp_path, "a", nats_server.url, secret)
        assert main(["pause", "agent-7", "--config", str(cfg), "--host", "host-b"]) == 0
        wait_for(lambda: _status(proc) == psutil.STATUS_STOPPED, what="paused by host-b's control layer")
        assert main(["resume", "agent-7", "--config", str(cfg), "--host", "host-b"]) == 0
        wait_for(lambda: _status(proc) != psutil.STATUS_STOPPED, what="resumed")
        outcomes = b.parts.control.outcomes
        assert [(o["origin"], o["ok"]) for o in outcomes][-2:] == [("nats:" + _requester(), True)] * 2
        # the host's own rules still decide: a session it has no process for is refused with its reason
        capsys.readouterr()
        assert main(["kill", "nobody", "--config", str(cfg), "--host", "host-b"]) == 1
        err = capsys.readouterr().err
        last = b.parts.control.outcomes[-1]
        assert last["ok"] is False and last["origin"].startswith("nats:") and last["message"] in err
        assert proc.poll() is None
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        if proc.stdout:
            proc.stdout.close()
        b.stop()


def _requester() -> str:
    import socket

    return socket.gethostname()
