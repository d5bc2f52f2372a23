"""Codex's own quota figures: ``rate_limits`` on rollout ``token_count`` lines (docs/limits.md).

The Codex log reader (:mod:`tokentop.core.sources.codex`) hands each line's ``rate_limits`` object
here as it reads the line — no second pass over any file. Real shapes (Codex 0.104 → 0.13x):

* ``{"limit_id": "codex", "limit_name": null, "primary": {"used_percent": 7.0, "window_minutes": 300,
  "resets_at": 1771890497}, "secondary": {... 10080 ...}, "credits": {...}, "plan_type": null}``;
  ``plan_type`` is null on every line of some paid accounts, ``go`` / ``plus`` / ``prolite`` on others.
* On plan ``go`` the only window is in ``primary`` and it is the weekly one: windows are named by
  ``window_minutes``, position only when that is missing.
* Other ``limit_id``s exist (``premium``, with ``primary: null``): they are windows of their own
  (``7d-premium``), never folded into the main ones.
* ``resets_at`` of one window wobbles by ±1 s between lines; older builds wrote
  ``resets_in_seconds`` (relative to the line's time) instead.
* Half of all ``token_count`` lines repeat the previous usage (no new tokens) but many of them carry
  refreshed ``rate_limits``: the reader passes those on too.

The account is the Codex home the rollout lives under (one home, one login), so two homes
(``CODEX_HOME=a,b``) are two accounts.
"""

from __future__ import annotations

import os
import re
import threading
from pathlib import Path
from typing import Any, Callable, Final, Iterable

from tokentop.core.limits.windows import Observation, window_name

AGENT: Final = "codex"
SOURCE: Final = "codex-log"
#: the main lanes' ``limit_id`` (and a missing one): its windows are plain ``5h`` / ``7d``
MAIN_LIMIT_IDS: Final = frozenset({"", "codex"})
_SLUG = re.compile(r"[^a-z0-9]+")

#: receives every observation as the reader meets it
ObservationSink = Callable[[Observation], None]


def _num(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if value == value and abs(value) != float("inf") else None


def slug(text: str) -> str:
    return _SLUG.sub("-", text.strip().lower()).strip("-")[:40]


def display_path(path: Path | str, home: str | None = None) -> str:
    """``/home/me/.codex`` → ``~/.codex`` (what an account is called on screen and in JSON)."""
    text = str(path)
    home = home if home is not None else os.path.expanduser("~")
    if home and home != "/" and (text == home or text.startswith(home.rstrip(os.sep) + os.sep)):
        return "~" + text[len(home.rstrip(os.sep)):]
    return text


def account_of(rollout: Path) -> str:
    """The Codex home a rollout belongs to: the parent of its ``sessions`` / ``archived_sessions``."""
    for parent in rollout.parents:
        if parent.name in ("sessions", "archived_sessions"):
            return display_path(parent.parent)
    return display_path(rollout.parent)


def observations(rate_limits: object, ts: float, account: str) -> list[Observation]:
    """The windows in one ``rate_limits`` object seen at ``ts``. Windows without a
    ``used_percent`` are skipped; a null ``rate_limits``, ``primary`` or ``secondary`` adds nothing."""
    if not isinstance(rate_limits, dict):
        return []
    limit_id = rate_limits.get("limit_id")
    limit_id = limit_id.strip() if isinstance(limit_id, str) else ""
    suffix = "" if limit_id in MAIN_LIMIT_IDS else "-" + (slug(limit_id) or "other")
    plan = rate_limits.get("plan_type")
    plan = plan.strip()[:64] if isinstance(plan, str) and plan.strip() else None
    out: list[Observation] = []
    for position in ("primary", "secondary"):
        window = rate_limits.get(position)
        if not isinstance(window, dict):
            continue
        used = _num(window.get("used_percent"))
        if used is None or used < 0:
            continue
        minutes_raw = _num(window.get("window_minutes"))
        name, minutes = window_name(int(minutes_raw) if minutes_raw and minutes_raw > 0 else None, position)
        resets_at = _num(window.get("resets_at"))
        if resets_at is None:
            relative = _num(window.get("resets_in_seconds"))
            resets_at = ts + relative if relative is not None and relative >= 0 else None
        out.append(Observation(AGENT, account, name + suffix, used, resets_at, minutes, SOURCE, ts, plan))
    return out


class RateLimitLog:
    """What the Codex readers of one tailer share about quota: the latest figure per window, and
    where to hand each figure on (the feed's limits store, once the feed's limits part is attached).

    A :class:`~tokentop.core.sources.protocol.SharedState`: a backfill worker process exports its
    copy (the latest per window) and the parent merges it, so windows read by a worker reach the
    store too."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.latest: dict[tuple[str, str, str], Observation] = {}
        #: the limits store's intake (set by the feed's limits part); ``None``: only kept here
        self.sink: ObservationSink | None = None
        #: rate_limits objects read (any shape)
        self.seen = 0

    def note(self, found: Iterable[Observation]) -> None:
        sink = self.sink
        for obs in found:
            with self._lock:
                current = self.latest.get(obs.key)
                if current is None or obs.observed_at >= current.observed_at:
                    self.latest[obs.key] = obs
            if sink is not None:
                sink(obs)

    def read(self, rate_limits: Any, ts: float, account: str) -> None:
        """One line's ``rate_limits`` (any value; only a well-formed object adds anything)."""
        self.seen += 1
        self.note(observations(rate_limits, ts, account))

    def attach(self, sink: ObservationSink) -> None:
        """Hand every figure from now on to ``sink``, and the latest ones read so far."""
        self.sink = sink
        with self._lock:
            known = list(self.latest.values())
        for obs in known:
            sink(obs)

    # -- SharedState --------------------------------------------------------------------------------
    def export(self) -> list[tuple[Any, ...]]:
        with self._lock:
            return [_tuple(o) for o in self.latest.values()]

    def merge(self, exported: Any) -> None:
        self.note(Observation(*row) for row in exported or ())


def _tuple(o: Observation) -> tuple[Any, ...]:
    return (o.agent, o.account, o.window, o.used_percent, o.resets_at, o.window_minutes, o.source, o.observed_at,
            o.plan, o.limit_tokens)
