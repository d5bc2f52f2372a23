"""``tokentop serve``: run the feed in the foreground."""

from __future__ import annotations

import argparse
import asyncio
import sys

from tokentop.commands._common import fail, load_config


def register(sub: argparse._SubParsersAction) -> None:
    from tokentop.commands._common import add_config_option

    p = sub.add_parser("serve", help="run the feed (HTTP/WebSocket ingest, snapshots, OTLP) in the foreground")
    add_config_option(p)
    p.add_argument("--listen", metavar="ADDR", help="HOST:PORT or unix:/path (default from config: 127.0.0.1:7411)")
    p.add_argument("--host-name", metavar="NAME", help="this host's name on events (default: hostname)")
    from tokentop.commands.team_cli import add_serve_arguments

    add_serve_arguments(p)  # --nats URL, --fleet (team mode)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from tokentop.core.feed.runner import FeedRunner, ListenError
    from tokentop.core.ledger import LedgerError

    cfg = load_config(args)
    try:
        from tokentop.commands.team_cli import build_serve_runner

        runner = build_serve_runner(args, cfg) or FeedRunner(cfg, listen=args.listen, host_name=args.host_name)
    except (LedgerError, PermissionError, ValueError) as exc:
        return fail(str(exc))
    listen = runner.listen
    host, _, port = listen.rpartition(":")
    if not listen.startswith("unix:") and host not in ("127.0.0.1", "localhost", "::1", "[::1]"):
        print(f"tokentop: warning: listening on {listen}, not loopback: anyone who can reach it can post events "
              "(requests must name an IP address, the listen name or one of [feed] allowed_hosts)", file=sys.stderr)
    print(f"tokentop feed on {listen} (ledger {runner.ledger.path}, replayed {runner.replayed} events); Ctrl-C stops",
          file=sys.stderr)
    try:
        asyncio.run(runner.serve(require_listen=True))
    except (ListenError, ValueError) as exc:
        return fail(f"{exc} (is another tokentop serve running? try --listen 127.0.0.1:0)")
    except KeyboardInterrupt:
        pass
    finally:
        runner.stop()  # its stop callbacks (a fleet view's ledger lock), then the ledger
    return 0
