"""``tokentop import``: backfill the agents' logs (every source in ``sources.enabled``) into the ledger.

Reads every log file from its cursor (nothing is read twice across runs; a wider ``--days`` than a
file was read with reads its older part), writes the events straight into the ledger (the same ids
the live feed uses, so a feed importing the same files at the same time cannot double-count), and
prints what it read, what it skipped and why (``--json``: the same as one object on stdout).
``docs/sources.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections import deque
from typing import TYPE_CHECKING, Any, Final

from tokentop.commands._common import fail, load_config

if TYPE_CHECKING:
    from concurrent.futures import Future

    from tokentop.core.ledger import Outcome
    from tokentop.core.sources.protocol import Stats


#: Events per ledger transaction during an import (the feed's live path uses 5000).
IMPORT_BATCH_EVENTS = 50_000
#: SQLite page cache of the import's connection, KiB.
IMPORT_CACHE_KIB = 65_536
#: Parser processes at most (``--workers``; default: one per CPU, up to this). Two parsers and this
#: process's ledger thread on 2 cores: the 1M-line corpus imported in about 0.6x the wall time of one
#: parser (the parse is ~3x the ledger's CPU, so one parser left the ledger thread idle most of the run).
MAX_IMPORT_WORKERS = 4
#: Priced rows handed to the ledger and not yet stored, at most: a parser that outruns the inserts
#: waits here instead of queueing the whole backlog in memory (~0.5 KB a row).
MAX_QUEUED_ROWS = 120_000


def default_workers() -> int:
    """Parser processes when neither ``--workers`` nor ``TOKENTOP_IMPORT_WORKERS`` says."""
    return max(1, min(os.cpu_count() or 1, 2))


def register(sub: argparse._SubParsersAction) -> None:
    from tokentop.commands._common import add_config_option
    from tokentop.core.sources.settings import KNOWN_SOURCES

    p = sub.add_parser("import", help=f"backfill agent logs ({', '.join(KNOWN_SOURCES)}) into the ledger (progress on stderr)")
    add_config_option(p)
    p.add_argument("--days", type=float, default=None, help="backfill window in days (default: sources.backfill_days, 30); a wider one than before also "
                        "reads the older part of files already imported")
    p.add_argument("--source", action="append", choices=KNOWN_SOURCES, default=None,
                   help="only this source (repeatable; default: sources.enabled)")
    p.add_argument("--quiet", action="store_true", help="no progress bar or summary")
    p.add_argument("--json", action="store_true", help="the summary as one JSON object on stdout (docs/sources.md)")
    p.add_argument("--workers", type=int, default=None,
                   help="parser processes for a large backlog (default: 2 on 2+ CPUs, else 1; env TOKENTOP_IMPORT_WORKERS; "
                        "0 = parse in this process)")
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
    from tokentop.core.sources.backfill import PricedRows
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
    bar = ProgressBar(enabled=not args.quiet and not args.json)
    sources = None
    new = dup = revised = 0
    interrupted = False
    try:
        pricers: list[Pricer] = []  # built on first use: a run with nothing new skips its import cost
        env_workers = os.environ.get("TOKENTOP_IMPORT_WORKERS", "").strip()
        if args.workers is not None:
            workers = args.workers
        elif env_workers:
            try:
                workers = int(env_workers)
            except ValueError:
                return fail(f"TOKENTOP_IMPORT_WORKERS must be a whole number, got {env_workers!r}")
        else:
            workers = default_workers()
        # Bulk writes: big transactions and a bigger page cache on this command's own connection.
        # Random event ids make every commit touch most leaf pages of the events table, so 5000-event
        # commits cost ~3x more CPU than 50000-event ones on a 1M-line backfill.
        ledger.call(lambda conn: conn.execute(f"PRAGMA cache_size=-{IMPORT_CACHE_KIB}"))
        futures = []
        overrides = cfg.price_overrides()

        def sink(batch) -> None:  # noqa: ANN001
            # Not waited for here: the ledger's single thread commits batches before the cursors
            # queued after them, so parsing overlaps the inserts and order stays safe.
            if not pricers:
                pricers.append(Pricer(overrides))
            price = pricers[0].price
            futures.append(ledger.submit([(e, price(e)) for e in batch]))

        queued: deque[tuple[Future[list[Outcome]], int]] = deque()
        in_flight = [0]

        def store(rows) -> None:  # noqa: ANN001 - rows the parser process priced (backfill.PricedRows)
            # back-pressure: wait for the oldest inserts while too many rows are queued (peak memory)
            while queued and in_flight[0] + len(rows) > MAX_QUEUED_ROWS:
                fut, n = queued.popleft()
                fut.result()
                in_flight[0] -= n
            fut = ledger.submit_rows(rows)
            futures.append(fut)
            queued.append((fut, len(rows)))
            in_flight[0] += len(rows)

        sources = SourceSet.open(settings, ledger, host=cfg.host_name, workers=max(0, min(workers, MAX_IMPORT_WORKERS)),
                                 batch_events=IMPORT_BATCH_EVENTS, rows=PricedRows(overrides, store))

        try:
            sources.poll(sink, progress=bar)
        except KeyboardInterrupt:  # what was handed over is stored (and its cursors): the next run resumes
            interrupted = True
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
    assert sources is not None
    summary = build_summary(sources.stats, new=new, known=dup, revised=revised, days=settings.backfill_days,
                            seconds=time.monotonic() - t0, retention_days=float(cfg.ledger.retention_days),
                            interrupted=interrupted)
    if args.json:
        json.dump(summary, sys.stdout)
        sys.stdout.write("\n")
    elif not args.quiet:
        print(summary_text(summary), file=sys.stderr)
    return 130 if interrupted else 0


#: counters shown in the summary's own clauses, not again among the others
_SHOWN: Final = frozenset({"files", "files_read", "bytes_read", "lines", "events", "too_old", "files_too_old",
                           "partial_lines", "unreadable_files", "malformed", "rewound_files"})


def build_summary(stats: Stats, *, new: int, known: int, days: float, seconds: float, revised: int = 0,
                  retention_days: float = 0.0, interrupted: bool = False, now: float | None = None) -> dict[str, Any]:
    """What an import read, added and skipped, and why (the ``--json`` object, docs/sources.md)."""
    st = stats.to_json()
    now = time.time() if now is None else now
    out: dict[str, Any] = {
        "new": new, "known": known, "revised": revised, "seconds": round(seconds, 3),
        "window": {"days": days, "since": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now - days * 86400.0))},
        "files": st["files"], "files_read": st["files_read"], "lines": st["lines"], "bytes_read": st["bytes_read"],
        "rewound_files": st.get("rewound_files", 0),
        "skipped": {
            "too_old": {"requests": st["too_old"], "files": st["files_too_old"]},
            "pending": {"partial_lines": st["partial_lines"]},
            "unreadable": {"files": st["unreadable_files"], "paths": dict(sorted(stats.unreadable.items())[:20])},
            "malformed_lines": st.get("malformed", 0),
        },
        "counters": {k: v for k, v in sorted(st.items()) if k not in _SHOWN},
    }
    if retention_days > 0:
        out["retention_days"] = retention_days
    if interrupted:
        out["interrupted"] = True
    return out


def summary_text(s: dict[str, Any]) -> str:
    """The summary for a person: what was added, from what, then each reason something was skipped."""
    days = s["window"]["days"]
    revised = f", {s['revised']:,} revised with fuller usage" if s.get("revised") else ""
    lines = [f"imported {s['new']:,} new requests ({s['known']:,} already known{revised}) from {s['files_read']:,} of "
             f"{s['files']:,} files, {s['lines']:,} lines, {s['bytes_read'] / 1e6:,.1f} MB in {s['seconds']:.2f} s"
             f" (window: {days:g} days, since {s['window']['since'][:10]})"]
    if s.get("interrupted"):
        lines.append("  interrupted: what was read so far is stored; run tokentop import again to go on")
    if s["rewound_files"]:
        lines.append(f"  re-read {_n(s['rewound_files'], 'file', 'files')} from the start for the wider window (read before with a "
                     "narrower one); the requests already stored count once")
    sk = s["skipped"]
    why = []
    old = [_n(n, one, many) for n, one, many in ((sk["too_old"]["requests"], "request", "requests"),
                                                 (sk["too_old"]["files"], "file last written", "files last written"))
           if n]
    if old:
        why.append(f"{' and '.join(old)} before the window (a larger --days imports them)")
    pend = sk["pending"]
    if pend["partial_lines"]:
        why.append(f"{_n(pend['partial_lines'], 'unfinished last line', 'unfinished last lines')} (still being written; read once complete)")
    if sk["unreadable"]["files"]:
        paths = "; ".join(f"{p}: {reason}" for p, reason in list(sk["unreadable"]["paths"].items())[:3])
        why.append(f"{_n(sk['unreadable']['files'], 'unreadable file', 'unreadable files')} ({paths})")
    if sk["malformed_lines"]:
        why.append(f"{_n(sk['malformed_lines'], 'malformed line', 'malformed lines')}")
    if why:
        lines.append("  skipped: " + "; ".join(why))
    other = ", ".join(f"{k.replace('_', ' ')} {v:,}" for k, v in s["counters"].items() if v)
    if other:
        lines.append(f"  also: {other}")
    retention = s.get("retention_days")
    if retention and days > retention:
        lines.append(f"  note: [ledger] retention_days = {retention:g}: a feed deletes events older than that when it "
                     "starts (set it to 0 to keep everything)")
    return "\n".join(lines)


def _n(count: int, one: str, many: str) -> str:
    return f"{count:,} {one if count == 1 else many}"
