"""``tokentop kill|pause|resume SESSION --nats URL``: control a session on another host of the fleet.

``kill`` asks for a polite stop (SIGTERM, action ``terminate``); ``kill --force`` for SIGKILL.
The session's host decides with its own rules and answers; see docs/team.md for the trust model.
"""

from __future__ import annotations

import argparse

from tokentop.commands._common import fail, load_config

HELP = {
    "kill": "stop a session's process (SIGTERM; --force: SIGKILL) on its host",
    "pause": "pause a session's process (SIGSTOP) on its host",
    "resume": "resume a paused session's process (SIGCONT) on its host",
}


def register(sub: argparse._SubParsersAction) -> None:
    from tokentop.cli import add_common
    from tokentop.commands.team_cli import add_control_arguments

    for name, text in HELP.items():
        p = sub.add_parser(name, help=text)
        add_common(p)
        add_control_arguments(p)
        if name == "kill":
            p.add_argument("--force", action="store_true", help="SIGKILL instead of SIGTERM")
        p.set_defaults(func=run, control_action=name)


def run(args: argparse.Namespace) -> int:
    from tokentop.commands.team_cli import nats_url, run_remote_control

    cfg = load_config(args)
    action = args.control_action
    if action == "kill":
        action = "kill" if args.force else "terminate"
    if not nats_url(args, cfg):
        return fail("control of local sessions comes with the control layer; for another host pass --nats URL")
    return run_remote_control(args, cfg, action)
