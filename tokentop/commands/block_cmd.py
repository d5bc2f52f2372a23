"""``tokentop block|unblock SESSION | --agent NAME | --model NAME | --project NAME | --all``: the
budget stop by hand, through the feed's control API (``POST /v1/block`` / ``/v1/unblock``) with
the local token. The metering proxy that enforces the feed's blocks (``[proxy] enabled``, or
``tokentop proxy`` sending to that feed) then refuses the target's next requests with the
provider's own 429. ``tokentop block`` with no target lists what is blocked now.

With no feed answering, the block (or lift) is written to the ledger and takes effect when the
feed starts. Every block and unblock is audited (``tokentop log``). ``tokentop proxy block`` is a
different thing: a block held by one running proxy only.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from typing import Any

from tokentop.commands._common import add_feed_options, fail, feed_url, load_config

SCOPE_FLAGS = ("agent", "model", "project")
HELP = {
    "block": "block a session (or --agent/--model/--project/--all) at the API: the metering proxy refuses its "
             "requests with the provider's 429 until unblocked; no target: list the blocks",
    "unblock": "lift a block at the API (a rule's block: until the rule clears)",
}


def register(sub: argparse._SubParsersAction) -> None:
    for name in ("block", "unblock"):
        p = sub.add_parser(name, help=HELP[name], description=HELP[name] + ". See docs/proxy.md, \"Budget stop\".")
        add_feed_options(p)
        p.add_argument("session", nargs="?", help="session id (as shown in the sessions view)")
        for flag in SCOPE_FLAGS:
            p.add_argument(f"--{flag}", metavar="NAME", help=f"the {flag} instead of a session")
        p.add_argument("--all", action="store_true", help="every request (global)")
        if name == "block":
            p.add_argument("--message", help="what the refused agent's error says (default: who blocked it, and when)")
            p.add_argument("--for", dest="for_s", type=float, metavar="SECONDS", help="lift the block by itself after this long")
        p.add_argument("--json", action="store_true", help="print the feed's answer as JSON")
        p.set_defaults(func=run, block_action=name)


def target_of(args: argparse.Namespace) -> tuple[str, str] | None | str:
    """(scope, key); ``None`` for no target at all; a string: what is wrong."""
    given = [(f, getattr(args, f)) for f in SCOPE_FLAGS if getattr(args, f)]
    if args.session:
        given.insert(0, ("session", args.session))
    if args.all:
        given.append(("global", ""))
    if len(given) > 1:
        return "name one target: SESSION, --agent, --model, --project or --all"
    return given[0] if given else None


def run(args: argparse.Namespace) -> int:
    from tokentop.config import state_dir
    from tokentop.core.feed.auth import read_token, token_path
    from tokentop.core.feed.client import FeedClient, FeedUnavailable

    cfg = load_config(args)
    url = feed_url(args, cfg)
    action = args.block_action
    target = target_of(args)
    if isinstance(target, str):
        return fail(target)
    if target is None and action == "unblock":
        return fail("name what to unblock: SESSION, --agent NAME, --model NAME, --project NAME or --all")
    for_s = getattr(args, "for_s", None)
    if for_s is not None and for_s <= 0:
        return fail("--for must be a positive number of seconds")
    try:
        probe = FeedClient(url)
    except ValueError as exc:
        return fail(str(exc))
    with probe:
        healthy = probe.healthy()
    if not healthy:
        return _offline(cfg, url, action, target, args)
    token = read_token(state_dir())
    if not token:
        return fail(f"no local token at {token_path(state_dir())}: the feed at {url} cannot be controlled without it")
    try:
        with FeedClient(url, token=token) as client:
            if target is None:
                r = client.get("/v1/blocks")
            else:
                body: dict[str, Any] = {"scope": target[0], "key": target[1], "origin": "cli"}
                if getattr(args, "message", None):
                    body["message"] = args.message
                if for_s:
                    body["for_s"] = for_s
                r = client.post(f"/v1/{action}", body)
    except FeedUnavailable as exc:
        return fail(str(exc))
    try:
        data = r.json()
    except ValueError:
        data = {"error": r.text or f"HTTP {r.status_code}"}
    if target is None:
        if r.status_code != 200:
            return fail(f"the feed at {url} refused: {data.get('error') or r.status_code}")
        return _list(data.get("blocks") or [], args.json)
    return _report(data, args.json)


def _report(data: dict[str, Any], as_json: bool) -> int:
    if as_json:
        json.dump(data, sys.stdout)
        sys.stdout.write("\n")
    ok = bool(data.get("ok"))
    if not as_json:
        message = data.get("message") or data.get("error") or "no answer"
        print(("" if ok else "tokentop: ") + str(message), file=sys.stdout if ok else sys.stderr)
    return 0 if ok else 1


def _list(blocks: list[dict[str, Any]], as_json: bool) -> int:
    if as_json:
        json.dump({"blocks": blocks}, sys.stdout)
        sys.stdout.write("\n")
        return 0
    if not blocks:
        print("nothing is blocked at the API")
        return 0
    for b in blocks:
        what = "every request" if b.get("scope") == "global" else f"{b.get('scope')} {b.get('key')}"
        since = time.strftime("%H:%M", time.localtime(b["since"])) if isinstance(b.get("since"), (int, float)) else "?"
        print(f"{what}: rule {b.get('rule')} (by {b.get('origin')}, since {since}): {b.get('message')}")
        print(f"  to lift it: {b.get('how_to_lift')}")
    return 0


def _offline(cfg: Any, url: str, action: str, target: tuple[str, str] | None, args: argparse.Namespace) -> int:
    """No feed answers: the ledger's blocks (listing), or a block / lift written there for the feed's
    next start."""
    from tokentop.core.feed.runner import FeedRunner
    from tokentop.core.ledger import LedgerError

    try:
        runner = FeedRunner(cfg)
    except (LedgerError, PermissionError, ValueError) as exc:
        return fail(str(exc))
    try:
        ctl = runner.parts.control
        assert ctl is not None  # a host feed has the control part
        if target is None:
            print(f"tokentop: no feed answers at {url}; the blocks kept in the ledger (a person's; the rules' are "
                  "decided by the running feed):", file=sys.stderr)
            return _list([b.to_json() for b in ctl.blocks.active()], args.json)
        print(f"tokentop: no feed answers at {url}; writing to the ledger: takes effect when the feed starts",
              file=sys.stderr)
        scope, key = target
        if action == "block":
            until = time.time() + args.for_s if getattr(args, "for_s", None) else None
            result = asyncio.run(ctl.block(scope, key, origin="cli", message=getattr(args, "message", None), until=until))
        else:
            result = asyncio.run(ctl.unblock(scope, key, origin="cli"))
        return _report(result.to_json(), args.json)
    finally:
        runner.ledger.close()
