"""The kill / pause / resume modal.

Targets were captured by key when the key was pressed; the table may keep moving behind the modal
but this screen only ever acts on what it names. Focus starts on Cancel. A target whose
:class:`~tokentop.core.control.port.Plan` cannot act shows the plan's reason and is never acted on;
a target with several candidate processes acts on none until the user picks one. When nothing
can act, the buttons stay on screen but disabled (so the user sees what *would* happen) and one
line says what would make it possible (:func:`remedy`).
"""

from __future__ import annotations

import asyncio
from dataclasses import replace

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, OptionList, RadioButton, RadioSet, Static
from textual.widgets.option_list import Option

from tokentop.core.control.port import NO_PROCESS_REASON, Action, Controller, Outcome, Plan, Target
from tokentop.ui import format as fmt
from tokentop.ui.screens.outcomes import show_outcomes

VERBS = {"kill": "Stop", "pause": "Pause", "resume": "Continue"}
PAST = {"kill": "stopped", "pause": "paused", "resume": "continued"}

#: what makes an action possible, by the plan's reason (the reasons are the control layer's own
#: words: docs/control.md); first match wins
REMEDIES: tuple[tuple[str, str], ...] = (
    (NO_PROCESS_REASON,
     "no process recorded for this session: run the agent under `tokentop run -- CMD` (or have it send "
     "`pid` in its events), or turn on `[control] discovery` so tokentop finds claude/codex processes started by hand"),
    ("no pid was reported",
     "no process recorded for this session: run the agent under `tokentop run -- CMD`, or turn on `[control] discovery`"),
    ("no local token found",
     "no local token found: run the live view as the user who runs the feed, on its machine "
     "(the token is the feed's state-dir file `token`), or watch it with `tokentop --feed URL` from there"),
    ("control it from the feed on that host",
     "the session runs on another host: watch the fleet with `tokentop --nats URL` (actions go to each session's "
     "own host), or run tokentop on that host"),
    ("without the control layer", "this feed runs without process control: watch a host feed (`tokentop serve`)"),
    ("not available in this build", "process control is not available here: run the live view against a feed with "
                                    "process control (`tokentop`, `tokentop serve`)"),
    ("not yours", "the process belongs to another user: run tokentop as that user"),
    ("has already exited", "the process has already exited: there is nothing left to stop"),
    ("exited before the signal", "the process has already exited: there is nothing left to stop"),
    ("did not answer", "the feed did not answer: check that it runs (`tokentop check`), then try again"),
)


def remedy(plans: list[Plan]) -> str | None:
    """The one thing that would let the action go ahead, when no plan can act (``None`` when one
    can, or when a candidate can still be picked)."""
    if any(p.can_act or p.candidates for p in plans):
        return None
    for plan in plans:
        reason = plan.reason or ""
        for needle, text in REMEDIES:
            if reason == needle or needle in reason:
                return text
    return None


def describe_target(t: Target) -> Text:
    text = Text(no_wrap=False)
    text.append("agent ", "bold")
    text.append(fmt.printable(t.agent or "?"))
    text.append("  session ", "bold")
    text.append(fmt.printable(t.session))
    if t.host:
        text.append("  host ", "bold")
        text.append(fmt.printable(t.host))
    text.append("  pid ", "bold")
    text.append(str(t.pid) if t.pid is not None else "unknown")
    text.append("  burn ", "bold")
    text.append(f"{fmt.usd(t.usd_per_hour)}/h est")
    if t.model:
        text.append("  model ", "bold")
        text.append(fmt.printable(t.model))
    if t.cmd:
        text.append("\n  cmd ", "bold")
        text.append(fmt.ellipsize_middle(fmt.printable(t.cmd), 70))
    return text


class ActionScreen(ModalScreen[list[Outcome] | None]):
    BINDINGS = [
        Binding("escape,n", "cancel", "Cancel"),
        Binding("y", "confirm", "Confirm", show=False),
    ]

    def __init__(self, action: str, targets: list[Target], controller: Controller) -> None:
        super().__init__()
        self.kind = action  # "kill" | "pause" | "resume"
        self.targets = list(targets)
        self.controller = controller
        #: filled by a worker thread: plan() may walk the process table or do an HTTP round trip
        self.plans: list[Plan] = []
        self.ready = False
        #: chosen pid per session, for plans that list candidates
        self.chosen_pid: dict[str, int] = {}
        self.outcomes: list[Outcome] | None = None
        if action != "kill":
            self.add_class("-gentle")

    # what acting would do, given the choices so far
    def actionable(self) -> list[tuple[Plan, int | None]]:
        out = []
        for plan in self.plans:
            if plan.candidates:
                # several (or discovered) processes: nothing happens until the user picks one
                pid = self.chosen_pid.get(plan.target.session)
                if pid is not None:
                    out.append((plan, pid))
            elif plan.can_act:
                out.append((plan, plan.pid))
        return out

    def compose(self) -> ComposeResult:
        n = len(self.targets)
        verb = VERBS[self.kind]
        with Vertical(id="dialog"):
            yield Static(f"{verb} {n} session{'s' if n != 1 else ''}?", id="title", markup=False)
            with VerticalScroll(id="targets"):
                if not self.ready:
                    for target in self.targets:
                        yield Static(describe_target(target), classes="target", markup=False)
                    yield Static(Text("  checking the process behind each session…"), classes="note", markup=False)
                for plan in self.plans:
                    target = plan.target if plan.target.cmd or not plan.cmd else replace(plan.target, cmd=plan.cmd)
                    yield Static(describe_target(target), classes="target", markup=False)
                    if plan.can_act and plan.pid is not None and not plan.candidates and not plan.reason:
                        # what the control layer verified before offering the action (ControlService.plan)
                        yield Static(Text(f"  ✔ checked: pid {plan.pid} is the process recorded (same start time, yours)"),
                                     classes="note checked", markup=False)
                    if plan.candidates:
                        why = plan.reason or "several processes could be this session"
                        yield Static(Text(f"  {why}: pick the process below"), classes="reason", markup=False)
                    elif not plan.can_act:
                        yield Static(Text(f"  cannot {self.kind}: {plan.reason or 'no reason given'}"), classes="reason", markup=False)
                    elif plan.reason:
                        yield Static(Text(f"  {plan.reason}"), classes="note", markup=False)
            pick = [p for p in self.plans if p.candidates]
            if pick:
                options = []
                for plan in pick:
                    for c in plan.candidates:
                        label = Text(f"{plan.target.session}  pid {c.pid}  {fmt.ellipsize(fmt.printable(c.cmd), 50)}")
                        if c.cwd:
                            label.append(f"  in {fmt.printable(c.cwd)}", "dim")
                        options.append(Option(label, id=f"{plan.target.session}\x00{c.pid}"))
                yield OptionList(*options, id="candidates")
            if self.kind == "kill":
                with RadioSet(id="signals"):
                    yield RadioButton("TERM: ask it to exit (default)", value=True, id="sig-term")
                    yield RadioButton("KILL: force, no clean-up", id="sig-kill")
            yield Static("", id="outcome", markup=False)
            if self.ready and self.nothing_can_act:
                how = remedy(self.plans)
                line = Text(f"Nothing can be {PAST[self.kind]} from here.", "bold")
                if how:
                    line.append(f" To make it possible: {how}.", "")
                yield Static(line, id="remedy", markup=False)
            with Horizontal(id="buttons"):
                yield Button("Cancel", id="cancel", variant="primary", compact=True)
                yield Button(self._confirm_label(), id="confirm", variant="error" if self.kind == "kill" else "warning",
                             compact=True)

    @property
    def nothing_can_act(self) -> bool:
        """Every target's plan refused and none offers a process to pick."""
        return bool(self.plans) and not any(p.can_act or p.candidates for p in self.plans)

    def _confirm_label(self) -> str:
        if self.kind == "kill":
            return f"Send {self.signal}"
        return VERBS[self.kind]

    @property
    def signal(self) -> str:
        if self.kind != "kill":
            return "STOP" if self.kind == "pause" else "CONT"
        try:
            kill = self.query_one("#sig-kill", RadioButton).value
        except Exception:
            kill = False
        return "KILL" if kill else "TERM"

    @property
    def control_action(self) -> Action:
        if self.kind == "kill":
            return "kill" if self.signal == "KILL" else "terminate"
        return "pause" if self.kind == "pause" else "resume"

    def on_mount(self) -> None:
        self._update_confirm()
        self.query_one("#cancel", Button).focus()
        # a worker, so Esc / Cancel keep working while the plans are being made
        self.run_worker(self._load_plans(), name="plans", exclusive=True)

    async def _load_plans(self) -> None:
        targets, controller = list(self.targets), self.controller

        def plan_all() -> list[Plan]:
            out = []
            for t in targets:
                try:
                    out.append(controller.plan(t))
                except Exception as exc:  # a controller failure must still say why
                    out.append(Plan(t, False, f"could not check the process: {exc}"))
            return out

        self.plans = await asyncio.to_thread(plan_all)
        self.ready = True
        await self.recompose()
        self._update_confirm()
        self.query_one("#cancel", Button).focus()

    def _update_confirm(self) -> None:
        button = self.query_one("#confirm", Button)
        button.label = self._confirm_label()
        button.disabled = not self.ready or self.outcomes is not None or not self.actionable()
        if self.kind == "kill":
            # the signal choice is part of the action: greyed out with it when nothing can act
            self.query_one("#signals", RadioSet).disabled = (self.ready and self.nothing_can_act) or self.outcomes is not None

    @on(RadioSet.Changed)
    def _signal_changed(self) -> None:
        self._update_confirm()

    @on(OptionList.OptionSelected, "#candidates")
    def _candidate(self, event: OptionList.OptionSelected) -> None:
        session, _, pid = (event.option.id or "").partition("\x00")
        self.chosen_pid[session] = int(pid)
        self._update_confirm()

    @on(Button.Pressed, "#cancel")
    def action_cancel(self) -> None:
        self.dismiss(self.outcomes)

    @on(Button.Pressed, "#confirm")
    async def action_confirm(self) -> None:
        if self.outcomes is not None or not self.ready:
            return
        todo = self.actionable()
        if not todo:
            return
        outcomes: list[Outcome] = []
        for plan, pid in todo:
            try:
                outcome = await self.controller.act(plan.target, self.control_action, pid=pid, signal=self.signal)
            except Exception as exc:  # a controller bug must not take the UI down
                outcome = Outcome(plan.target.session, self.control_action, False, f"error: {exc}")
            outcomes.append(outcome)
        self.outcomes = outcomes
        show_outcomes(self, outcomes, name_sessions=True)
        self._update_confirm()
