"""The key line at the bottom of the live view (htop's function bar, btop's hints):
``F1 help  / filter  B T R C N sort  Enter detail  k kill  s pause  q quit``.

Derived from the screen's *active* bindings by binding id, never a hand-kept string: a key the
user remapped (``App.set_keymap``) shows as remapped, and an action ``check_action`` hides (kill and
pause in read-only mode) is left out. Each entry shows the first key of its binding. When the line
is too narrow, entries drop whole, least important first. The widget repaints only when the
bindings change (a focus change, ``refresh_bindings``), never on the refresh tick.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from rich.text import Text
from textual.widget import Widget

from tokentop.ui.screens.help import key_label

#: below this many rows the key line is hidden: the table needs every row of a short pane
KEY_LINE_MIN_HEIGHT: Final = 16


@dataclass(frozen=True)
class KeyHint:
    #: binding ids whose keys are listed together (``B T R C N`` for the five sorts)
    ids: tuple[str, ...]
    label: str
    #: higher stays longer when the line is narrow
    priority: int


#: What the key line offers, in display order.
KEY_HINTS: Final = (
    KeyHint(("help",), "help", 95),
    KeyHint(("filter",), "filter", 80),
    KeyHint(("sort-burn", "sort-tokens", "sort-requests", "sort-spend", "sort-name"), "sort", 70),
    KeyHint(("detail",), "detail", 50),
    KeyHint(("kill",), "kill", 90),
    KeyHint(("pause-session",), "pause", 60),
    KeyHint(("quit",), "quit", 100),
)


def key_hints(active: dict) -> list[tuple[str, str, int]]:
    """(keys, label, priority) for each :data:`KEY_HINTS` entry with an enabled binding in
    ``active`` (``Screen.active_bindings``): the first key bound to each id, in binding order."""
    first_key: dict[str, str] = {}
    for key, active_binding in active.items():
        binding = active_binding.binding
        if binding.id is not None and active_binding.enabled and binding.id not in first_key:
            first_key[binding.id] = key
    out = []
    for hint in KEY_HINTS:
        keys = [key_label(first_key[i]) for i in hint.ids if i in first_key]
        if keys:
            out.append((" ".join(keys), hint.label, hint.priority))
    return out


class KeyLine(Widget):
    COMPONENT_CLASSES = {"key-line--key", "key-line--label"}

    DEFAULT_CSS = """
    KeyLine { dock: bottom; height: 1; }
    """

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self._text = Text()
        self._hints: list[tuple[str, str, int]] = []

    def on_mount(self) -> None:
        self.screen.bindings_updated_signal.subscribe(self, self._bindings_changed)
        self._bindings_changed()

    def on_unmount(self) -> None:
        self.screen.bindings_updated_signal.unsubscribe(self)

    def _bindings_changed(self, *_: object) -> None:
        hints = key_hints(self.screen.active_bindings)
        if hints != self._hints:
            self._hints = hints
            self.refresh()

    def render(self) -> Text:
        return self.line(self.size.width)

    def line(self, width: int) -> Text:
        """The hints that fit in ``width`` cells, each whole."""
        hints = list(self._hints)
        sep = "  "

        def length(items: list[tuple[str, str, int]]) -> int:
            return sum(len(k) + 1 + len(label) for k, label, _ in items) + len(sep) * max(0, len(items) - 1)

        while hints and length(hints) > width:
            hints.remove(min(hints, key=lambda h: h[2]))
        key_style = self.get_component_rich_style("key-line--key", partial=True)
        label_style = self.get_component_rich_style("key-line--label", partial=True)
        text = Text(no_wrap=True, overflow="crop")
        for n, (keys, label, _) in enumerate(hints):
            if n:
                text.append(sep)
            text.append(keys, key_style)
            text.append(" " + label, label_style)
        return text
