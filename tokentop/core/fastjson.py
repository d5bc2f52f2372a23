"""Whether the hot parsers use ``msgspec``'s typed decoding (``TOKENTOP_FAST_JSON=0`` turns it off).

The agent-log readers and the feed's event ingest decode JSON straight into ``msgspec.Struct``
types that declare only the fields tokentop reads: ``msgspec`` skips everything else without
building Python objects for it (measured on Claude Code transcript lines: 2.4x the lines/s of
``orjson``, which builds every nested dict, list and string of a line). A line the typed decoder
refuses (a value of an unexpected type, a lone surrogate escape, nesting deeper than it goes) is
read by the general path (``orjson``, then the standard library), which decides what it is:
both paths give the same result for every line, which the tests check by running the readers
and the feed with this switch on and off.

The switch is read from the environment when this module is imported (so a backfill worker
process follows its parent); tests flip :data:`ENABLED` directly.
"""

from __future__ import annotations

import os
from typing import Final

try:
    import msgspec  # noqa: F401 - a declared dependency; without it the general path is used
    AVAILABLE: Final = True
except ImportError:  # pragma: no cover
    AVAILABLE = False  # type: ignore[misc]

#: Environment variable: ``0`` / ``false`` / ``off`` / ``no`` turns typed decoding off.
ENV: Final = "TOKENTOP_FAST_JSON"

ENABLED: bool = AVAILABLE and os.environ.get(ENV, "1").strip().lower() not in ("0", "false", "off", "no")
