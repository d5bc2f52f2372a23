"""``tokentop`` with no command: the live view, or one frame with ``--once``."""

from __future__ import annotations

import argparse
import json
import sys

from tokentop.commands._common import find_feed, load_config


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--once", action="store_true", help="print one snapshot and exit")
    parser.add_argument("--json", action="store_true", help="with --once: the snapshot as JSON (docs/api.md)")
    parser.add_argument("--nats", metavar="URL", help="watch the whole fleet: every host's events from NATS JetStream")


def current_snapshot_json(args: argparse.Namespace) -> dict:
    """The snapshot from the configured feed, or from an embedded one when none answers."""
    cfg = load_config(args)
    client = find_feed(args, cfg)
    if client is not None:
        with client:
            return client.snapshot_json()
    from tokentop.core.feed.runner import FeedRunner

    runner = FeedRunner(cfg)
    try:
        return runner.service.snapshot().to_json(cfg.feed.max_stream_rows)
    finally:
        runner.ledger.close()


def run_fleet(args: argparse.Namespace) -> int:
    """``--nats URL``: an embedded fleet feed, then the usual view of it (team mode)."""
    from tokentop.commands.team_cli import run_fleet_view

    return run_fleet_view(args, load_config(args), run)


def run(args: argparse.Namespace) -> int:
    if getattr(args, "nats", None):
        return run_fleet(args)
    if args.once:
        data = current_snapshot_json(args)
        json.dump(data, sys.stdout, indent=None if not sys.stdout.isatty() else 2)
        sys.stdout.write("\n")
        return 0
    print("tokentop: the live view is not built yet; try --once --json", file=sys.stderr)
    return 2
