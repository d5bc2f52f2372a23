"""The budget stop's mechanism: before a metered request goes upstream, the proxy asks its gate.

A :class:`Gate` looks at who is asking (:class:`GateRequest`) and answers ``None`` (pass) or a
:class:`Block` naming the tokentop rule that stopped the request and how to lift it. The proxy
turns a block into the provider's own 429 (see :mod:`.errors`), so the agent reports a clean
error instead of dying mid-edit; the next request is asked again, so lifting the rule lets it
through.

Gates are synchronous and must be O(1): they run on every request, on the proxy's event loop.
A gate that needs data (budgets, runaway rules, subscription windows) keeps its own state,
updated by whoever evaluates the rule, and only *looks it up* here. :class:`GateChain` asks
several gates in order; :class:`BlockList` is the proxy's own one: explicit blocks by scope
(global / agent / model / project / session), optionally expiring. :class:`BlockIndex` is an
immutable lookup table of blocks that an owner rebuilds whenever its blocks change and swaps in
whole, so a proxy on another thread's loop can read it without a lock (the feed's budget stop,
:mod:`tokentop.core.control.blocks`, and a proxy following a remote feed, :mod:`.follow`).

Models: the gate sees the model the client *asked for* — often an alias such as
``claude-sonnet-4-5`` — while budgets see the one the upstream answered with
(``claude-sonnet-4-5-20250929``). Model blocks are therefore matched on :func:`model_family`, the
name without its date (or ``latest``) suffix, on both sides.
"""

from __future__ import annotations

import functools
import logging
import re
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


#: a model name's date / version-pin suffix: ``-20250929``, ``-2025-08-07``, ``@20250929`` (Vertex),
#: ``-0613`` (OpenAI's older pins), ``-latest``
_MODEL_SUFFIX: Final = re.compile(r"(?:[-@](?:\d{4}-\d{2}-\d{2}|\d{8}|\d{4}|latest))+$")


@functools.lru_cache(maxsize=4096)
def model_family(model: str) -> str:
    """The model a name stands for, as blocks match it: lower case, without a date or ``latest``
    suffix. ``claude-sonnet-4-5-20250929`` and ``claude-sonnet-4-5`` are one model;
    ``gpt-5-2025-08-07`` is ``gpt-5``; ``claude-opus-4-1`` stays itself (a version, not a date).
    Cached: the proxy asks it on every request while a model is blocked."""
    name = model.strip().lower()
    return _MODEL_SUFFIX.sub("", name) or name


def scope_key(scope: str, key: str) -> str:
    """The key a block of ``scope`` is looked up by (``""`` for global; a model's family)."""
    if scope == "global":
        return ""
    key = key.strip()
    return model_family(key) if scope == "model" else key


@dataclass(frozen=True, slots=True)
class Block:
    """A refusal: ``rule`` names the tokentop rule (``block-list``, ``budget.daily``, ...).

    ``status`` 429 with ``retry`` false is the budget stop (the SDKs then do not retry); a gate that
    cannot decide (a proxy that lost its feed, told to fail closed) answers 503 with ``retry``."""

    rule: str
    message: str
    how_to_lift: str
    status: int = 429
    retry: bool = False

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


class BlockIndex:
    """Blocks by (scope, key), immutable: build a new one when the blocks change and swap it in.

    ``check`` asks only the scopes that hold a block (a dict lookup each), so a proxy with nothing
    blocked pays one truth test. ``until`` (epoch seconds, per entry) makes an entry lapse by itself
    between two rebuilds. The first entry given for a (scope, key) wins."""

    __slots__ = ("_by", "_scopes", "_clock", "size")

    def __init__(self, entries: Iterable[tuple[str, str, Block, float | None]] = (),
                 clock: Callable[[], float] = time.time) -> None:
        by: dict[tuple[str, str], tuple[Block, float | None]] = {}
        for scope, key, block, until in entries:
            by.setdefault((scope, scope_key(scope, key)), (block, until))
        self._by = by
        self._scopes: tuple[str, ...] = tuple(s for s in SCOPES if any(k[0] == s for k in by))
        self._clock = clock
        self.size = len(by)

    def check(self, request: GateRequest) -> Block | None:
        if not self._scopes:
            return None
        by = self._by
        for scope in self._scopes:
            if scope == "session":
                key = request.session
            elif scope == "agent":
                key = request.agent
            elif scope == "project":
                key = request.project
            elif scope == "model":
                key = model_family(request.model) if request.model else None
            else:
                key = ""
            if key is None:
                continue
            hit = by.get((scope, key))
            if hit is not None and (hit[1] is None or hit[1] > self._clock()):
                return hit[0]
        return None


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
        if (scope, scope_key(scope, key)) not in self._blocks and len(self._blocks) >= MAX_BLOCKS:
            raise ValueError(f"at most {MAX_BLOCKS} blocks are held; lift some first")
        what = "every request" if scope == "global" else f"{scope} {key!r}"
        entry = BlockEntry(
            scope, key, rule,
            message or f"{what} is blocked",
            how_to_lift or default_how_to_lift(scope, key),
            self.clock(), until,
        )
        self._blocks[(scope, scope_key(scope, key))] = entry
        log.info("proxy: blocked %s %s (rule %s)", scope, key or "(all)", rule)
        return entry

    def unblock(self, scope: Scope, key: str = "") -> bool:
        key = "" if scope == "global" else key.strip()
        removed = self._blocks.pop((scope, scope_key(scope, key)), None) is not None
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
        model = model_family(request.model) if request.model else None
        for scope, key in (("session", request.session), ("agent", request.agent), ("project", request.project),
                           ("model", model), ("global", "")):
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
