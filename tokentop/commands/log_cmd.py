"""``tokentop log``: the control audit log (every pause/resume/kill and block/unblock at the API
attempted, and its outcome).

Reads the local ledger; with ``--feed URL``, asks that feed (``GET /v1/control/audit``, with the
local token), whose ledger may be elsewhere.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import TYPE_CHECKING

from tokentop.commands._common import add_feed_options, fail, load_config

if TYPE_CHECKING:
    from tokentop.config import Config
    from tokentop.core.control.audit import AuditRecord


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("log", help="print the control audit log (pause/resume/kill, block/unblock, and outcomes)")
    add_feed_options(p)  # --feed URL: that feed's log, through its control API
    p.add_argument("--session", default=None, help="only this session")
    p.add_argument("--limit", type=int, default=50, help="newest N records (default 50)")
    p.add_argument("--json", action="store_true", help="one JSON object per line")
    p.set_defaults(func=run)


class LogError(Exception):
    pass


def from_ledger(cfg: Config, limit: int, session: str | None) -> list[AuditRecord]:
    from tokentop.core.control.audit import AuditLog
    from tokentop.core.ledger import Ledger, LedgerError

    try:
        ledger = Ledger(cfg.ledger_path)
    except LedgerError as exc:
        raise LogError(str(exc)) from None
    try:
        return AuditLog(ledger).recent(limit, session)
    finally:
        ledger.close()


def from_feed(url: str, limit: int, session: str | None) -> list[AuditRecord]:
    from tokentop.config import state_dir
    from tokentop.core.control.audit import AuditRecord
    from tokentop.core.feed.auth import read_token, token_path
    from tokentop.core.feed.client import FeedClient, FeedUnavailable

    token = read_token(state_dir())
    if not token:
        raise LogError(f"no local token at {token_path(state_dir())}: the audit log of the feed at {url} needs it")
    params = {"limit": limit, **({"session": session} if session else {})}
    try:
        with FeedClient(url, token=token) as client:
            r = client.get("/v1/control/audit", **params)
    except ValueError as exc:
        raise LogError(str(exc)) from None
    except FeedUnavailable as exc:
        raise LogError(str(exc)) from None
    try:
        data = r.json()
    except ValueError:
        data = {}
    if r.status_code != 200 or not isinstance(data.get("audit"), list):
        raise LogError(f"the feed at {url} refused: {data.get('error') or f'HTTP {r.status_code}'}")
    return [AuditRecord.from_json(rec) for rec in data["audit"]]


def run(args: argparse.Namespace) -> int:
    cfg = load_config(args)
    if args.limit < 1:
        return fail("--limit must be at least 1")
    feed = getattr(args, "feed", None)
    try:
        records = from_feed(feed, args.limit, args.session) if feed else from_ledger(cfg, args.limit, args.session)
    except LogError as exc:
        return fail(str(exc))
    if args.json:
        for rec in records:
            sys.stdout.write(json.dumps(rec.to_json(), separators=(",", ":")) + "\n")
        return 0
    if not records:
        print("no control actions recorded" + (f" for session {args.session}" if args.session else ""))
        return 0
    for rec in records:
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(rec.ts))
        result = "ok     " if rec.ok else "REFUSED" if rec.code not in (None, "error") else "FAILED "
        pid = f"pid {rec.pid}" if rec.pid is not None else "at the API" if rec.action in ("block", "unblock") else "no pid"
        print(f"{when}  {result}  {rec.requested:<12} {rec.target}  ({pid}, by {rec.origin})  {rec.message}")
    return 0
