"""Config owned by the control layer: ``[control]``, ``[budget.NAME]`` and ``[runaway.NAME]``.

Imported by ``tokentop/config.py`` so the sections are known before any file is validated; this
module imports nothing but the config schema types. Semantics: ``docs/control.md``.
"""

from __future__ import annotations

from typing import Any

from tokentop.config import NUM, Setting, register_named_table, register_section


def _positive(v: Any) -> str | None:
    return None if v > 0 else "must be greater than 0"


def _non_negative(v: Any) -> str | None:
    return None if v >= 0 else "must be 0 or more"


def _fraction(v: Any) -> str | None:
    return None if 0 < v <= 1 else "must be a fraction in (0, 1]"


def _one_of(*choices: str):  # noqa: ANN202
    def check(v: Any) -> str | None:
        return None if v in choices else f"must be one of {', '.join(repr(c) for c in choices)}"

    return check


ACTIONS = ("alert", "pause", "kill")

register_section("control", {
    "grace_s": Setting(NUM, 5.0, "seconds between SIGTERM and SIGKILL when the process is still alive", _non_negative),
    "ack_timeout_s": Setting(NUM, 5.0, "seconds to wait for an in-process emitter to acknowledge a control message", _positive),
    "discovery": Setting(bool, True, "find running claude/codex processes for sessions seen only in logs"),
    "policy_interval_s": Setting(NUM, 1.0, "seconds between budget/runaway evaluations in the feed", _positive),
    "desktop_notify": Setting(bool, True, "alerts also go to notify-send when it is installed"),
    "alert_exec": Setting(str, "", "command run on every alert; gets a JSON payload (v1) on stdin"),
    "alert_exec_timeout_s": Setting(NUM, 10.0, "the alert command is killed after this many seconds", _positive),
})

register_named_table("budget", {
    "scope": Setting(str, "global", "global | agent | model | project", _one_of("global", "agent", "model", "project")),
    "match": Setting(str, "", "the agent/model/project this budget is for; empty: each one separately"),
    "usd_per_hour": Setting(NUM, None, "limit on the burn rate ($/h now)", _positive),
    "usd_per_day": Setting(NUM, None, "limit on spend today", _positive),
    "usd_per_session": Setting(NUM, None, "limit on any one session's spend today (within the scope)", _positive),
    "warn_at": Setting(NUM, 0.8, "fraction of a limit that is a warning", _fraction),
    "action": Setting(str, "alert", "what happens over budget: alert | pause | kill", _one_of(*ACTIONS)),
})

register_named_table("runaway", {
    "scope": Setting(str, "session", "session | agent", _one_of("session", "agent")),
    "match": Setting(str, "", "only this agent (or session id); empty: all"),
    "usd_per_hour_above": Setting(NUM, None, "runaway when the burn rate stays above this ($/h)", _positive),
    "median_multiple": Setting(NUM, None, "runaway when burn stays above k x its own trailing median", _positive),
    "median_window_s": Setting(NUM, 600, "trailing window for the median (seconds)", _positive),
    "min_usd_per_hour": Setting(NUM, 1.0, "the median rule ignores burn below this ($/h)", _non_negative),
    "for_s": Setting(NUM, 30, "seconds the condition must hold before the rule trips", _non_negative),
    "clear_fraction": Setting(NUM, 0.8, "hysteresis: clears when burn < fraction x threshold for for_s", _fraction),
    "action": Setting(str, "alert", "alert | pause | kill (pause/kill are opt-in)", _one_of(*ACTIONS)),
})
