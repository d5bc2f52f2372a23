"""The subscription windows under the header, as a widget (the text is :mod:`tokentop.ui.limits_line`).

One line per window that has data, then the limits status's notes (an OAuth poller that stopped,
Claude Code sending no quota figures); one line for all windows when the header is condensed;
hidden when there is nothing to say. Repaints only when the text changed.
"""

from __future__ import annotations

from rich.style import Style
from rich.text import Text
from textual.widget import Widget

from tokentop.core.limits.status import LimitsStatus
from tokentop.core.limits.windows import Window
from tokentop.core.snapshot import Snapshot
from tokentop.ui import format as fmt
from tokentop.ui.limits_line import clip_words, condensed_line, window_lines


class LimitsBar(Widget):
    """The windows under the header (hidden when the snapshot has none)."""

    COMPONENT_CLASSES = {
        "limits-bar--label",
        "limits-bar--value",
        "limits-bar--dim",
        "limits-bar--ok",
        "limits-bar--ahead",
        "limits-bar--far",
        "limits-bar--est",
    }

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.lines: list[list[tuple[str, str]]] = []
        self._windows: tuple[Window, ...] = ()
        self._notes: tuple[str, ...] = ()
        self._now = 0.0
        self._key: object = None

    def show(self, snapshot: Snapshot | None, now: float, *, condensed: bool = False) -> None:
        windows = snapshot.limits if snapshot is not None else ()
        status = LimitsStatus.of(snapshot)
        notes = status.notes if status is not None else ()
        self._windows, self._notes, self._now = windows, notes, now
        self.set_class(condensed, "-condensed")
        self.display = bool(windows or notes)
        self._relayout(condensed)

    def on_resize(self) -> None:
        self._relayout(self.has_class("-condensed"))

    def _relayout(self, condensed: bool) -> None:
        width = self.content_size.width or max(20, self.app.size.width - 2)
        if condensed:
            lines = [condensed_line(self._windows, self._now, width)] if self._windows else []
        else:
            lines = window_lines(self._windows, self._now, width)
            lines += [[(clip_words(fmt.printable(n), width), "dim")] for n in self._notes]
        key = (tuple(tuple(line) for line in lines), width)
        if key != self._key:
            height_changed = len(lines) != len(self.lines)
            self._key = key
            self.lines = lines
            self.refresh(layout=height_changed)

    def _style(self, name: str) -> Style:
        if not name:
            return Style()
        return self.get_component_rich_style(f"limits-bar--{name}", partial=True)

    def render(self) -> Text:
        text = Text(no_wrap=True, overflow="crop")
        for n, line in enumerate(self.lines):
            if n:
                text.append("\n")
            for piece, style in line:
                text.append(piece, self._style(style))
        return text

    def plain(self) -> list[str]:
        """The lines as plain text (tests read it)."""
        return ["".join(t for t, _ in line) for line in self.lines]
