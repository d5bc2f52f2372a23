"""Claude Code's statusLine JSON → quota figures and the session's own facts (docs/limits.md).

Claude Code runs its ``statusLine`` command after each assistant message with one JSON object on
stdin; ``tokentop statusline`` forwards it to the feed (``POST /v1/limits/statusline``), and this
module reads it there. Only these fields are used; everything else (paths, prompt ids) is ignored:

* ``rate_limits.five_hour`` / ``rate_limits.seven_day``: ``{used_percentage 0–100, resets_at
  (epoch seconds)}`` — documented since Claude Code 2.1.80, each window may be absent;
  ``rate_limits.spend_limit.used_percentage`` in newer builds (a monthly spend cap).
* ``session_id``, ``model.id`` / ``model.display_name``, ``cost.total_cost_usd`` (Claude Code's own
  client-side estimate), ``version``.

In practice ``rate_limits`` is often missing (1.0.x never had it; 2.1.96 → 2.1.278 reports on Pro
and Max) or ``null``: :attr:`StatuslineReport.rate_limits` says which, so the view can say "no
quota data from Claude Code" instead of showing 0 %.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from tokentop.core.limits.windows import FIVE_HOURS_MIN, WEEK_MIN, Observation

AGENT: Final = "claude-code"
SOURCE: Final = "claude-statusline"
#: ``rate_limits`` keys → (window, minutes)
WINDOWS: Final = {"five_hour": ("5h", FIVE_HOURS_MIN), "seven_day": ("7d", WEEK_MIN), "spend_limit": ("spend", None)}
#: what :attr:`StatuslineReport.rate_limits` can be
PRESENT, ABSENT, NULL, UNREADABLE = "present", "absent", "null", "unreadable"


def _num(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def _text(value: object, limit: int = 200) -> str | None:
    if not isinstance(value, str) or not value.strip():
        return None
    return "".join(ch for ch in value.strip() if ch.isprintable())[:limit] or None


def epoch_seconds(value: object) -> float | None:
    """A reset time as epoch seconds: seconds (documented), milliseconds, or an ISO-8601 string."""
    number = _num(value)
    if number is not None:
        return number / 1000.0 if number > 1e11 else number
    if isinstance(value, str) and value.strip():
        text = value.strip()
        if text.isdigit():
            return epoch_seconds(int(text))
        try:
            return datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00")).timestamp()
        except ValueError:
            return None
    return None


@dataclass(frozen=True, slots=True)
class StatuslineReport:
    """What one statusLine payload told: its windows and its session."""

    observations: tuple[Observation, ...]
    #: ``present`` (an object), ``absent`` (no key), ``null``, or ``unreadable``
    rate_limits: str
    session: str | None = None
    model: str | None = None
    model_name: str | None = None
    cost_usd: float | None = None
    version: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"session": self.session, "model": self.model, "cost_usd": self.cost_usd, "version": self.version,
                "rate_limits": self.rate_limits}


def parse(obj: object, now: float, account: str) -> StatuslineReport:
    """Read a statusLine payload received at ``now`` for the Claude config dir ``account``."""
    if not isinstance(obj, dict):
        raise ValueError(f"a statusLine payload is a JSON object, got {type(obj).__name__}")
    model = obj.get("model") if isinstance(obj.get("model"), dict) else {}
    cost = obj.get("cost") if isinstance(obj.get("cost"), dict) else {}
    observations: list[Observation] = []
    if "rate_limits" not in obj:
        state = ABSENT
    elif obj["rate_limits"] is None:
        state = NULL
    elif not isinstance(obj["rate_limits"], dict):
        state = UNREADABLE
    else:
        state = PRESENT
        for key, (name, minutes) in WINDOWS.items():
            window = obj["rate_limits"].get(key)
            if not isinstance(window, dict):
                continue
            used = _num(window.get("used_percentage"))
            if used is None:
                used = _num(window.get("used_percent"))
            if used is None or used < 0:
                continue
            observations.append(Observation(AGENT, account, name, used, epoch_seconds(window.get("resets_at")), minutes,
                                            SOURCE, now))
    cost_usd = _num(cost.get("total_cost_usd"))  # type: ignore[union-attr]
    return StatuslineReport(
        observations=tuple(observations), rate_limits=state, session=_text(obj.get("session_id"), 128),
        model=_text(model.get("id")), model_name=_text(model.get("display_name")),  # type: ignore[union-attr]
        cost_usd=None if cost_usd is None or cost_usd < 0 else cost_usd, version=_text(obj.get("version"), 40),
    )
