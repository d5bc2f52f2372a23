"""The budget stop's state in a feed: which requests the metering proxy must refuse right now.

A :class:`BlockBook` holds two kinds of blocks, each by the proxy gate's scopes (``session``,
``agent``, ``model``, ``project``, ``global``; :mod:`tokentop.core.proxy.gate`):

* **rule blocks** — what the rules that opted in block now (a budget's ``block_at``, a runaway
  rule's ``action = "block"``, a window rule's ``block_at``). The policy task replaces them whole
  after every evaluation (:meth:`BlockBook.set_rule_blocks`): a block lasts exactly as long as its
  rule's condition, hysteresis included, and lifts itself when the condition clears;
* **a person's blocks** — ``b`` in the live view, ``tokentop block``, ``POST /v1/block``. They last
  until lifted (``tokentop unblock``, ``b`` again) or their end (``until``), and are kept in the
  ledger table ``api_blocks`` so a restarted feed still has them.

A person's *unblock* of a rule's block is a **lift**: the rule's block stays lifted until the rule
clears (then it can block anew) — as a session the user resumes while a pause rule is still over
is not paused again until the rule clears and trips anew. Lifts are kept in ``api_blocks`` too.

The proxy asks :meth:`BlockBook.check` (the :class:`~tokentop.core.proxy.gate.Gate` protocol) on
every metered request: a :class:`~tokentop.core.proxy.gate.BlockIndex` lookup, a few dict gets. The
index is rebuilt on each change and swapped in whole, so a proxy on another thread's loop (the feed
``tokentop proxy`` embeds) reads it without a lock; a proxy in another process follows it through
``GET /v1/blocks`` (:mod:`tokentop.core.proxy.follow`).

Every change is audited by :class:`~tokentop.core.control.service.ControlService` (``block`` /
``unblock`` in ``control_audit``); what is blocked is published as :class:`BlocksStatus`
(``status["blocks"]``), with the proxies that enforce it.
"""

from __future__ import annotations

import logging
import secrets
import shlex
import sqlite3
import time
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Callable, ClassVar, Final, Iterable, Literal, Sequence

from tokentop.core.proxy.gate import SCOPES, Block, BlockIndex, GateRequest, Scope, scope_key

if TYPE_CHECKING:
    from tokentop.core.control.policy import RuleBlock
    from tokentop.core.ledger import Ledger
    from tokentop.core.snapshot import Row, Snapshot

log = logging.getLogger("tokentop.control")

#: the ``rule`` of a block a person made
USER_RULE: Final = "user-block"
#: blocks held at most (a person's; rule blocks are bounded by the rules' own rows)
MAX_BLOCKS: Final = 10_000
MAX_KEY_LEN: Final = 512
MAX_MESSAGE_LEN: Final = 500
#: a proxy that polled ``GET /v1/blocks`` within this many seconds enforces the feed's blocks
FOLLOWER_FRESH_S: Final = 5.0
#: blocks listed in ``status["blocks"]`` (all of them are counted)
MAX_STATUS_BLOCKS: Final = 100
#: proxies remembered (the newest polls win)
MAX_FOLLOWERS: Final = 64
#: ``origin`` of an audit record, in the words a person reads
_WHERE: Final = {"ui": "the live view", "cli": "tokentop block", "api": "the control API"}

BLOCKS_DDL: Final = """
CREATE TABLE IF NOT EXISTS api_blocks (
    kind TEXT NOT NULL,
    rule TEXT NOT NULL,
    scope TEXT NOT NULL,
    key TEXT NOT NULL,
    origin TEXT NOT NULL,
    message TEXT NOT NULL,
    since REAL NOT NULL,
    until REAL,
    PRIMARY KEY (kind, rule, scope, key)
);
"""


class BlockError(ValueError):
    """A block that cannot be made (unknown scope, no name, too many)."""


def check_target(scope: str, key: str) -> tuple[Scope, str]:
    """``(scope, key)`` as a person's block stores it (a model by its family: blocking
    ``claude-sonnet-4-5-20250929`` blocks ``claude-sonnet-4-5`` and every dated name of it), or
    :class:`BlockError` naming what is wrong."""
    if scope not in SCOPES:
        raise BlockError(f"scope must be one of {', '.join(SCOPES)}, got {scope!r}")
    key = "" if scope == "global" else key.strip()
    if scope != "global" and not key:
        raise BlockError(f"blocking a {scope} needs its name")
    if len(key) > MAX_KEY_LEN or not key.isprintable():
        raise BlockError(f"a {scope} name is at most {MAX_KEY_LEN} printable characters")
    return scope, scope_key(scope, key)  # type: ignore[return-value]


def describe(scope: str, key: str) -> str:
    """``every request``, ``session s-42``, ``agent codex``."""
    return "every request" if scope == "global" else f"{scope} {key}"


def unblock_command(scope: str, key: str) -> str:
    """The command that lifts a block of ``scope`` / ``key`` through the feed."""
    if scope == "global":
        return "tokentop unblock --all"
    if scope == "session":
        return f"tokentop unblock {shlex.quote(key)}"
    return f"tokentop unblock --{scope} {shlex.quote(key)}"


@dataclass(frozen=True, slots=True)
class ApiBlock:
    """One block the feed asks its proxies to enforce (a rule's or a person's)."""

    scope: Scope
    key: str
    #: ``budget.daily``, ``runaway.hot``, ``limits.claude-5h``; :data:`USER_RULE` for a person's
    rule: str
    #: who made it: ``policy:<rule name>``, ``ui``, ``cli``, ``api``
    origin: str
    message: str
    how_to_lift: str
    since: float
    until: float | None = None
    #: a rule's block a person lifted: listed, not enforced, until the rule clears
    lifted: bool = False

    @property
    def kind(self) -> Literal["rule", "user"]:
        return "user" if self.rule == USER_RULE else "rule"

    @property
    def target(self) -> str:
        return describe(self.scope, self.key)

    def gate_block(self) -> Block:
        return Block(self.rule, self.message, self.how_to_lift)

    def to_json(self) -> dict[str, Any]:
        return {"scope": self.scope, "key": self.key, "rule": self.rule, "kind": self.kind, "origin": self.origin,
                "message": self.message, "how_to_lift": self.how_to_lift, "since": self.since, "until": self.until,
                "lifted": self.lifted}

    @classmethod
    def from_json(cls, obj: object) -> ApiBlock | None:
        """Tolerant of what a remote feed sends: ``None`` when the entry is unusable."""
        if not isinstance(obj, dict):
            return None
        scope, key, rule = obj.get("scope"), obj.get("key"), obj.get("rule")
        if scope not in SCOPES or not isinstance(key, str) or not isinstance(rule, str) or not rule:
            return None
        if scope != "global" and not key:
            return None
        since, until = obj.get("since"), obj.get("until")
        return cls(scope=scope, key=key, rule=rule, origin=str(obj.get("origin") or ""),  # type: ignore[arg-type]
                   message=str(obj.get("message") or f"{describe(scope, key)} is blocked"),
                   how_to_lift=str(obj.get("how_to_lift") or f"run `{unblock_command(scope, key)}`"),
                   since=float(since) if _is_num(since) else 0.0,
                   until=float(until) if _is_num(until) else None, lifted=obj.get("lifted") is True)


def _is_num(v: object) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def index_of(blocks: Iterable[ApiBlock], clock: Callable[[], float] = time.time) -> BlockIndex:
    """The gate's lookup table of the enforced ``blocks`` (a person's first, then the rules' in the
    order given: the first block of a scope is the one a refused client reads)."""
    live = [b for b in blocks if not b.lifted]
    live.sort(key=lambda b: b.kind != "user")
    return BlockIndex(((b.scope, b.key, b.gate_block(), b.until) for b in live), clock)


@dataclass(frozen=True, slots=True)
class Enforcer:
    """A metering proxy that enforces the feed's blocks: one in the feed's process (``in-feed``), or
    one elsewhere following them through ``GET /v1/blocks`` (``following``)."""

    url: str
    how: Literal["in-feed", "following"]
    seen_at: float

    def to_json(self) -> dict[str, Any]:
        return {"url": self.url, "how": self.how, "seen_at": self.seen_at}


@dataclass(frozen=True, slots=True)
class BlocksStatus:
    """``status["blocks"]``: what the feed blocks at the API now, and which proxies enforce it.

    ``active`` lists the enforced blocks (at most :data:`MAX_STATUS_BLOCKS`; ``count`` is all of
    them), ``lifted`` the rules' blocks a person lifted, ``proxies`` the enforcing proxies."""

    KEY: ClassVar[str] = "blocks"

    active: tuple[ApiBlock, ...] = ()
    count: int = 0
    lifted: tuple[ApiBlock, ...] = ()
    proxies: tuple[Enforcer, ...] = ()

    @property
    def enforced(self) -> bool:
        """Some proxy enforces the blocks (else a block changes nothing until one runs)."""
        return bool(self.proxies)

    def to_json(self) -> dict[str, Any]:
        return {"count": self.count, "active": [b.to_json() for b in self.active],
                "lifted": [b.to_json() for b in self.lifted], "proxies": [p.to_json() for p in self.proxies],
                "enforced": self.enforced}

    @classmethod
    def from_json(cls, obj: object) -> BlocksStatus | None:
        if not isinstance(obj, dict):
            return None

        def blocks(name: str) -> list[ApiBlock | None]:
            raw = obj.get(name)
            return [ApiBlock.from_json(b) for b in raw] if isinstance(raw, list) else []

        active, lifted = blocks("active"), blocks("lifted")
        proxies = []
        raw = obj.get("proxies")
        for p in raw if isinstance(raw, list) else ():
            if isinstance(p, dict) and isinstance(p.get("url"), str) and p.get("how") in ("in-feed", "following"):
                proxies.append(Enforcer(p["url"], p["how"], float(p["seen_at"]) if _is_num(p.get("seen_at")) else 0.0))
        kept = tuple(b for b in active if b is not None)
        count = obj.get("count")
        return cls(active=kept, count=count if isinstance(count, int) and not isinstance(count, bool) else len(kept),
                   lifted=tuple(b for b in lifted if b is not None), proxies=tuple(proxies))

    @classmethod
    def of(cls, snapshot: Snapshot | None) -> BlocksStatus | None:
        """The blocks a snapshot carries, or ``None`` (a feed without the control layer)."""
        return None if snapshot is None else cls.from_json(snapshot.status.get(cls.KEY))

    # -- what the live view asks -------------------------------------------------------------------
    def exact(self, scope: str, key: str) -> list[ApiBlock]:
        """The enforced blocks of exactly this scope and key (what an unblock of it lifts)."""
        want = scope_key(scope, key)
        return [b for b in self.active if b.scope == scope and scope_key(b.scope, b.key) == want]

    def blocking(self, request: GateRequest) -> Block | None:
        """The block a request of this agent / session / model / project would meet now."""
        return index_of(self.active).check(request)

    def row_flags(self, dim: str, rows: Iterable[Row]) -> dict[str, str]:
        """``{row key: "blocked"}`` for the rows of view ``dim`` whose every request is refused now:
        an agent / model / project blocked by itself (a model by any name of it) or by a global
        block; a session by itself, its agent, project or model, or a global block. (Hosts: never;
        the proxy does not tell them apart.)"""
        if not self.active or dim not in _ROW_REQUEST:
            return {}
        index = index_of(self.active)
        make = _ROW_REQUEST[dim]
        return {row.key: "blocked" for row in rows if index.check(make(row)) is not None}


#: a request as a row of each view stands for it (the fields the row does not fix are left out, so
#: only blocks that refuse all of the row's requests match)
_ROW_REQUEST: Final[dict[str, Callable[[Row], GateRequest]]] = {
    "sessions": lambda r: GateRequest(r.agent or "", r.key, r.model, "", r.project),
    "agents": lambda r: GateRequest(r.key, None, None, ""),
    "models": lambda r: GateRequest("", None, r.key, ""),
    "projects": lambda r: GateRequest("", None, None, "", r.key),
}


def _user_lift(scope: str, key: str, until: float | None) -> str:
    """How to lift a person's block."""
    lift = f"run `{unblock_command(scope, key)}`"
    if scope != "global":
        lift += " (or press b on its row in tokentop)"
    if until is not None:
        lift += f", or wait until {time.strftime('%H:%M', time.localtime(until))}, when it ends"
    return lift


@dataclass
class _Follower:
    url: str
    seen_at: float


class BlockBook:
    """The feed's blocks at the API (see the module docstring). Mutated on the feed's loop only;
    :meth:`check` may be called from any thread."""

    def __init__(self, ledger: Ledger | None, *, clock: Callable[[], float] = time.time) -> None:
        self.ledger = ledger
        self.clock = clock
        #: (scope, key) -> a person's block
        self._user: dict[tuple[str, str], ApiBlock] = {}
        #: (rule, scope, key) -> a rule's block now (lifted ones included, marked)
        self._rules: dict[tuple[str, str, str], ApiBlock] = {}
        #: (rule, scope, key) -> when a person lifted that rule's block
        self._lifts: dict[tuple[str, str, str], float] = {}
        self._followers: dict[str, _Follower] = {}
        #: proxies in this process enforcing the blocks (url -> since)
        self._in_feed: dict[str, float] = {}
        self.index = BlockIndex((), clock)
        #: changes with every change of the enforced blocks; with :attr:`epoch`, the ETag of
        #: ``GET /v1/blocks`` (a restarted feed starts a new epoch, so a follower never takes an old
        #: version for the current one)
        self.seq = 0
        self.epoch = secrets.token_hex(4)
        if ledger is not None:
            ledger.ensure_schema(BLOCKS_DDL)
            self._load()

    # -- the gate ---------------------------------------------------------------------------------
    def check(self, request: GateRequest) -> Block | None:
        return self.index.check(request)

    # -- reading ------------------------------------------------------------------------------------
    def active(self) -> list[ApiBlock]:
        """The enforced blocks: a person's first (by age), then the rules'."""
        now = self.clock()
        users = sorted((b for b in self._user.values() if b.until is None or b.until > now), key=lambda b: b.since)
        return users + [b for b in self._rules.values() if not b.lifted]

    def lifted(self) -> list[ApiBlock]:
        return [b for b in self._rules.values() if b.lifted]

    def exact(self, scope: str, key: str) -> list[ApiBlock]:
        want = (scope, scope_key(scope, key))
        return [b for b in self.active() if (b.scope, scope_key(b.scope, b.key)) == want]

    @property
    def etag(self) -> str:
        return f'"{self.epoch}-{self.seq}"'

    def to_json(self) -> dict[str, Any]:
        """What ``GET /v1/blocks`` answers: every enforced block (a following proxy's whole state)."""
        return {"v": 1, "seq": self.seq, "epoch": self.epoch, "blocks": [b.to_json() for b in self.active()]}

    # -- a person's blocks --------------------------------------------------------------------------
    def block(self, scope: str, key: str, *, origin: str, message: str | None = None,
              until: float | None = None) -> ApiBlock:
        """Record a person's block (replacing one of the same scope and key). Raises :class:`BlockError`."""
        scope, key = check_target(scope, key)
        k = (scope, scope_key(scope, key))
        if k not in self._user and len(self._user) >= MAX_BLOCKS:
            raise BlockError(f"at most {MAX_BLOCKS} blocks are held; lift some first")
        now = self.clock()
        if until is not None and until <= now:
            raise BlockError("the block would end before it starts (until is in the past)")
        if message is not None:
            message = "".join(c for c in message if c.isprintable()).strip()[:MAX_MESSAGE_LEN] or None
        where = _WHERE.get(origin, origin)
        text = message or f"{describe(scope, key)} is blocked by hand ({where}, {time.strftime('%H:%M', time.localtime(now))})"
        entry = ApiBlock(scope, key, USER_RULE, origin, text, _user_lift(scope, key, until), now, until)
        self._user[k] = entry
        self._rebuild()
        return entry

    def unblock(self, scope: str, key: str) -> list[ApiBlock]:
        """Lift every block of exactly this scope and key: a person's is removed, a rule's is lifted
        until the rule clears. Returns what was lifted (empty: nothing blocked it)."""
        scope, key = check_target(scope, key)
        want = scope_key(scope, key)
        lifted: list[ApiBlock] = []
        user = self._user.pop((scope, want), None)
        if user is not None:
            lifted.append(user)
        now = self.clock()
        for k, b in list(self._rules.items()):
            if b.scope == scope and scope_key(b.scope, b.key) == want and not b.lifted:
                self._rules[k] = replace(b, lifted=True)
                self._lifts[k] = now
                lifted.append(b)
        if lifted:
            self._rebuild()
        return lifted

    def expire(self) -> list[ApiBlock]:
        """Remove a person's blocks whose end has passed; returns them."""
        now = self.clock()
        gone = [k for k, b in self._user.items() if b.until is not None and b.until <= now]
        out = [self._user.pop(k) for k in gone]
        if out:
            self._rebuild()
        return out

    # -- the rules' blocks ----------------------------------------------------------------------------
    def set_rule_blocks(self, blocks: Sequence[RuleBlock]) -> tuple[list[ApiBlock], list[ApiBlock], list[tuple[str, str, str]]]:
        """Take the rules' blocks of one evaluation. Returns ``(appeared, gone, lifts dropped)``:
        blocks that are new (not lifted), enforced blocks whose rule no longer blocks, and the lifts
        of rule blocks that cleared (the rule may block anew)."""
        now = self.clock()
        current: dict[tuple[str, str, str], ApiBlock] = {}
        for rb in blocks:
            k = (rb.rule_id, rb.scope, scope_key(rb.scope, rb.key))
            if k in current:
                continue  # two figures of one rule block the same scope: the first one's words
            before = self._rules.get(k)
            current[k] = ApiBlock(rb.scope, rb.key, rb.rule_id, f"policy:{rb.rule}", rb.message,  # type: ignore[arg-type]
                                  rb.how_to_lift, before.since if before is not None else now,
                                  lifted=k in self._lifts)
        previous = self._rules
        appeared = [b for k, b in current.items() if k not in previous and not b.lifted]
        gone = [b for k, b in previous.items() if k not in current and not b.lifted]
        dropped = [k for k in self._lifts if k not in current]
        for k in dropped:
            del self._lifts[k]
        changed = bool(appeared or gone or dropped) or len(current) != len(previous) or any(
            k not in previous or (b.message, b.how_to_lift, b.lifted) != (previous[k].message, previous[k].how_to_lift,
                                                                           previous[k].lifted)
            for k, b in current.items())
        self._rules = current
        if changed:
            self._rebuild()
        return appeared, gone, dropped

    # -- who enforces -------------------------------------------------------------------------------
    def add_enforcer(self, url: str) -> None:
        """A proxy in this process enforces the blocks (from now until :meth:`remove_enforcer`)."""
        self._in_feed[url] = self.clock()

    def remove_enforcer(self, url: str) -> None:
        self._in_feed.pop(url, None)

    def saw_follower(self, url: str) -> None:
        """A proxy elsewhere just read the blocks (``GET /v1/blocks``)."""
        url = "".join(c for c in url if c.isprintable())[:200] or "(a proxy)"
        if url not in self._followers and len(self._followers) >= MAX_FOLLOWERS:
            oldest = min(self._followers.values(), key=lambda f: f.seen_at)
            del self._followers[oldest.url]
        self._followers[url] = _Follower(url, self.clock())

    def enforcers(self) -> list[Enforcer]:
        now = self.clock()
        out = [Enforcer(url, "in-feed", since) for url, since in list(self._in_feed.items())]
        out += [Enforcer(f.url, "following", f.seen_at) for f in list(self._followers.values())
                if now - f.seen_at <= FOLLOWER_FRESH_S]
        return out

    def status(self) -> BlocksStatus:
        active = self.active()
        return BlocksStatus(active=tuple(active[:MAX_STATUS_BLOCKS]), count=len(active),
                            lifted=tuple(self.lifted()[:MAX_STATUS_BLOCKS]), proxies=tuple(self.enforcers()))

    # -- internals ------------------------------------------------------------------------------------
    def _rebuild(self) -> None:
        self.index = index_of(self.active(), self.clock)
        self.seq += 1

    def _load(self) -> None:
        assert self.ledger is not None

        def read(conn: sqlite3.Connection) -> list[Any]:
            return conn.execute("SELECT kind, rule, scope, key, origin, message, since, until FROM api_blocks").fetchall()

        now = self.clock()
        for kind, rule, scope, key, origin, message, since, until in self.ledger.call(read):
            if scope not in SCOPES:
                continue
            if kind == "lift":
                self._lifts[(rule, scope, scope_key(scope, key))] = since
            elif kind == "block" and (until is None or until > now):
                self._user[(scope, scope_key(scope, key))] = ApiBlock(scope, key, USER_RULE, origin, message,
                                                                      _user_lift(scope, key, until), since, until)
        if self._user:
            self._rebuild()

    # -- persistence (the caller awaits these on the feed's loop) ---------------------------------------
    async def save_block(self, b: ApiBlock) -> None:
        await self._write("INSERT OR REPLACE INTO api_blocks (kind, rule, scope, key, origin, message, since, until) "
                          "VALUES ('block', '', ?, ?, ?, ?, ?, ?)", [(b.scope, b.key, b.origin, b.message, b.since, b.until)])

    async def delete_blocks(self, blocks: Iterable[ApiBlock]) -> None:
        rows = [(b.scope, b.key) for b in blocks if b.kind == "user"]
        await self._write("DELETE FROM api_blocks WHERE kind = 'block' AND scope = ? AND key = ?", rows)

    async def save_lifts(self, blocks: Iterable[ApiBlock], origin: str) -> None:
        rows = [(b.rule, b.scope, scope_key(b.scope, b.key), origin, b.message, self.clock())
                for b in blocks if b.kind == "rule"]
        await self._write("INSERT OR REPLACE INTO api_blocks (kind, rule, scope, key, origin, message, since, until) "
                          "VALUES ('lift', ?, ?, ?, ?, ?, ?, NULL)", rows)

    async def delete_lifts(self, keys: Iterable[tuple[str, str, str]]) -> None:
        rows = list(keys)
        await self._write("DELETE FROM api_blocks WHERE kind = 'lift' AND rule = ? AND scope = ? AND key = ?", rows)

    async def _write(self, sql: str, rows: list[tuple[Any, ...]]) -> None:
        if self.ledger is None or not rows:
            return

        def run(conn: sqlite3.Connection) -> None:
            with conn:
                conn.executemany(sql, rows)

        await self.ledger.call_async(run)
