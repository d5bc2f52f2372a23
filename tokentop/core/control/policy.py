"""Budgets and runaway detection, evaluated on snapshots.

Pure: :func:`evaluate_budgets` is a function of (snapshot, rules); :class:`PolicyEngine.evaluate`
of (snapshot, now, the engine's own state). No I/O, no clock reads — the feed's policy task
(:mod:`.policy_task`) calls it once per interval and carries out the decisions (alerts, pause, kill);
``tokentop check`` calls :func:`evaluate_budgets` once.

Budgets (``[budget.NAME]``): ``usd_per_hour`` is compared with the burn rate now, ``usd_per_day``
with spend today, ``usd_per_session`` with each session's spend today — for the global totals, or
per agent / model / project (one key, or each key separately). Levels: ok < warning (``warn_at`` of
the limit) < over. A level falls back only once the value is 5% below its threshold (hysteresis).

Runaway (``[runaway.NAME]``), per session (or agent): burn above ``usd_per_hour_above``, or above
``median_multiple`` x the row's own trailing median burn, continuously for ``for_s`` seconds trips
the rule; it clears after the burn stays below ``clear_fraction`` x that threshold for ``for_s``.

Subscription windows (``[limits.NAME]``): a window's used % (``snapshot.limits``) against
``warn_at`` (an alert), ``pause_at`` / ``kill_at`` (opt-in actions on the agent's active sessions)
and 100 % (exhausted): ok < warning < over, with the same hysteresis. Pause and kill act on an
official figure only, unless the rule says ``estimated = true``.

Decisions are edge-triggered: one when a level rises or a rule trips, none while it stays there.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from statistics import median
from typing import TYPE_CHECKING, Any, Final, Iterable, Mapping

from tokentop.core.snapshot import Row, Snapshot

if TYPE_CHECKING:
    from tokentop.config import Config
    from tokentop.core.limits.windows import Window

LEVELS: Final = ("ok", "warning", "over")
#: A level is left only once the value is this fraction below its threshold.
HYSTERESIS: Final = 0.05
SCOPE_VIEWS: Final = {"agent": "agents", "model": "models", "project": "projects", "session": "sessions"}
#: Fewest trailing samples before the median rule may trip.
MIN_MEDIAN_SAMPLES: Final = 5
PAYLOAD_VERSION: Final = 1


class PolicyError(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class BudgetRule:
    name: str
    scope: str = "global"
    match: str = ""
    usd_per_hour: float | None = None
    usd_per_day: float | None = None
    usd_per_session: float | None = None
    warn_at: float = 0.8
    action: str = "alert"


@dataclass(frozen=True, slots=True)
class RunawayRule:
    name: str
    scope: str = "session"
    match: str = ""
    usd_per_hour_above: float | None = None
    median_multiple: float | None = None
    median_window_s: float = 600.0
    min_usd_per_hour: float = 1.0
    for_s: float = 30.0
    clear_fraction: float = 0.8
    action: str = "alert"


@dataclass(frozen=True, slots=True)
class WindowRule:
    """``[limits.NAME]``: alerts, and opt-in pause / kill, on a subscription window's used %."""

    name: str
    window: str = "5h"
    agent: str = ""
    account: str = ""
    warn_at: float = 80.0
    pause_at: float | None = None
    kill_at: float | None = None
    #: pause / kill also on an estimated window (alerts always)
    estimated: bool = False

    def matches(self, w: Window) -> bool:
        return w.window == self.window and (not self.agent or w.agent == self.agent) \
            and (not self.account or w.account == self.account)

    def thresholds(self) -> list[tuple[float, str, str]]:
        """(used %, level, action) in rising order: warning, then pause / kill, then exhausted (100 %)."""
        out = [(float(self.warn_at), "warning", "alert")] if self.warn_at else []
        if self.pause_at is not None:
            out.append((float(self.pause_at), "over", "pause"))
        if self.kill_at is not None:
            out.append((float(self.kill_at), "over", "kill"))
        if not any(level == "over" and t <= 100.0 for t, level, _ in out):
            out.append((100.0, "over", "alert"))  # an exhausted window is over, whatever the rule acts on
        return sorted(out, key=lambda t: t[0])

    def stage(self, used: float, previous: int = 0) -> int:
        """How many thresholds ``used`` has crossed; one crossed before (``previous``) stays crossed
        until ``used`` falls 5 % below it (hysteresis)."""
        stage = 0
        for n, (threshold, _, _) in enumerate(self.thresholds(), 1):
            if used >= threshold or (n <= previous and used >= threshold * (1 - HYSTERESIS)):
                stage = n
        return stage


def window_key(w: Window) -> str:
    """How a window is named in findings and alerts: ``claude-code 5h ~/.claude``."""
    return f"{w.agent} {w.window} {w.account}".strip()


def _window_finding(rule: WindowRule, w: Window, stage: int) -> Finding:
    thresholds = rule.thresholds()
    if stage:
        limit, level, _ = thresholds[stage - 1]
    else:
        limit, level = (thresholds[0][0] if thresholds else 100.0), "ok"
    return Finding(rule.name, "limits", window_key(w), "used_percent", w.used_percent, limit, level)


def evaluate_windows(snapshot: Snapshot, rules: Iterable[WindowRule]) -> list[Finding]:
    """Every (rule, window) with its level now (stateless: ``tokentop check``)."""
    out = []
    for rule in rules:
        for w in snapshot.limits:
            if rule.matches(w):
                out.append(_window_finding(rule, w, rule.stage(w.used_percent)))
    return out


@dataclass(frozen=True, slots=True)
class Finding:
    """Where one budget stands for one key (``check`` and the feed both use these)."""

    rule: str
    view: str  # "totals", "agents", "models", "projects", "sessions"
    key: str
    measure: str  # "usd_per_hour" | "usd_per_day" | "usd_per_session"
    value: float
    limit: float
    level: str

    def to_json(self) -> dict[str, Any]:
        return {"rule": self.rule, "view": self.view, "key": self.key, "measure": self.measure,
                "value": round(self.value, 6), "limit": self.limit, "level": self.level}


@dataclass(frozen=True, slots=True)
class Decision:
    """Something to do now: an alert, and for pause/kill rules the sessions to act on."""

    rule: str
    kind: str  # "budget" | "runaway" | "window"
    view: str
    key: str
    level: str  # "warning" | "over" | "runaway" | "cleared"
    measure: str
    value: float
    limit: float
    action: str  # "alert" | "pause" | "kill" ("alert" for warnings and clears)
    sessions: tuple[str, ...] = ()
    message: str = ""

    def payload(self, now: float) -> dict[str, Any]:
        """The versioned JSON an alert hook receives on stdin (docs/control.md)."""
        return {"v": PAYLOAD_VERSION, "type": "tokentop.alert", "ts": now, "rule": self.rule, "kind": self.kind,
                "view": self.view, "key": self.key, "level": self.level, "measure": self.measure,
                "value": round(self.value, 6), "limit": self.limit, "action": self.action,
                "sessions": list(self.sessions), "message": self.message}


# -- rules from config ---------------------------------------------------------------------------

def rules_from_config(cfg: Config) -> tuple[list[BudgetRule], list[RunawayRule]]:
    """Rules from ``[budget.*]`` / ``[runaway.*]``; :class:`PolicyError` names a rule with no limit."""
    budgets: list[BudgetRule] = []
    for name, table in cfg.budget.items():
        rule = BudgetRule(name=name, **table)
        if rule.usd_per_hour is None and rule.usd_per_day is None and rule.usd_per_session is None:
            raise PolicyError(f"[budget.{name}] sets no limit: give usd_per_hour, usd_per_day or usd_per_session")
        if rule.scope == "global" and rule.match:
            raise PolicyError(f"[budget.{name}] has match = {rule.match!r} but scope 'global'; set scope too")
        budgets.append(rule)
    runaways: list[RunawayRule] = []
    for name, table in cfg.runaway.items():
        rule = RunawayRule(name=name, **table)
        if rule.usd_per_hour_above is None and rule.median_multiple is None:
            raise PolicyError(f"[runaway.{name}] sets no condition: give usd_per_hour_above or median_multiple")
        runaways.append(rule)
    return budgets, runaways


def window_rules_from_config(cfg: Config) -> list[WindowRule]:
    """Rules from ``[limits.NAME]`` tables (the ``[limits]`` section's own keys are not rules)."""
    rules: list[WindowRule] = []
    section = getattr(cfg, "limits", None)
    for name, table in (vars(section).items() if section is not None else ()):
        if not isinstance(table, dict):
            continue
        rule = WindowRule(name=name, **table)
        if not rule.window:
            raise PolicyError(f"[limits.{name}] names no window: set window = \"5h\" (or 7d, 7d-opus, ...)")
        acts = [v for v in (rule.pause_at, rule.kill_at) if v is not None]
        if rule.warn_at and acts and rule.warn_at >= min(acts):
            raise PolicyError(f"[limits.{name}] warns at {rule.warn_at:g} % but acts at {min(acts):g} %: warn_at must "
                              f"be below pause_at and kill_at")
        rules.append(rule)
    return rules


# -- budgets (stateless) -------------------------------------------------------------------------

def _level(value: float, limit: float, warn_at: float, previous: str = "ok") -> str:
    """ok / warning / over, with hysteresis relative to ``previous``."""
    warn = limit * warn_at
    if value >= limit:
        return "over"
    if previous == "over" and value >= limit * (1 - HYSTERESIS):
        return "over"
    if value >= warn:
        return "warning"
    if previous in ("warning", "over") and value >= warn * (1 - HYSTERESIS):
        return "warning"
    return "ok"


def _scoped_rows(snapshot: Snapshot, scope: str, match: str) -> Iterable[Row]:
    rows = snapshot.view(SCOPE_VIEWS[scope])
    return (r for r in rows if r.key == match) if match else rows


def _session_in_scope(row: Row, scope: str, match: str) -> bool:
    if scope == "global" or not match:
        return True
    value = {"agent": row.agent, "model": row.model, "project": row.project}.get(scope)
    return value == match


def _session_scope_key(row: Row, scope: str) -> str | None:
    return {"agent": row.agent, "model": row.model, "project": row.project}.get(scope)


def evaluate_budgets(snapshot: Snapshot, rules: Iterable[BudgetRule],
                     previous: Mapping[tuple[str, str, str, str], str] | None = None,
                     *, include_ok: bool = True) -> list[Finding]:
    """Every (rule, key, measure) with its level now. ``previous`` levels give hysteresis.

    ``include_ok=False`` leaves out per-key figures comfortably under their warning level (global
    figures are always included), so the feed's per-second evaluation of thousands of sessions stays
    cheap and its status small."""
    prev = previous or {}
    out: list[Finding] = []
    for rule in rules:
        def add(view: str, key: str, measure: str, value: float, limit: float) -> None:
            before = prev.get((rule.name, view, key, measure), "ok")
            if not include_ok and view != "totals" and before == "ok" and value < limit * rule.warn_at * (1 - HYSTERESIS):
                return
            level = _level(value, limit, rule.warn_at, before)
            out.append(Finding(rule.name, view, key, measure, value, limit, level))

        if rule.scope == "global":
            totals = snapshot.totals
            if rule.usd_per_hour is not None:
                add("totals", "all", "usd_per_hour", totals.usd_per_hour, rule.usd_per_hour)
            if rule.usd_per_day is not None:
                add("totals", "all", "usd_per_day", float(totals.usd_today), rule.usd_per_day)
        else:
            view = SCOPE_VIEWS[rule.scope]
            for row in _scoped_rows(snapshot, rule.scope, rule.match):
                if rule.usd_per_hour is not None:
                    add(view, row.key, "usd_per_hour", row.usd_per_hour, rule.usd_per_hour)
                if rule.usd_per_day is not None:
                    add(view, row.key, "usd_per_day", float(row.usd_today), rule.usd_per_day)
        if rule.usd_per_session is not None:
            for row in snapshot.sessions:
                if _session_in_scope(row, rule.scope, rule.match):
                    add("sessions", row.key, "usd_per_session", float(row.usd_today), rule.usd_per_session)
    return out


def worst_level(findings: Iterable[Finding]) -> str:
    worst = 0
    for f in findings:
        worst = max(worst, LEVELS.index(f.level))
    return LEVELS[worst]


# -- the stateful engine -------------------------------------------------------------------------

@dataclass
class _RunawayState:
    samples: deque[tuple[float, float]] = field(default_factory=deque)
    last_sample: float = float("-inf")
    above_since: float | None = None
    below_since: float | None = None
    tripped: bool = False
    threshold: float = 0.0
    #: median of ``samples``, recomputed only when they change
    median: float | None = None


class PolicyEngine:
    def __init__(self, budgets: Iterable[BudgetRule] = (), runaways: Iterable[RunawayRule] = (),
                 windows: Iterable[WindowRule] = ()) -> None:
        self.budgets = list(budgets)
        self.runaways = list(runaways)
        self.windows = list(windows)
        self.levels: dict[tuple[str, str, str, str], str] = {}
        self.runaway_state: dict[tuple[str, str, str], _RunawayState] = {}
        #: (rule, window key) -> thresholds crossed (:meth:`WindowRule.stage`)
        self.window_stages: dict[tuple[str, str], int] = {}
        self.findings: list[Finding] = []
        self.window_findings: list[Finding] = []

    @property
    def active(self) -> bool:
        return bool(self.budgets or self.runaways or self.windows)

    def evaluate(self, snapshot: Snapshot, now: float) -> list[Decision]:
        decisions: list[Decision] = []
        decisions.extend(self._budgets(snapshot))
        decisions.extend(self._runaway(snapshot, now))
        decisions.extend(self._windows(snapshot))
        return decisions

    # subscription windows
    def _windows(self, snapshot: Snapshot) -> list[Decision]:
        decisions: list[Decision] = []
        stages: dict[tuple[str, str], int] = {}
        findings: list[Finding] = []
        for rule in self.windows:
            thresholds = rule.thresholds()
            for w in snapshot.limits:
                if not rule.matches(w):
                    continue
                k = (rule.name, window_key(w))
                before = self.window_stages.get(k, 0)
                stage = stages[k] = rule.stage(w.used_percent, before)
                findings.append(_window_finding(rule, w, stage))
                if stage <= before:
                    continue  # edge-triggered: only rises decide anything
                threshold, level, action = thresholds[stage - 1]
                if action != "alert" and not (w.official or rule.estimated):
                    action = "alert"  # an estimate alerts; it acts only when the rule says so
                sessions = tuple(r.key for r in snapshot.sessions if r.agent == w.agent and r.state == "active") \
                    if action != "alert" else ()
                what = {"alert": "exhausted" if threshold >= 100 else "warning", "pause": "pause",
                        "kill": "kill"}[action]
                estimate = "" if w.official else " (estimated)"
                decisions.append(Decision(
                    rule.name, "window", "limits", window_key(w), level, "used_percent", w.used_percent, threshold,
                    action, sessions,
                    f"{w.label} {w.window} window is at {w.used_percent:.0f} %{estimate} ({what} at {threshold:g} %, "
                    f"rule {rule.name})",
                ))
        self.window_stages = stages
        self.window_findings = findings
        return decisions

    def flags(self) -> dict[str, dict[str, str]]:
        """view -> key -> worst current level ("warning", "over", "runaway") for the UI's row colours."""
        out: dict[str, dict[str, str]] = {}
        rank = {"warning": 1, "over": 2, "runaway": 3}
        for (_, view, key, _), level in self.levels.items():
            if level != "ok":
                cur = out.setdefault(view, {}).get(key)
                if cur is None or rank[level] > rank[cur]:
                    out[view][key] = level
        for (_, view, key), st in self.runaway_state.items():
            if st.tripped:
                out.setdefault(view, {})[key] = "runaway"
        return out

    # budgets
    def _budgets(self, snapshot: Snapshot) -> list[Decision]:
        findings = evaluate_budgets(snapshot, self.budgets, self.levels, include_ok=False)
        rules = {r.name: r for r in self.budgets}
        decisions: list[Decision] = []
        levels: dict[tuple[str, str, str, str], str] = {}
        for f in findings:
            k = (f.rule, f.view, f.key, f.measure)
            before = self.levels.get(k, "ok")
            levels[k] = f.level
            if LEVELS.index(f.level) <= LEVELS.index(before):
                continue  # edge-triggered: only rises decide anything
            rule = rules[f.rule]
            action = rule.action if f.level == "over" else "alert"
            sessions = self._budget_sessions(snapshot, rule, f) if action != "alert" else ()
            word = "over budget" if f.level == "over" else f"at {rule.warn_at:.0%} of budget"
            decisions.append(Decision(
                f.rule, "budget", f.view, f.key, f.level, f.measure, f.value, f.limit, action, sessions,
                f"{_label(f.view, f.key)} is {word}: {f.measure} ${f.value:,.2f} of ${f.limit:,.2f} (rule {f.rule})",
            ))
        self.levels = levels
        self.findings = findings
        return decisions

    @staticmethod
    def _budget_sessions(snapshot: Snapshot, rule: BudgetRule, f: Finding) -> tuple[str, ...]:
        if f.view == "sessions":
            return (f.key,)
        out = []
        for row in snapshot.sessions:
            if row.state not in ("active",):
                continue
            if f.view == "totals" or _session_scope_key(row, rule.scope) == f.key:
                out.append(row.key)
        return tuple(out)

    # runaway
    def _runaway(self, snapshot: Snapshot, now: float) -> list[Decision]:
        decisions: list[Decision] = []
        seen: set[tuple[str, str, str]] = set()
        for rule in self.runaways:
            view = SCOPE_VIEWS[rule.scope]
            sample_every = max(1.0, rule.median_window_s / 120.0)
            for row in _scoped_rows(snapshot, rule.scope, rule.match):
                k = (rule.name, view, row.key)
                seen.add(k)
                st = self.runaway_state.get(k)
                if row.state == "idle" and (st is None or not st.tripped):
                    continue  # quiet: nothing can trip, and the median learns from working time only
                if st is None:
                    st = self.runaway_state[k] = _RunawayState()
                burn = row.usd_per_hour
                while st.samples and st.samples[0][0] < now - rule.median_window_s:
                    st.samples.popleft()
                    st.median = None
                threshold = self._threshold(rule, st)
                above = threshold is not None and burn > threshold
                if above:
                    st.below_since = None
                    if st.above_since is None:
                        st.above_since = now
                        st.threshold = threshold  # type: ignore[assignment]
                    if not st.tripped and now - st.above_since >= rule.for_s:
                        st.tripped = True
                        decisions.append(self._trip(rule, view, row, snapshot, st, burn))
                else:
                    st.above_since = None
                    if st.tripped:
                        clear_at = st.threshold * rule.clear_fraction
                        if burn < clear_at:
                            if st.below_since is None:
                                st.below_since = now
                            if now - st.below_since >= rule.for_s:
                                st.tripped = False
                                st.below_since = None
                                decisions.append(Decision(
                                    rule.name, "runaway", view, row.key, "cleared", "usd_per_hour", burn, clear_at,
                                    "alert", (), f"{_label(view, row.key)} is back to ${burn:,.2f}/h (rule {rule.name})",
                                ))
                        else:
                            st.below_since = None
                # the median learns only from normal behaviour, never from a runaway
                if not above and not st.tripped and now - st.last_sample >= sample_every:
                    st.samples.append((now, burn))
                    st.last_sample = now
                    st.median = None
        for k in [k for k in self.runaway_state if k not in seen]:
            del self.runaway_state[k]  # the row is gone (evicted): forget it
        return decisions

    @staticmethod
    def _threshold(rule: RunawayRule, st: _RunawayState) -> float | None:
        limits: list[float] = []
        if rule.usd_per_hour_above is not None:
            limits.append(rule.usd_per_hour_above)
        if rule.median_multiple is not None and len(st.samples) >= MIN_MEDIAN_SAMPLES:
            if st.median is None:
                st.median = median(v for _, v in st.samples)
            limits.append(max(rule.median_multiple * st.median, rule.min_usd_per_hour))
        return min(limits) if limits else None

    @staticmethod
    def _trip(rule: RunawayRule, view: str, row: Row, snapshot: Snapshot, st: _RunawayState, burn: float) -> Decision:
        if view == "sessions":
            sessions: tuple[str, ...] = (row.key,)
        else:
            sessions = tuple(s.key for s in snapshot.sessions if s.agent == row.key and s.state == "active")
        action = rule.action
        return Decision(
            rule.name, "runaway", view, row.key, "runaway", "usd_per_hour", burn, st.threshold, action,
            sessions if action != "alert" else (),
            f"{_label(view, row.key)} is burning ${burn:,.2f}/h, above ${st.threshold:,.2f}/h for "
            f"{rule.for_s:g} s (rule {rule.name})",
        )


def _label(view: str, key: str) -> str:
    if view == "totals":
        return "total spend"
    return f"{view[:-1]} {key}"
