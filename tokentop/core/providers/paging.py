"""Shared HTTP machinery for the provider pollers: one GET with retries, and following every page.

Retries: 429 and 5xx, timeouts, connection errors and unparseable (e.g. truncated) JSON are retried
with exponential backoff and full jitter; a ``Retry-After`` header (seconds or an HTTP date) is a
floor for the wait. 401/403 are never retried: the key is wrong and retrying only adds noise.

Every error message passes through :func:`redact` with the key in use, so neither our text nor the
provider's echoed error body can carry the key into a log, a status entry or a screen.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from dataclasses import dataclass, field
from decimal import Decimal
from email.utils import parsedate_to_datetime
from typing import Any, Awaitable, Callable, Sequence

import httpx

from tokentop.core.providers.keys import AdminKey, redact

Params = Sequence[tuple[str, str | int]]
Sleep = Callable[[float], Awaitable[None]]


class ProviderError(Exception):
    """A provider call failed. The message is safe to show (the key is masked)."""

    def __init__(self, provider: str, message: str, *, status: int | None = None, retryable: bool = False) -> None:
        self.provider = provider
        self.status = status
        self.retryable = retryable
        super().__init__(message)


class ProviderAuthError(ProviderError):
    """The provider rejected the admin key (401/403)."""


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 5
    base_delay_s: float = 1.0
    max_delay_s: float = 60.0
    #: A ``Retry-After`` longer than this is not waited for: the call fails and the next poll retries.
    max_retry_after_s: float = 300.0
    max_pages: int = 1000

    def backoff_s(self, attempt: int, rng: random.Random) -> float:
        """Full jitter: uniform in [0, min(max, base * 2**attempt)] (attempt counts from 0)."""
        return rng.uniform(0.0, min(self.max_delay_s, self.base_delay_s * (2**attempt)))


def retry_after_s(value: str | None, now: float | None = None) -> float | None:
    """Seconds from a ``Retry-After`` header (delta-seconds or HTTP date); ``None`` if absent/garbled."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError, IndexError):
        return None
    return max(0.0, when - (time.time() if now is None else now))


def _error_text(resp: httpx.Response) -> str:
    """The provider's own error message from either documented error shape, else a clipped body."""
    try:
        body = resp.json()
    except ValueError:
        return resp.text[:200].strip()
    if isinstance(body, dict):
        err = body.get("error")
        if isinstance(err, dict):
            kind = err.get("type") or err.get("code") or ""
            msg = err.get("message") or ""
            return f"{kind}: {msg}".strip(": ")
    return str(body)[:200]


@dataclass
class Fetcher:
    """Does GETs for one provider with one key, counting what it did (for status and tests)."""

    provider: str
    client: httpx.AsyncClient
    key: AdminKey
    headers: dict[str, str]
    policy: RetryPolicy = field(default_factory=RetryPolicy)
    sleep: Sleep = asyncio.sleep
    rng: random.Random = field(default_factory=random.Random)
    requests_made: int = 0
    retries: int = 0
    waits_s: list[float] = field(default_factory=list)

    def _fail(self, message: str, **kw: Any) -> ProviderError:
        return ProviderError(self.provider, redact(message, self.key), **kw)

    async def get_json(self, url: str, params: Params) -> dict[str, Any]:
        last: ProviderError | None = None
        for attempt in range(self.policy.max_attempts):
            wait_floor = 0.0
            try:
                self.requests_made += 1
                resp = await self.client.get(url, params=list(params), headers=self.headers)
            except httpx.TimeoutException:
                last = self._fail(f"{self.provider}: no answer from {url} within the timeout", retryable=True)
            except httpx.HTTPError as exc:
                last = self._fail(f"{self.provider}: cannot reach {url}: {type(exc).__name__}: {exc}", retryable=True)
            else:
                if resp.status_code in (401, 403):
                    raise ProviderAuthError(
                        self.provider,
                        redact(
                            f"{self.provider} rejected the admin key from {self.key.source} ({self.key.masked}): "
                            f"HTTP {resp.status_code} {_error_text(resp)}",
                            self.key,
                        ),
                        status=resp.status_code,
                    )
                if resp.status_code == 429 or resp.status_code >= 500:
                    after = retry_after_s(resp.headers.get("retry-after"))
                    detail = _error_text(resp)
                    last = self._fail(
                        f"{self.provider}: HTTP {resp.status_code} from {url}"
                        + (f" (retry after {after:g}s)" if after is not None else "")
                        + (f": {detail}" if detail else ""),
                        status=resp.status_code, retryable=True,
                    )
                    if after is not None:
                        if after > self.policy.max_retry_after_s:
                            raise last
                        wait_floor = after
                elif resp.status_code >= 400:
                    raise self._fail(f"{self.provider}: HTTP {resp.status_code} from {url}: {_error_text(resp)}",
                                     status=resp.status_code)
                else:
                    try:
                        body = json.loads(resp.text, parse_float=Decimal)
                    except ValueError as exc:
                        last = self._fail(f"{self.provider}: invalid JSON from {url} (truncated?): {exc}", retryable=True)
                    else:
                        if not isinstance(body, dict):
                            raise self._fail(f"{self.provider}: expected a JSON object from {url}, got {type(body).__name__}")
                        return body
            if attempt + 1 < self.policy.max_attempts:
                wait = max(wait_floor, self.policy.backoff_s(attempt, self.rng))
                if wait_floor:
                    wait = wait_floor + self.rng.uniform(0.0, min(1.0, self.policy.base_delay_s))
                self.retries += 1
                self.waits_s.append(wait)
                await self.sleep(wait)
        assert last is not None
        raise ProviderError(self.provider, f"{last} (gave up after {self.policy.max_attempts} attempts)",
                            status=last.status, retryable=True)

    async def get_pages(self, url: str, params: Params) -> list[dict[str, Any]]:
        """Every bucket of every page (``has_more`` / ``next_page``), in order."""
        buckets: list[dict[str, Any]] = []
        page: str | None = None
        seen: set[str] = set()
        for _ in range(self.policy.max_pages):
            body = await self.get_json(url, [*params, *([("page", page)] if page else [])])
            data = body.get("data")
            if not isinstance(data, list):
                raise self._fail(f"{self.provider}: response from {url} has no 'data' list")
            buckets.extend(data)
            if not body.get("has_more"):
                return buckets
            page = body.get("next_page")
            if not isinstance(page, str) or not page or page in seen:
                raise self._fail(f"{self.provider}: has_more without a new next_page from {url}")
            seen.add(page)
        raise self._fail(f"{self.provider}: more than {self.policy.max_pages} pages from {url}; stopped")
