"""``tokentop config init | path | show``."""

from __future__ import annotations

import argparse
import sys

import tomli_w

from tokentop import config as config_mod
from tokentop.commands._common import add_config_option, fail, load_config
from tokentop.core.private import private_dir


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("config", help="create, locate or show the config file")
    add_config_option(p)
    p.add_argument("action", choices=("init", "path", "show"))
    p.add_argument("--force", action="store_true", help="init: overwrite an existing file")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    path = config_mod.config_path(getattr(args, "config", None))
    if args.action == "path":
        print(path)
        return 0
    if args.action == "init":
        if path.exists() and not args.force:
            return fail(f"{path} exists; use --force to overwrite it")
        private_dir(path.parent)
        path.write_text(config_mod.default_file_text(), encoding="utf-8")
        print(f"wrote {path}")
        return 0
    cfg = load_config(args)
    sys.stdout.write(f"# {path}{'' if path.exists() else ' (not present: defaults)'}\n")
    sys.stdout.write(tomli_w.dumps(cfg.as_dict()))
    return 0
