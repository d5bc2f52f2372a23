"""The feed's policy task: evaluate budgets and runaway rules on each snapshot and carry out the
decisions — alerts (snapshot status, desktop notification, exec hook) and, for rules that opted
in, pause or kill through the control service (audited with origin ``policy:<rule>``).
"""

from __future__ import annotations

import asyncio
import json
import logging
import shlex
import shutil
from collections import deque
from typing import Any, Callable, Final

from tokentop.core.control.policy import Decision, PolicyEngine, PolicyError, rules_from_config

log = logging.getLogger("tokentop.control")

#: Alerts kept in snapshot status (``status.policy.alerts``), newest last.
STATUS_ALERTS: Final = 20
#: Budget findings kept in snapshot status (``status.policy.budgets``).
MAX_STATUS_FINDINGS: Final = 100


class PolicyRunner:
    def __init__(
        self,
        engine: PolicyEngine,
        control: Any,
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
        self.alerts: deque[dict[str, Any]] = deque(maxlen=STATUS_ALERTS)
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
        self.alerts.append(entry)
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

    def _publish(self) -> None:
        self.service.set_status("policy", {
            "flags": self.engine.flags(),
            # global figures and everything at warning or over (per-key "ok" figures are left out)
            "budgets": [f.to_json() for f in self.engine.findings if f.view == "totals" or f.level != "ok"][:MAX_STATUS_FINDINGS],
            "alerts": list(self.alerts),
            "alert_seq": self.alert_seq,
            "hook_failures": self.hook_failures,
            "error": self.error,
        })


def build_policy_runner(config: Any, control: Any, clock: Callable[[], float]) -> PolicyRunner | None:
    """A runner for the configured rules, or ``None`` when there are none. Raises :class:`PolicyError`."""
    budgets, runaways = rules_from_config(config)
    engine = PolicyEngine(budgets, runaways)
    if not engine.active:
        return None
    section = config.control
    return PolicyRunner(
        engine, control, clock=clock, interval_s=float(section.policy_interval_s), alert_exec=section.alert_exec,
        alert_exec_timeout_s=float(section.alert_exec_timeout_s), desktop_notify=bool(section.desktop_notify),
    )


def attach_policy(runner: Any, control: Any) -> PolicyRunner | None:
    """Startup hook part: start the policy task with the feed when rules are configured."""
    try:
        policy = build_policy_runner(runner.config, control, runner.service.clock)
    except PolicyError as exc:
        runner.service.set_status("policy", {"error": str(exc)})
        log.error("%s", exc)
        return None
    if policy is not None:
        runner.extras["policy"] = policy
        runner.app.background.append(policy.run)
    return policy
