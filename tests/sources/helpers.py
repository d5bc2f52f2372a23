"""Fixture builders for log-source tests: real files in tmp dirs, read by the real tailer; and a fake HOME
with the real source set and a real ledger for the agents found under it (Gemini CLI, Qwen Code, pi, ...)."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any, Mapping

from tokentop import config as config_mod
from tokentop.core.events import Event
from tokentop.core.ledger import Ledger
from tokentop.core.pricing import Pricer
from tokentop.core.sources.settings import SourceSettings
from tokentop.core.sources.sourceset import SourceSet
from tokentop.core.sources.tailer import LogSources

NOW = time.time()


def iso(ts: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ts)) + f".{int(ts * 1000) % 1000:03d}Z"


def claude_line(mid: str | None = "msg_1", req: str | None = "req_1", *, out: int = 500, inp: int = 3,
                read: int = 9000, write: int = 2000, write_1h: int | None = None, model: str = "claude-sonnet-4-5-20250929",
                ts: float | None = None, stop: str | None = "end_turn", session: str = "sess-1", sidechain: bool = False,
                cwd: str = "/home/dev/proj", uuid: str | None = None, **extra: Any) -> str:
    usage: dict[str, Any] = {"input_tokens": inp, "cache_creation_input_tokens": write, "cache_read_input_tokens": read,
                             "output_tokens": out}
    if write_1h is not None:
        usage["cache_creation"] = {"ephemeral_5m_input_tokens": write - write_1h, "ephemeral_1h_input_tokens": write_1h}
    msg: dict[str, Any] = {"model": model, "type": "message", "role": "assistant", "content": [], "stop_reason": stop,
                           "usage": usage}
    if mid is not None:
        msg["id"] = mid
    obj: dict[str, Any] = {"parentUuid": None, "isSidechain": sidechain, "cwd": cwd, "sessionId": session,
                           "version": "2.1.12", "gitBranch": "main", "type": "assistant", "message": msg,
                           "uuid": uuid or f"u-{mid}-{req}-{out}", "timestamp": iso(NOW - 60 if ts is None else ts)}
    if req is not None:
        obj["requestId"] = req
    obj.update(extra)
    return json.dumps(obj)


def write_lines(path: Path, lines: list[str], mode: str = "w") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, mode, encoding="utf-8") as fh:
        for ln in lines:
            fh.write(ln + "\n")
    return path


class Harness:
    """A ledger + tailer over given roots; ``stored()`` is what the ledger keeps (the largest record per id)."""

    def __init__(self, tmp: Path, claude: list[Path] | None = None, codex: list[Path] | None = None,
                 ledger_path: Path | None = None, backfill_days: float = 30.0) -> None:
        self.settings = SourceSettings(roots={"claude-code": tuple(claude or []), "codex": tuple(codex or [])},
                                       backfill_days=backfill_days)
        self.ledger_path = ledger_path or tmp / "ledger.db"
        self.ledger = Ledger(self.ledger_path)
        self.sources = LogSources(self.ledger, self.settings)
        self.pricer = Pricer()
        self.handed: list[Event] = []

    def sink(self, batch: list[Event]) -> None:
        self.handed.extend(batch)
        self.ledger.append([(e, self.pricer.price(e)) for e in batch])

    def read(self) -> int:
        return self.sources.poll(self.sink)

    def stored(self) -> list[Event]:
        return [s.event for s in self.ledger.events_since(0)]

    def restart(self) -> None:
        self.ledger.close()
        self.ledger = Ledger(self.ledger_path)
        self.sources = LogSources(self.ledger, self.settings)

    def close(self) -> None:
        self.ledger.close()


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
