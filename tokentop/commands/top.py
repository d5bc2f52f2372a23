"""``tokentop`` with no command: the live view, or one frame with ``--once``.

The view connects to the configured feed when its ``/healthz`` answers, else runs a feed embedded
in this process (a newcomer never has to start a daemon). ``--feed URL`` watches that feed only,
reconnecting when it restarts.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING

from tokentop.commands._common import fail, find_feed, load_config

if TYPE_CHECKING:
    from tokentop.core.control.port import Controller
    from tokentop.ui.feeds import WatchedFeed


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--once", action="store_true", help="print one snapshot and exit")
    parser.add_argument("--json", action="store_true", help="with --once: the snapshot as JSON (docs/api.md)")
    parser.add_argument("--plain", action="store_true", help="with --once: one plain-text frame (screen readers, pipes)")
    parser.add_argument("--view", choices=("agents", "sessions", "models", "projects", "hosts"), default=None,
                        help="view at start (default from config: agents)")
    parser.add_argument("--readonly", action="store_true", help="hide kill/pause actions")
    parser.add_argument("--refresh", type=float, metavar="SECONDS", default=None, help="seconds between redraws")
    parser.add_argument("--theme", default=None, help="theme name (default from config)")
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


def run(args: argparse.Namespace, *, controller: Controller | None = None) -> int:
    """The command; ``controller`` (the fleet view's, see ``team_cli.run_fleet_view``) replaces the
    one :func:`make_controller` would pick."""
    if getattr(args, "nats", None):
        return run_fleet(args)
    if args.once:
        data = current_snapshot_json(args)
        if args.plain:
            from tokentop.core.snapshot import Snapshot
            from tokentop.ui.plain import plain_frame

            cfg = load_config(args)
            view = args.view or cfg.ui.view
            sys.stdout.write(plain_frame(Snapshot.from_json(data), view=view, sort=cfg.ui.sort, reverse=cfg.ui.sort_reverse))
            return 0
        json.dump(data, sys.stdout, indent=None if not sys.stdout.isatty() else 2)
        sys.stdout.write("\n")
        return 0
    return run_live(args, controller=controller)


def run_live(args: argparse.Namespace, *, controller: Controller | None = None) -> int:
    """Run the Textual app on the configured/remote feed or an embedded one."""
    from tokentop.config import config_path
    from tokentop.ui.feeds import EmbeddedFeed, RemoteFeed

    cfg = load_config(args)
    runner = None
    source: WatchedFeed
    explicit = getattr(args, "feed", None)
    client = None if explicit else find_feed(args, cfg)
    if explicit:
        source = RemoteFeed(explicit)
    elif client is not None:
        url = client.url
        client.close()
        source = RemoteFeed(url)
    elif cfg.feed.embedded:
        from tokentop.core.feed.runner import FeedRunner
        from tokentop.core.ledger import LedgerError

        try:
            runner = FeedRunner(cfg)
            runner.start_in_thread(require_listen=False)
        except (LedgerError, PermissionError, ValueError) as exc:
            return fail(str(exc))
        source = EmbeddedFeed(runner)
    else:
        return fail(f"no feed answers at {cfg.feed_url} and feed.embedded is false; start one with: tokentop serve")
    from tokentop.ui.app import TokentopApp, default_screen_views

    app = TokentopApp(
        source,
        # the Providers screen reads an embedded feed's own ledger; otherwise it opens this machine's
        screen_views=default_screen_views(runner.ledger) if runner is not None else None,
        refresh_s=args.refresh or float(cfg.ui.refresh_s),
        controller=controller if controller is not None else make_controller(source),
        readonly=bool(args.readonly or cfg.ui.readonly),
        view=args.view or cfg.ui.view,
        sort=cfg.ui.sort,
        sort_reverse=cfg.ui.sort_reverse,
        theme=args.theme or cfg.ui.theme,
        daily_budget_usd=float(cfg.ui.daily_budget_usd),
        key_line=bool(cfg.ui.key_line),
        config_path=config_path(getattr(args, "config", None)),
    )
    from tokentop.ui.gc_tuning import tune_for_live_view

    tune_for_live_view()
    try:
        app.run()
    finally:
        if runner is not None:
            runner.stop()
    return 0


def make_controller(source: WatchedFeed) -> Controller:
    """The controller for this source: the embedded feed's control service, or the remote feed's
    control API with the local token (``tokentop.core.control.controller.build_controller``)."""
    from tokentop.core.control.controller import build_controller
    from tokentop.ui.feeds import EmbeddedFeed, RemoteFeed

    if isinstance(source, EmbeddedFeed):
        return build_controller(runner=source.runner)
    if isinstance(source, RemoteFeed):
        return build_controller(url=source.url)
    return build_controller()
