"""What one ``WS /v1/stream`` subscriber asked for, and each tick's frames, serialised once per shape.

A subscriber may narrow the stream with query parameters (``docs/api.md``, "Narrowing the
stream"): ``?views=agents,sessions`` sends only those views, ``?series=compact`` sends every
``burn_series`` as integer micro-dollars with the zero runs at both ends left out. Without them
the stream is the documented v1 snapshot, unchanged.

Each tick the feed builds ONE snapshot; :class:`StreamFrame` serialises it at most once per
distinct :class:`StreamShape` however many subscribers share that shape.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Mapping

import orjson

from tokentop.core.snapshot import DIMENSIONS, SERIES_FORMS, RowReuse, Snapshot


class StreamShapeError(ValueError):
    """A ``WS /v1/stream`` query the feed cannot honour; the message names the bad parameter."""


@dataclass(frozen=True, slots=True)
class StreamShape:
    #: the views sent, in :data:`DIMENSIONS` order; ``None`` = all of them
    views: tuple[str, ...] | None = None
    series: str = "full"

    def __post_init__(self) -> None:  # one shape, one spelling: views in DIMENSIONS order
        if self.views is not None:
            object.__setattr__(self, "views", tuple(v for v in DIMENSIONS if v in self.views))

    @classmethod
    def from_query(cls, query: Mapping[str, str]) -> StreamShape:
        views: tuple[str, ...] | None = None
        raw = query.get("views")
        if raw is not None:
            asked = [v.strip() for v in raw.split(",") if v.strip()]
            unknown = [v for v in asked if v not in DIMENSIONS]
            if unknown or not asked:
                what = f"unknown view {unknown[0]!r}" if unknown else "no view named"
                raise StreamShapeError(f"views: {what}; expected a comma-separated list of {', '.join(DIMENSIONS)}")
            views = tuple(v for v in DIMENSIONS if v in asked)
        series = query.get("series", "full")
        if series not in SERIES_FORMS:
            raise StreamShapeError(f"series: unknown form {series!r}; expected one of {', '.join(SERIES_FORMS)}")
        return cls(views, series)

    def query(self) -> str:
        """The query string (without ``?``) that asks a feed for this shape; ``""`` for the default."""
        parts = []
        if self.views is not None:
            parts.append("views=" + ",".join(self.views))
        if self.series != "full":
            parts.append("series=" + self.series)
        return "&".join(parts)


DEFAULT_SHAPE = StreamShape()


def encode_snapshot(snapshot: Snapshot, shape: StreamShape = DEFAULT_SHAPE, max_rows: int | None = None) -> str:
    """The snapshot's JSON text in ``shape`` (orjson; the stdlib for what orjson refuses)."""
    data = snapshot.to_json(max_rows, views=shape.views, series=shape.series)
    try:
        return orjson.dumps(data, option=orjson.OPT_NON_STR_KEYS).decode()
    except TypeError:  # e.g. an int beyond 64 bits in a source's status: the stdlib copes
        return json.dumps(data, separators=(",", ":"))


def decode_snapshot(text: str | bytes, reuse: RowReuse | None = None) -> Snapshot:
    """A snapshot from stream or ``GET /v1/snapshot`` text, in either series form; ``reuse`` keeps
    the previous frame's unchanged rows (one per stream connection)."""
    data: Any = orjson.loads(text)
    if not isinstance(data, dict):
        raise ValueError(f"a snapshot is a JSON object, got {type(data).__name__}")
    return Snapshot.from_json(data, reuse)


class StreamFrame:
    """One tick's snapshot; :meth:`text` serialises it once per shape, on first demand."""

    __slots__ = ("snapshot", "max_rows", "_texts")

    def __init__(self, snapshot: Snapshot, max_rows: int | None) -> None:
        self.snapshot = snapshot
        self.max_rows = max_rows
        self._texts: dict[StreamShape, str] = {}

    def text(self, shape: StreamShape = DEFAULT_SHAPE) -> str:
        text = self._texts.get(shape)
        if text is None:
            text = self._texts[shape] = encode_snapshot(self.snapshot, shape, self.max_rows)
        return text

    @property
    def shapes(self) -> tuple[StreamShape, ...]:
        """The shapes this frame was serialised in so far, once each (tests read it)."""
        return tuple(self._texts)
