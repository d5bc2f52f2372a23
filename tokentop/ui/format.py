"""Text formatting for the live view: money, rates, token counts, ages, sparklines.

Pure functions (no Textual), shared by the table, the header, the detail screen and ``--once
--plain``. Every figure is short enough for a narrow column and never lies: zero is shown as a
dim dash by the caller, unpriced money as ``unpriced``, never as ``$0``.
"""

from __future__ import annotations

import math
from decimal import Decimal
from typing import Final, Sequence

#: Eight bar heights; index 0 is used for "some, but tiny", a space for exactly zero.
BARS: Final = "▁▂▃▄▅▆▇█"

#: $/h thresholds for the low / mid / high burn colours.
BURN_MID_USD_PER_HOUR: Final = 1.0
BURN_HIGH_USD_PER_HOUR: Final = 10.0


def burn_level(usd_per_hour: float) -> str:
    """``low`` / ``mid`` / ``high``: which burn colour a rate gets."""
    if usd_per_hour >= BURN_HIGH_USD_PER_HOUR:
        return "high"
    if usd_per_hour >= BURN_MID_USD_PER_HOUR:
        return "mid"
    return "low"


def usd(amount: Decimal | float) -> str:
    """Dollars with cents; sub-cent amounts keep enough digits to be non-zero."""
    value = float(amount)
    if value == 0:
        return "$0.00"
    mag = abs(value)
    if mag >= 100_000:
        return f"${value / 1000:,.0f}k"
    if mag >= 0.01:
        return f"${value:,.2f}"
    if mag >= 0.0001:
        return f"${value:.4f}"
    return "<$0.0001"


def rate(value: float) -> str:
    """A per-second rate in at most 6 characters: ``0.3``, ``12.5``, ``1.2k``, ``3.4M``."""
    if value == 0:
        return "0"
    if value < 10:
        return f"{value:.1f}" if value >= 0.05 else "<0.1"
    if value < 1000:
        return f"{value:.0f}"
    return count(int(value))


def count(value: int) -> str:
    """Token counts: ``950``, ``12.3k``, ``4.56M``, ``1.20B``."""
    if value < 1000:
        return str(value)
    if value < 1_000_000:
        return f"{value / 1000:.1f}k"
    if value < 1_000_000_000:
        return f"{value / 1_000_000:.2f}M"
    return f"{value / 1_000_000_000:.2f}B"


def age(seconds: float) -> str:
    """``0.4 s``, ``12 s``, ``3 min``, ``2 h``."""
    if seconds < 0:
        seconds = 0.0
    if seconds < 10:
        return f"{seconds:.1f} s"
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.0f} h"


def sparkline(values: Sequence[float], width: int) -> str:
    """Block-character sparkline of ``values`` in ``width`` cells, zero-based, scaled to the max.

    The series is bucketed (sum per bucket: money or tokens in that slice of time) down to
    ``width``; the newest values are on the right. A bucket with no activity is a space so a quiet
    row reads as quiet.
    """
    if width <= 0:
        return ""
    if not values:
        return " " * width
    n = len(values)
    if n <= width:
        buckets = [float(v) for v in values]
        buckets = [0.0] * (width - n) + buckets
    else:
        buckets = [0.0] * width
        for j, v in enumerate(values):
            if v:
                buckets[j * width // n] += v
    top = max(buckets)
    if top <= 0:
        return " " * width
    out = []
    last = len(BARS) - 1
    for v in buckets:
        if v <= 0:
            out.append(" ")
        else:
            out.append(BARS[min(last, max(0, math.ceil(v / top * len(BARS)) - 1))])  # k/8 of full height
    return "".join(out)


def ellipsize(text: str, width: int) -> str:
    """Cut ``text`` to ``width`` cells with ``…`` (names are printable text; wide glyphs count 1)."""
    if width <= 0:
        return ""
    if len(text) <= width:
        return text
    if width == 1:
        return "…"
    return text[: width - 1] + "…"


def ellipsize_middle(text: str, width: int) -> str:
    """Cut the middle out (ids keep their distinguishing head and tail): ``opencode-1…-03``."""
    if len(text) <= width:
        return text
    if width <= 3:
        return ellipsize(text, width)
    tail = (width - 1) // 3
    head = width - 1 - tail
    return text[:head] + "…" + text[len(text) - tail :]


def printable(text: str) -> str:
    """Control characters (an agent name with escape codes or newlines) shown as ``?``."""
    if text.isprintable():
        return text
    return "".join(ch if ch.isprintable() else "?" for ch in text)
