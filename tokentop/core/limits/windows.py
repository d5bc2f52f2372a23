"""A subscription window as tokentop publishes it, and the pure math on it.

An :class:`Observation` is what one source saw at one instant ("Claude's 5-hour window was at 62 %
at 14:02, resetting at 16:00"); a :class:`Window` is what a snapshot carries at ``now``: the latest
observation of its (agent, account, window), with its pace and exhaustion time, or 0 % "reset,
awaiting data" once ``now`` passed the reset. Every function takes the clock as an argument, so
tests travel in time.

Rules (docs/limits.md):

* A window is named by its length (``window_minutes``: 300 → ``5h``, 10080 → ``7d``), never by its
  position: on Codex's ``go`` plan the only window is in ``primary`` and it is the weekly one.
  Position is the fallback when the length is missing.
* Pace is CodexBar's: expected % = elapsed / duration × 100, pace = used − expected (positive:
  ahead, burning faster than the window lasts). Only while ``0 < resets_at − now ≤ duration``.
* Exhaustion: ``now + (100 − used) / burn``, or none when the window lasts until its reset at that
  burn. The burn is the caller's (the window's own recent observations, the ledger's token rate
  inside the window, or the average since the window started).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Final, Iterable, Sequence

#: where a window's figure came from, most trusted first
SOURCES: Final = ("codex-log", "claude-statusline", "claude-oauth", "estimated")
#: the sources that report the provider's own figure (everything but the local estimate)
OFFICIAL: Final = frozenset(SOURCES[:3])
#: how each source is named on screen; the OAuth endpoint says plainly that it is undocumented
SOURCE_LABELS: Final = {
    "codex-log": "Codex log",
    "claude-statusline": "Claude Code",
    "claude-oauth": "OAuth, undocumented",
    "estimated": "estimated",
}
#: the agents' names on screen
AGENT_LABELS: Final = {"claude-code": "Claude", "codex": "Codex"}
FIVE_HOURS_MIN: Final = 300
WEEK_MIN: Final = 10080
#: ``state`` of a window: its figure is current, or the window reset after the last observation
STATES: Final = ("current", "reset")

#: ``resets_at`` of one window moves by ±1 s between events (Codex rollouts): a move within this
#: many seconds is the same window, a larger one a new window
SAME_WINDOW_S: Final = 120.0
#: the burn from a window's own observations looks back this far ...
BURN_LOOKBACK_S: Final = 1800.0
#: ... and needs points at least this far apart (percentages come in whole steps: one step over a
#: couple of minutes would read as a burn many times the real one)
BURN_MIN_SPAN_S: Final = 600.0
#: no observation for this long: nothing burns the window locally now
IDLE_S: Final = 900.0


def agent_label(agent: str) -> str:
    return AGENT_LABELS.get(agent, agent)


def window_name(minutes: int | None, position: str | None = None) -> tuple[str, int | None]:
    """The window's name and length from its length in minutes; its position ("primary",
    "secondary") only when the length is missing."""
    if minutes is not None and minutes > 0:
        if minutes == FIVE_HOURS_MIN:
            return "5h", minutes
        if minutes == WEEK_MIN:
            return "7d", minutes
        if minutes % 1440 == 0:
            return f"{minutes // 1440}d", minutes
        if minutes % 60 == 0:
            return f"{minutes // 60}h", minutes
        return f"{minutes}m", minutes
    if position == "primary":
        return "5h", FIVE_HOURS_MIN
    if position == "secondary":
        return "7d", WEEK_MIN
    return "window", None


def minutes_of(name: str) -> int | None:
    """A window name's length: ``5h`` → 300, ``7d-opus`` → 10080 (the scoped weeks are weeks)."""
    base = name.split("-", 1)[0]
    try:
        if base.endswith("d"):
            return int(base[:-1]) * 1440
        if base.endswith("h"):
            return int(base[:-1]) * 60
        if base.endswith("m"):
            return int(base[:-1])
    except ValueError:
        return None
    return None


@dataclass(frozen=True, slots=True)
class Observation:
    """One source's figure for one window at one instant."""

    agent: str
    #: whose subscription: a Codex home, a Claude config dir (``~`` for the home directory)
    account: str
    #: ``5h``, ``7d``, ``7d-opus``, ... (:func:`window_name`)
    window: str
    used_percent: float
    #: when the window resets (epoch seconds); ``None`` when the source did not say
    resets_at: float | None
    window_minutes: int | None
    source: str
    #: when the source saw this figure (the log line's time, the request's arrival)
    observed_at: float
    plan: str | None = None
    #: estimated windows: the token limit learned from the user's own history
    limit_tokens: int | None = None

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.agent, self.account, self.window)

    @property
    def official(self) -> bool:
        return self.source in OFFICIAL

    @property
    def starts_at(self) -> float | None:
        """When the window started (its reset minus its length), when both are known."""
        if self.resets_at is None or not self.window_minutes:
            return None
        return self.resets_at - self.window_minutes * 60.0

    def same_window(self, other: Observation) -> bool:
        """Both figures are of one window (not one before and one after a reset)."""
        if self.resets_at is None or other.resets_at is None:
            return self.resets_at is other.resets_at
        return abs(self.resets_at - other.resets_at) <= SAME_WINDOW_S

    def stale(self, now: float) -> bool:
        """Too old to show at all: its window reset more than a window's length ago (at least 5 h),
        or, with no reset time, it was seen more than a window's length ago (at least a day)."""
        length = (self.window_minutes or minutes_of(self.window) or WEEK_MIN) * 60.0
        if self.resets_at is not None:
            return now - self.resets_at > max(length, FIVE_HOURS_MIN * 60.0)
        return now - self.observed_at > max(length, 86400.0)


@dataclass(frozen=True, slots=True)
class Share:
    """How much of a window's tokens (on this host, since the window started) one session used."""

    session: str
    tokens: int
    #: of the window's tokens on this host, 0..1
    share: float

    def to_json(self) -> dict[str, Any]:
        return {"session": self.session, "tokens": self.tokens, "share": round(self.share, 6)}

    @classmethod
    def from_json(cls, obj: object) -> Share | None:
        if not isinstance(obj, dict) or not isinstance(obj.get("session"), str):
            return None
        tokens, share = _num(obj.get("tokens")), _num(obj.get("share"))
        if tokens is None or share is None:
            return None
        return cls(obj["session"], int(tokens), share)


@dataclass(frozen=True, slots=True)
class Window:
    """One window as a snapshot carries it (``snapshot.limits``, docs/api.md)."""

    agent: str
    account: str
    window: str
    #: 0..100 (may exceed 100 when the provider lets it); 0 in the ``reset`` state
    used_percent: float
    resets_at: float | None
    window_minutes: int | None
    source: str
    observed_at: float
    #: used − expected (positive: ahead of an even pace); ``None`` when it cannot be said
    pace_percent: float | None = None
    #: when the window runs out at the current burn; ``None`` when it lasts until its reset
    exhausts_at: float | None = None
    #: ``current``, or ``reset``: the window reset after the last observation (0 %, awaiting data)
    state: str = "current"
    plan: str | None = None
    limit_tokens: int | None = None
    #: tokens on this host since the window started (5-hour windows), and who used them
    tokens: int | None = None
    eaten_by: tuple[Share, ...] = ()

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.agent, self.account, self.window)

    @property
    def official(self) -> bool:
        return self.source in OFFICIAL

    @property
    def starts_at(self) -> float | None:
        if self.resets_at is None or not self.window_minutes:
            return None
        return self.resets_at - self.window_minutes * 60.0

    @property
    def label(self) -> str:
        return agent_label(self.agent)

    @property
    def source_label(self) -> str:
        return SOURCE_LABELS.get(self.source, self.source)

    def points(self) -> dict[str, float]:
        """Session → percentage points of this window it used: its share of the window's tokens on
        this host times the window's used %. The points of a window's sessions add up to its %."""
        used = self.used_percent
        return {s.session: s.share * used for s in self.eaten_by}

    def to_json(self) -> dict[str, Any]:
        return {
            "agent": self.agent, "account": self.account, "window": self.window,
            "used_percent": round(self.used_percent, 3), "resets_at": self.resets_at,
            "window_minutes": self.window_minutes, "source": self.source, "observed_at": self.observed_at,
            "pace_percent": None if self.pace_percent is None else round(self.pace_percent, 3),
            "exhausts_at": None if self.exhausts_at is None else round(self.exhausts_at, 3),
            "state": self.state, "plan": self.plan, "limit_tokens": self.limit_tokens, "tokens": self.tokens,
            "eaten_by": [s.to_json() for s in self.eaten_by],
        }

    @classmethod
    def from_json(cls, obj: object) -> Window | None:
        """Tolerant of what a remote (maybe newer or older) feed sends: ``None`` when the entry
        lacks what a window needs; unknown keys are ignored."""
        if not isinstance(obj, dict):
            return None
        agent, account, window, source = (obj.get(k) for k in ("agent", "account", "window", "source"))
        used, observed = _num(obj.get("used_percent")), _num(obj.get("observed_at"))
        if not all(isinstance(v, str) and v for v in (agent, window, source)) or used is None or observed is None:
            return None
        minutes = _num(obj.get("window_minutes"))
        limit = _num(obj.get("limit_tokens"))
        tokens = _num(obj.get("tokens"))
        state = obj.get("state")
        raw_shares = obj.get("eaten_by")
        shares = [Share.from_json(s) for s in raw_shares] if isinstance(raw_shares, list) else []
        plan = obj.get("plan")
        return cls(
            agent=agent, account=account if isinstance(account, str) else "", window=window,  # type: ignore[arg-type]
            used_percent=used, resets_at=_num(obj.get("resets_at")),
            window_minutes=None if minutes is None else int(minutes), source=source,  # type: ignore[arg-type]
            observed_at=observed, pace_percent=_num(obj.get("pace_percent")), exhausts_at=_num(obj.get("exhausts_at")),
            state=state if state in STATES else "current", plan=plan if isinstance(plan, str) else None,
            limit_tokens=None if limit is None else int(limit), tokens=None if tokens is None else int(tokens),
            eaten_by=tuple(s for s in shares if s is not None),
        )


def _num(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def windows_from_json(items: object) -> tuple[Window, ...]:
    """``snapshot.limits`` from JSON; entries that cannot be read are skipped (an absent list: none)."""
    if not isinstance(items, list):
        return ()
    out = [Window.from_json(item) for item in items]
    return tuple(w for w in out if w is not None)


# -- the math (pure; the clock is an argument) --------------------------------------------------------

def expected_percent(now: float, resets_at: float | None, minutes: int | None) -> float | None:
    """How much of the window an even pace would have used by ``now`` (0..100); ``None`` unless
    ``0 < resets_at − now ≤ duration``."""
    if resets_at is None or not minutes:
        return None
    duration = minutes * 60.0
    left = resets_at - now
    if not 0 < left <= duration:
        return None
    return (duration - left) / duration * 100.0


def pace(used_percent: float, now: float, resets_at: float | None, minutes: int | None) -> float | None:
    """used − expected: ``+8`` means 8 points ahead of an even pace (the window empties early)."""
    expected = expected_percent(now, resets_at, minutes)
    return None if expected is None else used_percent - expected


def observed_burn(points: Sequence[tuple[float, float]], now: float) -> float | None:
    """Percent per second from one window's own observations ``(observed_at, used_percent)``: the
    rise between the oldest and newest point of the last :data:`BURN_LOOKBACK_S`. ``0.0`` when the
    newest point is older than :data:`IDLE_S` (nothing burns it here now); ``None`` when the points
    are too few or too close together to say."""
    recent = [(t, u) for t, u in points if now - BURN_LOOKBACK_S <= t <= now]
    if points and not recent:
        newest = max(t for t, _ in points)
        if now - newest > IDLE_S:
            return 0.0
    if len(recent) < 2:
        return None
    first = min(recent)
    last = max(recent)
    if now - last[0] > IDLE_S:
        return 0.0
    span = last[0] - first[0]
    if span < BURN_MIN_SPAN_S:
        return None
    return max(0.0, (last[1] - first[1]) / span)


def average_burn(used_percent: float, now: float, resets_at: float | None, minutes: int | None) -> float | None:
    """Percent per second since the window started (CodexBar's rate): ``used / elapsed``."""
    if resets_at is None or not minutes:
        return None
    elapsed = minutes * 60.0 - (resets_at - now)
    if elapsed <= 0 or resets_at <= now:
        return None
    return used_percent / elapsed


def exhausts_at(used_percent: float, now: float, resets_at: float | None, burn: float | None) -> float | None:
    """When the window runs out at ``burn`` percent per second: ``now`` when it already has,
    ``None`` when it lasts until its reset (or nothing burns it)."""
    if used_percent >= 100.0:
        return now
    if burn is None or burn <= 0:
        return None
    eta = now + (100.0 - used_percent) / burn
    if resets_at is not None and eta >= resets_at:
        return None
    return eta


def window_at(obs: Observation, now: float, *, burn: float | None = None, tokens: int | None = None,
              eaten_by: Iterable[Share] = ()) -> Window:
    """The window ``obs`` describes, as it stands at ``now``. Past its reset it is 0 % and
    ``reset`` (awaiting data); otherwise its pace, and its exhaustion at ``burn``."""
    if obs.resets_at is not None and now >= obs.resets_at:
        return Window(obs.agent, obs.account, obs.window, 0.0, obs.resets_at, obs.window_minutes, obs.source,
                      obs.observed_at, state="reset", plan=obs.plan, limit_tokens=obs.limit_tokens)
    return Window(
        obs.agent, obs.account, obs.window, obs.used_percent, obs.resets_at, obs.window_minutes, obs.source,
        obs.observed_at, pace_percent=pace(obs.used_percent, now, obs.resets_at, obs.window_minutes),
        exhausts_at=exhausts_at(obs.used_percent, now, obs.resets_at, burn), state="current", plan=obs.plan,
        limit_tokens=obs.limit_tokens, tokens=tokens, eaten_by=tuple(eaten_by),
    )


def by_agent(windows: Iterable[Window], name: str) -> dict[str, Window]:
    """agent → its window called ``name`` (the most recently observed one when an agent has
    several accounts)."""
    out: dict[str, Window] = {}
    for w in windows:
        if w.window == name and (w.agent not in out or w.observed_at > out[w.agent].observed_at):
            out[w.agent] = w
    return out


def session_points(windows: Iterable[Window], name: str = "5h") -> dict[str, float]:
    """Session → percentage points of its agent's ``name`` window it used (the Sessions view's
    ``5H%`` column)."""
    out: dict[str, float] = {}
    for w in by_agent(windows, name).values():
        if w.state == "current":
            out.update(w.points())
    return out


def agent_points(windows: Iterable[Window], name: str = "5h") -> dict[str, float]:
    """Agent → its ``name`` window's used % (the Agents view's ``5H%`` column)."""
    return {agent: w.used_percent for agent, w in by_agent(windows, name).items()}
