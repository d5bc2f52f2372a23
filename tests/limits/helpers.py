"""Shared helpers of the limits tests (and of other areas' tests that need a window in a feed)."""

from __future__ import annotations

import json
import time
from pathlib import Path

FIXTURES = Path(__file__).parent / "fixtures"


def statusline_payload(used5: float = 62, used7: float = 41, reset5: float | None = None) -> dict:
    """Claude Code's statusline payload with both rate-limit windows filled (5 h and 7 d)."""
    now = time.time()
    payload = json.loads((FIXTURES / "statusline_2.1.x_rate_limits_filled_COMPOSED.json").read_text())
    payload["rate_limits"]["five_hour"] = {"used_percentage": used5, "resets_at": int(reset5 or now + 72 * 60)}
    payload["rate_limits"]["seven_day"] = {"used_percentage": used7, "resets_at": int(now + 3 * 86400)}
    return payload
