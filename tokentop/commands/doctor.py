"""``tokentop doctor [--json] [--days N]``: what tokentop sees on this machine, and what is wrong.

Reports the config file (path, valid?), the feed (which URL, does it answer, what its sources are
doing), the ledger (path, schema version, size, requests per source) and every agent store tokentop
knows (``formats.py``): found or not, where, files and records read, the newest record, problems and
errors. Works with no feed running: the stores and the ledger are only read (the ledger through a
read-only connection; no cursor moves, nothing is imported). Exit status 0, or 1 when something is
broken (an invalid config, an unreadable ledger, a source that failed).
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import sys
import time
from pathlib import Path
from typing import Any, Final

from tokentop import config as config_mod

#: Default read window: recent enough to be quick on a large history.
DEFAULT_DAYS: Final = 1.0


def register(sub: argparse._SubParsersAction) -> None:
    from tokentop.cli import add_common

    p = sub.add_parser("doctor", help="check the config, feed, ledger and every agent store tokentop can read")
    add_common(p)
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.add_argument("--days", type=float, default=DEFAULT_DAYS,
                   help=f"read records written within this many days (default {DEFAULT_DAYS:g})")
    p.set_defaults(func=run)


# -- the parts ----------------------------------------------------------------------------------------

def check_config(args: argparse.Namespace) -> tuple[dict[str, Any], config_mod.Config]:
    """The config file's state, and the config to go on with (the defaults when it is invalid)."""
    path = config_mod.config_path(getattr(args, "config", None))
    info: dict[str, Any] = {"path": str(path), "exists": path.exists(), "valid": True, "error": None}
    try:
        cfg = config_mod.load(getattr(args, "config", None))
    except config_mod.ConfigError as exc:
        info["valid"], info["error"] = False, str(exc)
        cfg = config_mod.from_mapping({})
    return info, cfg


def check_feed(url: str) -> dict[str, Any]:
    from tokentop.core.feed.client import FeedClient
    from tokentop.core.sources.status import ImportStatus, SourcesStatus

    info: dict[str, Any] = {"url": url, "reachable": False, "sources": None, "import": None, "error": None}
    try:
        client = FeedClient(url, timeout=3.0)
    except ValueError as exc:
        info["error"] = str(exc)
        return info
    with client:
        if not client.healthy():
            return info
        info["reachable"] = True
        try:
            snap = client.snapshot()
        except Exception as exc:  # noqa: BLE001 - a feed that answers /healthz but not /v1/snapshot
            info["error"] = f"snapshot: {exc}"
            return info
    sources = SourcesStatus.of(snap)
    if sources is not None:
        info["sources"] = sources.to_json()
    imp = ImportStatus.of(snap)
    if imp is not None:
        info["import"] = imp.to_json()
    return info


def check_ledger(path: Path) -> dict[str, Any]:
    """Read-only. With a ``-wal`` beside it (a feed is writing) a ``mode=ro`` connection; without one,
    ``immutable=1`` too, which reads the file as it is and leaves no ``-wal``/``-shm`` behind."""
    from tokentop.core.ledger import SCHEMA_VERSION, LedgerError, schema_version

    info: dict[str, Any] = {"path": str(path), "exists": path.exists(), "bytes": 0, "schema_version": None,
                            "supported_version": SCHEMA_VERSION, "events": 0, "by_source": [], "by_agent": [],
                            "error": None}
    if not info["exists"]:
        return info
    info["bytes"] = sum(os.path.getsize(p) for p in (path, Path(f"{path}-wal")) if p.exists())
    try:
        mode = "mode=ro" if Path(f"{path}-wal").exists() else "mode=ro&immutable=1"
        conn = sqlite3.connect(f"{path.resolve().as_uri()}?{mode}", uri=True, timeout=5.0)
    except sqlite3.Error as exc:
        info["error"] = f"cannot open read-only: {exc}"
        return info
    try:
        version = schema_version(conn)
        info["schema_version"] = version
        if version is None:
            return info
        if version > SCHEMA_VERSION:
            info["error"] = f"written by a newer tokentop (schema {version}; this one reads up to {SCHEMA_VERSION})"
            return info
        info["events"] = conn.execute("SELECT count(*) FROM events").fetchone()[0]
        info["by_source"] = [{"source": s, "events": n, "last_ts": t} for s, n, t in conn.execute(
            "SELECT coalesce(source, ''), count(*), max(ts) FROM events GROUP BY 1 ORDER BY 2 DESC")]
        info["by_agent"] = [{"agent": a, "events": n, "last_ts": t} for a, n, t in conn.execute(
            "SELECT agent, count(*), max(ts) FROM events GROUP BY 1 ORDER BY 2 DESC")]
    except (sqlite3.Error, LedgerError) as exc:
        info["error"] = str(exc)
    finally:
        conn.close()
    return info


def check_sources(cfg: config_mod.Config, days: float) -> list[dict[str, Any]]:
    from tokentop.core.sources.diagnose import diagnose
    from tokentop.core.sources.settings import SourceSettings

    settings = SourceSettings.from_config(cfg)
    return [r.to_json() for r in diagnose(settings, days, host=cfg.host_name)]


def _in_ledger(sources: list[dict[str, Any]], ledger: dict[str, Any]) -> None:
    """Each source's requests in the ledger: the rows of its agent (``name`` or ``name/<kind>``)."""
    for src in sources:
        name = src["name"]
        rows = [r for r in ledger["by_agent"] if r["agent"] == name or r["agent"].startswith(name + "/")]
        src["ledger_events"] = sum(r["events"] for r in rows)
        src["ledger_last_ts"] = max((r["last_ts"] for r in rows), default=None)


def doctor(args: argparse.Namespace) -> dict[str, Any]:
    config_info, cfg = check_config(args)
    url = getattr(args, "feed", None) or cfg.feed_url
    report: dict[str, Any] = {"v": 1, "generated_at": time.time(), "days": args.days, "config": config_info,
                              "feed": check_feed(url), "ledger": check_ledger(cfg.ledger_path),
                              "sources_off_by_env": bool(os.environ.get("TOKENTOP_NO_SOURCES")),
                              "sources": check_sources(cfg, args.days)}
    _in_ledger(report["sources"], report["ledger"])
    report["ok"] = not (not config_info["valid"] or report["ledger"]["error"] or report["feed"]["error"]
                        or any(s["error"] for s in report["sources"]))
    return report


# -- printing -------------------------------------------------------------------------------------------

def _when(ts: float | None) -> str:
    if ts is None:
        return "never"
    age = time.time() - ts
    stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ts))
    if age < 0:
        return f"{stamp} (in the future)"
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if age >= size:
            return f"{stamp} ({age / size:.0f} {unit} ago)"
    return f"{stamp} ({age:.0f} s ago)"


def _home(path: str) -> str:
    home = os.path.expanduser("~")
    return "~" + path[len(home):] if home not in ("", "/") and path.startswith(home + os.sep) else path


def render(report: dict[str, Any]) -> str:
    out: list[str] = []
    c = report["config"]
    state = "valid" if c["valid"] else f"INVALID: {c['error']}"
    out.append(f"config   {_home(c['path'])}: " + (state if c["exists"] else "none (defaults)" if c["valid"] else state))
    f = report["feed"]
    if f["reachable"]:
        src = f["sources"] or {}
        extra = f", sources {src.get('state', 'off')}" if src else ", reads no agent store"
        out.append(f"feed     {f['url']}: answers{extra}")
    else:
        why = f" ({f['error']})" if f["error"] else " (the live view starts its own feed)"
        out.append(f"feed     {f['url']}: not reachable{why}")
    lg = report["ledger"]
    if not lg["exists"]:
        out.append(f"ledger   {_home(lg['path'])}: not created yet")
    elif lg["error"]:
        out.append(f"ledger   {_home(lg['path'])}: ERROR {lg['error']}")
    else:
        out.append(f"ledger   {_home(lg['path'])}: schema {lg['schema_version']} (reads up to "
                   f"{lg['supported_version']}), {lg['bytes'] / 1e6:,.1f} MB, {lg['events']:,} requests")
        for row in lg["by_source"][:12]:
            out.append(f"           {row['source'] or '(no source)':<18} {row['events']:>10,}  last {_when(row['last_ts'])}")
    out.append("")
    off = " — TOKENTOP_NO_SOURCES is set: feeds in this environment read none of them" if report["sources_off_by_env"] else ""
    out.append(f"agent stores (read-only, records written in the last {report['days']:g} d){off}")
    for s in report["sources"]:
        flag = "on " if s["enabled"] else "off"
        head = f"  {s['name']:<12} {flag}  "
        if s["error"]:
            out.append(head + f"ERROR {s['error']}")
        elif not s["found"]:
            out.append(head + "not found")
        else:
            got = (f"{s['records']:,} requests, newest {_when(s['last_record_ts'])}" if s["records"]
                   else "no request in the window")
            older = f" ({s['too_old']:,} older)" if s["too_old"] else ""
            out.append(head + f"{s['files']:,} files, {s['files_read']:,} read ({s['bytes_read'] / 1e6:,.1f} MB): "
                       f"{got}{older}")
        roots = ", ".join(f"{_home(r['path'])}{'' if r['exists'] else ' (missing)'}" for r in s["roots"]) or "(no dir)"
        out.append(f"{'':19}{roots}")
        if s["ledger_events"]:
            out.append(f"{'':19}in the ledger: {s['ledger_events']:,} requests, newest {_when(s['ledger_last_ts'])}")
        if s["problems"]:
            out.append(f"{'':19}problems: " + ", ".join(f"{k.replace('_', ' ')} {v:,}" for k, v in s["problems"].items()))
        for w in s["warnings"]:
            out.append(f"{'':19}warning: {w}")
        if s["warnings_dropped"]:
            out.append(f"{'':19}(+{s['warnings_dropped']} more warnings)")
    out.append("")
    out.append("ok" if report["ok"] else "problems found (see above)")
    return "\n".join(out)


def run(args: argparse.Namespace) -> int:
    if args.days <= 0:
        print("tokentop: --days must be greater than 0", file=sys.stderr)
        return 2
    report = doctor(args)
    if args.json:
        json.dump(report, sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        print(render(report))
    return 0 if report["ok"] else 1
