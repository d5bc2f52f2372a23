"""The feed's policy task: evaluate budgets and runaway rules on each snapshot and carry out the
decisions — alerts (snapshot status, desktop notification, exec hook) and, for rules that opted
in, pause or kill through the control service (audited with origin ``policy:<rule>``).

What it publishes, ``status["policy"]``, is a :class:`PolicyStatus`: the task writes it with
:meth:`PolicyStatus.to_json` and the live view reads it back with :meth:`PolicyStatus.of` (from an
embedded feed's snapshot or a remote feed's JSON alike). Its JSON is documented in docs/control.md.
"""

from __future__ import annotations

import asyncio
import json
import logging
import shlex
import shutil
from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, ClassVar, Final, Iterable, Mapping

from tokentop.core.control.policy import Decision, Finding, PolicyEngine, rules_from_config, window_rules_from_config

if TYPE_CHECKING:
    from tokentop.config import Config
    from tokentop.core.control.service import ControlService
    from tokentop.core.snapshot import Row, Snapshot

log = logging.getLogger("tokentop.control")

#: Alerts kept in snapshot status (``status.policy.alerts``), newest last.
STATUS_ALERTS: Final = 20
#: Budget findings kept in snapshot status (``status.policy.budgets``).
MAX_STATUS_FINDINGS: Final = 100
#: Levels a row can be flagged with, mildest first.
FLAG_LEVELS: Final = ("warning", "over", "runaway")
_RANK: Final = {level: n for n, level in enumerate(FLAG_LEVELS, 1)}
#: The session-row field that names an agent / model / project / host row.
_SESSION_FIELD: Final = {"agents": "agent", "models": "model", "projects": "project", "hosts": "host"}


def _int(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _num(value: object) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


@dataclass(frozen=True, slots=True)
class PolicyAlert:
    """One entry of ``status.policy.alerts``: the alert hook's payload (docs/control.md) plus its
    ``seq`` and, for pause/kill rules, the ``outcomes`` of the actions taken (``entry``, as written)."""

    seq: int
    level: str
    rule: str
    message: str
    entry: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def from_json(cls, obj: object) -> PolicyAlert | None:
        if not isinstance(obj, dict):
            return None
        return cls(seq=_int(obj.get("seq")) or 0, level=str(obj.get("level") or ""), rule=str(obj.get("rule") or ""),
                   message=str(obj.get("message") or ""), entry=obj)

    def to_json(self) -> dict[str, Any]:
        return dict(self.entry) if self.entry else {"seq": self.seq, "level": self.level, "rule": self.rule,
                                                    "message": self.message}


def _finding(obj: object) -> Finding | None:
    """A budget figure of ``status.policy.budgets`` (``Finding.to_json``), read tolerantly."""
    if not isinstance(obj, dict):
        return None
    return Finding(rule=str(obj.get("rule") or ""), view=str(obj.get("view") or ""), key=str(obj.get("key") or ""),
                   measure=str(obj.get("measure") or ""), value=_num(obj.get("value")) or 0.0,
                   limit=_num(obj.get("limit")) or 0.0, level=str(obj.get("level") or ""))


@dataclass(frozen=True, slots=True)
class PolicyStatus:
    """``status["policy"]``: where the budgets stand, which rows are flagged, the recent alerts.

    A feed whose rules could not be read publishes only ``{"error": ...}`` (:meth:`failed`)."""

    KEY: ClassVar[str] = "policy"

    #: view -> key -> worst current level (``warning`` / ``over`` / ``runaway``)
    flags: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    #: global figures, and every per-key figure at warning or over
    budgets: tuple[Finding, ...] = ()
    #: the last :data:`STATUS_ALERTS` alerts, oldest first
    alerts: tuple[PolicyAlert, ...] = ()
    #: seq of the newest alert ever raised (0: none yet); ``None`` in the rules-error form
    alert_seq: int | None = 0
    hook_failures: int = 0
    error: str | None = None

    @classmethod
    def failed(cls, error: str) -> PolicyStatus:
        """The rules could not be read: no policy runs, and the status says why."""
        return cls(alert_seq=None, error=error)

    def to_json(self) -> dict[str, Any]:
        if self.alert_seq is None:
            return {"error": self.error}
        return {
            "flags": {view: dict(keys) for view, keys in self.flags.items()},
            "budgets": [f.to_json() for f in self.budgets],
            "alerts": [a.to_json() for a in self.alerts],
            "alert_seq": self.alert_seq,
            "hook_failures": self.hook_failures,
            "error": self.error,
        }

    @classmethod
    def from_json(cls, obj: object) -> PolicyStatus | None:
        """Tolerant of what a remote feed sends: unknown or ill-typed parts are left out."""
        if not isinstance(obj, dict):
            return None
        raw_flags = obj.get("flags")
        flags: dict[str, dict[str, str]] = {}
        if isinstance(raw_flags, dict):
            for view, keys in raw_flags.items():
                if isinstance(keys, dict):
                    flags[str(view)] = {str(k): v for k, v in keys.items() if isinstance(v, str)}
        raw_budgets = obj.get("budgets")
        raw_alerts = obj.get("alerts")
        budgets = [_finding(f) for f in raw_budgets] if isinstance(raw_budgets, list) else []
        alerts = [PolicyAlert.from_json(a) for a in raw_alerts] if isinstance(raw_alerts, list) else []
        error = obj.get("error")
        return cls(flags=flags, budgets=tuple(f for f in budgets if f is not None),
                   alerts=tuple(a for a in alerts if a is not None), alert_seq=_int(obj.get("alert_seq")),
                   hook_failures=_int(obj.get("hook_failures")) or 0, error=str(error) if error else None)

    @classmethod
    def of(cls, snapshot: Snapshot | None) -> PolicyStatus | None:
        """The policy status a snapshot carries, or ``None`` (no policy on that feed)."""
        return None if snapshot is None else cls.from_json(snapshot.status.get(cls.KEY))

    # -- what the live view asks -------------------------------------------------------------------
    @property
    def daily_budget_usd(self) -> float:
        """The tightest global daily budget (0: none)."""
        limits = [f.limit for f in self.budgets if f.view == "totals" and f.measure == "usd_per_day" and f.limit]
        return min(limits) if limits else 0.0

    @property
    def sessions_over(self) -> int:
        """Sessions flagged over budget or runaway."""
        return sum(1 for level in self.flags.get("sessions", {}).values() if level in ("over", "runaway"))

    def alerts_after(self, seq: int) -> list[PolicyAlert]:
        """Alerts raised after alert ``seq``, oldest first."""
        return [a for a in self.alerts if a.seq > seq]

    def row_flags(self, dim: str, sessions: Iterable[Row]) -> dict[str, str]:
        """Levels for the rows of view ``dim``: the view's own flags, plus the worst level of the
        flagged sessions behind each agent / model / project / host row (a runaway session makes its
        agent stand out)."""
        out = {k: v for k, v in self.flags.get(dim, {}).items() if v in _RANK}
        name = _SESSION_FIELD.get(dim)
        session_flags = self.flags.get("sessions") or {}
        if name is not None and session_flags:
            for row in sessions:
                level = session_flags.get(row.key)
                if level not in _RANK:
                    continue
                key = getattr(row, name) or "(none)"
                if key not in out or _RANK[level] > _RANK[out[key]]:
                    out[key] = level
        return out


class PolicyRunner:
    def __init__(
        self,
        engine: PolicyEngine,
        control: ControlService,
        *,
        clock: Callable[[], float],
        interval_s: float = 1.0,
        alert_exec: str = "",
        alert_exec_timeout_s: float = 10.0,
        desktop_notify: bool = True,
    ) -> None:
        self.engine = engine
        self.control = control
        self.service = control.service
        self.clock = clock
        self.interval_s = interval_s
        self.alert_argv = shlex.split(alert_exec) if alert_exec else []
        self.alert_exec_timeout_s = alert_exec_timeout_s
        self.notify_send = shutil.which("notify-send") if desktop_notify else None
        self.alerts: deque[PolicyAlert] = deque(maxlen=STATUS_ALERTS)
        self.alert_seq = 0
        self.hook_failures = 0
        self.error: str | None = None

    async def step(self, now: float | None = None) -> list[Decision]:
        """One evaluation at ``now`` (the feed's clock by default) and its consequences."""
        now = self.clock() if now is None else now
        snapshot = self.service.snapshot(now)
        decisions = self.engine.evaluate(snapshot, now)
        for d in decisions:
            await self._carry_out(d, now)
        self._publish()
        return decisions

    async def run(self) -> None:
        while True:
            try:
                await self.step()
                self.error = None
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # a policy bug never takes the feed down; it shows in status
                log.exception("policy evaluation failed")
                self.error = f"policy evaluation failed: {exc}"
                self._publish()
            await asyncio.sleep(self.interval_s)

    async def _carry_out(self, d: Decision, now: float) -> None:
        self.alert_seq += 1
        entry = dict(d.payload(now), seq=self.alert_seq)
        # the entry is what the status shows; outcomes of the actions below are added to it
        self.alerts.append(PolicyAlert(self.alert_seq, d.level, d.rule, d.message, entry))
        if d.level != "cleared":
            await self._notify(d, entry)
        if d.action in ("pause", "kill") and d.level in ("over", "runaway"):
            for session in d.sessions:
                row_state = self.service.aggregator.session_states.get(session)
                if d.action == "pause" and row_state == "paused":
                    continue
                action = "pause" if d.action == "pause" else "terminate"
                result = await self.control.act(session, action, signal="TERM" if action == "terminate" else None,
                                                origin=f"policy:{d.rule}")
                entry.setdefault("outcomes", []).append(result.to_json())

    async def _notify(self, d: Decision, payload: dict[str, Any]) -> None:
        if self.notify_send:
            urgency = "critical" if d.level in ("over", "runaway") else "normal"
            await self._spawn([self.notify_send, "-u", urgency, "-a", "tokentop", "tokentop", d.message], None)
        if self.alert_argv:
            ok = await self._spawn(self.alert_argv, json.dumps(payload).encode() + b"\n")
            if not ok:
                self.hook_failures += 1

    async def _spawn(self, argv: list[str], stdin: bytes | None) -> bool:
        try:
            proc = await asyncio.create_subprocess_exec(
                *argv, stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
            )
        except OSError as exc:
            log.warning("alert command %s failed to start: %s", argv[0], exc)
            return False
        try:
            await asyncio.wait_for(proc.communicate(stdin), self.alert_exec_timeout_s)
        except asyncio.TimeoutError:
            proc.kill()
            await proc.wait()
            log.warning("alert command %s timed out after %s s", argv[0], self.alert_exec_timeout_s)
            return False
        return proc.returncode == 0

    def status(self) -> PolicyStatus:
        return PolicyStatus(
            flags=self.engine.flags(),
            # global figures, every subscription window a rule watches, and everything at warning or
            # over (per-key "ok" budget figures are left out)
            budgets=tuple([f for f in self.engine.findings if f.view == "totals" or f.level != "ok"]
                          + self.engine.window_findings)[:MAX_STATUS_FINDINGS],
            alerts=tuple(self.alerts),
            alert_seq=self.alert_seq,
            hook_failures=self.hook_failures,
            error=self.error,
        )

    def _publish(self) -> None:
        self.service.set_status(PolicyStatus.KEY, self.status().to_json())


def build_policy_runner(config: Config, control: ControlService, clock: Callable[[], float]) -> PolicyRunner | None:
    """A runner for the configured rules, or ``None`` when there are none. Raises :class:`PolicyError`."""
    budgets, runaways = rules_from_config(config)
    engine = PolicyEngine(budgets, runaways, window_rules_from_config(config))
    if not engine.active:
        return None
    section = config.control
    return PolicyRunner(
        engine, control, clock=clock, interval_s=float(section.policy_interval_s), alert_exec=section.alert_exec,
        alert_exec_timeout_s=float(section.alert_exec_timeout_s), desktop_notify=bool(section.desktop_notify),
    )

