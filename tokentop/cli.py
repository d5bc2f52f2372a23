"""Argument parsing and dispatch only; each command lives in ``tokentop/commands/<name>.py``.

A command module defines ``register(subparsers)`` which adds its parser and sets
``func=run`` with ``run(args) -> int``. Adding a command is one file plus one entry in
:data:`COMMANDS`. With no command, ``tokentop`` runs the live view (``commands/top.py``).
"""

from __future__ import annotations

import sys

from tokentop import __version__

# Not ``typing.TYPE_CHECKING``: ``tokentop statusline`` runs after every Claude Code message and
# must not pay for importing typing or argparse (docs/limits.md, "Speed").
TYPE_CHECKING = False
if TYPE_CHECKING:
    import argparse
    from collections.abc import Sequence

#: Command modules under ``tokentop.commands``, in the order ``--help`` lists them.
COMMANDS: list[str] = [
    "serve", "proxy", "emit", "report", "import_cmd", "run", "control_cmd", "log_cmd", "check", "config_cmd", "demo",
    "doctor", "setup", "statusline",
]


def add_common(parser: argparse.ArgumentParser, *, sub: bool = True) -> None:
    """``--config`` and ``--feed`` (:func:`tokentop.commands._common.add_feed_options`): for every
    command that talks to a feed. Commands that only read the config or the ledger take
    :func:`~tokentop.commands._common.add_config_option` instead."""
    from tokentop.commands._common import add_feed_options

    add_feed_options(parser, sub=sub)


def build_parser() -> argparse.ArgumentParser:
    import argparse
    import importlib

    from tokentop.commands import top

    parser = argparse.ArgumentParser(
        prog="tokentop",
        description="top for AI token spend: live burn rate per agent, model and session.",
    )
    parser.add_argument("--version", action="version", version=f"tokentop {__version__}")
    add_common(parser, sub=False)
    top.add_arguments(parser)
    parser.set_defaults(func=top.run)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        module = importlib.import_module(f"tokentop.commands.{name}")
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    if args_list[:1] == ["statusline"] and not {"-h", "--help"} & set(args_list):
        # Claude Code runs this after every message: skip the parser and every other command's
        # imports (docs/limits.md, "Speed")
        from tokentop.commands.statusline import main as statusline_main

        return statusline_main(args_list[1:])
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    sys.exit(main())
