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


#: SI suffixes for compact figures: thousand, million, billion, trillion
_SUFFIXES: Final = ("", "k", "M", "B", "T")


def compact(value: float, significant: int = 3) -> str:
    """``value`` with an SI suffix and about ``significant`` digits: ``950``, ``1.23k``, ``12.3k``,
    ``123k``, ``1.20M``, ``10.0B`` (``significant=2``: ``1.2k``, ``12k``, ``123k``). A mantissa that
    rounds up to 1000 moves to the next suffix (``999,999`` is ``1.00M``, not ``1000k``)."""
    sign = "-" if value < 0 else ""
    mag = abs(float(value))
    if mag < 1000:
        return f"{sign}{mag:.0f}"
    tier = 0
    while mag >= 1000 and tier < len(_SUFFIXES) - 1:
        mag /= 1000.0
        tier += 1
    while True:
        decimals = max(0, significant - len(str(int(mag))))
        text = f"{mag:.{decimals}f}"
        grown = len(str(int(float(text))))
        if grown > len(str(int(mag))):  # 99.99 rounds to 100.0: one digit fewer after the point
            text = f"{mag:.{max(0, significant - grown)}f}"
        if float(text) < 1000 or tier == len(_SUFFIXES) - 1:
            return f"{sign}{text}{_SUFFIXES[tier]}"
        mag /= 1000.0
        tier += 1


def fit(forms: Sequence[str], width: int) -> str:
    """The first of ``forms`` (most precise first) that fits in ``width`` cells, else the shortest."""
    for text in forms:
        if len(text) <= width:
            return text
    return min(forms, key=len) if forms else ""


def usd_forms(amount: Decimal | float) -> tuple[str, ...]:
    """Ways to write an amount of dollars, most precise first: ``$22,230.41``, ``$22,230``,
    ``$22.2k``, ``$22k``. A cell shows the first that fits its width (never a cut number)."""
    value = float(amount)
    mag = abs(value)
    sign = "-" if value < 0 else ""
    if mag == 0:
        return ("$0.00", "$0")
    if mag < 0.0001:
        return ("<$0.0001", "<$0.01")
    if mag < 0.01:
        return (f"{sign}${mag:.4f}", f"{sign}<$0.01")
    if mag < 1000:
        return (f"{sign}${mag:,.2f}", f"{sign}${mag:.0f}")
    forms = [] if mag >= 100_000 else [f"{sign}${mag:,.2f}", f"{sign}${mag:,.0f}"]
    return (*forms, f"{sign}${compact(mag, 3)}", f"{sign}${compact(mag, 2)}")


def usd(amount: Decimal | float) -> str:
    """Dollars with cents below $100,000 (``$22,230.41``), compact above (``$123k``, ``$1.20M``);
    sub-cent amounts keep enough digits to be non-zero."""
    return usd_forms(amount)[0] if abs(float(amount)) < 100_000 else usd_forms(amount)[-2]


def usd_fit(amount: Decimal | float, width: int) -> str:
    """:func:`usd` in at most ``width`` cells: compact (``$22.2k``) rather than cut."""
    return fit(usd_forms(amount), width)


def rate_forms(value: float) -> tuple[str, ...]:
    """A per-second rate: ``0.3``, ``12.5``, ``950``, ``12.3k``, ``1.53M`` (then 2 digits: ``12k``)."""
    if value == 0:
        return ("0",)
    if value < 10:
        return (f"{value:.1f}", f"{value:.0f}" if value >= 0.5 else "0") if value >= 0.05 else ("<0.1",)
    if value < 1000:
        return (f"{value:.0f}",)
    return (compact(value, 3), compact(value, 2))


def rate(value: float) -> str:
    """A per-second rate in at most 5 characters: ``0.3``, ``12.5``, ``1.23k``, ``3.40M``."""
    return rate_forms(value)[0]


def rate_fit(value: float, width: int) -> str:
    return fit(rate_forms(value), width)


def count_forms(value: int) -> tuple[str, ...]:
    if value < 1000:
        return (str(value),)
    return (compact(value, 3), compact(value, 2))


def count(value: int) -> str:
    """Token counts: ``950``, ``12.3k``, ``4.56M``, ``10.0B``."""
    return count_forms(value)[0]


def count_fit(value: int, width: int) -> str:
    return fit(count_forms(value), width)


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
