"""Help: every active binding of the screen underneath, generated (never a hand-kept list)."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

KEY_NAMES = {
    "question_mark": "?", "less_than_sign": "<", "greater_than_sign": ">", "slash": "/", "plus": "+",
    "minus": "-", "space": "space", "escape": "Esc", "enter": "Enter", "f1": "F1", "f9": "F9", "f10": "F10",
    "pageup": "PgUp", "pagedown": "PgDn", "home": "Home", "end": "End", "up": "↑", "down": "↓",
}


GENERIC_ACTIONS = frozenset({"app.focus_next", "app.focus_previous", "focus_next", "focus_previous", "screen.copy_text",
                             "copy_text", "app.copy_text", "screen.focus_next", "screen.focus_previous"})


def key_label(key: str) -> str:
    return KEY_NAMES.get(key, key)


def binding_rows(active: dict, descriptions: dict[str, str] | None = None) -> list[tuple[str, str]]:
    """(keys, description) per action, in binding order, from ``Screen.active_bindings``.

    Disabled or hidden-by-``check_action`` bindings are not in ``active_bindings`` enabled, so
    read-only mode's missing kill keys are simply not listed.
    """
    by_action: dict[tuple[str, str], list[str]] = {}
    order: list[tuple[str, str]] = []
    for key, active_binding in active.items():
        binding = active_binding.binding
        if not active_binding.enabled or binding.system:
            continue
        ident = (binding.action, (descriptions or {}).get(binding.action) or binding.description or binding.action)
        if ident not in by_action:
            by_action[ident] = []
            order.append(ident)
        label = key_label(key)
        if label not in by_action[ident]:
            by_action[ident].append(label)
    # tokentop's own keys first, Textual's generic ones (focus, copy) last
    generic = [ident for ident in order if ident[0] in GENERIC_ACTIONS]
    order = [ident for ident in order if ident[0] not in GENERIC_ACTIONS] + generic
    return [(" ".join(by_action[ident]), ident[1]) for ident in order]


def help_text(rows: list[tuple[str, str]]) -> Text:
    width = max((len(k) for k, _ in rows), default=0)
    text = Text()
    text.append("tokentop keys", "bold")
    text.append("   (Esc closes; ctrl+p opens the command palette, incl. themes)\n\n")
    for keys, description in rows:
        text.append(keys.ljust(width + 2), "bold")
        text.append(description + "\n")
    return text


class HelpScreen(ModalScreen[None]):
    BINDINGS = [Binding("escape,q,question_mark,f1", "dismiss_help", "Close help")]

    def __init__(self, active: dict, descriptions: dict[str, str] | None = None) -> None:
        super().__init__()
        self.rows = binding_rows(active, descriptions)

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="help-scroll"):
            yield Static(help_text(self.rows), id="help", markup=False)

    def on_mount(self) -> None:
        self.query_one("#help-scroll").focus()  # arrows / PgUp / PgDn scroll in small panes

    def action_dismiss_help(self) -> None:
        self.dismiss(None)
