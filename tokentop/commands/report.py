"""``tokentop report``: totals from the ledger by day, model, agent, session or project.

Reads only the local ledger (no feed needed). Token fields use the event contract's semantics
(``input_tokens`` includes cache reads and writes). JSON shape: ``docs/api.md`` § Report.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import time
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from tokentop.commands._common import fail, load_config

if TYPE_CHECKING:
    from tokentop.core.ledger import Ledger

FIELDS = ("requests", "input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens",
          "reasoning_tokens", "usd", "unpriced_requests")
KEYS = {"day": "date", "model": "model", "agent": "agent", "session": "session", "project": "project"}


def register(sub: argparse._SubParsersAction) -> None:
    from tokentop.commands._common import add_config_option

    p = sub.add_parser("report", help="usage and cost from the ledger by day/model/agent/session/project")
    add_config_option(p)
    p.add_argument("--days", type=float, default=30.0, help="how many days back (default 30)")
    p.add_argument("--by", choices=tuple(KEYS), default="day", help="breakdown (default: day)")
    p.add_argument("--utc", action="store_true", help="days are UTC days (default: local time)")
    fmt = p.add_mutually_exclusive_group()
    fmt.add_argument("--json", action="store_true", help="JSON (docs/api.md)")
    fmt.add_argument("--csv", action="store_true", help="CSV: one row per breakdown key")
    p.add_argument("--billed", action="store_true",
                   help="billed truth from the provider usage APIs (OpenAI, Anthropic) instead of local estimates")
    from tokentop.commands.report_billed import add_billed_arguments

    add_billed_arguments(p)  # --provider, --offline (used with --billed)
    p.set_defaults(func=run)


def _dispatch_billed(args: argparse.Namespace) -> int:
    from tokentop.commands.report_billed import run_billed

    if args.by != "day" or args.utc:
        return fail("--by and --utc apply to the local report; --billed reports by day and by model, in UTC days")
    if args.days != int(args.days):
        return fail("--billed takes a whole number of days")
    args.days = int(args.days)
    return run_billed(args)


def _usd(pusd: int) -> float:
    return float((Decimal(pusd).scaleb(-12)).quantize(Decimal("0.000001")))


def build(ledger: Ledger, *, days: float, by: str, utc: bool = False, now: float | None = None) -> dict[str, Any]:
    """The report as the JSON object documented in docs/api.md."""
    now = time.time() if now is None else now
    since = now - days * 86400.0
    zone = "" if utc else ", 'localtime'"
    key_sql = {
        "day": f"date(ts, 'unixepoch'{zone})",
        "model": "COALESCE(model, '')", "agent": "agent", "session": "COALESCE(session, '')",
        "project": "COALESCE(project, '')",
    }[by]
    agg = ("COUNT(*), SUM(input_tokens), SUM(output_tokens), SUM(cache_read_tokens), SUM(cache_write_tokens), "
           "SUM(reasoning_tokens), SUM(COALESCE(cost_pusd, 0)), SUM(cost_pusd IS NULL)")

    def run(conn: Any) -> tuple[Any, list[Any]]:
        total = conn.execute(f"SELECT {agg} FROM events WHERE ts >= ? AND ts <= ?", (since, now)).fetchone()
        rows = conn.execute(
            f"SELECT {key_sql} AS k, {agg} FROM events WHERE ts >= ? AND ts <= ? GROUP BY k ORDER BY k",
            (since, now)).fetchall()
        return total, rows

    total, rows = ledger.call(run)

    def fields(r: Any) -> dict[str, Any]:
        vals = [int(v or 0) for v in r]
        d = dict(zip(FIELDS, vals))
        d["usd"] = _usd(vals[6])
        return d

    key = KEYS[by]
    out_rows = [{key: (r[0] if r[0] != "" else None), **fields(r[1:])} for r in rows]
    if by != "day":
        out_rows.sort(key=lambda r: (-r["usd"], -r["requests"]))
    out = {
        "since": _iso(since), "until": _iso(now), "days": days, "by": by, "timezone": "UTC" if utc else "local",
        "cost": "estimated from local logs and tokentop's prices unless an emitter provided it",
        "totals": fields(total),
        f"by_{by}": out_rows,
    }
    out.update(_retention(ledger, since))
    return out


def _retention(ledger: Any, since: float) -> dict[str, Any]:
    """``{"pruned": ...}`` when a retention deleted events inside the report's window (the report
    would otherwise show those days as if nothing had happened)."""
    from tokentop.core.retention import last_prune

    pruned = last_prune(ledger)
    if pruned is None or pruned.removed == 0 or pruned.cut <= since:
        return {}
    return {"pruned": {k: v for k, v in pruned.to_json().items() if k != "cut"}}


def _iso(ts: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))


def _text(report: dict[str, Any], out: Any) -> None:
    by = report["by"]
    key = KEYS[by]
    rows = report[f"by_{by}"]
    head = f"{key:<36} {'requests':>9} {'input':>14} {'output':>12} {'cache read':>14} {'cache write':>13} {'USD':>12}"
    print(f"tokentop report: last {report['days']:g} days by {by} ({report['timezone']} time; cost estimated)", file=out)
    print(head, file=out)
    for r in rows + [{key: "TOTAL", **report["totals"]}]:
        name = str(r[key] if r[key] is not None else "(none)")[:36]
        unpriced = f"  ({r['unpriced_requests']} UNPRICED)" if r["unpriced_requests"] else ""
        print(f"{name:<36} {r['requests']:>9,} {r['input_tokens']:>14,} {r['output_tokens']:>12,} "
              f"{r['cache_read_tokens']:>14,} {r['cache_write_tokens']:>13,} {r['usd']:>12,.2f}{unpriced}", file=out)
    pruned = report.get("pruned")
    if pruned:
        print(f"note: a feed {pruned['text']} on {pruned['at'][:10]}: this report has nothing before "
              f"{pruned['before'][:10]}", file=out)


def _chart(report: dict[str, Any]) -> None:
    try:
        import plotext as plt
    except ImportError:
        return
    by = report["by"]
    rows = report[f"by_{by}"][:30]
    if not rows:
        return
    key = KEYS[by]
    labels = [str(r[key] or "(none)")[-12:] for r in rows]
    try:
        fig = plt.figure
        fig.draw(fig.bar(labels, [r["usd"] for r in rows]))
        fig.show()
    except Exception:  # a chart is a nicety; never fail the report over it
        pass


def run(args: argparse.Namespace) -> int:
    from tokentop.core.ledger import Ledger, LedgerError

    if args.billed:
        return _dispatch_billed(args)
    if args.provider or args.offline:
        return fail("--provider and --offline go with --billed")
    if args.days <= 0:
        return fail("--days must be greater than 0")
    cfg = load_config(args)
    try:
        ledger = Ledger(cfg.ledger_path, retention_days=float(cfg.ledger.retention_days))
    except (LedgerError, PermissionError) as exc:
        return fail(str(exc))
    try:
        report = build(ledger, days=args.days, by=args.by, utc=args.utc)
    finally:
        ledger.close()
    out = sys.stdout
    if args.json:
        json.dump(report, out, indent=2 if out.isatty() else None)
        out.write("\n")
    elif args.csv:
        key = KEYS[args.by]
        w = csv.writer(out)
        w.writerow([key, *FIELDS])
        for r in report[f"by_{args.by}"]:
            w.writerow([r[key] if r[key] is not None else "", *(r[f] for f in FIELDS)])
    else:
        _text(report, out)
        if out.isatty():
            _chart(report)
    return 0
