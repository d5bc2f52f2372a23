"""The block / unblock modal (key ``b``): block a session, agent, model or project at the API.

The metering proxy then answers the target's next requests with the provider's own 429 naming the
rule (``user-block``) and how to lift it (docs/proxy.md, "Budget stop"). Targets were captured by
key when ``b`` was pressed, with what blocked them at that moment (from the snapshot's
``status["blocks"]``); the modal only acts on what it names. Focus starts on Cancel.

Blocking needs a proxy that enforces the feed's blocks: when the feed says none does, the confirm
button stays on screen, disabled, with the one thing that would make it possible. Lifting is always
possible (a lift is recorded even while no proxy runs).
"""

from __future__ import annotations

from dataclasses import dataclass

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Static

from tokentop.core.control.blocks import ApiBlock, BlocksStatus, unblock_command
from tokentop.core.control.port import Blocker, BlockTarget, Outcome
from tokentop.core.proxy.gate import Block
from tokentop.ui import format as fmt
from tokentop.ui.screens.outcomes import show_outcomes

#: what makes a block possible when no proxy enforces the feed's blocks
NO_PROXY = ("No tokentop proxy enforces this feed's blocks. To make it possible: set `[proxy] enabled = true` (and "
            "restart the feed), or run `tokentop proxy`; then point the agent at it (docs/proxy.md).")


@dataclass(frozen=True, slots=True)
class BlockRow:
    """One target and what blocks it right now."""

    target: BlockTarget
    #: the blocks of exactly this target (what an unblock lifts)
    exact: tuple[ApiBlock, ...] = ()
    #: a block of another scope that refuses this target's requests anyway (its agent, a global one)
    covered: Block | None = None


def describe_block_target(row: BlockRow) -> Text:
    t = row.target
    text = Text(no_wrap=False)
    text.append(t.scope if t.scope != "global" else "every request", "bold")
    if t.scope != "global":
        text.append(" " + fmt.printable(t.key))
    if t.agent and t.scope == "session":
        text.append("  agent ", "bold")
        text.append(fmt.printable(t.agent))
    if t.model and t.scope == "session":
        text.append("  model ", "bold")
        text.append(fmt.printable(t.model))
    text.append("  burn ", "bold")
    text.append(f"{fmt.usd(t.usd_per_hour)}/h est")
    return text


class BlockScreen(ModalScreen[list[Outcome] | None]):
    BINDINGS = [
        Binding("escape,n", "cancel", "Cancel"),
        Binding("y", "confirm", "Confirm", show=False),
    ]

    def __init__(self, mode: str, rows: list[BlockRow], blocker: Blocker, status: BlocksStatus | None) -> None:
        super().__init__()
        self.mode = mode  # "block" | "unblock"
        self.rows = list(rows)
        self.blocker = blocker
        self.status = status
        self.outcomes: list[Outcome] | None = None
        if mode == "unblock":
            self.add_class("-gentle")

    @property
    def todo(self) -> list[BlockRow]:
        """The targets the confirm button acts on: not yet blocked (block), blocked (unblock)."""
        if self.mode == "block":
            return [r for r in self.rows if not r.exact]
        return [r for r in self.rows if r.exact]

    @property
    def unavailable(self) -> str | None:
        """Why confirming cannot do anything (``None``: it can)."""
        reason = self.blocker.block_unavailable()
        if reason is not None:
            return reason
        if self.mode == "block" and (self.status is None or not self.status.enforced):
            return NO_PROXY
        return None

    def compose(self) -> ComposeResult:
        n = len(self.rows)
        what = self.rows[0].target.describe() if n == 1 else f"{n} targets"
        verb = "Block" if self.mode == "block" else "Unblock"
        with Vertical(id="dialog"):
            yield Static(f"{verb} {what} at the API?", id="title", markup=False)
            with VerticalScroll(id="targets"):
                for row in self.rows:
                    yield Static(describe_block_target(row), classes="target", markup=False)
                    for b in row.exact:
                        note = f"  blocked by rule {b.rule}: {b.message}"
                        if b.kind == "rule" and self.mode == "unblock":
                            note += " (a rule's block: lifted until the rule clears, then it may block again)"
                        yield Static(Text(note), classes="reason", markup=False)
                    if self.mode == "block" and row.exact:
                        yield Static(Text("  already blocked: left as it is"), classes="note", markup=False)
                    if row.covered is not None:
                        word = "also refused" if self.mode == "block" or row.exact else "refused"
                        yield Static(Text(f"  {word} by rule {row.covered.rule}: {row.covered.message}"),
                                     classes="reason", markup=False)
            yield Static(self._explain(), id="explain", markup=False)
            yield Static("", id="outcome", markup=False)
            reason = self.unavailable
            if reason is not None:
                past = "blocked" if self.mode == "block" else "unblocked"
                line = Text(f"Nothing can be {past} from here.", "bold")
                line.append(f" {reason}" if reason == NO_PROXY else f" {reason[:1].upper()}{reason[1:]}.", "")
                yield Static(line, id="remedy", markup=False)
            with Horizontal(id="buttons"):
                yield Button("Cancel", id="cancel", variant="primary", compact=True)
                yield Button(verb, id="confirm", variant="error" if self.mode == "block" else "warning", compact=True)

    def _explain(self) -> Text:
        if self.mode == "unblock":
            return Text("The proxy lets their next requests through again (unless another block still refuses them).")
        first = self.todo[0].target if self.todo else self.rows[0].target
        text = Text("The metering proxy answers their next requests with the provider's own 429 "
                    "(\"tokentop stopped this request (rule user-block) ...\"): the agent reports a clean error. "
                    "Only requests sent through the proxy are stopped. To lift it: b again, or ")
        text.append(f"`{unblock_command(first.scope, first.key)}`.")
        if self.status is not None and self.status.proxies:
            where = ", ".join(f"{p.url} ({p.how})" for p in self.status.proxies)
            text.append(f"\nEnforced by the proxy at {where}.", "dim")
        return text

    def on_mount(self) -> None:
        self._update_confirm()
        self.query_one("#cancel", Button).focus()

    def _update_confirm(self) -> None:
        self.query_one("#confirm", Button).disabled = self.outcomes is not None or not self.todo \
            or self.unavailable is not None

    @on(Button.Pressed, "#cancel")
    def action_cancel(self) -> None:
        self.dismiss(self.outcomes)

    @on(Button.Pressed, "#confirm")
    async def action_confirm(self) -> None:
        if self.outcomes is not None or self.unavailable is not None or not self.todo:
            return
        outcomes: list[Outcome] = []
        for row in self.todo:
            try:
                if self.mode == "block":
                    outcome = await self.blocker.block(row.target)
                else:
                    outcome = await self.blocker.unblock(row.target)
            except Exception as exc:  # a blocker bug must not take the UI down
                outcome = Outcome(row.target.describe(), self.mode, False, f"error: {exc}")
            outcomes.append(outcome)
        self.outcomes = outcomes
        show_outcomes(self, outcomes, name_sessions=False)
        self._update_confirm()
