"""The budget stop's mechanism: before a metered request goes upstream, the proxy asks its gate.

A :class:`Gate` looks at who is asking (:class:`GateRequest`) and answers ``None`` (pass) or a
:class:`Block` naming the tokentop rule that stopped the request and how to lift it. The proxy
turns a block into the provider's own 429 (see :mod:`.errors`), so the agent reports a clean
error instead of dying mid-edit; the next request is asked again, so lifting the rule lets it
through.

Gates are synchronous and must be O(1): they run on every request, on the proxy's event loop.
A gate that needs data (budgets, runaway rules, subscription windows) keeps its own state,
updated by whoever evaluates the rule, and only *looks it up* here. :class:`GateChain` asks
several gates in order; :class:`BlockList` is the built-in one: explicit blocks by scope
(global / agent / model / project / session), optionally expiring.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any, Callable, Final, Iterable, Literal, Protocol

log = logging.getLogger("tokentop.proxy")

Scope = Literal["global", "agent", "model", "project", "session"]
SCOPES: Final[tuple[Scope, ...]] = ("session", "agent", "project", "model", "global")
MAX_BLOCKS: Final = 10_000


@dataclass(frozen=True, slots=True)
class GateRequest:
    """What a gate knows about a request before it is sent. ``model`` is the model the client
    *asked for* (the upstream's answer is not known yet)."""

    agent: str
    session: str | None
    model: str | None
    upstream: str
    project: str | None = None


@dataclass(frozen=True, slots=True)
class Block:
    """A refusal: ``rule`` names the tokentop rule (``block-list``, ``budget.daily``, ...)."""

    rule: str
    message: str
    how_to_lift: str

    def text(self) -> str:
        """The message the client's error carries."""
        return f"tokentop stopped this request (rule {self.rule}): {self.message}. To lift it: {self.how_to_lift}"


class Gate(Protocol):
    def check(self, request: GateRequest) -> Block | None: ...


class GateChain:
    """Asks each gate in order; the first block wins. A gate that raises is logged and skipped
    (a bug in a rule must not stop every request, nor let the exception reach the client)."""

    def __init__(self, gates: Iterable[Gate] = ()) -> None:
        self._gates: list[Gate] = list(gates)
        self.errors = 0

    def add(self, gate: Gate) -> None:
        self._gates.append(gate)

    def remove(self, gate: Gate) -> None:
        self._gates.remove(gate)

    def check(self, request: GateRequest) -> Block | None:
        for gate in self._gates:
            try:
                block = gate.check(request)
            except Exception:
                self.errors += 1
                log.exception("proxy gate %r failed; request let through", type(gate).__name__)
                continue
            if block is not None:
                return block
        return None


@dataclass(frozen=True, slots=True)
class BlockEntry:
    scope: Scope
    key: str
    rule: str
    message: str
    how_to_lift: str
    since: float
    until: float | None = None

    def to_json(self) -> dict[str, Any]:
        return {"scope": self.scope, "key": self.key, "rule": self.rule, "message": self.message,
                "how_to_lift": self.how_to_lift, "since": self.since, "until": self.until}


def default_how_to_lift(scope: Scope, key: str) -> str:
    target = "--all" if scope == "global" else f"--{scope} {key}"
    return f"run `tokentop proxy unblock {target}` (or wait for the block to expire, if it has an end)"


class BlockList:
    """In-memory blocks keyed by (scope, key). ``check`` is a few dict lookups.

    ``block`` replaces an existing block of the same (scope, key); ``unblock`` lifts it. At most
    :data:`MAX_BLOCKS` are held (a further one raises ``ValueError``: blocks are never dropped
    silently). ``until`` (epoch seconds) makes a block lift itself.
    """

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock
        self._blocks: dict[tuple[str, str], BlockEntry] = {}
        #: requests refused, by rule
        self.refused: dict[str, int] = {}

    def block(self, scope: Scope, key: str = "", *, rule: str = "block-list", message: str | None = None,
              how_to_lift: str | None = None, until: float | None = None) -> BlockEntry:
        if scope not in SCOPES:
            raise ValueError(f"scope must be one of {', '.join(SCOPES)}, got {scope!r}")
        key = "" if scope == "global" else key.strip()
        if scope != "global" and not key:
            raise ValueError(f"blocking a {scope} needs its name")
        if (scope, key) not in self._blocks and len(self._blocks) >= MAX_BLOCKS:
            raise ValueError(f"at most {MAX_BLOCKS} blocks are held; lift some first")
        what = "every request" if scope == "global" else f"{scope} {key!r}"
        entry = BlockEntry(
            scope, key, rule,
            message or f"{what} is blocked",
            how_to_lift or default_how_to_lift(scope, key),
            self.clock(), until,
        )
        self._blocks[(scope, key)] = entry
        log.info("proxy: blocked %s %s (rule %s)", scope, key or "(all)", rule)
        return entry

    def unblock(self, scope: Scope, key: str = "") -> bool:
        key = "" if scope == "global" else key.strip()
        removed = self._blocks.pop((scope, key), None) is not None
        if removed:
            log.info("proxy: unblocked %s %s", scope, key or "(all)")
        return removed

    def entries(self) -> list[BlockEntry]:
        now = self.clock()
        return [e for e in self._blocks.values() if e.until is None or e.until > now]

    def check(self, request: GateRequest) -> Block | None:
        blocks = self._blocks
        if not blocks:
            return None
        for scope, key in (("session", request.session), ("agent", request.agent), ("project", request.project),
                           ("model", request.model), ("global", "")):
            if key is None:
                continue
            entry = blocks.get((scope, key))
            if entry is None:
                continue
            if entry.until is not None and entry.until <= self.clock():
                del blocks[(scope, key)]  # expired: lifts itself
                continue
            self.refused[entry.rule] = self.refused.get(entry.rule, 0) + 1
            return Block(entry.rule, entry.message, entry.how_to_lift)
        return None
