"""``tokentop check [--json]``: are we within budget, and within our subscription windows? For
shell prompts and CI.

Exit status: 0 under every budget and window rule, 10 when any is at its warning level
(``warn_at``), 20 when any is over (a budget exceeded; a window at its ``pause_at`` / ``kill_at`` or
exhausted); 2 for a configuration error. Reads the snapshot of the feed that answers, or rebuilds
today (and the last known windows) from the ledger when none does.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Final

from tokentop.commands._common import fail, find_feed, load_config

EXIT_CODES: Final = {"ok": 0, "warning": 10, "over": 20}


def register(sub: argparse._SubParsersAction) -> None:
    from tokentop.commands._common import add_feed_options

    p = sub.add_parser("check", help="exit 0 under budget, 10 at a warning, 20 over budget or window "
                                     "([budget.*], [limits.*] in config)")
    add_feed_options(p)
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(func=run)


def _snapshot(args: argparse.Namespace, cfg) -> tuple[object, str]:  # noqa: ANN001
    client = find_feed(args, cfg)
    if client is not None:
        with client:
            return client.snapshot(), client.url
    from tokentop.core.feed.runner import FeedRunner

    runner = FeedRunner(cfg)
    try:
        return runner.service.snapshot(), f"ledger {runner.ledger.path}"
    finally:
        runner.ledger.close()


def run(args: argparse.Namespace) -> int:
    from tokentop.core.control.policy import (
        PolicyError, evaluate_budgets, evaluate_windows, rules_from_config, window_rules_from_config, worst_level,
    )

    cfg = load_config(args)
    try:
        budgets, _ = rules_from_config(cfg)
        windows = window_rules_from_config(cfg)
    except PolicyError as exc:
        return fail(str(exc))
    snapshot, source = _snapshot(args, cfg)
    findings = evaluate_budgets(snapshot, budgets)  # type: ignore[arg-type]
    findings += evaluate_windows(snapshot, windows)  # type: ignore[arg-type]
    status = worst_level(findings)
    code = EXIT_CODES[status]
    if args.json:
        json.dump({"v": 1, "status": status, "exit_code": code, "source": source, "budgets": len(budgets),
                   "window_rules": len(windows), "findings": [f.to_json() for f in findings]}, sys.stdout)
        sys.stdout.write("\n")
        return code
    if not budgets and not windows:
        print("tokentop: no budgets or window rules configured ([budget.NAME], [limits.NAME] in "
              "`tokentop config path`); nothing to check")
        return 0
    interesting = [f for f in findings if f.level != "ok"] or findings
    print(f"{status.upper()}: {len(findings)} figures checked ({source})")
    if windows and not any(f.view == "limits" for f in findings):
        print("  (no subscription window with data matches the [limits.*] rules)")
    for f in sorted(interesting, key=lambda f: (-EXIT_CODES[f.level], f.rule, f.key)):
        if f.view == "limits":
            print(f"  {f.level:<8} {f.rule}: window {f.key} at {f.value:.1f} % (threshold {f.limit:g} %)")
            continue
        where = "total" if f.view == "totals" else f"{f.view[:-1]} {f.key}"
        print(f"  {f.level:<8} {f.rule}: {where} {f.measure} ${f.value:,.2f} of ${f.limit:,.2f}")
    return code
