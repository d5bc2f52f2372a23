"""The subscription-limits part of a host feed: every source of quota figures, put together.

:func:`attach` builds a :class:`LimitsPart` and wires it into the feed:

* the Codex log reader's figures (the format's shared :class:`~tokentop.core.limits.codex.RateLimitLog`,
  reached through the sources part, so this part is listed after it) go straight into the store;
* ``POST /v1/limits/statusline`` takes Claude Code's statusLine JSON from ``tokentop statusline``
  (the local token, or a loopback client unless ``[feed] ingest_requires_token``) and answers with
  Claude's windows; ``GET /v1/limits``
  lists the current windows;
* the OAuth usage poller runs when ``[limits] claude_oauth = true``;
* the 5-hour estimate and the per-session window usage follow the ledger (a slow timer) and every
  accepted event (the feed's accept listener);
* every snapshot gets ``limits`` = :meth:`LimitsPart.current_windows` (the feed service's
  ``limits`` hook), and ``status["limits"]`` says how the sources are doing.

:meth:`LimitsPart.current_windows` is the read API for other parts too (the metering proxy's gate
can block on a window through ``runner.parts.limits``).
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import logging
from collections import deque
from typing import TYPE_CHECKING, Any, Callable, Final, Sequence

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tokentop.core.feed.parts import Attached, FeedBase
from tokentop.core.feed.server import BodyTooLarge, TokenGate, read_body
from tokentop.core.limits import statusline
from tokentop.core.limits.codex import RateLimitLog, display_path
from tokentop.core.limits.estimate import Estimator
from tokentop.core.limits.oauth import OAuthPoller, config_dir
from tokentop.core.limits.settings import LimitSettings
from tokentop.core.limits.status import LimitsStatus
from tokentop.core.limits.store import LimitStore
from tokentop.core.limits.usage import RECENT_S, Tally, WindowUsage
from tokentop.core.limits.windows import (
    Observation, Window, average_burn, observed_burn, window_at,
)

if TYPE_CHECKING:
    from tokentop.core.events import Event
    from tokentop.core.feed.service import FeedService
    from tokentop.core.ledger import Ledger
    from tokentop.core.pricing import Cost

log = logging.getLogger("tokentop.limits")

STATUSLINE_PATH: Final = "/v1/limits/statusline"
WINDOWS_PATH: Final = "/v1/limits"
#: ``tokentop statusline`` names the Claude config dir it runs for (the account) in this header
CONFIG_DIR_HEADER: Final = "x-tokentop-claude-config-dir"
#: the part's housekeeping runs this often ...
TICK_S: Final = 1.0
#: ... writes changed windows to the ledger this often ...
FLUSH_EVERY_S: Final = 5.0
#: ... forgets windows too old to show this often ...
PRUNE_EVERY_S: Final = 600.0
#: ... and publishes its status this often
STATUS_EVERY_S: Final = 2.0
#: statusLine sessions listed in the status
MAX_SESSIONS: Final = 10
_ORDER: Final = {"5h": 0, "7d": 1}


def _window_order(w: Window) -> tuple[Any, ...]:
    return (w.label.casefold(), w.account, _ORDER.get(w.window, 2 if w.window.startswith("7d") else 3), w.window)


def _loopback(request: Request) -> bool:
    client = request.client
    if client is None or not client.host:
        return True  # a Unix socket: created 0600, only this user can connect
    try:
        return ipaddress.ip_address(client.host).is_loopback
    except ValueError:
        return False


class LimitsPart:
    """The feed's subscription windows: sources in, :meth:`current_windows` out."""

    def __init__(self, settings: LimitSettings, service: FeedService, ledger: Ledger | None, *,
                 gate: TokenGate | None = None, clock: Callable[[], float] | None = None,
                 require_token: bool = False) -> None:
        self.settings = settings
        #: ``[feed] ingest_requires_token``: loopback clients need the token too
        self.require_token = require_token
        self.service = service
        self.clock = clock or service.clock
        self.gate = gate or TokenGate(None)
        self.store = LimitStore(ledger)
        self.usage = WindowUsage(ledger, self.clock)
        self.estimator = Estimator(ledger, settings.estimate_agents)
        self.oauth: OAuthPoller | None = None
        if settings.claude_oauth:
            self.oauth = OAuthPoller(self.store, clock=self.clock, directory=config_dir(settings.claude_config_dir),
                                     base_url=settings.claude_oauth_url, interval_s=settings.claude_oauth_interval_s,
                                     ledger=ledger)
        self.codex: RateLimitLog | None = None
        #: the background job is running (else reads fill the estimate and usage synchronously)
        self.running = False
        self.statusline_received = 0
        self.statusline_refused = 0
        self.last_report: statusline.StatuslineReport | None = None
        self.last_report_at: float | None = None
        self.sessions: deque[dict[str, Any]] = deque(maxlen=MAX_SESSIONS)
        self._flushed_at = 0.0
        self._pruned_at = 0.0
        self._status_at = float("-inf")

    def bind_codex(self, rate_log: RateLimitLog) -> None:
        """Take the Codex reader's figures (those read so far, and every one from now on)."""
        self.codex = rate_log
        rate_log.attach(self.store.observe)

    # -- the read API --------------------------------------------------------------------------------
    def current_windows(self, now: float | None = None) -> tuple[Window, ...]:
        """Every window with data at ``now``: the official ones (latest figure per agent, account and
        window; 0 % "reset" once past their reset; none once too old), and for an agent with no
        official window its estimate. Sorted by agent, account, then 5h, 7d, the rest."""
        now = self.clock() if now is None else now
        if not self.running:
            self._fill_now(now)
        official = [o for o in self.store.latest() if not o.stale(now)]
        out = [self._window(o, now) for o in official]
        covered = {o.agent for o in official}
        for agent in self.estimator.agents:
            if agent in covered:
                continue
            obs = self.estimator.observation(agent, now)
            if obs is not None:
                start = obs.starts_at
                tally = self.usage.get(agent, start) if start is not None else None
                out.append(window_at(obs, now, burn=self.estimator.burn(agent, now),
                                     tokens=tally.total if tally else None, eaten_by=tally.shares() if tally else ()))
        return tuple(sorted(out, key=_window_order))

    def windows_of(self, agent: str, now: float | None = None) -> tuple[Window, ...]:
        return tuple(w for w in self.current_windows(now) if w.agent == agent)

    def _window(self, obs: Observation, now: float) -> Window:
        """The window of an official figure. Its burn: for windows over a day (the weekly ones), the
        average since the window started (CodexBar's rate: a week's pace is not an hour's);
        otherwise the window's own recent figures, else the ledger's token rate inside it."""
        tally = self._tally(obs)
        if (obs.window_minutes or 0) > 1440:
            burn = average_burn(obs.used_percent, now, obs.resets_at, obs.window_minutes)
        else:
            burn = observed_burn(self.store.points(obs.key), now)
            if burn is None and tally is not None:
                burn = self._ledger_burn(tally, obs, now)
        return window_at(obs, now, burn=burn, tokens=tally.total if tally else None,
                         eaten_by=tally.shares() if tally else ())

    def _tally(self, obs: Observation) -> Tally | None:
        start = obs.starts_at
        if obs.window != "5h" or start is None:
            return None
        return self.usage.get(obs.agent, start)

    @staticmethod
    def _ledger_burn(tally: Tally, obs: Observation, now: float) -> float | None:
        """The window's used % carried at the share of its tokens used in the last 15 minutes."""
        if tally.total <= 0 or obs.resets_at is None or not obs.window_minutes:
            return None
        span = min(RECENT_S, now - tally.start)
        if span <= 0:
            return None
        return obs.used_percent * tally.recent_tokens(now) / tally.total / span

    def _wanted(self, now: float) -> list[tuple[str, float]]:
        """(agent, start) of the 5-hour windows being shown: their per-session usage is kept."""
        wanted: list[tuple[str, float]] = []
        latest = [o for o in self.store.latest() if not o.stale(now)]
        for o in latest:
            start = o.starts_at
            if o.window == "5h" and start is not None and now < o.resets_at:  # type: ignore[operator]
                wanted.append((o.agent, start))
        covered = {o.agent for o in latest}
        for agent in self.estimator.agents:
            obs = None if agent in covered else self.estimator.observation(agent, now)
            if obs is not None and obs.starts_at is not None:
                wanted.append((agent, obs.starts_at))
        return wanted

    def _fill_now(self, now: float) -> None:
        """Not running (a feed built to answer once): read the estimate and usage synchronously."""
        self.estimator.rescan_now(now)
        self.usage.want(self._wanted(now))
        self.usage.resync_now(now)

    # -- intake --------------------------------------------------------------------------------------
    def on_accepted(self, items: Sequence[tuple[Event, Cost]]) -> None:
        """The feed's accept listener: accepted events feed the window usage and the estimate."""
        self.usage.on_accepted(items)
        self.estimator.on_accepted(items, self.clock())

    def take_statusline(self, obj: object, account: str, now: float | None = None) -> statusline.StatuslineReport:
        """One statusLine payload (raises ``ValueError`` when it is not a JSON object)."""
        now = self.clock() if now is None else now
        report = statusline.parse(obj, now, account)
        for o in report.observations:
            self.store.observe(o)
        self.statusline_received += 1
        self.last_report, self.last_report_at = report, now
        if report.session is not None:
            for i, s in enumerate(self.sessions):
                if s["session"] == report.session:
                    del self.sessions[i]
                    break
            self.sessions.append(dict(report.to_json(), at=now, account=account))
        return report

    async def post_statusline(self, request: Request) -> Response:
        if not (self.gate.authorised(request.headers, request.query_params)
                or (_loopback(request) and not self.require_token)):
            self.statusline_refused += 1
            return JSONResponse({"error": "missing or wrong local token (Authorization: Bearer <token>)"}, 401)
        try:
            body = await read_body(request, self.settings.statusline_max_bytes)
        except BodyTooLarge:
            self.statusline_refused += 1
            return JSONResponse({"error": f"statusLine payload exceeds {self.settings.statusline_max_bytes} bytes"}, 413)
        raw_dir = request.headers.get(CONFIG_DIR_HEADER, "")
        account = display_path("".join(c for c in raw_dir if c.isprintable())[:512]) if raw_dir else "~/.claude"
        try:
            self.take_statusline(json.loads(body), account)
        except ValueError as exc:
            self.statusline_refused += 1
            return JSONResponse({"error": f"not a statusLine payload: {exc}"}, 400)
        windows = [{"window": w.window, "used_percent": round(w.used_percent, 3), "resets_at": w.resets_at,
                    "source": w.source, "state": w.state}
                   for w in self.windows_of(statusline.AGENT) if w.account in (account, "local")]
        return JSONResponse({"ok": True, "windows": windows})

    async def get_windows(self, request: Request) -> Response:
        return JSONResponse({"limits": [w.to_json() for w in self.current_windows()]})

    # -- housekeeping --------------------------------------------------------------------------------
    async def maintain(self, now: float | None = None) -> None:
        """One round: usage and estimate from the ledger when due, writes, pruning, status."""
        now = self.clock() if now is None else now
        self.usage.want(self._wanted(now))
        await self.usage.resync(now)
        await self.estimator.rescan(now)
        self.usage.want(self._wanted(now))  # an estimate that just appeared wants its usage too
        await self.usage.resync(now)
        if now - self._pruned_at >= PRUNE_EVERY_S:
            self._pruned_at = now
            self.store.prune(now)
        if self.store.pending() and now - self._flushed_at >= FLUSH_EVERY_S:
            self._flushed_at = now
            await self.store.flush_async()
        if now - self._status_at >= STATUS_EVERY_S:
            self._status_at = now
            self.service.set_status(LimitsStatus.KEY, self.status(now).to_json())

    async def run(self) -> None:
        self.running = True
        try:
            while True:
                try:
                    await self.maintain()
                except asyncio.CancelledError:
                    raise
                except Exception:  # a limits bug never takes the feed down
                    log.exception("subscription limits housekeeping failed")
                await asyncio.sleep(TICK_S)
        finally:
            self.running = False

    def stop(self) -> None:
        """Write what changed (run once the feed's thread ended; the ledger is still open)."""
        try:
            self.store.flush()
        except Exception:
            log.exception("could not save the subscription windows")

    # -- status --------------------------------------------------------------------------------------
    def status(self, now: float) -> LimitsStatus:
        windows = self.current_windows(now)
        official_agents = {w.agent for w in windows if w.official}
        estimate: dict[str, dict[str, Any]] = {}
        for agent, state in self.estimator.agents.items():
            if agent in official_agents:
                phase = "official"
            elif state.limit is None:
                phase = "learning"
            else:
                phase = "active" if state.observation(now) is not None else "idle"
            estimate[agent] = {"state": phase, "limit_tokens": state.limit,
                               "blocks": sum(1 for b in state.blocks if not b.active(now))}
        notes: list[str] = []
        if self.oauth is not None and self.oauth.phase in ("stopped", "blocked", "error") and self.oauth.message:
            notes.append(f"Claude OAuth usage (undocumented endpoint): {self.oauth.message}")
        report = self.last_report
        if report is not None and report.rate_limits != statusline.PRESENT and statusline.AGENT not in official_agents:
            version = f" {report.version}" if report.version else ""
            notes.append(f"Claude Code{version} sends no quota figures in its statusline (rate_limits "
                         f"{report.rate_limits}): no official Claude window")
        return LimitsStatus(
            oauth=self.oauth.status() if self.oauth is not None else {"enabled": False},
            statusline={"received": self.statusline_received, "refused": self.statusline_refused,
                        "last_at": self.last_report_at, "version": report.version if report else None,
                        "rate_limits": report.rate_limits if report else None, "sessions": list(self.sessions)},
            codex_rate_limits=self.codex.seen if self.codex is not None else 0,
            estimate=estimate, notes=tuple(notes),
        )


def attach(feed: FeedBase) -> Attached:
    """The limits part of a host feed (``[limits] enabled``, the default). Listed after the sources
    part, whose Codex reader it takes figures from."""
    settings = LimitSettings.from_config(feed.config)
    if not settings.enabled:
        return Attached()
    part = LimitsPart(settings, feed.service, feed.ledger, gate=feed.gate,
                      require_token=feed.settings.ingest_requires_token)
    sources = feed.parts.sources
    if sources is not None:
        rate_log = getattr(sources.sources.shared_state("codex"), "rate_limits", None)  # CodexShared's
        if isinstance(rate_log, RateLimitLog):
            part.bind_codex(rate_log)
    feed.service.limits = part.current_windows
    feed.service.listeners.append(part.on_accepted)
    background = [part.run]
    if part.oauth is not None:
        background.append(part.oauth.run)
    routes = (Route(STATUSLINE_PATH, part.post_statusline, methods=["POST"]),
              Route(WINDOWS_PATH, part.get_windows, methods=["GET"]))
    return Attached(routes=routes, background=tuple(background), on_stop=(part.stop,), limits=part)
