"""What an action modal shows once it acted (kill/pause/resume, block/unblock): one line per
outcome, its Cancel button turned into Close and focused, the bell when any outcome failed."""

from __future__ import annotations

from typing import Sequence

from rich.text import Text
from textual.screen import Screen
from textual.widgets import Button, Static

from tokentop.core.control.port import Outcome
from tokentop.ui import format as fmt


def show_outcomes(screen: Screen[object], outcomes: Sequence[Outcome], *, name_sessions: bool) -> None:
    """Fill the screen's ``#outcome`` and turn ``#cancel`` into Close. ``name_sessions``: each line
    starts with its session (a block's message names its own target)."""
    text = Text()
    for o in outcomes:
        text.append("✔ " if o.ok else "✘ ", "green" if o.ok else "red")
        if name_sessions:
            text.append(f"{fmt.printable(o.session)}: ")
        text.append(f"{fmt.printable(o.message)}\n")
    screen.query_one("#outcome", Static).update(text)
    cancel = screen.query_one("#cancel", Button)
    cancel.label = "Close"
    cancel.focus()
    if not all(o.ok for o in outcomes):
        screen.app.bell()
