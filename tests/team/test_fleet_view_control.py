"""``tokentop --nats URL``: the live view's controller reaches each session's own host.

End to end through the command line: the fleet view is built by ``main``, only ``App.run`` is
replaced (to hand the constructed app to the test instead of taking over the terminal); its
controller then pauses a real child process on another "host" over NATS, and asks this host's own
feed about this host's sessions.
"""

from __future__ import annotations

import asyncio
import subprocess
from pathlib import Path

import psutil
import pytest

from tests.team.helpers import host_runner, wait_for
from tests.team.natsserver import NatsServer
from tests.team.test_team_control import ChildController, _responding, _status, child  # noqa: F401 - fixture
from tokentop.cli import main
from tokentop.core.control.port import Target
from tokentop.core.team.control import create_secret


def test_fleet_views_controller_acts_on_other_hosts_over_nats_and_on_this_host_through_its_feed(
    tmp_path: Path, nats_server: NatsServer, feed, child: subprocess.Popen[bytes],  # noqa: ANN001, F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from tokentop.ui.app import TokentopApp

    secret = create_secret(tmp_path / "fleet.secret")
    b = host_runner(tmp_path, "host-b", nats_server.url,
                    nats={"allow_remote_control": True, "control_secret_file": str(secret)})
    on_b = ChildController()
    on_b.record("sess-1", child)
    b.parts.responder.controller_for = lambda origin: on_b
    # this machine: its own feed (the `feed` fixture, host "test-host") and a fleet view of NATS
    cfg = tmp_path / "viewer.toml"
    cfg.write_text(f'[feed]\nhost_name = "test-host"\nurl = "{feed.address}"\n'
                   f'[nats]\ncontrol_secret_file = "{secret}"\ncontrol_timeout_s = 3\n')
    apps: list[TokentopApp] = []
    monkeypatch.setattr(TokentopApp, "run", lambda self, *a, **k: apps.append(self))
    try:
        assert main(["--config", str(cfg), "--nats", nats_server.url]) == 0
        (app,) = apps
        controller = app.controller
        wait_for(lambda: _responding(nats_server.url, "host-b"), what="host-b listening for control")

        remote = Target(session="sess-1", host="host-b", pid=child.pid, agent="claude-code")
        plan = controller.plan(remote)
        assert plan.can_act and "host-b decides" in (plan.reason or "")
        outcome = asyncio.run(controller.act(remote, "pause", pid=child.pid))
        assert outcome.ok, outcome.message
        wait_for(lambda: _status(child) == psutil.STATUS_STOPPED, what="child stopped by host-b")
        assert on_b.acted == [("sess-1", "pause")]
        outcome = asyncio.run(controller.act(remote, "resume", pid=child.pid))
        assert outcome.ok, outcome.message
        wait_for(lambda: _status(child) != psutil.STATUS_STOPPED, what="child running again")

        # a host nobody serves: the request really went to NATS, which found no responder
        gone = asyncio.run(controller.act(Target(session="s9", host="box-9"), "pause"))
        assert not gone.ok and "box-9 is not listening for control" in gone.message

        # this host's session: asked of this host's feed (its control API, local token), not NATS
        local = controller.plan(Target(session="not-a-session", host="test-host"))
        assert not local.can_act
        assert "no pid was reported" in (local.reason or ""), local.reason  # the feed's control layer said so
    finally:
        b.stop()


def test_without_a_fleet_secret_the_modal_says_so_before_anything_is_confirmed(tmp_path: Path) -> None:
    from tokentop import config as config_mod
    from tokentop.commands.team_cli import fleet_view_controller

    cfg = config_mod.from_mapping({"feed": {"host_name": "viewer-host"}})
    controller = fleet_view_controller(cfg, "nats://127.0.0.1:9", "http://127.0.0.1:9")
    plan = controller.plan(Target(session="s1", host="box-2", pid=42))
    assert not plan.can_act
    assert plan.reason == "cannot ask host box-2: no fleet secret file configured ([nats] control_secret_file)"
    loose = create_secret(tmp_path / "fleet.secret")
    loose.chmod(0o644)
    cfg = config_mod.from_mapping({"nats": {"control_secret_file": str(loose)}})
    plan = fleet_view_controller(cfg, "nats://127.0.0.1:9", "http://127.0.0.1:9").plan(Target(session="s1", host="box-2"))
    assert not plan.can_act and "readable by others" in (plan.reason or "")
