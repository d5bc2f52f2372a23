"""Help: every active binding of the screen underneath, generated (never a hand-kept list)."""

from __future__ import annotations

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import ModalScreen
from textual.widgets import Static

KEY_NAMES = {
    "question_mark": "?", "less_than_sign": "<", "greater_than_sign": ">", "slash": "/", "plus": "+",
    "minus": "-", "space": "space", "escape": "Esc", "enter": "Enter",
}


def key_label(key: str) -> str:
    return KEY_NAMES.get(key, key)


def bindings_table(active: dict) -> Table:
    """Rows of (keys, description) grouped by action, from ``Screen.active_bindings``."""
    by_action: dict[tuple[str, str], list[str]] = {}
    order: list[tuple[str, str]] = []
    for key, active_binding in active.items():
        binding = active_binding.binding
        if not active_binding.enabled:
            continue
        ident = (binding.action, binding.description or binding.action)
        if ident not in by_action:
            by_action[ident] = []
            order.append(ident)
        label = key_label(key)
        if label not in by_action[ident]:
            by_action[ident].append(label)
    table = Table.grid(padding=(0, 2))
    table.add_column(style="bold", no_wrap=True)
    table.add_column()
    for ident in order:
        table.add_row(Text(" ".join(by_action[ident])), Text(ident[1]))
    return table


class HelpScreen(ModalScreen[None]):
    BINDINGS = [Binding("escape,q,question_mark,f1", "dismiss_help", "Close help")]

    def __init__(self, active: dict) -> None:
        super().__init__()
        self.active = active

    def compose(self) -> ComposeResult:
        yield Static(bindings_table(self.active), id="help")

    def action_dismiss_help(self) -> None:
        self.dismiss(None)
