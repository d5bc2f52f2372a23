"""``tokentop log``: the control audit log (every pause/resume/kill attempted, and its outcome)."""

from __future__ import annotations

import argparse
import json
import sys
import time

from tokentop.commands._common import fail, load_config


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("log", help="print the control audit log (pause/resume/kill actions and outcomes)")
    p.add_argument("--config", metavar="PATH", default=argparse.SUPPRESS, help="config file (env TOKENTOP_CONFIG)")
    p.add_argument("--session", default=None, help="only this session")
    p.add_argument("--limit", type=int, default=50, help="newest N records (default 50)")
    p.add_argument("--json", action="store_true", help="one JSON object per line")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from tokentop.core.control.audit import AuditLog
    from tokentop.core.ledger import Ledger, LedgerError

    cfg = load_config(args)
    if args.limit < 1:
        return fail("--limit must be at least 1")
    try:
        ledger = Ledger(cfg.ledger_path)
    except LedgerError as exc:
        return fail(str(exc))
    try:
        records = AuditLog(ledger).recent(args.limit, args.session)
    finally:
        ledger.close()
    if args.json:
        for rec in records:
            sys.stdout.write(json.dumps(rec.to_json(), separators=(",", ":")) + "\n")
        return 0
    if not records:
        print("no control actions recorded" + (f" for session {args.session}" if args.session else ""))
        return 0
    for rec in records:
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(rec.ts))
        result = "ok     " if rec.ok else f"REFUSED" if rec.code not in (None, "error") else "FAILED "
        pid = f"pid {rec.pid}" if rec.pid is not None else "no pid"
        sig = f" {rec.signal}" if rec.signal else ""
        print(f"{when}  {result}  {rec.action:<9}{sig:<6} {rec.session}  ({pid}, by {rec.origin})  {rec.message}")
    return 0
