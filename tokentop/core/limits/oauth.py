"""Anthropic's OAuth usage endpoint — undocumented, opt-in (``[limits] claude_oauth = true``).

``GET https://api.anthropic.com/api/oauth/usage`` with Claude Code's own OAuth token answers the
subscription's windows. It is **not a documented API**: its shape has changed (flat buckets →
``limits[]``), it rate-limits per token (a persistent 429 with ``retry-after: 0`` has been
reported), and every Claude Code session on the machine shares that budget. So tokentop:

* calls it only when the user turned it on, and only while Claude Code's statusline gives no
  fresh figure for that account;
* calls it at most once per :data:`MIN_INTERVAL_S` (5 minutes) per account, across restarts (the
  last call and any back-off are kept in the ledger, table ``limit_polls``);
* on 429 waits ``Retry-After`` — and at least 5 minutes, doubling while it repeats, up to an
  hour, even when ``Retry-After`` says 0; on errors backs off the same way;
* on 401/403 stops and says to run ``claude`` (which signs in again); it tries again only once
  the credentials file changed;
* reads ``<Claude config dir>/.credentials.json`` read-only; **never refreshes the token and never
  writes the file** (Claude Code rotates refresh tokens: a third-party refresh can sign it out);
  an expired token is reported, not used;
* never logs, stores or shows the token (messages are scrubbed of it).

Answers are read with every field optional: flat buckets (``five_hour``, ``seven_day``,
``seven_day_opus`` … ``{utilization, resets_at: ISO-8601|null}``) and the newer ``limits[]``
(``kind`` ``session`` / ``weekly_all`` / ``weekly_scoped`` with ``percent``, ``resets_at`` and a
``scope.model``). Codename buckets (``iguana_necktie``, ``seven_day_omelette`` with no reset …)
that are empty are skipped.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import os
import sqlite3
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Final, Mapping

from tokentop import __version__
from tokentop.core.limits.codex import display_path, slug
from tokentop.core.limits.statusline import epoch_seconds
from tokentop.core.limits.windows import FIVE_HOURS_MIN, WEEK_MIN, Observation

if TYPE_CHECKING:
    from tokentop.core.ledger import Ledger
    from tokentop.core.limits.store import LimitStore

log = logging.getLogger("tokentop.limits")

AGENT: Final = "claude-code"
SOURCE: Final = "claude-oauth"
DEFAULT_BASE_URL: Final = "https://api.anthropic.com"
USAGE_PATH: Final = "/api/oauth/usage"
BETA: Final = "oauth-2025-04-20"
#: never more often than this per account, whatever the config says
MIN_INTERVAL_S: Final = 300.0
#: the longest back-off
MAX_BACKOFF_S: Final = 3600.0
TIMEOUT_S: Final = 30.0
#: a statusline figure younger than this makes a call unnecessary
STATUSLINE_FRESH_S: Final = 600.0
#: how often the poller wakes up to see whether a call is due
TICK_S: Final = 15.0
#: flat bucket names → (window, minutes); other ``seven_day_<x>`` buckets become ``7d-<x>``
FLAT: Final = {"five_hour": ("5h", FIVE_HOURS_MIN), "seven_day": ("7d", WEEK_MIN)}
#: ``limits[].kind`` → window (``weekly_scoped`` adds the model: ``7d-<model>``)
KINDS: Final = {"session": ("5h", FIVE_HOURS_MIN), "weekly_all": ("7d", WEEK_MIN), "weekly_scoped": ("7d", WEEK_MIN)}

POLLS_DDL: Final = """
CREATE TABLE IF NOT EXISTS limit_polls (
    account TEXT PRIMARY KEY,
    last_call_at REAL,
    blocked_until REAL,
    failures INTEGER NOT NULL DEFAULT 0,
    stopped TEXT,
    stamp TEXT
) WITHOUT ROWID;
"""


class CredentialsError(Exception):
    """The credentials file cannot be used; the message never holds the token."""


@dataclass(frozen=True, slots=True)
class Credentials:
    token: str = ""
    #: epoch seconds (``expiresAt`` is milliseconds in the file); ``None`` when not given
    expires_at: float | None = None
    plan: str | None = None

    def __repr__(self) -> str:  # the token never reaches a log through repr()
        return f"Credentials(token=<{len(self.token)} chars>, expires_at={self.expires_at!r}, plan={self.plan!r})"


def config_dir(configured: str = "", env: Mapping[str, str] | None = None) -> Path:
    """Claude Code's config dir: ``[limits] claude_config_dir``, else ``$CLAUDE_CONFIG_DIR``, else ``~/.claude``."""
    env = os.environ if env is None else env
    raw = configured or env.get("CLAUDE_CONFIG_DIR", "").split(",")[0].strip()
    if raw:
        return Path(raw).expanduser()
    return Path(env.get("HOME") or Path.home()) / ".claude"


def credentials_path(directory: Path) -> Path:
    return directory / ".credentials.json"


def file_stamp(path: Path) -> str | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return f"{st.st_mtime_ns}:{st.st_size}:{st.st_ino}"


def read_credentials(path: Path) -> Credentials:
    """Claude Code's OAuth token from its credentials file, opened read-only."""
    try:
        with open(path, "rb") as fh:  # read-only; this file is never written by tokentop
            raw = fh.read(1 << 20)
    except FileNotFoundError:
        raise CredentialsError(f"{path} does not exist: sign in with `claude` first (on macOS the token is in "
                               f"the Keychain, which tokentop does not read)") from None
    except OSError as exc:
        raise CredentialsError(f"cannot read {path}: {exc.strerror or exc}") from None
    try:
        data = json.loads(raw)
    except ValueError:
        raise CredentialsError(f"{path} is not valid JSON") from None
    oauth = data.get("claudeAiOauth") if isinstance(data, dict) else None
    token = oauth.get("accessToken") if isinstance(oauth, dict) else None
    if not isinstance(token, str) or not token.strip():
        raise CredentialsError(f"{path} holds no Claude.ai OAuth token (claudeAiOauth.accessToken): sign in with "
                               f"`claude` using a Claude subscription")
    expires = oauth.get("expiresAt")  # type: ignore[union-attr]
    expires_at = float(expires) / 1000.0 if isinstance(expires, (int, float)) and not isinstance(expires, bool) else None
    plan = oauth.get("subscriptionType") or oauth.get("rateLimitTier")  # type: ignore[union-attr]
    return Credentials(token.strip(), expires_at, plan if isinstance(plan, str) else None)


def _percent(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    value = float(value)
    return value if math.isfinite(value) and value >= 0 else None


def parse_usage(obj: object, now: float, account: str, plan: str | None = None) -> list[Observation]:
    """The windows in one usage answer (either shape; ``limits[]`` wins where both name a window)."""
    if not isinstance(obj, dict):
        raise ValueError(f"the usage answer is a JSON {type(obj).__name__}, not an object")
    found: dict[str, Observation] = {}

    def add(name: str, minutes: int | None, used: float | None, resets: object) -> None:
        resets_at = epoch_seconds(resets)
        if used is None or (used == 0 and resets_at is None):  # an empty (often codename) bucket
            return
        found[name] = Observation(AGENT, account, name, used, resets_at, minutes, SOURCE, now, plan)

    for key, bucket in obj.items():
        if not isinstance(bucket, dict):
            continue
        if key in FLAT:
            name, minutes = FLAT[key]
        elif key.startswith("seven_day_") and slug(key[len("seven_day_"):]):
            name, minutes = "7d-" + slug(key[len("seven_day_"):]), WEEK_MIN
        else:
            continue  # extra_usage, spend, codename buckets: not windows tokentop can name
        add(name, minutes, _percent(bucket.get("utilization")), bucket.get("resets_at"))
    limits = obj.get("limits")
    if isinstance(limits, list):
        for item in limits:
            if not isinstance(item, dict) or item.get("kind") not in KINDS:
                continue
            name, minutes = KINDS[item["kind"]]
            if item["kind"] == "weekly_scoped":
                scope = item.get("scope") if isinstance(item.get("scope"), dict) else {}
                model = scope.get("model") if isinstance(scope.get("model"), dict) else {}  # type: ignore[union-attr]
                label = model.get("display_name") or model.get("id")  # type: ignore[union-attr]
                if not isinstance(label, str) or not slug(label):
                    continue
                name = "7d-" + slug(label)
            used = _percent(item.get("percent"))
            if used is None:
                used = _percent(item.get("utilization"))
            add(name, minutes, used, item.get("resets_at"))
    return list(found.values())


def retry_after(value: str | None, now: float) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (seconds or an HTTP date); ``None`` if absent."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        return max(0.0, parsedate_to_datetime(value).timestamp() - now)
    except (TypeError, ValueError, IndexError):
        return None


@dataclass
class PollState:
    """One account's calls: persisted so that a restart does not call again early."""

    last_call_at: float | None = None
    blocked_until: float | None = None
    failures: int = 0
    #: why calls stopped (401/403, expired token); cleared when the credentials file changes
    stopped: str | None = None
    #: the credentials file's stamp when calls stopped
    stamp: str | None = None


class OAuthPoller:
    """Polls the usage endpoint for one Claude config dir (an account), within the rules above."""

    def __init__(self, store: LimitStore, *, clock: Callable[[], float], directory: Path,
                 base_url: str = DEFAULT_BASE_URL, interval_s: float = MIN_INTERVAL_S, ledger: Ledger | None = None,
                 transport: Any = None) -> None:
        self.store = store
        self.clock = clock
        self.directory = directory
        self.path = credentials_path(directory)
        self.account = display_path(directory)
        self.url = base_url.rstrip("/") + USAGE_PATH
        self.interval_s = max(MIN_INTERVAL_S, float(interval_s))
        self.ledger = ledger
        self.transport = transport
        self.state = PollState()
        #: ``waiting`` | ``ok`` | ``skipped`` | ``blocked`` | ``stopped`` | ``error``
        self.phase = "waiting"
        self.message: str | None = None
        self.calls = 0
        self.last_success_at: float | None = None
        if ledger is not None:
            ledger.ensure_schema(POLLS_DDL)
            row = ledger.call(lambda c: c.execute(
                "SELECT last_call_at, blocked_until, failures, stopped, stamp FROM limit_polls WHERE account = ?",
                (self.account,)).fetchone())
            if row is not None:
                self.state = PollState(row[0], row[1], int(row[2] or 0), row[3], row[4])
                if self.state.stopped:
                    self.phase, self.message = "stopped", self.state.stopped

    # -- when ---------------------------------------------------------------------------------------
    def next_call_at(self) -> float:
        s = self.state
        at = (s.last_call_at + self.interval_s) if s.last_call_at is not None else float("-inf")
        if s.blocked_until is not None:
            at = max(at, s.blocked_until)
        return at

    def statusline_fresh(self, now: float) -> bool:
        """Claude Code's statusline gave a figure for this account recently: no call needed."""
        return any(o.agent == AGENT and o.account == self.account and o.source == "claude-statusline"
                   and now - o.observed_at < STATUSLINE_FRESH_S for o in self.store.latest())

    # -- one step -----------------------------------------------------------------------------------
    async def step(self, now: float | None = None) -> str:
        """Call the endpoint if it is due and allowed; returns the phase after this step."""
        now = self.clock() if now is None else now
        if self.state.stopped:
            if file_stamp(self.path) == self.state.stamp:
                return self.phase
            self.state.stopped = self.state.stamp = None  # the file changed (signed in again): try again
            self.state.failures = 0
            self.state.blocked_until = None
            self.phase, self.message = "waiting", None
        if self.statusline_fresh(now):
            self.phase, self.message = "skipped", "Claude Code's statusline is reporting; no call needed"
            return self.phase
        if now < self.next_call_at():
            return self.phase
        try:
            creds = read_credentials(self.path)
        except CredentialsError as exc:
            self._stop(str(exc))
            return self.phase
        if creds.expires_at is not None and creds.expires_at <= now:
            self._stop("Claude Code's OAuth token has expired: run `claude` to refresh it "
                       "(tokentop never refreshes or writes it)")
            return self.phase
        await self._call(creds, now)
        await self._save()
        return self.phase

    async def _call(self, creds: Credentials, now: float) -> None:
        import httpx  # only a feed that polls pays for it

        self.state.last_call_at = now
        self.calls += 1
        headers = {"Authorization": f"Bearer {creds.token}", "anthropic-beta": BETA,
                   "User-Agent": f"tokentop/{__version__}", "Accept": "application/json"}
        try:
            async with httpx.AsyncClient(timeout=TIMEOUT_S, transport=self.transport, follow_redirects=False) as client:
                response = await client.get(self.url, headers=headers)
        except httpx.HTTPError as exc:
            self._back_off(now, None, self._scrub(f"cannot reach {self.url}: {type(exc).__name__}: {exc}", creds))
            return
        status = response.status_code
        if status in (401, 403):
            self._stop(f"the usage endpoint refused Claude Code's token (HTTP {status}): run `claude` to sign in "
                       f"again; tokentop retries once the credentials file changes")
            return
        if status == 429:
            wait = retry_after(response.headers.get("retry-after"), now)
            self._back_off(now, wait, f"rate-limited by the usage endpoint (HTTP 429, Retry-After "
                                      f"{response.headers.get('retry-after', 'absent')})")
            return
        if status != 200:
            self._back_off(now, retry_after(response.headers.get("retry-after"), now),
                           f"the usage endpoint answered HTTP {status}")
            return
        try:
            found = parse_usage(response.json(), now, self.account, creds.plan)
        except ValueError as exc:
            self._back_off(now, None, self._scrub(f"unreadable usage answer: {exc}", creds))
            return
        for obs in found:
            self.store.observe(obs)
        self.state.failures = 0
        self.state.blocked_until = None
        self.last_success_at = now
        self.phase = "ok"
        self.message = None if found else "the usage endpoint reported no windows"

    @staticmethod
    def _scrub(text: str, creds: Credentials) -> str:
        return text.replace(creds.token, "<token>") if creds.token else text

    def _back_off(self, now: float, wait: float | None, message: str) -> None:
        """Wait ``Retry-After`` but at least 5 minutes, doubling while failures repeat (≤ 1 h)."""
        self.state.failures += 1
        floor = min(MAX_BACKOFF_S, MIN_INTERVAL_S * 2 ** (self.state.failures - 1))
        delay = min(MAX_BACKOFF_S, max(floor, wait or 0.0))
        self.state.blocked_until = now + delay
        self.phase = "blocked"
        self.message = f"{message}; next call in {delay / 60:.0f} min"
        log.warning("OAuth usage: %s", self.message)

    def _stop(self, message: str) -> None:
        self.state.stopped = message
        self.state.stamp = file_stamp(self.path)
        self.phase = "stopped"
        self.message = message
        log.warning("OAuth usage polling stopped: %s", message)

    async def _save(self) -> None:
        if self.ledger is None:
            return
        s = self.state
        row = (self.account, s.last_call_at, s.blocked_until, s.failures, s.stopped, s.stamp)

        def run(conn: sqlite3.Connection) -> None:
            conn.execute("INSERT OR REPLACE INTO limit_polls VALUES (?, ?, ?, ?, ?, ?)", row)

        await self.ledger.call_async(run)

    async def run(self) -> None:
        while True:
            try:
                before = self.state.stopped
                await self.step()
                if self.state.stopped != before:
                    await self._save()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # a poller bug never takes the feed down
                log.exception("OAuth usage poller failed")
                self.phase, self.message = "error", f"poller failed: {type(exc).__name__}"
            await asyncio.sleep(TICK_S)

    def status(self) -> dict[str, Any]:
        return {"enabled": True, "account": self.account, "state": self.phase, "message": self.message,
                "next_at": None if self.state.stopped else (None if self.state.last_call_at is None
                                                             else self.next_call_at()),
                "last_success_at": self.last_success_at, "calls": self.calls,
                "source_label": "OAuth usage endpoint (undocumented)"}
