"""Config owned by the control layer: ``[control]``, ``[budget.NAME]`` and ``[runaway.NAME]``.

Plain data pulled by ``tokentop/config.py``; this module imports nothing but
:mod:`tokentop.core.setting`. Semantics: ``docs/control.md``.
"""

from __future__ import annotations

from typing import Final

from tokentop.core.setting import NUM, Setting, fraction, non_negative, one_of, positive

#: what a budget or runaway rule may do when it trips
POLICY_ACTIONS: Final = ("alert", "pause", "kill")
#: a runaway rule may also block the session (or agent) at the API: the metering proxy refuses its
#: requests until the rule clears (budgets block with ``block_at`` instead)
RUNAWAY_ACTIONS: Final = (*POLICY_ACTIONS, "block")


def block_fraction(v: object) -> str | None:
    """``block_at`` is a fraction of the limit, like ``warn_at``; 100 is most likely meant as 100 %."""
    if isinstance(v, (int, float)) and 0 < v <= 10:
        return None
    return (f"is a fraction of the limit, like warn_at (1.0 blocks at the limit, 0.9 at 90 %, 1.2 at 120 %); "
            f"got {v!r}" + (" (for 'at the limit' write 1.0)" if isinstance(v, (int, float)) and v > 10 else ""))

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
        "block_at": Setting(NUM, None, "block at the API at this fraction of a limit (1.0: at the limit): the "
                                       "metering proxy refuses the scope's requests (opt-in)", block_fraction),
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
        "action": Setting(str, "alert", "alert | pause | kill | block (pause/kill/block are opt-in; block: the "
                                        "metering proxy refuses its requests until the rule clears)",
                          one_of(*RUNAWAY_ACTIONS)),
    },
}
