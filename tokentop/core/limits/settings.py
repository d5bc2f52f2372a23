"""The ``[limits]`` config section and its ``[limits.NAME]`` rules (docs/limits.md, docs/config.md).

Plain data pulled by ``tokentop/config.py``: ``SECTIONS`` holds the section's own keys; ``ENTRIES``
the keys of the rules a user names inside it (``[limits.claude-5h]``). This module imports nothing
of tokentop but :mod:`tokentop.core.setting`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

from tokentop.core.setting import NUM, Setting, between, http_url, positive, string_list

if TYPE_CHECKING:
    from tokentop.config import Config


def at_least_300(v: object) -> str | None:
    return None if isinstance(v, (int, float)) and v >= 300 else "must be at least 300 (seconds): the endpoint is rate-limited"


def percent(v: object) -> str | None:
    return None if isinstance(v, (int, float)) and 0 < v <= 1000 else "must be a percentage greater than 0"


SECTIONS: Final = {
    "limits": {
        "enabled": Setting(bool, True, "track subscription windows (Codex logs, Claude Code statusline, estimates)"),
        "claude_oauth": Setting(bool, False, "poll Anthropic's undocumented OAuth usage endpoint with Claude Code's "
                                             "token (opt-in; read-only; see docs/limits.md)"),
        "claude_oauth_interval_s": Setting(NUM, 300, "seconds between OAuth usage calls (at least 300)", at_least_300),
        "claude_oauth_url": Setting(str, "https://api.anthropic.com", "base URL of the OAuth usage endpoint", http_url),
        "claude_config_dir": Setting(str, "", "Claude Code's config dir (its .credentials.json); default "
                                              "$CLAUDE_CONFIG_DIR or ~/.claude"),
        "estimate_agents": Setting(list, ["claude-code"], "agents whose 5-hour window is estimated from the ledger "
                                                          "when no official figure exists", string_list),
        "statusline_max_bytes": Setting(int, 65536, "largest statusLine payload POST /v1/limits/statusline takes",
                                        positive),
    },
}

#: keys of a ``[limits.NAME]`` rule
ENTRIES: Final = {
    "limits": {
        "window": Setting(str, "5h", "the window: 5h, 7d, 7d-opus, ... (as the snapshot names it)"),
        "agent": Setting(str, "", "only this agent's window (claude-code, codex); empty: every agent's"),
        "account": Setting(str, "", "only this account (a Codex home, a Claude config dir); empty: every one"),
        "warn_at": Setting(NUM, 80, "alert at this used %", between(0, 1000, "%")),
        "pause_at": Setting(NUM, None, "pause the agent's active sessions at this used % (opt-in)", percent),
        "kill_at": Setting(NUM, None, "stop (TERM) the agent's active sessions at this used % (opt-in)", percent),
        "estimated": Setting(bool, False, "let pause/kill act on an estimated window too (alerts always do)"),
    },
}


@dataclass(frozen=True)
class LimitSettings:
    enabled: bool = True
    claude_oauth: bool = False
    claude_oauth_interval_s: float = 300.0
    claude_oauth_url: str = "https://api.anthropic.com"
    claude_config_dir: str = ""
    estimate_agents: tuple[str, ...] = ("claude-code",)
    statusline_max_bytes: int = 65536

    @classmethod
    def from_config(cls, cfg: Config) -> LimitSettings:
        s = cfg.limits
        return cls(
            enabled=bool(s.enabled), claude_oauth=bool(s.claude_oauth),
            claude_oauth_interval_s=float(s.claude_oauth_interval_s), claude_oauth_url=s.claude_oauth_url,
            claude_config_dir=s.claude_config_dir, estimate_agents=tuple(s.estimate_agents),
            statusline_max_bytes=int(s.statusline_max_bytes),
        )
