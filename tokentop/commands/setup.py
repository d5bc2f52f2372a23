"""``tokentop setup claude-statusline [--undo]``: make ``tokentop statusline`` Claude Code's statusLine.

The rules (backup, chaining an existing command, atomic valid JSON, exact undo) are in
:mod:`tokentop.core.limits.install` and docs/limits.md.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path

from tokentop.commands._common import add_config_option, fail
from tokentop.commands.statusline import LAUNCHER


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("setup", help="install integrations: claude-statusline (Claude Code's quota figures)")
    add_config_option(p)
    what = p.add_subparsers(dest="what", metavar="WHAT", required=True)
    s = what.add_parser(
        "claude-statusline",
        help="make `tokentop statusline` Claude Code's statusLine (keeps and chains an existing one)",
        description="Edit Claude Code's settings.json ($CLAUDE_CONFIG_DIR or ~/.claude) so that Claude Code runs "
                    "`tokentop statusline`, which hands its 5-hour and weekly quota figures to tokentop and prints "
                    "one status line. The file is backed up first; an existing statusLine command keeps running "
                    "after ours. --undo puts it back.",
    )
    s.add_argument("--undo", action="store_true", help="put the statusLine back as it was")
    s.add_argument("--claude-dir", metavar="DIR", help="Claude Code's config dir (default: $CLAUDE_CONFIG_DIR or ~/.claude)")
    add_config_option(s)  # given: the installed statusline reads its feed address from that config file
    s.add_argument("--json", action="store_true", help="print what was done as JSON")
    s.set_defaults(func=run)


def tokentop_command(config: str | None = None) -> str:
    """How Claude Code should start ``tokentop statusline``: this Python (absolute, so Claude Code's
    PATH does not matter) running the statusline's launcher directly — ``tokentop statusline``
    without the console script's wrapper, whose ``import re`` alone costs as much as the rest of
    the command (docs/limits.md, "Speed")."""
    base = f"{shlex.quote(sys.executable)} -P -c {shlex.quote(LAUNCHER)}"
    if config:
        base += f" --config {shlex.quote(str(Path(config).expanduser().resolve()))}"
    return base


def run(args: argparse.Namespace) -> int:
    from tokentop.config import state_dir
    from tokentop.core.limits.install import InstallError, claude_dir, install, undo

    directory = claude_dir(args.claude_dir)
    try:
        if args.undo:
            done = undo(directory, state_dir())
            if args.json:
                print(json.dumps({"undone": True, "settings": str(done.settings), "how": done.how,
                                  "backup": str(done.backup) if done.backup else None}))
                return 0
            print({
                "exact": f"restored {done.settings} exactly as it was before tokentop's install",
                "removed": f"removed {done.settings} (it did not exist before tokentop's install)",
                "entry": f"put the statusLine of {done.settings} back as it was (the file was edited since the "
                         f"install; those edits are kept)",
                "left": f"the statusLine in {done.settings} is no longer tokentop's: left as it is",
            }[done.how])
            if done.backup is not None:
                print(f"the backup made at install is kept: {done.backup}")
            return 0
        result = install(directory, state_dir(), command=tokentop_command(getattr(args, "config", None)))
    except InstallError as exc:
        return fail(str(exc), 1)
    except OSError as exc:
        return fail(f"cannot write Claude Code's settings: {exc}", 1)
    if args.json:
        print(json.dumps({"settings": str(result.settings), "command": result.command, "chained": result.chained,
                          "backup": str(result.backup) if result.backup else None, "already": result.already}))
        return 0
    if result.already:
        print(f"tokentop statusline is already Claude Code's statusLine in {result.settings}")
        return 0
    print(f"Claude Code's statusLine is now: {result.command}")
    if result.chained:
        print(f"your previous statusLine keeps running; its output shows after tokentop's line: {result.chained}")
    if result.backup is not None:
        print(f"backup of the previous settings: {result.backup}")
    print("It takes effect with Claude Code's next message. Undo: tokentop setup claude-statusline --undo")
    return 0
