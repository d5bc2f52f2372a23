"""The real CLI: `tokentop run` registers its child; `tokentop pause|resume|kill` and `tokentop log`."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import psutil

from tests.control.helpers import proc_status, wait_for

#: An "agent": posts one event for the session tokentop run gave it, then sleeps.
AGENT = r"""
import json, os, time, urllib.request
body = json.dumps({"agent": os.environ["TOKENTOP_AGENT"], "session": os.environ["TOKENTOP_SESSION"],
                   "model": "gpt-4o", "input_tokens": 100, "output_tokens": 10}).encode()
urllib.request.urlopen(urllib.request.Request(os.environ["TOKENTOP_FEED"] + "/v1/events", data=body,
                       headers={"content-type": "application/json"}), timeout=5).read()
assert os.environ["OTEL_EXPORTER_OTLP_ENDPOINT"] == os.environ["TOKENTOP_FEED"]
assert "tokentop.session=" + os.environ["TOKENTOP_SESSION"] in os.environ["OTEL_RESOURCE_ATTRIBUTES"]
assert os.getpgrp() == os.getpid()
print("agent ready", flush=True)
while True:
    time.sleep(0.05)
"""


def tokentop(*args: str, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "tokentop", *args], capture_output=True, text=True, timeout=60,
                          stdin=subprocess.DEVNULL, **kw)


def start_run(feed, session: str) -> subprocess.Popen:
    p = subprocess.Popen(
        [sys.executable, "-m", "tokentop", "run", "--feed", feed.address, "--agent", "my-agent", "--session", session,
         "--", sys.executable, "-c", AGENT],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True,
    )
    assert p.stdout.readline().strip() == "agent ready", p.stderr.read() if p.poll() is not None else ""
    return p


def test_run_registers_child_and_cli_pauses_resumes_kills_it(feed):
    p = start_run(feed, "cli-1")
    try:
        ctl = feed.parts.control
        assert wait_for(lambda: ctl.registry.get("cli-1") is not None)
        rec = ctl.registry.get("cli-1")
        agent_pid = rec.identity.pid
        assert agent_pid != p.pid and psutil.Process(agent_pid).ppid() == p.pid  # the command, not tokentop
        assert rec.agent == "my-agent" and rec.source == "run"
        row = feed.snapshot().find("sessions", "cli-1")
        assert row is not None and row.pid == agent_pid and row.agent == "my-agent"

        r = tokentop("pause", "--feed", feed.address, "cli-1")
        assert r.returncode == 0, r.stderr
        assert "STOP sent to process group" in r.stdout
        assert wait_for(lambda: proc_status(agent_pid) == psutil.STATUS_STOPPED)
        r = tokentop("resume", "--feed", feed.address, "cli-1")
        assert r.returncode == 0, r.stderr
        assert wait_for(lambda: proc_status(agent_pid) != psutil.STATUS_STOPPED)
        r = tokentop("kill", "--feed", feed.address, "cli-1")
        assert r.returncode == 0, r.stderr
        assert p.wait(10) == 128 + 15  # the child's end (SIGTERM) passed through as 143
        # the run removed its record once the child ended
        assert wait_for(lambda: ctl.registry.get("cli-1") is None)

        r = tokentop("pause", "--feed", feed.address, "cli-1")
        assert r.returncode == 1 and "refused" in r.stderr

        cfg_file = feed.token_dir.parent / "log.toml"
        cfg_file.write_text(f'[ledger]\npath = "{feed.ledger.path}"\n')
        log = tokentop("log", "--config", str(cfg_file))
        assert log.returncode == 0, log.stderr
        lines = [line for line in log.stdout.splitlines() if "cli-1" in line]
        assert len(lines) == 4
        assert "ok" in lines[0] and "pause" in lines[0] and "by cli" in lines[0]
        assert "kill (TERM)" in lines[2] and "terminate" not in lines[2]  # as the user asked for it
        assert "REFUSED" in lines[3]
    finally:
        if p.poll() is None:
            p.kill()
        p.wait()


def test_run_forwards_sigterm_to_the_child_group(feed):
    p = start_run(feed, "cli-2")
    try:
        ctl = feed.parts.control
        assert wait_for(lambda: ctl.registry.get("cli-2") is not None)
        agent_pid = ctl.registry.get("cli-2").identity.pid
        p.send_signal(signal.SIGTERM)
        assert p.wait(10) == 143
        assert wait_for(lambda: not psutil.pid_exists(agent_pid) or proc_status(agent_pid) == psutil.STATUS_ZOMBIE)
    finally:
        if p.poll() is None:
            p.kill()
        p.wait()


def test_run_without_feed_says_so_and_passes_the_exit_code():
    r = tokentop("run", "--feed", "http://127.0.0.1:9", "--", sys.executable, "-c",
                 "import os, sys; print(os.environ['TOKENTOP_SESSION']); sys.exit(7)")
    assert r.returncode == 7
    assert r.stdout.startswith("run-")
    assert "no feed answers at http://127.0.0.1:9" in r.stderr
    r = tokentop("run", "--feed", "http://127.0.0.1:9", "--", "/nonexistent/agent")
    assert r.returncode == 127 and "cannot run" in r.stderr
    r = tokentop("run", "--feed", "http://127.0.0.1:9")
    assert r.returncode == 2 and "nothing to run" in r.stderr


def test_cli_kill_without_feed_acts_on_the_ledger_record(tmp_path, children):
    """No feed running: `tokentop kill` uses the process record a feed persisted earlier."""
    from tokentop import config as config_mod
    from tokentop.core.control.process import identify
    from tokentop.core.feed.runner import FeedRunner

    db = tmp_path / "solo.db"
    cfg_file = tmp_path / "cfg.toml"
    cfg_file.write_text(f'[ledger]\npath = "{db}"\n[control]\ngrace_s = 0.5\n')
    child = children.start(ignore_term=True)
    runner = FeedRunner(config_mod.load(cfg_file), listen="127.0.0.1:0")
    runner.parts.control.register("solo", identify(child.pid), agent="x")
    runner.ledger.close()
    r = tokentop("kill", "--config", str(cfg_file), "--feed", "http://127.0.0.1:9", "solo")
    assert r.returncode == 0, r.stderr
    assert "acting directly" in r.stderr and "SIGKILL sent" in r.stdout
    assert child.wait(5) == -9


def test_run_from_a_terminal_gives_the_child_the_foreground_so_it_can_read_keys():
    """An interactive agent in its own process group must still own the terminal (no SIGTTIN stop)."""
    import pty
    import select

    agent = ("import os, sys; print(f'fg {os.tcgetpgrp(0) == os.getpgrp()} {os.getpgrp() == os.getpid()}', flush=True);"
             " print('got', sys.stdin.readline().strip(), flush=True)")
    pid, fd = pty.fork()
    if pid == 0:  # child: a session leader whose controlling terminal is the pty
        os.execv(sys.executable, [sys.executable, "-m", "tokentop", "run", "--feed", "http://127.0.0.1:9", "--",
                                  sys.executable, "-c", agent])
    out, sent = b"", False
    deadline = time.monotonic() + 20
    try:
        while time.monotonic() < deadline and b"got typed" not in out:
            ready, _, _ = select.select([fd], [], [], 0.1)
            if ready:
                try:
                    chunk = os.read(fd, 4096)
                except OSError:
                    break
                if not chunk:
                    break
                out += chunk
            if b"fg " in out and b"\n" in out.split(b"fg ", 1)[1] and not sent:
                os.write(fd, b"typed\n")
                sent = True
    finally:
        if b"got typed" not in out:
            os.kill(pid, signal.SIGKILL)  # a child stopped by SIGTTIN would hang tokentop run forever
        _, status = os.waitpid(pid, 0)
        os.close(fd)
    text = out.decode(errors="replace")
    assert "fg True True" in text  # own group, and it is the terminal's foreground group
    assert "got typed" in text
    assert os.waitstatus_to_exitcode(status) == 0


def test_control_over_a_unix_socket_feed(tmp_path, children):
    from tokentop import config as config_mod
    from tokentop.core.control.controller import build_controller
    from tokentop.core.control.port import Target
    from tokentop.core.control.process import identify
    from tokentop.core.feed.runner import FeedRunner

    sock = tmp_path / "feed.sock"
    cfg = config_mod.from_mapping({"ledger": {"path": str(tmp_path / "u.db")}})
    runner = FeedRunner(cfg, listen=f"unix:{sock}").start_in_thread(require_listen=True)
    try:
        child = children.start()
        runner.run_coroutine(_register(runner.parts.control, "unix-s", identify(child.pid)))
        r = tokentop("pause", "--feed", f"unix:{sock}", "unix-s")
        assert r.returncode == 0, r.stderr
        assert wait_for(lambda: proc_status(child.pid) == psutil.STATUS_STOPPED)
        import asyncio

        ctl = build_controller(url=f"unix:{sock}", token=runner.token)
        assert ctl.plan(Target("unix-s")).pid == child.pid
        assert asyncio.run(ctl.act(Target("unix-s"), "resume")).ok
        assert wait_for(lambda: proc_status(child.pid) != psutil.STATUS_STOPPED)
    finally:
        runner.stop()


async def _register(ctl, session, ident):
    ctl.register(session, ident, source="run")


def test_run_from_a_terminal_handles_ctrl_z_like_a_shell_job_and_ignores_a_pause():
    import pty
    import select

    agent = "import sys; print('ready', flush=True); print('got', sys.stdin.readline().strip(), flush=True)"
    pid, fd = pty.fork()
    if pid == 0:
        os.execv(sys.executable, [sys.executable, "-m", "tokentop", "run", "--feed", "http://127.0.0.1:9", "--",
                                  sys.executable, "-c", agent])
    out = b""

    def pump(until: bytes, timeout: float = 15.0) -> None:
        nonlocal out
        end = time.monotonic() + timeout
        while time.monotonic() < end and until not in out:
            if select.select([fd], [], [], 0.05)[0]:
                try:
                    out += os.read(fd, 4096)
                except OSError:
                    return

    done = False
    try:
        pump(b"ready")
        agent_pid = psutil.Process(pid).children()[0].pid
        # a tokentop pause (SIGSTOP to the agent's group) is not job control: tokentop keeps waiting
        os.killpg(agent_pid, signal.SIGSTOP)
        time.sleep(0.2)
        assert os.waitpid(pid, os.WNOHANG | os.WUNTRACED) == (0, 0)
        os.killpg(agent_pid, signal.SIGCONT)
        # Ctrl-Z stops the agent's group; tokentop takes the terminal back and stops itself as the job
        os.write(fd, b"\x1a")
        status, end = 0, time.monotonic() + 10
        while time.monotonic() < end:
            got, status = os.waitpid(pid, os.WNOHANG | os.WUNTRACED)
            if got:
                break
            time.sleep(0.02)
        assert os.WIFSTOPPED(status), "tokentop did not stop with its job: the shell would hang"
        os.kill(pid, signal.SIGCONT)  # what the shell's `fg` does
        time.sleep(0.2)
        os.write(fd, b"after\n")
        pump(b"got after")
        assert b"got after" in out, out
        _, status = os.waitpid(pid, 0)
        done = True
        assert os.waitstatus_to_exitcode(status) == 0
    finally:
        if not done:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        os.close(fd)
