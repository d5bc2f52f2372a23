"""The control API on a real feed, acting on real child processes that emit events."""

from __future__ import annotations

import asyncio
import json
import os

import httpx
import psutil
import pytest

from tokentop.core.control.controller import build_controller
from tokentop.core.control.controller import LocalController, RemoteController, UnavailableController
from tokentop.core.control.port import Target
from tokentop.core.control.process import identify
from tests.control.helpers import proc_status, wait_for


def _auth(feed) -> dict[str, str]:
    return {"authorization": f"Bearer {feed.token}"}


def _bound(feed, session: str) -> bool:
    return feed.parts.control.registry.get(session) is not None


def test_event_pid_binds_session_then_pause_resume_kill_are_audited(feed, children):
    p = children.start(feed.address, "sess-a")
    assert wait_for(lambda: _bound(feed, "sess-a"))
    snap = feed.snapshot()
    row = snap.find("sessions", "sess-a")
    assert row is not None and row.pid == p.pid and "python" in (row.cmd or "")

    with httpx.Client(base_url=feed.address, headers=_auth(feed), timeout=10) as http:
        r = http.post("/v1/sessions/sess-a/pause")
        assert r.status_code == 200, r.text
        assert r.json()["ok"] is True and r.json()["pid"] == p.pid
        assert wait_for(lambda: proc_status(p.pid) == psutil.STATUS_STOPPED)
        assert feed.snapshot().find("sessions", "sess-a").state == "paused"

        r = http.post("/v1/sessions/sess-a/resume")
        assert r.status_code == 200 and r.json()["ok"]
        assert wait_for(lambda: proc_status(p.pid) in (psutil.STATUS_SLEEPING, psutil.STATUS_RUNNING))
        assert feed.snapshot().find("sessions", "sess-a").state != "paused"

        r = http.post("/v1/sessions/sess-a/kill")  # no signal: TERM first
        assert r.status_code == 200 and r.json()["ok"], r.text
        assert p.wait(5) == -15

        audit = http.get("/v1/control/audit").json()["audit"]
    assert [(a["action"], a["ok"], a["signal"]) for a in audit] == [
        ("pause", True, "STOP"), ("resume", True, "CONT"), ("terminate", True, "TERM"),
    ]
    assert all(a["pid"] == p.pid and a["session"] == "sess-a" for a in audit)
    outcomes = feed.snapshot().status["control"]["outcomes"]
    assert [o["action"] for o in outcomes] == ["pause", "resume", "terminate"]


def test_control_api_refuses_without_the_token(feed, children):
    p = children.start(feed.address, "sess-b")
    assert wait_for(lambda: _bound(feed, "sess-b"))
    with httpx.Client(base_url=feed.address, timeout=10) as http:
        for path in ("/v1/sessions/sess-b/pause", "/v1/sessions/sess-b/kill", "/v1/sessions/sess-b/resume"):
            r = http.post(path)
            assert r.status_code == 401, path
            assert "token" in r.json()["error"]
        r = http.post("/v1/sessions/sess-b/pause", headers={"authorization": "Bearer wrong"})
        assert r.status_code == 401
        r = http.post("/v1/sessions/sess-x/process", json={"pid": p.pid, "create_time": 1.0, "uid": 0})
        assert r.status_code == 401
        assert http.get("/v1/control/audit").status_code == 401
        assert http.get("/v1/sessions/sess-b/plan").status_code == 401
    assert proc_status(p.pid) != psutil.STATUS_STOPPED
    assert p.poll() is None


def test_run_registration_then_recycled_record_is_refused(feed, children):
    p = children.start()  # emits nothing: known only through registration
    ident = identify(p.pid)
    with httpx.Client(base_url=feed.address, headers=_auth(feed), timeout=10) as http:
        body = dict(ident.to_json(), agent="claude-code")
        r = http.post("/v1/sessions/run-1/process", json=body)
        assert r.status_code == 201, r.text
        r = http.post("/v1/sessions/run-2/process", json=dict(body, create_time=ident.create_time - 100))
        assert r.status_code == 409 and r.json()["code"] == "recycled"
        r = http.post("/v1/sessions/run-3/process", json=dict(body, pid="x"))
        assert r.status_code == 400 and "pid" in r.json()["error"]
        # a record that went stale (simulated: same pid, another start time) is refused at act time
        ctl = feed.parts.control
        rec = ctl.registry.get("run-1")
        import dataclasses

        stale = dataclasses.replace(rec.identity, create_time=rec.identity.create_time - 50)
        feed.run_coroutine(_put(ctl, "run-1", stale))
        r = http.post("/v1/sessions/run-1/pause")
        assert r.status_code == 409
        assert r.json()["code"] == "recycled"
        assert proc_status(p.pid) != psutil.STATUS_STOPPED
        audit = http.get("/v1/control/audit", params={"session": "run-1"}).json()["audit"]
        assert audit[-1]["ok"] is False and audit[-1]["code"] == "recycled"


async def _put(ctl, session, identity):
    ctl.register(session, identity, source="run")


def test_pid_1_via_events_is_never_bound_and_unknown_session_explains(feed):
    with httpx.Client(base_url=feed.address, headers=_auth(feed), timeout=10) as http:
        r = http.post("/v1/events", json={"agent": "a", "session": "evil", "pid": 1, "input_tokens": 5})
        assert r.status_code == 202
        assert not _bound(feed, "evil")
        r = http.post("/v1/sessions/evil/kill")
        assert r.status_code == 409
        assert r.json()["code"] == "no_process"
        assert "tokentop run" in r.json()["message"]
        r = http.post("/v1/sessions/evil/explode")
        assert r.status_code == 400 and r.json()["code"] == "bad_action"
        r = http.post("/v1/sessions/evil/kill", json={"signal": "STOP"})
        assert r.status_code == 400


def test_other_users_pid_on_events_is_not_bound(feed, children):
    import subprocess

    if os.getuid() != 0:
        pytest.skip("needs root to start a process of another user")
    other = subprocess.Popen(["sleep", "30"], user=65534, group=65534)
    try:
        with httpx.Client(base_url=feed.address, headers=_auth(feed), timeout=10) as http:
            http.post("/v1/events", json={"agent": "a", "session": "nobody-s", "pid": other.pid, "input_tokens": 5})
            assert feed.parts.control.registry.get("nobody-s") is None
            assert feed.snapshot().status["control"]["refused_event_pids"] == 1
            # nor can it be picked as a candidate
            r = http.post("/v1/sessions/nobody-s/pause", json={"pid": other.pid})
            assert r.status_code == 409 and r.json()["code"] == "not_candidate"
        assert proc_status(other.pid) != psutil.STATUS_STOPPED
    finally:
        other.kill()
        other.wait()


async def test_emitter_over_publish_socket_gets_control_messages_and_acks(feed):
    import websockets

    url = feed.address.replace("http://", "ws://") + "/v1/publish"
    async with websockets.connect(url) as ws:
        await ws.send(json.dumps({"type": "hello", "session": "inproc-1"}))
        hello = json.loads(await ws.recv())
        assert hello == {"type": "hello_ack", "session": "inproc-1", "control": True}

        async def call(action: str) -> httpx.Response:
            async with httpx.AsyncClient(base_url=feed.address, headers=_auth(feed), timeout=10) as http:
                return await http.post(f"/v1/sessions/inproc-1/{action}")

        for action, verb in (("pause", "pause"), ("resume", "resume"), ("kill", "stop")):
            pending = asyncio.create_task(call(action))
            msg = json.loads(await asyncio.wait_for(ws.recv(), 5))
            assert msg["type"] == "control" and msg["action"] == verb and msg["session"] == "inproc-1"
            await ws.send(json.dumps({"type": "control_ack", "id": msg["id"], "ok": True, "message": f"{verb}d"}))
            r = await pending
            assert r.status_code == 200 and r.json()["ok"], r.text
            noted = json.loads(await asyncio.wait_for(ws.recv(), 5))
            assert noted["type"] == "control_ack_received" and noted["known"] is True
    # socket closed: the session is no longer controllable
    ctl = feed.parts.control
    assert wait_for(lambda: not ctl.emitters.connected("inproc-1"))
    audit = ctl.audit.recent(10, "inproc-1")
    assert [(a.action, a.ok) for a in audit] == [("pause", True), ("resume", True), ("terminate", True)]


async def test_emitter_that_never_acks_times_out_as_failure(feed):
    import websockets

    feed.parts.control.settings.ack_timeout_s = 0.3
    url = feed.address.replace("http://", "ws://") + "/v1/publish"
    async with websockets.connect(url) as ws:
        await ws.send(json.dumps({"type": "hello", "session": "mute"}))
        await ws.recv()
        async with httpx.AsyncClient(base_url=feed.address, headers=_auth(feed), timeout=10) as http:
            r = await http.post("/v1/sessions/mute/pause")
        assert r.status_code == 409
        assert "within 0.3 s" in r.json()["message"]


def test_remote_and_local_controllers_act_on_a_real_process(feed, children):
    p = children.start(feed.address, "sess-c")
    assert wait_for(lambda: _bound(feed, "sess-c"))
    remote = build_controller(url=feed.address, token=feed.token)
    assert isinstance(remote, RemoteController)
    plan = remote.plan(Target("sess-c"))
    assert plan.can_act and plan.pid == p.pid
    outcome = asyncio.run(remote.act(Target("sess-c"), "pause"))
    assert outcome.ok, outcome.message
    assert wait_for(lambda: proc_status(p.pid) == psutil.STATUS_STOPPED)

    local = build_controller(runner=feed)
    assert isinstance(local, LocalController)
    assert local.plan(Target("sess-c")).pid == p.pid
    outcome = asyncio.run(local.act(Target("sess-c"), "resume"))
    assert outcome.ok, outcome.message
    assert wait_for(lambda: proc_status(p.pid) != psutil.STATUS_STOPPED)
    outcome = asyncio.run(local.act(Target("sess-c"), "kill"))
    assert outcome.ok and "KILL" in outcome.message
    assert p.wait(5) == -9
    assert not local.plan(Target("sess-c")).can_act  # gone now, and the plan says so


def test_remote_controller_without_token_explains(feed):
    ctl = build_controller(url=feed.address, token="")
    assert isinstance(ctl, UnavailableController)
    plan = ctl.plan(Target("x"))
    assert not plan.can_act and "token" in plan.reason
    wrong = RemoteController(feed.address, "wrong-token")
    plan = wrong.plan(Target("x"))
    assert not plan.can_act and "token" in plan.reason


def test_control_link_pauses_resumes_and_stops_an_in_process_agent(feed):
    from tokentop.control_link import ControlLink

    calls: list[str] = []
    link = ControlLink("inproc-link", feed=feed.address, on_pause=lambda: calls.append("pause"),
                       on_resume=lambda: calls.append("resume"), on_stop=lambda: calls.append("stop")).start()
    try:
        assert link.wait_connected(5)
        assert wait_for(lambda: feed.parts.control.emitters.connected("inproc-link"))
        assert feed.parts.control.plan("inproc-link").can_act
        with httpx.Client(base_url=feed.address, headers=_auth(feed), timeout=10) as http:
            r = http.post("/v1/sessions/inproc-link/pause")
            assert r.status_code == 200 and r.json()["ok"], r.text
            assert link.paused and link.wait_if_paused(0.05) is False  # the agent would block here
            assert feed.snapshot().status["control"]["emitters"] == 1
            r = http.post("/v1/sessions/inproc-link/resume")
            assert r.status_code == 200 and not link.paused and link.wait_if_paused(0.05)
            r = http.post("/v1/sessions/inproc-link/kill")
            assert r.status_code == 200 and "acknowledged by 1 of 1" in r.json()["message"]
        assert link.stop_requested and calls == ["pause", "resume", "stop"]
    finally:
        link.close()
    assert wait_for(lambda: not feed.parts.control.emitters.connected("inproc-link"))


def test_control_link_reports_a_failing_handler_as_refusal(feed):
    from tokentop.control_link import ControlLink

    def boom() -> None:
        raise RuntimeError("cannot pause mid-transaction")

    with ControlLink("inproc-fail", feed=feed.address, on_pause=boom) as link:
        assert link.wait_connected(5)
        with httpx.Client(base_url=feed.address, headers=_auth(feed), timeout=10) as http:
            r = http.post("/v1/sessions/inproc-fail/pause")
        assert r.status_code == 409
        assert "cannot pause mid-transaction" in r.json()["message"]
        assert not link.paused


def test_event_pid_from_inside_a_run_does_not_move_the_session_off_the_run_process(feed, children):
    leader = children.start()
    inner = children.start()  # stands for a subprocess of the agent that reports its own pid
    ctl = feed.parts.control
    feed.run_coroutine(_put(ctl, "run-9", identify(leader.pid)))
    with httpx.Client(base_url=feed.address, headers=_auth(feed), timeout=10) as http:
        assert http.post("/v1/events", json={"agent": "a", "session": "run-9", "pid": inner.pid}).status_code == 202
        assert ctl.registry.get("run-9").identity.pid == leader.pid
        http.post("/v1/events", json={"agent": "a", "session": "run-9", "pid": inner.pid, "id": "second"})
        assert ctl.registry.get("run-9").identity.pid == leader.pid
        # the run ends and removes its record (as `tokentop run` does): now the live pid on events binds
        leader.kill()
        leader.wait()
        assert http.delete("/v1/sessions/run-9/process").json() == {"session": "run-9", "removed": True}
        http.post("/v1/events", json={"agent": "a", "session": "run-9", "pid": inner.pid, "id": "third"})
    rec = ctl.registry.get("run-9")
    assert rec.identity.pid == inner.pid and rec.source == "event"
