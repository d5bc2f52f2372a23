"""What each agent store looks like from here, read-only: ``tokentop doctor``'s sources part.

:func:`diagnose` opens every format on its own (so each gets its own counters), with no ledger (no
cursor is read or written: nothing a feed or ``tokentop import`` keeps changes), reads what was
written within the last ``days`` and reports per format: its roots and whether they exist, files
found and read, records (requests) read and the newest one, the problems its reader counted
(malformed lines, unreadable files, ...), warnings it logged, and an exception if it failed.
Knows no agent: it drives :class:`~tokentop.core.sources.sourceset.SourceSet`.
"""

from __future__ import annotations

import logging
import time
import traceback
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Final

from tokentop.core.events import Event
from tokentop.core.sources.settings import SourceSettings
from tokentop.core.sources.sourceset import SourceSet

#: Warnings kept per source (the count of the rest is kept too).
MAX_WARNINGS: Final = 5
#: Counters that are bookkeeping of normal operation, not problems.
ROUTINE: Final = frozenset({"reappended", "streaming_duplicates", "info_null", "reemits", "fork_replays",
                            "files_restarted"})


@dataclass
class SourceReport:
    name: str
    enabled: bool
    roots: list[tuple[str, bool]]
    files: int = 0
    files_read: int = 0
    bytes_read: int = 0
    lines: int = 0
    records: int = 0
    too_old: int = 0
    last_record_ts: float | None = None
    #: what the reader counted (malformed lines, duplicates skipped, ...)
    counters: dict[str, int] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    warnings_dropped: int = 0
    error: str | None = None
    seconds: float = 0.0

    @property
    def found(self) -> bool:
        return any(exists for _, exists in self.roots) or self.files > 0

    @property
    def problems(self) -> dict[str, int]:
        return {k: v for k, v in self.counters.items() if v and k not in ROUTINE}

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "enabled": self.enabled, "found": self.found,
                "roots": [{"path": p, "exists": e} for p, e in self.roots], "files": self.files,
                "files_read": self.files_read, "bytes_read": self.bytes_read, "lines": self.lines,
                "records": self.records, "too_old": self.too_old, "last_record_ts": self.last_record_ts,
                "counters": dict(sorted(self.counters.items())), "problems": dict(sorted(self.problems.items())),
                "warnings": self.warnings, "warnings_dropped": self.warnings_dropped, "error": self.error,
                "seconds": round(self.seconds, 3)}


class _Collect(logging.Handler):
    def __init__(self, report: SourceReport) -> None:
        super().__init__(logging.WARNING)
        self.report = report

    def emit(self, record: logging.LogRecord) -> None:
        if len(self.report.warnings) < MAX_WARNINGS:
            self.report.warnings.append(record.getMessage())
        else:
            self.report.warnings_dropped += 1


def diagnose(settings: SourceSettings, days: float, *, host: str | None = None) -> list[SourceReport]:
    """One report per format in ``settings.formats`` (enabled or not), each read on its own."""
    reports = []
    logger = logging.getLogger("tokentop.sources")
    for fmt in settings.formats:
        roots = settings.roots_of(fmt)
        report = SourceReport(fmt.name, fmt.name in settings.enabled, [(str(r), Path(r).is_dir()) for r in roots])
        reports.append(report)
        one = replace(settings, enabled=(fmt.name,), backfill_days=days)
        handler = _Collect(report)
        logger.addHandler(handler)
        propagate, logger.propagate = logger.propagate, False  # collected here, not printed
        t0 = time.monotonic()
        ids: set[str] = set()
        try:
            source = SourceSet.open(one, None, host=host)

            def sink(batch: list[Event], report: SourceReport = report) -> None:
                ids.update(e.id for e in batch)  # a record handed again (a revision) is one record
                newest = max(e.ts for e in batch)
                if report.last_record_ts is None or newest > report.last_record_ts:
                    report.last_record_ts = newest

            source.poll(sink)
            report.records = len(ids)
            stats = source.stats
            report.files, report.files_read, report.bytes_read = stats.files, stats.files_read, stats.bytes_read
            report.lines, report.too_old, report.counters = stats.lines, stats.too_old, dict(stats.counters)
        except Exception as exc:  # a reader's bug is reported, never raised: the other sources still run
            frame = traceback.extract_tb(exc.__traceback__)[-1] if exc.__traceback__ else None
            where = f" ({Path(frame.filename).name}:{frame.lineno})" if frame else ""
            report.error = f"{type(exc).__name__}: {exc}{where}"
        finally:
            logger.removeHandler(handler)
            logger.propagate = propagate
            report.seconds = time.monotonic() - t0
    return reports
