"""Discovery of log-only sessions: running `claude` processes matched by cwd and start time."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psutil

from tests.control._helpers import proc_status, wait_for

FAKE_AGENT = f"#!{sys.executable}\nimport time\nprint('ready', flush=True)\nwhile True:\n    time.sleep(0.05)\n"


def _start_fake_claude(bin_dir: Path, cwd: Path) -> subprocess.Popen:
    exe = bin_dir / "claude"
    if not exe.exists():
        exe.write_text(FAKE_AGENT)
        exe.chmod(0o755)
    p = subprocess.Popen([str(exe)], cwd=cwd, stdout=subprocess.PIPE, process_group=0)
    assert p.stdout.readline().strip() == b"ready"
    return p


def _auth(feed) -> dict[str, str]:
    return {"authorization": f"Bearer {feed.token}"}


def test_unique_match_is_planned_ambiguous_lists_candidates_and_acts_on_none(feed, tmp_path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    proj, other = tmp_path / "myproj", tmp_path / "elsewhere"
    proj.mkdir()
    other.mkdir()
    procs = [_start_fake_claude(bin_dir, proj), _start_fake_claude(bin_dir, other)]
    try:
        time.sleep(0.05)
        with httpx.Client(base_url=feed.address, headers=_auth(feed), timeout=10) as http:
            http.post("/v1/events", json={"agent": "claude-code", "session": "log-1", "project": "myproj",
                                          "input_tokens": 10})
            plan = http.get("/v1/sessions/log-1/plan").json()
            assert plan["can_act"] is True and plan["pid"] == procs[0].pid, plan
            assert "discovery" in plan["reason"]

            procs.append(_start_fake_claude(bin_dir, proj))  # a second claude in the same project...
            time.sleep(0.05)
            # ... that started before the session's first request
            http.post("/v1/events", json={"agent": "claude-code", "session": "log-2", "project": "myproj",
                                          "input_tokens": 10})
            plan = http.get("/v1/sessions/log-2/plan").json()
            assert plan["can_act"] is False
            assert sorted(c["pid"] for c in plan["candidates"]) == sorted([procs[0].pid, procs[2].pid])
            assert "pick one" in plan["reason"]
            # acting without a pick does nothing
            r = http.post("/v1/sessions/log-2/pause")
            assert r.status_code == 409 and r.json()["code"] == "no_process"
            assert all(proc_status(p.pid) != psutil.STATUS_STOPPED for p in procs)
            # a pid that is not a candidate is refused; a candidate is bound and acted on
            r = http.post("/v1/sessions/log-2/pause", json={"pid": procs[1].pid})
            assert r.status_code == 409 and r.json()["code"] == "not_candidate"
            r = http.post("/v1/sessions/log-2/pause", json={"pid": procs[2].pid})
            assert r.status_code == 200, r.text
            assert wait_for(lambda: proc_status(procs[2].pid) == psutil.STATUS_STOPPED)
            assert proc_status(procs[0].pid) != psutil.STATUS_STOPPED
            rec = feed.parts.control.registry.get("log-2")
            assert rec is not None and rec.source == "picked" and rec.identity.pid == procs[2].pid
    finally:
        for p in procs:
            try:
                os.killpg(p.pid, 18)
            except OSError:
                pass
            p.kill()
            p.wait()
            p.stdout.close()


def test_session_reported_by_a_registered_run_child_is_matched_to_it(feed, tmp_path, children):
    """`tokentop run -- claude`: Claude reports its own session id; the run's record is the candidate."""
    from tokentop.core.control.process import identify

    proj = tmp_path / "webapp"
    proj.mkdir()
    child = children.start(cwd=proj)
    ctl = feed.parts.control
    feed.run_coroutine(_register(ctl, "run-abc", identify(child.pid)))
    time.sleep(0.02)
    with httpx.Client(base_url=feed.address, headers=_auth(feed), timeout=10) as http:
        http.post("/v1/events", json={"agent": "claude-code", "session": "claude-uuid-1", "project": "webapp",
                                      "input_tokens": 10})
        plan = http.get("/v1/sessions/claude-uuid-1/plan").json()
        assert plan["can_act"] and plan["pid"] == child.pid, plan
        r = http.post("/v1/sessions/claude-uuid-1/pause", json={"pid": child.pid})
        assert r.status_code == 200, r.text
        assert wait_for(lambda: proc_status(child.pid) == psutil.STATUS_STOPPED)
        # a session of another project is not matched to it
        http.post("/v1/events", json={"agent": "claude-code", "session": "claude-uuid-2", "project": "other",
                                      "input_tokens": 10})
        plan = http.get("/v1/sessions/claude-uuid-2/plan").json()
        assert not plan["can_act"] and plan["candidates"] == []


async def _register(ctl, session, ident):
    ctl.register(session, ident, agent="claude-code", source="run")


def test_a_gemini_cli_session_from_its_logs_is_matched_to_the_running_gemini_process(feed, tmp_path):
    """Every agent tokentop reads has its process name: a `gemini-cli` session (as the Gemini CLI
    source names its events) finds the `gemini` process running in its project."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    exe = bin_dir / "gemini"
    exe.write_text(FAKE_AGENT)
    exe.chmod(0o755)
    proj = tmp_path / "webapp"
    proj.mkdir()
    p = subprocess.Popen([str(exe)], cwd=proj, stdout=subprocess.PIPE, process_group=0)
    try:
        assert p.stdout.readline().strip() == b"ready"
        time.sleep(0.05)
        with httpx.Client(base_url=feed.address, headers=_auth(feed), timeout=10) as http:
            http.post("/v1/events", json={"agent": "gemini-cli", "session": "g-1", "project": "webapp",
                                          "input_tokens": 10})
            plan = http.get("/v1/sessions/g-1/plan").json()
        assert plan["can_act"] is True and plan["pid"] == p.pid, plan
    finally:
        p.kill()
        p.wait()
        p.stdout.close()
