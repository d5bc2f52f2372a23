"""The log sources' snapshot status entries, typed: ``status["import"]`` (the backfill's progress)
and ``status["sources"]`` (what the sources are doing, and their counters).

:class:`~tokentop.core.sources.live.LiveSources` publishes ``to_json()``; readers use ``of(snapshot)``,
which reads an embedded feed's snapshot and a remote feed's JSON alike. The JSON is documented in
docs/api.md (§ Snapshot status entries written by the sources).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Mapping

if TYPE_CHECKING:
    from tokentop.core.snapshot import Snapshot


def _int(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


@dataclass(frozen=True, slots=True)
class ImportStatus:
    """The first-run import (backfill): ``importing`` with a percentage, then ``done``."""

    KEY: ClassVar[str] = "import"

    state: str
    percent: int
    #: events imported, once done
    events: int | None = None
    #: how long the import took, once done
    seconds: float | None = None

    @classmethod
    def importing(cls, percent: int) -> ImportStatus:
        return cls("importing", percent)

    @classmethod
    def finished(cls, events: int, seconds: float) -> ImportStatus:
        return cls("done", 100, events, round(seconds, 3))

    @property
    def done(self) -> bool:
        return self.state == "done"

    @property
    def text(self) -> str:
        return "imported" if self.done else f"importing {self.percent} %"

    def to_json(self) -> dict[str, Any]:
        if self.done:
            return {"state": self.state, "percent": self.percent, "events": self.events, "seconds": self.seconds,
                    "text": self.text}
        return {"state": self.state, "percent": self.percent, "text": self.text}

    @classmethod
    def from_json(cls, obj: object) -> ImportStatus | None:
        if not isinstance(obj, dict) or not isinstance(obj.get("state"), str):
            return None
        seconds = obj.get("seconds")
        return cls(obj["state"], _int(obj.get("percent")) or 0, _int(obj.get("events")),
                   float(seconds) if isinstance(seconds, (int, float)) and not isinstance(seconds, bool) else None)

    @classmethod
    def of(cls, snapshot: Snapshot | None) -> ImportStatus | None:
        return None if snapshot is None else cls.from_json(snapshot.status.get(cls.KEY))


@dataclass(frozen=True, slots=True)
class SourcesStatus:
    """``watching`` / ``polling`` / ``waiting for log dirs`` / ``failed``, the enabled sources, and
    the readers' counters since the feed started (files, lines, events, duplicates skipped, ...)."""

    KEY: ClassVar[str] = "sources"

    state: str
    #: ``sources.enabled`` (``None`` in the failed form)
    enabled: tuple[str, ...] | None = None
    counters: Mapping[str, int] = field(default_factory=dict)
    #: where to look when the sources failed
    see: str | None = None

    @classmethod
    def failed(cls) -> SourcesStatus:
        return cls("failed", see="feed log")

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"state": self.state}
        if self.enabled is not None:
            out["enabled"] = list(self.enabled)
        out.update(self.counters)
        if self.see is not None:
            out["see"] = self.see
        return out

    @classmethod
    def from_json(cls, obj: object) -> SourcesStatus | None:
        if not isinstance(obj, dict) or not isinstance(obj.get("state"), str):
            return None
        enabled = obj.get("enabled")
        see = obj.get("see")
        counters = {k: v for k, v in obj.items() if k not in ("state", "enabled", "see") and _int(v) is not None}
        return cls(obj["state"], tuple(str(e) for e in enabled) if isinstance(enabled, list) else None, counters,
                   str(see) if isinstance(see, str) else None)

    @classmethod
    def of(cls, snapshot: Snapshot | None) -> SourcesStatus | None:
        return None if snapshot is None else cls.from_json(snapshot.status.get(cls.KEY))
