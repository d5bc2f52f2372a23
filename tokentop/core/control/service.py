"""The feed-side control layer: plans and acts on sessions, keeps the session→process registry,
talks to emitters, holds the blocks at the API (the budget stop, :mod:`.blocks`), writes the audit
log and publishes outcomes in snapshot status.

One instance per feed, made by :func:`tokentop.core.control.attach.attach` (``runner.parts.control``);
runs on the feed's event loop. The UI reaches it through a
:class:`~tokentop.core.control.port.Controller` (``tokentop.core.control.controller.build_controller``);
the CLI and remote viewers through the HTTP API (``tokentop.core.control.api``).
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal as _signal
from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Final, Sequence

from tokentop.core.control import discovery, process
from tokentop.core.control.audit import AuditLog, AuditRecord
from tokentop.core.control.blocks import ApiBlock, BlockBook, BlockError, BlocksStatus, check_target, describe
from tokentop.core.control.emitters import EmitterHub
from tokentop.core.control.port import ACTIONS, NO_PROCESS_REASON, Candidate, Outcome, Plan, Target
from tokentop.core.control.process import ProcessIdentity, Refused
from tokentop.core.control.registry import ProcessRecord, ProcessRegistry, identity_for_event_pid
from tokentop.core.aggregate import NONE_LABEL
from tokentop.core.events import Event
from tokentop.core.feed.service import FeedService
from tokentop.core.pricing import Cost
from tokentop.core.proxy.gate import Block, GateRequest

if TYPE_CHECKING:
    from tokentop.config import Config
    from tokentop.core.control.policy import RuleBlock
    from tokentop.core.snapshot import Snapshot

log = logging.getLogger("tokentop.control")

#: How many recent outcomes snapshot status carries (``status.control.outcomes``).
STATUS_OUTCOMES: Final = 20
#: (session, pid) pairs from events that were refused a binding, remembered so each is checked once.
MAX_REFUSED_BINDINGS: Final = 10_000
#: seconds between the block book's rounds (ends of blocks, the status with the enforcing proxies)
BLOCKS_TICK_S: Final = 1.0
#: what makes a block take effect when no proxy enforces the feed's blocks
NO_PROXY_REMEDY: Final = ("no tokentop proxy enforces this feed's blocks now: set `[proxy] enabled = true` (and "
                          "restart the feed), or run `tokentop proxy`, and point the agent at it")


@dataclass
class ControlSettings:
    #: seconds between SIGTERM and SIGKILL when the process is still alive
    grace_s: float = 5.0
    #: seconds to wait for an emitter's control_ack
    ack_timeout_s: float = 5.0
    #: look for running claude/codex processes for sessions with no recorded process
    discovery: bool = True

    @classmethod
    def from_config(cls, cfg: Config) -> ControlSettings:
        s = cfg.control
        return cls(grace_s=float(s.grace_s), ack_timeout_s=float(s.ack_timeout_s), discovery=bool(s.discovery))


@dataclass(frozen=True, slots=True)
class ActResult:
    """An :class:`Outcome` plus the refusal/failure code and the pid acted on (API, audit)."""

    outcome: Outcome
    code: str | None = None
    pid: int | None = None

    def to_json(self) -> dict[str, Any]:
        o = self.outcome
        return {"session": o.session, "action": o.action, "ok": o.ok, "message": o.message, "code": self.code,
                "pid": self.pid}


@dataclass(frozen=True, slots=True)
class ControlStatus:
    """``status["control"]`` (docs/control.md): processes recorded, emitters connected, pids from
    events refused a binding, and the last :data:`STATUS_OUTCOMES` actions (``ActResult`` JSON plus
    ``ts`` and ``origin``)."""

    KEY: ClassVar[str] = "control"

    processes: int = 0
    emitters: int = 0
    refused_event_pids: int = 0
    outcomes: tuple[dict[str, Any], ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {"processes": self.processes, "emitters": self.emitters,
                "refused_event_pids": self.refused_event_pids, "outcomes": [dict(o) for o in self.outcomes]}

    @classmethod
    def from_json(cls, obj: object) -> ControlStatus | None:
        if not isinstance(obj, dict):
            return None

        def count(name: str) -> int:
            v = obj.get(name)
            return v if isinstance(v, int) and not isinstance(v, bool) else 0

        outcomes = obj.get("outcomes")
        return cls(count("processes"), count("emitters"), count("refused_event_pids"),
                   tuple(o for o in outcomes if isinstance(o, dict)) if isinstance(outcomes, list) else ())

    @classmethod
    def of(cls, snapshot: Snapshot | None) -> ControlStatus | None:
        return None if snapshot is None else cls.from_json(snapshot.status.get(cls.KEY))


@dataclass(frozen=True, slots=True)
class BlockResult:
    """What a block or an unblock did (the control API's answer; audited)."""

    action: str  # "block" | "unblock"
    scope: str
    key: str
    ok: bool
    message: str
    code: str | None = None
    #: the block made, or the blocks lifted
    blocks: tuple[ApiBlock, ...] = ()
    #: some proxy enforces the feed's blocks now
    enforced: bool = False

    def to_json(self) -> dict[str, Any]:
        return {"action": self.action, "scope": self.scope, "key": self.key, "ok": self.ok, "message": self.message,
                "code": self.code, "blocks": [b.to_json() for b in self.blocks], "enforced": self.enforced}


class ControlService:
    def __init__(self, service: FeedService, settings: ControlSettings | None = None, *, persist: bool = True) -> None:
        self.service = service
        self.settings = settings or ControlSettings()
        ledger = service.ledger
        self.registry = ProcessRegistry(ledger if persist else None)
        self.audit = AuditLog(ledger)
        #: the blocks at the API the metering proxy enforces (the budget stop)
        self.blocks = BlockBook(ledger, clock=service.clock)
        self.emitters = EmitterHub()
        self.outcomes: deque[dict[str, Any]] = deque(maxlen=STATUS_OUTCOMES)
        self.refused_event_pids = 0
        #: session -> pids from its events examined and not bound (each pair is examined once)
        self._unbound: dict[str, set[int]] = {}
        self._unbound_count = 0
        for rec in self.registry.load():
            service.aggregator.bind_process(rec.session, rec.facts())
        service.listeners.append(self.on_events)
        self._publish_status()
        self.publish_blocks()

    # -- binding ---------------------------------------------------------------------------------
    def register(self, session: str, identity: ProcessIdentity, *, host: str | None = None, agent: str | None = None,
                 source: str = "run") -> ProcessRecord:
        rec = ProcessRecord(session, identity, host or self.service.host, agent, source, self.service.clock())
        self.registry.put(rec)
        self.service.aggregator.bind_process(session, rec.facts())
        self._publish_status()
        return rec

    def unregister(self, session: str) -> bool:
        gone = self.registry.remove(session) is not None
        self._unbound.pop(session, None)  # its events' pids may bind it now
        if gone:
            self.service.aggregator.bind_process(session, {})
            self._publish_status()
        return gone

    def on_events(self, accepted: Sequence[tuple[Event, Cost]]) -> None:
        """Feed listener: events with ``pid`` from this host bind their session (new bindings only)."""
        host = self.service.host
        refused = self.refused_event_pids
        aliases = self.service.session_aliases
        for event, _ in accepted:
            pid = event.pid
            if pid is None:
                if aliases and event.session is not None and event.session in aliases:
                    self._bind_alias(event.session, aliases[event.session], event.agent)
                continue
            if event.session is None or self.registry.has_binding(event.session, pid):
                continue
            if pid in self._unbound.get(event.session, ()):
                continue
            if event.host is not None and host is not None and event.host != host:
                continue
            current = self.registry.get(event.session)
            if current is not None and current.source in ("run", "picked") and process.alive(current.identity):
                # `tokentop run` (or the user) named the process; an emitter inside it reporting its own
                # pid (a subprocess of the agent) does not move the session off the group leader
                self._remember_unbound(event.session, pid)
                continue
            ident = identity_for_event_pid(pid, event.ts) if pid > 1 else None
            if ident is None or ident.uid != os.getuid():
                self.refused_event_pids += 1
                self._remember_unbound(event.session, pid)
                continue
            self.register(event.session, ident, host=host, agent=event.agent, source="event")
        if self.refused_event_pids != refused:
            self._publish_status()

    def _bind_alias(self, session: str, run_session: str, agent: str | None) -> None:
        """An agent's own session id (e.g. Claude Code's) seen inside a `tokentop run`: bind it to the
        run's recorded process, so the row the user sees is controllable without picking a candidate."""
        if self.registry.get(session) is not None:
            return
        run = self.registry.get(run_session)
        if run is None or not process.alive(run.identity):
            return
        self.register(session, run.identity, host=run.host, agent=agent or run.agent, source="run")

    def _remember_unbound(self, session: str, pid: int) -> None:
        """A (session, pid) pair examined and not bound: not re-examined on every event."""
        if self._unbound_count >= MAX_REFUSED_BINDINGS:
            self._unbound.clear()
            self._unbound_count = 0
        self._unbound.setdefault(session, set()).add(pid)
        self._unbound_count += 1

    # -- planning --------------------------------------------------------------------------------
    def _session_facts(self, session: str) -> dict[str, Any]:
        """agent / project / host / first_seen of a session row (its cold sum and its hot cells)."""
        agg = self.service.aggregator
        facts: dict[str, Any] = {}
        newest = -1.0
        first: float | None = None
        cold = agg.cold["sessions"].get(session)
        if cold is not None:
            newest = cold.last_seen
            first = cold.first_seen or None
            facts = {"agent": cold.agent, "project": cold.project, "host": cold.host}
        for key, cell in list(agg.cells.items()):  # hot cells: O(hot), only when planning an action
            if key[2] != session:
                continue
            if cell.first_seen and (first is None or cell.first_seen < first):
                first = cell.first_seen
            if cell.last_seen >= newest:
                newest = cell.last_seen
                facts = {"agent": key[0], "project": key[3], "host": key[5]}
        if not facts:
            return {}
        for name in ("project", "host"):
            if facts.get(name) == NONE_LABEL:
                facts[name] = None
        facts["first_seen"] = first
        return facts

    def plan(self, target: Target | str) -> Plan:
        if isinstance(target, str):
            target = Target(target)
        session = target.session
        rec = self.registry.get(session)
        if rec is not None:
            try:
                process.verify(rec.identity)
            except Refused as exc:
                return Plan(target, False, exc.reason, pid=rec.identity.pid, cmd=rec.identity.cmd)
            return Plan(target, True, None, pid=rec.identity.pid, cmd=rec.identity.cmd)
        if self.emitters.connected(session):
            return Plan(target, True, "in-process agent: control messages go to its emitter over WS /v1/publish",
                        cmd="(emitter connected over WS /v1/publish)")
        facts = self._session_facts(session)
        host = facts.get("host") or target.host
        if host and self.service.host and host != self.service.host:
            return Plan(target, False, f"this session runs on host {host!r}; control it from the feed on that host")
        if not self.settings.discovery:
            return Plan(target, False, NO_PROCESS_REASON)
        cands = self._candidates(session, target)
        if len(cands) == 1:
            c = cands[0]
            return Plan(target, True, f"found by discovery (a {c.cmd.split(' ')[0]} process in {c.cwd})",
                        pid=c.pid, cmd=c.cmd, candidates=tuple(cands))
        if cands:
            return Plan(target, False, f"{len(cands)} running processes could be this session; pick one",
                        candidates=tuple(cands))
        return Plan(target, False, NO_PROCESS_REASON)

    def _candidates(self, session: str, target: Target) -> list[Any]:
        """Processes that could be behind ``session``: running claude/codex processes, and processes
        registered for other sessions (an agent process often runs several sessions: a ``tokentop run``
        child whose agent reports its own session ids), matched by agent, cwd and start time."""
        facts = self._session_facts(session)
        agent = facts.get("agent") or target.agent
        project = facts.get("project")
        first_seen = facts.get("first_seen")
        found = {c.pid: c for c in discovery.find_candidates(agent=agent, project=project, first_seen=first_seen)}
        names = discovery.process_names_for(agent)
        for rec in self.registry:
            ident = rec.identity
            if rec.session == session or ident.pid in found:
                continue
            same_agent = (agent is not None and rec.agent == agent) or discovery.runs_named(names, ident.cmd)
            if not same_agent or not discovery.cwd_matches(ident.cwd, project):
                continue
            if first_seen is not None and ident.create_time > first_seen + discovery.START_SLACK_S:
                continue
            if not process.alive(ident):
                continue
            found[ident.pid] = Candidate(ident.pid, ident.cmd, ident.create_time, ident.cwd)
        return sorted(found.values(), key=lambda c: (c.start_time, c.pid))

    # -- acting ----------------------------------------------------------------------------------
    async def act(self, session: str, action: str, *, pid: int | None = None, signal: str | None = None,
                  origin: str = "api") -> ActResult:
        """Do ``action`` on the session's process (or emitter). Never raises for a refusal: the
        result says why, and every attempt is audited."""
        try:
            result = await self._act(session, action, pid, signal)
        except Refused as exc:
            result = ActResult(Outcome(session, action, False, exc.reason), exc.code, pid)
        except Exception as exc:  # a bug must still be reported and audited, never crash the feed
            log.exception("control action failed")
            result = ActResult(Outcome(session, action, False, f"internal error: {exc}"), "error", pid)
        sig_name = None
        if action in ("terminate", "kill"):
            try:
                sig_name = process.parse_signal(signal, "TERM" if action == "terminate" else "KILL")[0]
            except Refused:
                sig_name = str(signal)[:16]
        elif action in ("pause", "resume"):
            sig_name = "STOP" if action == "pause" else "CONT"
        rec = AuditRecord(self.service.clock(), session, action, origin, result.pid, sig_name, result.outcome.ok,
                          result.code, result.outcome.message)
        try:
            await self.audit.record_async(rec)
        except Exception:
            log.exception("audit write failed")
        self.outcomes.append(dict(result.to_json(), ts=rec.ts, origin=origin))
        self._publish_status()
        return result

    async def _act(self, session: str, action: str, pid: int | None, signal: str | None) -> ActResult:
        if action not in ACTIONS:
            raise Refused("bad_action", f"unknown action {action!r}; expected one of {', '.join(ACTIONS)}")
        rec = self.registry.get(session)
        if rec is not None and pid is not None and pid != rec.identity.pid:
            raise Refused("identity", f"session {session!r} is recorded as pid {rec.identity.pid}, not {pid}")
        if rec is None and pid is None and self.emitters.connected(session):
            ok, message = await self.emitters.send(session, action, self.settings.ack_timeout_s)
            if ok:
                self._mark(session, action)
            return ActResult(Outcome(session, action, ok, message), None if ok else "no_ack", None)
        if rec is None:
            if pid is None:
                facts = self._session_facts(session)
                host = facts.get("host")
                if host and self.service.host and host != self.service.host:
                    raise Refused("remote", f"this session runs on host {host!r}; control it from that host's feed")
                raise Refused("no_process", NO_PROCESS_REASON)
            rec = self._adopt(session, pid)
        ident = rec.identity
        if action == "pause":
            message = process.pause(ident)
        elif action == "resume":
            message = process.resume(ident)
        else:
            name, sig = process.parse_signal(signal, "TERM" if action == "terminate" else "KILL")
            if action == "kill" and signal is None:
                sig = int(_signal.SIGKILL)
            message = await process.terminate(ident, sig=sig, grace_s=self.settings.grace_s)
        self._mark(session, action)
        return ActResult(Outcome(session, action, True, message), None, ident.pid)

    def _adopt(self, session: str, pid: int) -> ProcessRecord:
        """Bind ``pid`` to ``session`` only if discovery offers it as a candidate right now."""
        cands = self._candidates(session, Target(session))
        if not any(c.pid == pid for c in cands):
            raise Refused("not_candidate", f"pid {pid} is not a running process tokentop could match to session "
                                           f"{session!r}; refusing to act on it")
        ident = process.identify(pid)
        facts = self._session_facts(session)
        return self.register(session, ident, agent=facts.get("agent"), source="picked")

    def _mark(self, session: str, action: str) -> None:
        agg = self.service.aggregator
        if action == "pause":
            agg.set_session_state(session, "paused")
        elif action == "resume":
            agg.set_session_state(session, None)
        else:
            agg.set_session_state(session, "stopped")

    # -- blocks at the API (the budget stop) ---------------------------------------------------------
    async def block(self, scope: str, key: str = "", *, origin: str = "api", message: str | None = None,
                    until: float | None = None) -> BlockResult:
        """A person's block: the metering proxy refuses the scope's next requests with the provider's
        own 429 until it is lifted (or ends). Audited; never raises for a refusal."""
        try:
            scope, key = check_target(scope, key)
            entry = self.blocks.block(scope, key, origin=origin, message=message, until=until)
        except BlockError as exc:
            result = BlockResult("block", scope, key, False, str(exc), "bad_block")
        else:
            try:
                await self.blocks.save_block(entry)
            except Exception:  # the block holds in memory; a restart would not know it
                log.exception("could not store the block in the ledger")
            enforced = bool(self.blocks.enforcers())
            text = f"blocked {entry.target} at the API: the proxy refuses its next requests (rule {entry.rule})"
            if not enforced:
                text += f"; but {NO_PROXY_REMEDY}"
            result = BlockResult("block", scope, key, True, text, None, (entry,), enforced)
        await self._audit_block(result, origin)
        return result

    async def unblock(self, scope: str, key: str = "", *, origin: str = "api") -> BlockResult:
        """Lift every block of exactly this scope and key: a person's is removed, a rule's is lifted
        until the rule clears. Audited; says what still refuses a session's requests, if anything."""
        try:
            scope, key = check_target(scope, key)
            lifted = self.blocks.unblock(scope, key)
        except BlockError as exc:
            result = BlockResult("unblock", scope, key, False, str(exc), "bad_block")
            await self._audit_block(result, origin)
            return result
        try:
            await self.blocks.delete_blocks(lifted)
            await self.blocks.save_lifts(lifted, origin)
        except Exception:
            log.exception("could not store the unblock in the ledger")
        still = self._still_blocked(scope, key)
        if lifted:
            words = ", ".join(f"{b.rule} (until the rule clears)" if b.kind == "rule" else b.rule for b in lifted)
            text = f"lifted {describe(scope, key)}: {words}"
        else:
            text = f"nothing blocked {describe(scope, key)} itself"
        if still is not None:
            text += f"; its requests are still refused by rule {still.rule}: {still.message} (to lift it: {still.how_to_lift})"
        result = BlockResult("unblock", scope, key, bool(lifted), text, None if lifted else "not_blocked", tuple(lifted),
                             bool(self.blocks.enforcers()))
        await self._audit_block(result, origin)
        return result

    def _still_blocked(self, scope: str, key: str) -> Block | None:
        """The block a session's (or agent's, ...) requests still meet after an unblock."""
        if scope == "session":
            facts = self._session_facts(key)
            request = GateRequest(facts.get("agent") or "", key, None, "", facts.get("project"))
        elif scope == "agent":
            request = GateRequest(key, None, None, "")
        elif scope == "model":
            request = GateRequest("", None, key, "")
        elif scope == "project":
            request = GateRequest("", None, None, "", key)
        else:
            request = GateRequest("", None, None, "")
        return self.blocks.check(request)

    async def sync_rule_blocks(self, blocks: Sequence[RuleBlock]) -> tuple[list[ApiBlock], list[ApiBlock]]:
        """The policy task's blocks of one evaluation: each that appears or goes is audited with
        origin ``policy:<rule>``. Returns ``(appeared, gone)``."""
        appeared, gone, dropped = self.blocks.set_rule_blocks(blocks)
        if dropped:
            try:
                await self.blocks.delete_lifts(dropped)
            except Exception:
                log.exception("could not drop lifted blocks from the ledger")
        enforced = bool(self.blocks.enforcers()) if appeared else True
        for b in appeared:
            text = f"blocked {b.target} at the API: {b.message}"
            if not enforced:
                text += f" (but {NO_PROXY_REMEDY})"
            await self._audit_block(BlockResult("block", b.scope, b.key, True, text, blocks=(b,), enforced=enforced),
                                    b.origin)
        for b in gone:
            await self._audit_block(BlockResult("unblock", b.scope, b.key, True,
                                                f"lifted {b.target}: rule {b.rule} no longer blocks it", blocks=(b,)),
                                    b.origin)
        if appeared or gone or dropped:
            self.publish_blocks()
        return appeared, gone

    async def expire_blocks(self) -> list[ApiBlock]:
        """End the blocks whose time is up (audited, origin ``expiry``)."""
        ended = self.blocks.expire()
        if ended:
            try:
                await self.blocks.delete_blocks(ended)
            except Exception:
                log.exception("could not drop ended blocks from the ledger")
            for b in ended:
                await self._audit_block(BlockResult("unblock", b.scope, b.key, True, f"{b.target}: the block ended",
                                                    blocks=(b,)), "expiry")
        return ended

    async def run_blocks(self) -> None:
        """The feed's background job for blocks: ends expired ones and republishes the status (the
        enforcing proxies come and go) every :data:`BLOCKS_TICK_S`."""
        while True:
            try:
                await self.expire_blocks()
                self.publish_blocks()
            except asyncio.CancelledError:
                raise
            except Exception:  # never take the feed down
                log.exception("blocks housekeeping failed")
            await asyncio.sleep(BLOCKS_TICK_S)

    async def _audit_block(self, result: BlockResult, origin: str) -> None:
        rec = AuditRecord(self.service.clock(), result.key, result.action, origin, None, None, result.ok, result.code,
                          result.message, scope=result.scope)
        try:
            await self.audit.record_async(rec)
        except Exception:
            log.exception("audit write failed")
        self.outcomes.append({"session": result.key, "scope": result.scope, "action": result.action, "ok": result.ok,
                              "message": result.message, "code": result.code, "pid": None, "ts": rec.ts,
                              "origin": origin})
        self._publish_status()
        self.publish_blocks()

    def publish_blocks(self) -> None:
        self.service.set_status(BlocksStatus.KEY, self.blocks.status().to_json())

    # -- status ----------------------------------------------------------------------------------
    def status(self) -> ControlStatus:
        return ControlStatus(len(self.registry), len(self.emitters.sessions), self.refused_event_pids,
                             tuple(self.outcomes))

    def _publish_status(self) -> None:
        self.service.set_status(ControlStatus.KEY, self.status().to_json())

