"""``tokentop pause|resume|kill SESSION``: control a session through the feed's control API.

Uses the local token from the state dir. When no feed answers, acts directly with the
session→process records kept in the ledger (processes started by ``tokentop run``).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from urllib.parse import quote

from tokentop.commands._common import fail, feed_url, load_config
from tokentop.config import Config

HELP = {
    "pause": "pause a session (SIGSTOP to its process group, or a control message to its emitter)",
    "resume": "resume a paused session (SIGCONT)",
    "kill": "end a session: SIGTERM, then SIGKILL after the grace ([control] grace_s); --signal KILL at once",
}


def register(sub: argparse._SubParsersAction) -> None:
    from tokentop.commands._common import add_feed_options

    for name in ("pause", "resume", "kill"):
        p = sub.add_parser(name, help=HELP[name], description=HELP[name])
        add_feed_options(p)
        p.add_argument("session", help="session id (as shown in the sessions view)")
        p.add_argument("--pid", type=int, default=None,
                       help="when discovery found several candidate processes: the one to act on")
        if name == "kill":
            p.add_argument("--signal", default=None, metavar="SIG", help="TERM (default), INT, HUP, QUIT or KILL")
        from tokentop.commands.team_cli import add_remote_control_arguments

        add_remote_control_arguments(p)  # --nats URL --host NAME: a session on another host (team mode)
        p.set_defaults(func=run, control_action=name)


def _report(data: dict, code: int) -> int:
    ok = bool(data.get("ok"))
    message = data.get("message") or data.get("error") or "no answer"
    stream = sys.stdout if ok else sys.stderr
    print(("" if ok else "tokentop: refused: ") + str(message), file=stream)
    return 0 if ok else code


def run(args: argparse.Namespace) -> int:
    from tokentop.config import state_dir
    from tokentop.core.feed.auth import read_token, token_path
    from tokentop.core.feed.client import FeedClient, FeedUnavailable

    cfg = load_config(args)
    url = feed_url(args, cfg)
    action = args.control_action
    signal = getattr(args, "signal", None)
    from tokentop.commands.team_cli import wants_remote

    if wants_remote(args):
        return _remote(args, cfg, action, signal)
    body: dict = {"origin": "cli"}
    if args.pid is not None:
        body["pid"] = args.pid
    if signal is not None:
        body["signal"] = signal
    token = read_token(state_dir())
    try:
        probe = FeedClient(url)
    except ValueError as exc:
        return fail(str(exc))
    with probe:
        healthy = probe.healthy()
    if not healthy:
        print(f"tokentop: no feed answers at {url}; acting directly with the process records in the ledger",
              file=sys.stderr)
        return _act_offline(cfg, args.session, action, args.pid, signal)
    if not token:
        return fail(f"no local token at {token_path(state_dir())}: the feed at {url} cannot be controlled without it")
    path = f"/v1/sessions/{quote(args.session, safe='')}"
    try:
        with FeedClient(url, token=token, timeout=max(30.0, float(cfg.control.grace_s) + 10)) as client:
            r = client.post(f"{path}/{action}", body)
            try:
                data = r.json()
            except ValueError:
                data = {"error": r.text or f"HTTP {r.status_code}"}
            if not data.get("ok") and data.get("code") == "no_process":
                plan = client.get(f"{path}/plan").json()
                if plan.get("candidates"):
                    _print_candidates(plan["candidates"], args.session, action)
                    return 1
    except FeedUnavailable as exc:
        return fail(str(exc))
    return _report(data, 1)


def _remote(args: argparse.Namespace, cfg, action: str, signal: str | None) -> int:  # noqa: ANN001
    """Team mode (--nats/--host): the session's host applies its own rules (docs/team.md)."""
    from tokentop.commands.team_cli import run_remote_control

    if action == "kill":
        from tokentop.core.control.process import Refused, parse_signal

        try:
            name, _ = parse_signal(signal, "TERM")
        except Refused as exc:
            return fail(exc.reason)
        action, signal = ("kill", "KILL") if name == "KILL" else ("terminate", name)
    return run_remote_control(args, cfg, action, signal)


def _print_candidates(cands: list, session: str, action: str) -> None:
    print(f"tokentop: {len(cands)} running processes could be session {session}; acting on none. Pick one:",
          file=sys.stderr)
    for c in cands:
        print(f"  pid {c['pid']:>7}  cwd {c.get('cwd') or '?'}  {c.get('cmd', '')[:80]}", file=sys.stderr)
    print(f"  then: tokentop {action} {session} --pid PID", file=sys.stderr)


def _act_offline(cfg: Config, session: str, action: str, pid: int | None, signal: str | None) -> int:
    from tokentop.core.feed.runner import FeedRunner
    from tokentop.core.ledger import LedgerError

    try:
        runner = FeedRunner(cfg)
    except (LedgerError, PermissionError, ValueError) as exc:
        return fail(str(exc))
    try:
        ctl = runner.parts.control
        assert ctl is not None  # a host feed has the control part, with the [control] settings
        port_action = action
        if action == "kill":
            from tokentop.core.control.process import Refused, parse_signal

            try:
                name, _ = parse_signal(signal, "TERM")
            except Refused as exc:
                return fail(exc.reason)
            port_action, signal = ("kill", "KILL") if name == "KILL" else ("terminate", name)
        if pid is None and port_action != "resume":
            plan = ctl.plan(session)
            if not plan.can_act and plan.candidates:
                _print_candidates([{"pid": c.pid, "cwd": c.cwd, "cmd": c.cmd} for c in plan.candidates], session, action)
                return 1
        result = asyncio.run(ctl.act(session, port_action, pid=pid, signal=signal, origin="cli"))
        return _report(result.to_json(), 1)
    finally:
        runner.ledger.close()
