"""The subscription windows under the header: one line per window that has data.

``Claude 5h  62 % ▕██████▎   ▏ resets 1h12m · pace +8 · empty in ~38m at this burn · Claude Code``

Colour follows the pace (on pace / ahead / far ahead, theme variables only); an estimated figure is
marked ``~62 %`` and ``estimated``, an official one names its source. When the pane is narrow the
line sheds whole fields — shorter forms first, then the least useful fields — so nothing is ever
cut in the middle of a word. A pane in the header's condensed mode gets one line for all windows.
The widget showing these lines hides itself when no window has data.

Pure text (no Textual: ``--once --plain`` uses it too); the widget is
:class:`tokentop.ui.limits_bar.LimitsBar`.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Final, Iterable, Sequence

from tokentop.core.limits.windows import Window, expected_percent

BAR_CELLS: Final = 10
SHORT_BAR_CELLS: Final = 6
_EIGHTHS: Final = " ▏▎▍▌▋▊▉"
#: pace (points ahead of an even pace) up to this is "on pace" ...
ON_PACE: Final = 2.0
#: ... up to this "ahead", beyond "far ahead"
FAR_AHEAD: Final = 12.0
#: an official figure older than this says how old it is
SHOW_AGE_AFTER_S: Final = 300.0
#: how a line sheds width: (part, "short" | "drop"), in order
SHED: Final = (
    ("age", "drop"), ("empty", "short"), ("bar", "short"), ("source", "short"), ("resets", "short"),
    ("pace", "drop"), ("bar", "drop"), ("source", "drop"), ("empty", "drop"), ("resets", "drop"),
)
# The source goes before the exhaustion time: an estimate stays marked by its ``~``.


def duration(seconds: float) -> str:
    """``1h12m``, ``38m``, ``2d4h``, ``<1m``."""
    minutes = int(max(0.0, seconds) // 60)
    if minutes < 1:
        return "<1m"
    hours, minutes = divmod(minutes, 60)
    days, hours = divmod(hours, 24)
    if days:
        return f"{days}d{hours}h" if hours else f"{days}d"
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m"


def bar(used_percent: float, cells: int) -> str:
    """``▕██████▎   ▏``: ``cells`` wide between the frame ticks, in eighths."""
    eighths = max(0, min(cells * 8, round(used_percent / 100.0 * cells * 8)))
    full, part = divmod(eighths, 8)
    inner = "█" * full + (_EIGHTHS[part] if part else "")
    return "▕" + inner.ljust(cells) + "▏"


def pace_style(w: Window) -> str:
    """``ok`` / ``ahead`` / ``far`` (or ``dim`` for a reset window): the colour of a window's line."""
    if w.state == "reset":
        return "dim"
    if w.used_percent >= 90 or (w.pace_percent is not None and w.pace_percent > FAR_AHEAD):
        return "far"
    if w.pace_percent is not None and w.pace_percent > ON_PACE:
        return "ahead"
    return "ok"


@dataclass(frozen=True)
class Part:
    key: str
    text: str
    style: str
    short: str | None = None


def window_parts(w: Window, now: float, label: str) -> list[Part]:
    """The fields of one window's line, widest form first (:func:`fit` sheds them)."""
    style = pace_style(w)
    estimated = not w.official
    parts = [Part("label", label, "label")]
    if w.state == "reset":
        parts.append(Part("pct", " 0 %", "dim"))
        parts.append(Part("resets", "reset, awaiting data", "dim", "reset"))
    else:
        parts.append(Part("pct", f"{'~' if estimated else ''}{w.used_percent:.0f} %".rjust(4), style))
        parts.append(Part("bar", bar(w.used_percent, BAR_CELLS), style, bar(w.used_percent, SHORT_BAR_CELLS)))
        if w.resets_at is not None:
            left = duration(w.resets_at - now)
            parts.append(Part("resets", f"resets {left}", "value", f"↻{left}"))
        weekly = (w.window_minutes or 0) > 1440
        expected = expected_percent(now, w.resets_at, w.window_minutes)
        if w.pace_percent is not None and not (weekly and (expected or 0) < 3):
            text = "on pace" if abs(w.pace_percent) <= ON_PACE else f"pace {w.pace_percent:+.0f}"
            parts.append(Part("pace", text, style))
        if w.used_percent >= 100:
            parts.append(Part("empty", "exhausted", "far"))
        elif w.exhausts_at is not None:
            burn = "at this pace" if weekly else "at this burn"
            left = duration(w.exhausts_at - now)
            parts.append(Part("empty", f"empty in ~{left} {burn}", style, f"empty ~{left}"))
    if estimated:
        parts.append(Part("source", "estimated", "est", "est"))
    else:
        short = "undocumented" if w.source == "claude-oauth" else "official"
        parts.append(Part("source", w.source_label, "dim", short))
        if now - w.observed_at > SHOW_AGE_AFTER_S:
            parts.append(Part("age", f"seen {duration(now - w.observed_at)} ago", "dim"))
    return parts


def _layout(parts: Sequence[Part]) -> list[tuple[str, str]]:
    """Label, two spaces, the percent and bar, then the rest separated by `` · ``."""
    out: list[tuple[str, str]] = []
    rest = False
    for p in parts:
        if p.key == "label":
            out.append((p.text, p.style))
            out.append(("  ", ""))
        elif p.key in ("pct", "bar"):
            if p.key == "bar":
                out.append((" ", ""))
            out.append((p.text, p.style))
        else:
            out.append((" · " if rest else " ", "dim"))
            out.append((p.text, p.style))
            rest = True
    return out


def width_of(segments: Iterable[tuple[str, str]]) -> int:
    return sum(len(t) for t, _ in segments)


def fit(parts: Sequence[Part], width: int) -> list[tuple[str, str]]:
    """The line in at most ``width`` cells: whole fields only, shed in :data:`SHED` order."""
    current = list(parts)
    segments = _layout(current)
    for key, how in SHED:
        if width_of(segments) <= width:
            break
        for i, p in enumerate(current):
            if p.key != key:
                continue
            if how == "drop":
                del current[i]
            elif p.short is not None:
                current[i] = replace(p, text=p.short, short=None)
            break
        segments = _layout(current)
    return segments


def labels(windows: Sequence[Window]) -> list[str]:
    """``Claude 5h``; with the account when an agent has windows under several accounts."""
    accounts: dict[str, set[str]] = {}
    for w in windows:
        accounts.setdefault(w.agent, set()).add(w.account)
    return [f"{w.label} {w.account} {w.window}" if len(accounts[w.agent]) > 1 else f"{w.label} {w.window}"
            for w in windows]


def clip_words(text: str, width: int) -> str:
    """``text`` in ``width`` cells, cut after a whole word (with ``…``), never inside one."""
    if len(text) <= width:
        return text
    cut = text.rfind(" ", 0, max(0, width - 1))
    return (text[:cut].rstrip(" ·,:;") if cut > 0 else text[: max(0, width - 1)]) + "…"


def window_lines(windows: Sequence[Window], now: float, width: int, *, with_bar: bool = True) -> list[list[tuple[str, str]]]:
    """One fitted line per window, labels padded to one width (``with_bar=False``: no bar, for
    plain text read by a screen reader)."""
    names = labels(windows)
    pad = max((len(n) for n in names), default=0)
    out = []
    for w, name in zip(windows, names):
        parts = [p for p in window_parts(w, now, name.ljust(pad)) if with_bar or p.key != "bar"]
        out.append(fit(parts, width))
    return out


def condensed_line(windows: Sequence[Window], now: float, width: int) -> list[tuple[str, str]]:
    """All windows on one line: ``Claude 5h 62% ↻1h12m 7d 40% │ Codex 5h 7%`` (trailing ones dropped
    whole when the line is full)."""
    out: list[tuple[str, str]] = []
    agent = None
    for w, name in zip(windows, labels(windows)):
        piece: list[tuple[str, str]] = []
        if w.agent != agent:
            if out:
                piece.append((" │ ", "dim"))
            piece.append((name.rsplit(" ", 1)[0] + " ", "label"))
            agent = w.agent
        else:
            piece.append((" ", ""))
        pct = "reset" if w.state == "reset" else f"{'' if w.official else '~'}{w.used_percent:.0f}%"
        piece.append((f"{w.window} {pct}", pace_style(w)))
        if w.state != "reset" and w.resets_at is not None and w.window == "5h":
            piece.append((f" ↻{duration(w.resets_at - now)}", "value"))
        if width_of(out) + width_of(piece) > width:
            break
        out.extend(piece)
    return out
