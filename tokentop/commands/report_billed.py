"""``tokentop report --billed``: billed spend per provider (the options and the run; ``report`` parses them).

Fetches from the providers' admin APIs whatever the ledger lacks for the window (so it works on a
fresh machine with only the keys set), stores it, and prints the ledger's figures. ``--offline``
reads the ledger alone. Output: a table (default), ``--json`` (shape in docs/api.md) or ``--csv``.

Exit codes: 0 all good; 1 a provider could not be fetched (its figures are what the ledger held,
marked ``"complete": false`` with the error); 2 usage or configuration error (no key, bad config).
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import sys
import time
from typing import TYPE_CHECKING, Any

from tokentop.commands._common import fail, load_config

if TYPE_CHECKING:
    from tokentop.core.providers.keys import AdminKey
    from tokentop.core.providers.settings import ProviderSettings
    from tokentop.core.providers.store import BilledStore

PROVIDER_NAMES = ("openai", "anthropic")


def add_billed_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``--billed`` (shared with ``report`` at merge). Options the parser already has
    (``report``'s own ``--days``/``--json``/``--csv``) are reused, not added twice; ``run_billed``
    only needs ``args.provider``, ``args.days``, ``args.json``, ``args.csv`` and ``args.offline``."""
    have = parser._option_string_actions  # noqa: SLF001 -- argparse has no public "has option"

    if "--provider" not in have:
        parser.add_argument("--provider", choices=PROVIDER_NAMES,
                            help="only this provider (default: every one with a key or data)")
    if "--days" not in have:
        parser.add_argument("--days", type=int, default=30, metavar="N",
                            help="the last N UTC days, today included (default 30)")
    if "--json" not in have and "--csv" not in have:
        fmt = parser.add_mutually_exclusive_group()
        fmt.add_argument("--json", action="store_true", help="JSON (shape in docs/api.md)")
        fmt.add_argument("--csv", action="store_true",
                         help="CSV rows: provider,kind,key,usd,requests,input_tokens,output_tokens")
    if "--offline" not in have:
        parser.add_argument("--offline", action="store_true", help="read the ledger only; fetch nothing")


async def _fetch(settings: ProviderSettings, key: AdminKey, store: BilledStore, days: int) -> str | None:
    import httpx

    from tokentop.core.providers.paging import ProviderError
    from tokentop.core.providers.sync import ProviderSync, build_api

    async with httpx.AsyncClient(timeout=settings.timeout_s) as client:
        sync = ProviderSync(build_api(settings, key, client), store)
        try:
            result = await sync.sync_days(days)
        except ProviderError as exc:
            return str(exc)
    if result.rejected:
        return f"{settings.name}: {result.rejected} malformed row(s) skipped; first: {result.first_problem}"
    return None


def run_billed(args: argparse.Namespace) -> int:
    from tokentop.config import ConfigError
    from tokentop.core.ledger import Ledger, LedgerError
    from tokentop.core.providers.keys import AdminKeyError, load_admin_key
    from tokentop.core.providers.report import build_report
    from tokentop.core.providers.settings import provider_settings
    from tokentop.core.providers.store import BilledStore

    args.days = getattr(args, "days", None) or 30
    if not 1 <= args.days <= 366:
        return fail("--days must be between 1 and 366")
    cfg = load_config(args)
    try:
        settings = provider_settings(cfg.providers)
    except ConfigError as exc:
        return fail(str(exc))
    args.provider = getattr(args, "provider", None)
    args.offline = bool(getattr(args, "offline", False))
    names = [args.provider] if args.provider else [n for n in PROVIDER_NAMES if settings[n].enabled]
    try:
        ledger = Ledger(cfg.ledger_path, retention_days=float(cfg.ledger.retention_days))
    except LedgerError as exc:
        return fail(str(exc))
    try:
        store = BilledStore(ledger)
        now = time.time()
        errors: dict[str, str | None] = {}
        chosen: list[str] = []
        if args.offline:
            chosen = [n for n in names if args.provider or store.fetched_starts(n, "cost_1d", 0, 2**62)]
            if not chosen:
                return fail("the ledger holds no billed data yet; run without --offline with an admin key set")
        else:
            keys: dict[str, Any] = {}
            problems: dict[str, str] = {}
            for n in names:
                try:
                    keys[n] = load_admin_key(settings[n].key_env, settings[n].key_file)
                except AdminKeyError as exc:
                    problems[n] = f"{n}: {exc}"
            if args.provider and problems:
                return fail(problems[args.provider])
            if not keys:
                return fail("no provider admin key: set OPENAI_ADMIN_KEY or ANTHROPIC_ADMIN_KEY "
                            "(or key_file under [providers.openai] / [providers.anthropic]); --offline reads the ledger only")
            chosen = list(keys)

            async def fetch_all() -> list[str | None]:
                return await asyncio.gather(*(_fetch(settings[n], keys[n], store, args.days) for n in chosen))

            for n, err in zip(chosen, asyncio.run(fetch_all())):
                errors[n] = err
        reports = [build_report(store, n, args.days, now, error=errors.get(n)) for n in chosen]
    finally:
        ledger.close()
    _print(reports, args)
    for err in errors.values():
        if err:
            print(f"tokentop: {err}", file=sys.stderr)
    return 1 if any(errors.values()) else 0


def _print(reports: list[Any], args: argparse.Namespace) -> None:
    from tokentop.core.pricing import usd
    from tokentop.core.providers.report import dumps_exact, usd_text

    if getattr(args, "json", False):
        doc = {"source": "billed", "days": args.days, "offline": bool(args.offline),
               "providers": {r.provider: r.to_json() for r in reports}}
        print(dumps_exact(doc))
        return
    if getattr(args, "csv", False):
        w = csv.writer(sys.stdout, lineterminator="\n")
        w.writerow(["provider", "kind", "key", "usd", "requests", "input_tokens", "output_tokens"])
        for r in reports:
            w.writerow([r.provider, "total", f"{_d(r.start)}..{_d(r.end - 86400)}", usd_text(r.pusd_total),
                        _n(r.requests_total), r.input_tokens_total, r.output_tokens_total])
            for d in r.by_day:
                w.writerow([r.provider, "day", d.date, usd_text(d.pusd), _n(d.requests), d.input_tokens, d.output_tokens])
            for m in r.by_model:
                w.writerow([r.provider, "model", m.model, usd_text(m.pusd), _n(m.requests), m.input_tokens, m.output_tokens])
        return
    for r in reports:
        state = "" if r.complete else "  (INCOMPLETE: some days were never fetched)"
        print(f"{r.provider} — billed, {_d(r.start)} .. {_d(r.end - 86400)} ({r.days} days){state}")
        if r.error:
            print(f"  last fetch failed: {r.error}")
        print(f"  {'total':<28} {_money(usd(r.pusd_total)):>13}         {_count(r.requests_total):>10} req  "
              f"{r.input_tokens_total:>14,} in  {r.output_tokens_total:>12,} out")
        for m in r.by_model[:10]:
            share = f"{m.share * 100:5.1f}%" if m.share is not None else "    –"
            print(f"  {m.model[:28]:<28} {_money(usd(m.pusd)):>13} {share}  {_count(m.requests):>10} req  "
                  f"{m.input_tokens:>14,} in  {m.output_tokens:>12,} out")
        print()


def _d(ts: int) -> str:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d")


def _n(v: int | None) -> str:
    return "" if v is None else str(v)


def _count(v: int | None) -> str:
    return "n/a" if v is None else f"{v:,}"


def _money(v: Any) -> str:
    return f"${v:,.2f}"
