"""``tokentop emit``: post one event to the feed (scripts, hooks, smoke tests)."""

from __future__ import annotations

import argparse
import json
import sys

from tokentop.commands._common import fail, feed_url, load_config


def register(sub: argparse._SubParsersAction) -> None:
    from tokentop.commands._common import add_feed_options

    p = sub.add_parser("emit", help="post one event to the feed")
    add_feed_options(p)
    p.add_argument("--agent", default=None)
    p.add_argument("--model", default=None)
    p.add_argument("--session", default=None)
    p.add_argument("--project", default=None)
    p.add_argument("--provider", default=None)
    p.add_argument("--input", type=int, default=0, dest="input_tokens", help="input tokens (including cache)")
    p.add_argument("--output", type=int, default=0, dest="output_tokens", help="output tokens (including reasoning)")
    p.add_argument("--cache-read", type=int, default=0, dest="cache_read_tokens")
    p.add_argument("--cache-write", type=int, default=0, dest="cache_write_tokens")
    p.add_argument("--reasoning", type=int, default=0, dest="reasoning_tokens")
    p.add_argument("--cost", type=float, default=None, dest="cost_usd", help="USD, if the emitter knows it")
    p.add_argument("--id", default=None, help="idempotency key")
    p.add_argument("--ts", default=None, help="RFC 3339 or epoch seconds (default: now)")
    p.add_argument("--status", choices=("ok", "error"), default=None)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from tokentop.core.feed.client import FeedClient, FeedUnavailable

    cfg = load_config(args)
    event = {
        k: getattr(args, k)
        for k in ("id", "ts", "agent", "session", "project", "provider", "model", "input_tokens", "output_tokens",
                  "cache_read_tokens", "cache_write_tokens", "reasoning_tokens", "cost_usd", "status")
        if getattr(args, k) not in (None, 0)
    }
    event["source"] = "emit"
    url = feed_url(args, cfg)
    try:
        with FeedClient(url) as client:
            reply = client.post_events([event])
    except FeedUnavailable as exc:
        return fail(f"{exc}\n  start one with: tokentop serve   (or run the live view: tokentop)")
    status = reply.pop("status_code")
    print(json.dumps(reply))
    if status >= 400 or reply.get("rejected"):
        for err in reply.get("errors", []):
            print(f"tokentop: rejected: {err['error']}", file=sys.stderr)
        return 1
    return 0
