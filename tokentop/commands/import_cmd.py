"""``tokentop import``: backfill the agents' logs (every source in ``sources.enabled``) into the ledger.

Reads every log file from its cursor (nothing is read twice across runs), writes the events straight
into the ledger (the same ids the live feed uses, so a feed importing the same files at the same
time cannot double-count), and prints what it read. ``docs/sources.md``.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

from tokentop.commands._common import fail, load_config


#: Events per ledger transaction during an import (the feed's live path uses 5000).
IMPORT_BATCH_EVENTS = 50_000
#: SQLite page cache of the import's connection, KiB.
IMPORT_CACHE_KIB = 65_536


def register(sub: argparse._SubParsersAction) -> None:
    from tokentop.cli import add_common
    from tokentop.core.sources.settings import KNOWN_SOURCES

    p = sub.add_parser("import", help=f"backfill agent logs ({', '.join(KNOWN_SOURCES)}) into the ledger (progress on stderr)")
    add_common(p)
    p.add_argument("--days", type=float, default=None, help="backfill window in days (default: sources.backfill_days, 30)")
    p.add_argument("--source", action="append", choices=KNOWN_SOURCES, default=None,
                   help="only this source (repeatable; default: sources.enabled)")
    p.add_argument("--quiet", action="store_true", help="no progress bar or summary")
    p.add_argument("--workers", type=int, default=None,
                   help="extra parser processes for a large backlog (default 1, env TOKENTOP_IMPORT_WORKERS; 0 = none)")
    p.set_defaults(func=run)


class ProgressBar:
    """A one-line progress bar on stderr (only when stderr is a terminal, else a final line)."""

    def __init__(self, stream=None, enabled: bool = True) -> None:
        # sys.stderr is looked up now, not bound at import time (it may have been replaced since)
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = enabled
        self.tty = enabled and self.stream.isatty()
        self.t0 = time.monotonic()
        self.last = -1

    def __call__(self, done: int, total: int) -> None:
        if not self.tty:
            return
        pct = 100 if total <= 0 else min(100, done * 100 // total)
        if pct == self.last:
            return
        self.last = pct
        width = 30
        fill = width * pct // 100
        mb = done / 1e6
        self.stream.write(f"\rimporting [{'#' * fill}{'.' * (width - fill)}] {pct:3d} %  {mb:,.0f} MB")
        self.stream.flush()

    def close(self) -> None:
        if self.tty:
            self.stream.write("\n")
            self.stream.flush()


def run(args: argparse.Namespace) -> int:
    from tokentop.core.ledger import Ledger, LedgerError
    from tokentop.core.pricing import Pricer
    from tokentop.core.sources.settings import SourceSettings
    from tokentop.core.sources.sourceset import SourceSet

    cfg = load_config(args)
    settings = SourceSettings.from_config(cfg)
    if args.days is not None:
        if args.days <= 0:
            return fail("--days must be greater than 0")
        settings.backfill_days = args.days
    if args.source:
        settings.enabled = tuple(args.source)
    if not settings.enabled:
        return fail("no log source is enabled (sources.enabled in the config)")
    try:
        ledger = Ledger(cfg.ledger_path, retention_days=float(cfg.ledger.retention_days))
    except (LedgerError, PermissionError) as exc:
        return fail(str(exc))
    t0 = time.monotonic()
    bar = ProgressBar(enabled=not args.quiet)
    try:
        pricers: list[Pricer] = []  # built on first use: a run with nothing new skips its import cost
        workers = args.workers if args.workers is not None else int(os.environ.get("TOKENTOP_IMPORT_WORKERS", "1") or 1)
        # Bulk writes: big transactions and a bigger page cache on this command's own connection.
        # Random event ids make every commit touch most leaf pages of the events table, so 5000-event
        # commits cost ~3x more CPU than 50000-event ones on a 1M-line backfill.
        ledger.call(lambda conn: conn.execute(f"PRAGMA cache_size=-{IMPORT_CACHE_KIB}"))
        sources = SourceSet.open(settings, ledger, host=cfg.host_name, workers=max(0, min(workers, 1)),
                                 batch_events=IMPORT_BATCH_EVENTS)
        futures = []

        def sink(batch) -> None:  # noqa: ANN001
            # Not waited for here: the ledger's single thread commits batches before the cursors
            # queued after them, so parsing overlaps the inserts and order stays safe.
            if not pricers:
                pricers.append(Pricer(cfg.price_overrides()))
            price = pricers[0].price
            futures.append(ledger.submit([(e, price(e)) for e in batch]))

        sources.poll(sink, progress=bar)
        new = dup = revised = 0
        for fut in futures:
            outcomes = fut.result()
            n = outcomes.count(True)
            r = outcomes.count(False)
            new += n
            dup += r
            revised += len(outcomes) - n - r
    finally:
        bar.close()
        ledger.close()
    if not args.quiet:
        st = sources.stats.to_json()
        extra = ", ".join(f"{k.replace('_', ' ')} {v:,}" for k, v in sorted(st.items())
                          if k not in ("files", "files_read", "bytes_read", "lines", "events", "too_old") and v)
        print(f"imported {new:,} new requests ({dup:,} already known"
              + (f", {revised:,} revised with fuller usage" if revised else "")
              + f") from {st['files_read']:,} of {st['files']:,} files, "
              f"{st['lines']:,} lines, {st['bytes_read'] / 1e6:,.1f} MB in {time.monotonic() - t0:.2f} s"
              f"; {st['too_old']:,} older than {settings.backfill_days:g} days skipped"
              + (f"; {extra}" if extra else ""), file=sys.stderr)
    return 0
