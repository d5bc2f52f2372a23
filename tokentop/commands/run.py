"""``tokentop run [--agent NAME] [--session ID] -- CMD ARGS...``: start an agent under tokentop.

The child gets its own process group (the terminal's foreground group when run from one, so an
interactive agent keeps its keyboard), its pid/start time/uid/command are registered with the feed
(``POST /v1/sessions/{id}/process``), and its environment points its telemetry at the feed:
``TOKENTOP_AGENT`` / ``TOKENTOP_SESSION`` / ``TOKENTOP_FEED`` for SDK emitters, the ``OTEL_*`` and
``CLAUDE_CODE_ENABLE_TELEMETRY`` variables for Claude Code, and a ``-c otel.exporter=...`` override
for Codex. With no feed answering, it says so and still runs the command. SIGINT/SIGTERM/SIGHUP sent
to tokentop are forwarded to the child's group; the child's exit code is passed through
(128 + N when a signal N ended it).
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import uuid
from typing import Mapping, MutableMapping
from urllib.parse import quote

from tokentop.commands._common import fail, feed_url, load_config

FORWARDED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT)


def register(sub: argparse._SubParsersAction) -> None:
    from tokentop.commands._common import add_feed_options

    p = sub.add_parser(
        "run", help="run an agent under tokentop (registered, controllable, telemetry to the feed)",
        description="Run CMD in its own process group, registered with the feed so tokentop can pause or "
                    "stop it, with its telemetry pointed at the feed.",
    )
    add_feed_options(p)
    p.add_argument("--agent", default=None, help="agent name for its events (default: the command's name)")
    p.add_argument("--session", default=None, help="session id (default: run-<random>)")
    p.add_argument("--no-telemetry", action="store_true",
                   help="do not set the OTel variables / Codex override (TOKENTOP_* are always set)")
    p.add_argument("cmd", nargs=argparse.REMAINDER, metavar="-- CMD ARGS...")
    p.set_defaults(func=run)


def agent_name(cmd: list[str]) -> str:
    base = os.path.basename(cmd[0])
    return "claude-code" if base == "claude" else base


def telemetry_env(env: MutableMapping[str, str], url: str, session: str, agent: str) -> list[str]:
    """Point Claude Code (and any OTel SDK) at the feed's OTLP/HTTP receiver. Variables the user set
    are kept; returns notes about the ones that send telemetry elsewhere."""
    notes: list[str] = []
    wanted = {
        "CLAUDE_CODE_ENABLE_TELEMETRY": "1",
        "OTEL_METRICS_EXPORTER": "otlp",
        "OTEL_LOGS_EXPORTER": "otlp",
        "OTEL_EXPORTER_OTLP_PROTOCOL": "http/json",
        "OTEL_EXPORTER_OTLP_ENDPOINT": url,
        "OTEL_METRIC_EXPORT_INTERVAL": "10000",
        "OTEL_LOGS_EXPORT_INTERVAL": "5000",
    }
    for key, value in wanted.items():
        if key in env and env[key] != value:
            if key == "OTEL_EXPORTER_OTLP_ENDPOINT":
                notes.append(f"{key} is already set to {env[key]}; the agent's telemetry goes there, not to tokentop")
            continue
        env[key] = value
    attrs = f"tokentop.session={_attr(session)},tokentop.agent={_attr(agent)}"
    env["OTEL_RESOURCE_ATTRIBUTES"] = f"{env['OTEL_RESOURCE_ATTRIBUTES']},{attrs}" if env.get("OTEL_RESOURCE_ATTRIBUTES") else attrs
    return notes


def _attr(value: str) -> str:
    return quote(value, safe="")  # W3C baggage-style escaping for OTEL_RESOURCE_ATTRIBUTES


def codex_args(cmd: list[str], url: str) -> list[str]:
    """``codex ...`` → ``codex -c otel.exporter={otlp-http=...} ...`` (docs: formats.md §3.6)."""
    if os.path.basename(cmd[0]) != "codex" or any(a.startswith("otel.") for a in cmd[1:]):
        return cmd
    exporter = f'otel.exporter={{ otlp-http = {{ endpoint = "{url}/v1/logs", protocol = "json" }} }}'
    return [cmd[0], "-c", exporter, *cmd[1:]]


def child_env(base: Mapping[str, str], *, agent: str, session: str, url: str, telemetry: bool) -> tuple[dict[str, str], list[str]]:
    env = dict(base)
    env["TOKENTOP_AGENT"] = agent
    env["TOKENTOP_SESSION"] = session
    env["TOKENTOP_FEED"] = url
    notes: list[str] = []
    if telemetry and url.startswith(("http://", "https://")):
        notes = telemetry_env(env, url.rstrip("/"), session, agent)
    return env, notes


def _tty_fd() -> int | None:
    try:
        if os.isatty(0):
            return 0
    except OSError:
        pass
    return None


def _take_foreground(fd: int, pgid: int) -> None:
    old = signal.signal(signal.SIGTTOU, signal.SIG_IGN)
    try:
        os.tcsetpgrp(fd, pgid)
    except OSError:
        pass
    finally:
        signal.signal(signal.SIGTTOU, old)


def run(args: argparse.Namespace) -> int:
    from tokentop.config import state_dir
    from tokentop.core.control.process import identify, Refused
    from tokentop.core.feed.auth import read_token
    from tokentop.core.feed.client import FeedClient, FeedUnavailable

    cmd = list(args.cmd)
    if cmd and cmd[0] == "--":
        cmd = cmd[1:]
    if not cmd:
        return fail("nothing to run: tokentop run [--agent NAME] [--session ID] -- CMD ARGS...")
    cfg = load_config(args)
    url = feed_url(args, cfg)
    session = args.session or f"run-{uuid.uuid4().hex[:12]}"
    agent = args.agent or agent_name(cmd)
    token = read_token(state_dir())
    try:
        client: FeedClient | None = FeedClient(url, token=token)
    except ValueError as exc:
        return fail(str(exc))
    feed_up = client.healthy()
    if not feed_up:
        print(f"tokentop: no feed answers at {url}: running {cmd[0]} without registering it (tokentop cannot "
              "pause or stop it, and its telemetry is not counted); start `tokentop serve` first to change that",
              file=sys.stderr)
    env, notes = child_env(os.environ, agent=agent, session=session, url=url, telemetry=not args.no_telemetry)
    for note in notes:
        print(f"tokentop: note: {note}", file=sys.stderr)
    argv = cmd if args.no_telemetry or not url.startswith("http") else codex_args(cmd, url.rstrip("/"))

    tty = _tty_fd()
    popen_kw: dict = {}
    if tty is not None:
        def preexec() -> None:  # runs in the child: own group, and the terminal's foreground group
            os.setpgid(0, 0)
            _take_foreground(tty, os.getpgrp())

        popen_kw["preexec_fn"] = preexec
    else:
        popen_kw["process_group"] = 0
    try:
        child = subprocess.Popen(argv, env=env, **popen_kw)
    except OSError as exc:
        client.close()
        return fail(f"cannot run {cmd[0]}: {exc.strerror or exc}", 127 if isinstance(exc, FileNotFoundError) else 126)
    if tty is not None:
        _take_foreground(tty, child.pid)  # also from the parent: whichever runs first wins the race

    def forward(signum: int, _frame: object) -> None:
        try:
            os.killpg(child.pid, signum)
        except OSError:
            pass

    previous = {sig: signal.signal(sig, forward) for sig in FORWARDED}
    registered = False
    try:
        if feed_up:
            registered = _register(client, session, agent, child.pid, identify, Refused, FeedUnavailable)
        rc = _wait(child, tty)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if tty is not None:
            _take_foreground(tty, os.getpgrp())
        if registered:
            try:
                # the process is gone: drop its record (FeedClient has no delete helper)
                client._http.delete(f"/v1/sessions/{quote(session, safe='')}/process")
            except Exception:
                pass
        client.close()
    return 128 - rc if rc < 0 else rc


JOB_CONTROL_STOPS = (signal.SIGTSTP, signal.SIGTTIN, signal.SIGTTOU)


def _wait(child: subprocess.Popen, tty: int | None) -> int:
    """Wait for the child; from a terminal, also play the shell's part in job control.

    The child owns the terminal, so Ctrl-Z stops *its* group while the user's shell waits on
    tokentop: tokentop then takes the terminal back and stops itself, so the shell shows the job
    as stopped; on ``fg`` it hands the terminal to the child again and continues it. A SIGSTOP (a
    tokentop pause) is not job control: tokentop just keeps waiting.
    """
    if tty is None:
        return child.wait()
    while True:
        try:
            _, status = os.waitpid(child.pid, os.WUNTRACED)
        except ChildProcessError:
            return child.wait()
        if os.WIFSTOPPED(status):
            if os.WSTOPSIG(status) in JOB_CONTROL_STOPS:
                _take_foreground(tty, os.getpgrp())
                os.kill(os.getpid(), signal.SIGSTOP)  # the shell sees its job stop; `fg` continues us
                _take_foreground(tty, child.pid)
                try:
                    os.killpg(child.pid, signal.SIGCONT)
                except OSError:
                    pass
            continue
        child.returncode = os.waitstatus_to_exitcode(status)
        return child.returncode


def _register(client, session: str, agent: str, pid: int, identify, Refused, FeedUnavailable) -> bool:  # noqa: ANN001
    try:
        ident = identify(pid)
    except Refused as exc:
        print(f"tokentop: could not register the child: {exc.reason}", file=sys.stderr)
        return False
    body = dict(ident.to_json(), agent=agent)
    try:
        r = client.post(f"/v1/sessions/{quote(session, safe='')}/process", body)
    except FeedUnavailable as exc:
        print(f"tokentop: could not register with the feed: {exc}", file=sys.stderr)
        return False
    if r.status_code != 201:
        try:
            err = r.json().get("error")
        except ValueError:
            err = r.text
        print(f"tokentop: the feed refused the registration ({r.status_code}): {err}; the command runs unregistered",
              file=sys.stderr)
        return False
    return True
