"""The seam between what the user points at (a session row) and whatever can act on it.

The live view's kill/pause flow talks only to a :class:`Controller`: the embedded feed's control
service, a feed's control API, or (watching a fleet) the session's own host over NATS — see
:func:`tokentop.core.control.controller.build_controller`. Where nothing can act, a controller such
as :class:`NoController` answers every plan with the exact reason, so the modal can say why instead
of pretending.

Blocking at the API (the budget stop's key, ``b``) goes through a :class:`Blocker`: the embedded
feed's and a feed's control API controllers are blockers too; anything else is a
:class:`CannotBlock` that says why.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, Protocol, runtime_checkable

Action = Literal["pause", "resume", "terminate", "kill"]
ACTIONS: tuple[Action, ...] = ("pause", "resume", "terminate", "kill")


@dataclass(frozen=True, slots=True)
class Target:
    """A session captured by key at the moment the user pressed the key."""

    session: str
    agent: str | None = None
    model: str | None = None
    pid: int | None = None
    host: str | None = None
    cmd: str | None = None
    usd_per_hour: float = 0.0


@dataclass(frozen=True, slots=True)
class Candidate:
    """A process that might be the one behind a session (discovery found several)."""

    pid: int
    cmd: str
    start_time: float
    cwd: str | None = None


@dataclass(frozen=True, slots=True)
class Plan:
    """What an action on ``target`` would do: the process to signal, or why nothing can be done."""

    target: Target
    can_act: bool
    reason: str | None = None
    pid: int | None = None
    cmd: str | None = None
    #: several possible processes: the user must pick one; nothing acts until then
    candidates: tuple[Candidate, ...] = field(default=())


@dataclass(frozen=True, slots=True)
class Outcome:
    session: str
    action: str
    ok: bool
    message: str


class Controller(Protocol):
    def plan(self, target: Target) -> Plan: ...

    async def act(self, target: Target, action: Action, *, pid: int | None = None, signal: str | None = None) -> Outcome: ...


BlockScope = Literal["session", "agent", "model", "project", "global"]


@dataclass(frozen=True, slots=True)
class BlockTarget:
    """What a block at the API names: a session, agent, model or project (``key``), or every
    request (``global``, key ``""``), captured when the key was pressed."""

    scope: BlockScope
    key: str = ""
    #: the row's burn when it was captured (shown in the modal)
    usd_per_hour: float = 0.0
    #: session rows: the agent and model (shown in the modal)
    agent: str | None = None
    model: str | None = None

    def describe(self) -> str:
        return "every request" if self.scope == "global" else f"{self.scope} {self.key}"


@runtime_checkable
class Blocker(Protocol):
    def block_unavailable(self) -> str | None:
        """Why nothing can be blocked through this blocker (``None``: it can)."""
        ...

    async def block(self, target: BlockTarget, *, message: str | None = None) -> Outcome: ...

    async def unblock(self, target: BlockTarget) -> Outcome: ...


class CannotBlock:
    """A :class:`Blocker` that never blocks and says why."""

    def __init__(self, reason: str) -> None:
        self.reason = reason

    def block_unavailable(self) -> str | None:
        return self.reason

    async def block(self, target: BlockTarget, *, message: str | None = None) -> Outcome:
        return Outcome(target.describe(), "block", False, self.reason)

    async def unblock(self, target: BlockTarget) -> Outcome:
        return Outcome(target.describe(), "unblock", False, self.reason)


NO_PROCESS_REASON = (
    "tokentop does not know the process behind this session: no pid was reported. "
    "Start the agent with `tokentop run -- CMD` (or send `pid` in its events) to make it controllable."
)


class NoController:
    """Used when no control mechanism is available: never acts, always says why."""

    def plan(self, target: Target) -> Plan:
        if target.pid is None:
            return Plan(target, False, NO_PROCESS_REASON)
        return Plan(target, False, "process control is not available in this build", pid=target.pid, cmd=target.cmd)

    async def act(self, target: Target, action: Action, *, pid: int | None = None, signal: str | None = None) -> Outcome:
        return Outcome(target.session, action, False, self.plan(target).reason or "cannot act")
