"""`tokentop run -- claude`: Claude Code reports its own session ids over OTLP; the resource attribute
`tokentop.session` (set by `tokentop run`) binds them to the run's process, so the row is controllable."""

from __future__ import annotations

import time

import httpx
import psutil

from tests.control.helpers import proc_status, wait_for
from tokentop.core.control.process import identify


def kv(key: str, value) -> dict:
    return {"key": key, "value": {"stringValue": str(value)}}


def claude_otlp(session: str, run_session: str | None, request_id: str) -> dict:
    resource = [kv("service.name", "claude-code")]
    if run_session:
        resource.append(kv("tokentop.session", run_session))
    record = {"timeUnixNano": str(int(time.time() * 1e9)), "body": {"stringValue": "claude_code.api_request"},
              "attributes": [kv("event.name", "api_request"), kv("session.id", session),
                             kv("model", "claude-sonnet-4-5"), kv("input_tokens", "10"), kv("output_tokens", "5"),
                             kv("request_id", request_id)]}
    return {"resourceLogs": [{"resource": {"attributes": resource},
                              "scopeLogs": [{"scope": {"name": "com.anthropic.claude_code.events"},
                                             "logRecords": [record]}]}]}


def test_claude_session_inside_tokentop_run_binds_to_the_runs_process(feed, children) -> None:
    p = children.start()  # the "claude" process `tokentop run` started: known only through registration
    auth = {"authorization": f"Bearer {feed.token}"}
    with httpx.Client(base_url=feed.address, timeout=10) as http:
        body = dict(identify(p.pid).to_json(), agent="claude-code")
        assert http.post("/v1/sessions/tt-run-1/process", json=body, headers=auth).status_code == 201
        assert http.post("/v1/logs", json=claude_otlp("claude-sess-9", "tt-run-1", "req_a1")).status_code == 200
        ctl = feed.parts.control
        assert wait_for(lambda: ctl.registry.get("claude-sess-9") is not None)
        assert ctl.registry.get("claude-sess-9").identity == ctl.registry.get("tt-run-1").identity
        row = feed.snapshot().find("sessions", "claude-sess-9")
        assert row is not None and row.pid == p.pid
        # and it acts on the right process
        r = http.post("/v1/sessions/claude-sess-9/pause", headers=auth)
        assert r.status_code == 200, r.text
        assert wait_for(lambda: proc_status(p.pid) == psutil.STATUS_STOPPED)
        assert http.post("/v1/sessions/claude-sess-9/resume", headers=auth).status_code == 200


def test_without_the_run_attribute_nothing_is_bound(feed, children) -> None:
    p = children.start()
    auth = {"authorization": f"Bearer {feed.token}"}
    with httpx.Client(base_url=feed.address, timeout=10) as http:
        body = dict(identify(p.pid).to_json(), agent="claude-code")
        assert http.post("/v1/sessions/tt-run-2/process", json=body, headers=auth).status_code == 201
        assert http.post("/v1/logs", json=claude_otlp("claude-sess-x", None, "req_b1")).status_code == 200
        assert http.post("/v1/logs", json=claude_otlp("claude-sess-y", "no-such-run", "req_b2")).status_code == 200
    ctl = feed.parts.control
    time.sleep(0.3)  # give a wrong binding the chance to appear
    assert ctl.registry.get("claude-sess-x") is None
    assert ctl.registry.get("claude-sess-y") is None
