"""A harness for the Gemini CLI, Qwen Code and pi sources: a fake HOME, the real source set, a real ledger."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Mapping

from tokentop import config as config_mod
from tokentop.core.events import Event
from tokentop.core.ledger import Ledger
from tokentop.core.pricing import Pricer
from tokentop.core.sources.settings import SourceSettings
from tokentop.core.sources.sourceset import SourceSet


def jl(obj: Any) -> str:
    """A line as the agents write it (JSON.stringify: compact)."""
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False)


def write(path: Path, lines: list[Any], mode: str = "w") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, mode, encoding="utf-8") as fh:
        for ln in lines:
            fh.write((ln if isinstance(ln, str) else jl(ln)) + "\n")
    return path


class Home:
    """The sources of ``enabled`` over a fake HOME, resolved like a feed does (config + environment).

    ``read()`` polls and stores what it is handed in the ledger (the feed's first-id-wins); ``handed``
    keeps every event handed, in order, revisions included."""

    def __init__(self, tmp: Path, home: Path, enabled: tuple[str, ...], *, env: Mapping[str, str] | None = None,
                 sources: Mapping[str, Any] | None = None, backfill_days: float = 30.0) -> None:
        self.tmp = tmp
        self.home = home
        cfg = config_mod.from_mapping({"sources": {"enabled": list(enabled), "backfill_days": backfill_days,
                                                   **(sources or {})}})
        self.settings = SourceSettings.from_config(cfg, env={"HOME": str(home), **(env or {})})
        self.ledger_path = tmp / "ledger.db"
        self.ledger = Ledger(self.ledger_path)
        self.pricer = Pricer()
        self.handed: list[Event] = []
        self.sources = SourceSet.open(self.settings, self.ledger)

    def sink(self, batch: list[Event]) -> None:
        self.handed.extend(batch)
        self.ledger.append([(e, self.pricer.price(e)) for e in batch])

    def read(self) -> int:
        return self.sources.poll(self.sink)

    def changed(self, *paths: Path) -> int:
        return self.sources.poll_changed(self.sink, {str(p) for p in paths})

    def stored(self) -> dict[str, Event]:
        return {s.event.id: s.event for s in self.ledger.events_since(0)}

    def counters(self) -> dict[str, int]:
        return dict(self.sources.stats.counters)

    def restart(self) -> None:
        self.ledger.close()
        self.ledger = Ledger(self.ledger_path)
        self.sources = SourceSet.open(self.settings, self.ledger)

    def close(self) -> None:
        self.ledger.close()


def touch_old(path: Path, age_s: float) -> None:
    st = path.stat()
    os.utime(path, (st.st_atime - age_s, st.st_mtime - age_s))
