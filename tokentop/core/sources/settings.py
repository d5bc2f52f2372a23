"""The ``[sources]`` config section: which agent logs a feed reads, and where (docs/sources.md).

Environment variables win over the file: ``CLAUDE_CONFIG_DIR`` and ``CODEX_HOME``.
"""

from __future__ import annotations

from typing import Any, Final

from tokentop.core.setting import NUM, Setting, positive, string_list

#: every log source tokentop can read, by its ``sources.enabled`` name
KNOWN_SOURCES: Final = ("claude-code", "codex")


def _source_names(v: Any) -> str | None:
    bad = [x for x in v if not isinstance(x, str) or x not in KNOWN_SOURCES]
    return None if not bad else f"unknown source(s) {bad!r}; known: {', '.join(KNOWN_SOURCES)}"


SECTIONS: Final = {
    "sources": {
        "enabled": Setting(list, list(KNOWN_SOURCES), "log sources to read: claude-code, codex", _source_names),
        "backfill_days": Setting(NUM, 30, "first run imports this many days of history; older lines are ignored", positive),
        "claude_roots": Setting(list, [], "Claude config dirs (each holding projects/); default ~/.claude and ~/.config/claude", string_list),
        "codex_home": Setting(str, "", "Codex home (holding sessions/); default ~/.codex"),
        "watch": Setting(bool, True, "use a file watcher (watchfiles); false = cheap polling only"),
        "poll_interval_s": Setting(NUM, 1.0, "seconds between polls of recently active files when not watching", positive),
    },
}
