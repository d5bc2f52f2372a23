"""Config owned by the control layer: ``[control]``, ``[budget.NAME]`` and ``[runaway.NAME]``.

Plain data pulled by ``tokentop/config.py``; this module imports nothing but
:mod:`tokentop.core.setting`. Semantics: ``docs/control.md``.
"""

from __future__ import annotations

from typing import Final

from tokentop.core.setting import NUM, Setting, fraction, non_negative, one_of, positive

#: what a budget or runaway rule may do when it trips
POLICY_ACTIONS: Final = ("alert", "pause", "kill")

SECTIONS: Final = {
    "control": {
        "grace_s": Setting(NUM, 5.0, "seconds between SIGTERM and SIGKILL when the process is still alive", non_negative),
        "ack_timeout_s": Setting(NUM, 5.0, "seconds to wait for an in-process emitter to acknowledge a control message", positive),
        "discovery": Setting(bool, True, "find running claude/codex processes for sessions seen only in logs"),
        "policy_interval_s": Setting(NUM, 1.0, "seconds between budget/runaway evaluations in the feed", positive),
        "desktop_notify": Setting(bool, True, "alerts also go to notify-send when it is installed"),
        "alert_exec": Setting(str, "", "command run on every alert; gets a JSON payload (v1) on stdin"),
        "alert_exec_timeout_s": Setting(NUM, 10.0, "the alert command is killed after this many seconds", positive),
    },
}

NAMED_TABLES: Final = {
    "budget": {
        "scope": Setting(str, "global", "global | agent | model | project", one_of("global", "agent", "model", "project")),
        "match": Setting(str, "", "the agent/model/project this budget is for; empty: each one separately"),
        "usd_per_hour": Setting(NUM, None, "limit on the burn rate ($/h now)", positive),
        "usd_per_day": Setting(NUM, None, "limit on spend today", positive),
        "usd_per_session": Setting(NUM, None, "limit on any one session's spend today (within the scope)", positive),
        "warn_at": Setting(NUM, 0.8, "fraction of a limit that is a warning", fraction),
        "action": Setting(str, "alert", "what happens over budget: alert | pause | kill", one_of(*POLICY_ACTIONS)),
    },
    "runaway": {
        "scope": Setting(str, "session", "session | agent", one_of("session", "agent")),
        "match": Setting(str, "", "only this agent (or session id); empty: all"),
        "usd_per_hour_above": Setting(NUM, None, "runaway when the burn rate stays above this ($/h)", positive),
        "median_multiple": Setting(NUM, None, "runaway when burn stays above k x its own trailing median", positive),
        "median_window_s": Setting(NUM, 600, "trailing window for the median (seconds)", positive),
        "min_usd_per_hour": Setting(NUM, 1.0, "the median rule ignores burn below this ($/h)", non_negative),
        "for_s": Setting(NUM, 30, "seconds the condition must hold before the rule trips", non_negative),
        "clear_fraction": Setting(NUM, 0.8, "hysteresis: clears when burn < fraction x threshold for for_s", fraction),
        "action": Setting(str, "alert", "alert | pause | kill (pause/kill are opt-in)", one_of(*POLICY_ACTIONS)),
    },
}
