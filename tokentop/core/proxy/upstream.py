"""Sending requests upstream: httpx transports (connection pools), one per way out.

The proxy talks to httpx's transport directly rather than through ``httpx.AsyncClient``, for two
reasons:

* a client keeps a cookie jar: cookies one agent's upstream set (``Set-Cookie`` from a CDN in
  front of an API) would be sent with every other agent's requests. A proxy must not mix clients'
  state; the transport keeps none.
* speed: the client's layers (cookie merging and extraction, auth, redirects, hooks) measured
  ~25 % of the proxy's CPU per request.

The usual proxy environment variables are honoured as httpx's client would: ``HTTPS_PROXY`` /
``HTTP_PROXY`` / ``ALL_PROXY`` (and lower-case), except for hosts in ``NO_PROXY`` and loopback.
"""

from __future__ import annotations

import ipaddress
import os
from typing import Mapping
from urllib.parse import urlsplit

import httpx

from tokentop.core.proxy.settings import ProxySettings


def _env(name: str, env: Mapping[str, str]) -> str:
    return env.get(name) or env.get(name.lower()) or ""


def _bypass(host: str, no_proxy: str) -> bool:
    try:
        if ipaddress.ip_address(host.strip("[]")).is_loopback:
            return True
    except ValueError:
        if host == "localhost":
            return True
    for entry in (e.strip().lower() for e in no_proxy.split(",")):
        if not entry:
            continue
        if entry == "*":
            return True
        entry = entry.lstrip(".").split(":")[0]
        if host == entry or host.endswith("." + entry):
            return True
    return False


def env_proxy_for(url: str, env: Mapping[str, str] | None = None) -> str | None:
    """The proxy the environment names for ``url``, or ``None``."""
    env = os.environ if env is None else env
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    if _bypass(host, _env("NO_PROXY", env)):
        return None
    proxy = _env("HTTPS_PROXY" if parts.scheme == "https" else "HTTP_PROXY", env) or _env("ALL_PROXY", env)
    return proxy or None


class Upstreams:
    """Transports by upstream name (those without a proxy share one pool)."""

    def __init__(self, settings: ProxySettings, env: Mapping[str, str] | None = None) -> None:
        limits = httpx.Limits(
            max_connections=settings.max_upstream_connections,
            max_keepalive_connections=min(settings.max_upstream_connections, 256),
            keepalive_expiry=30.0,
        )
        self.timeout = httpx.Timeout(
            connect=settings.connect_timeout_s, read=settings.read_timeout_s,
            write=settings.write_timeout_s, pool=settings.pool_timeout_s,
        ).as_dict()
        self.direct = httpx.AsyncHTTPTransport(limits=limits)
        self._by_proxy: dict[str, httpx.AsyncHTTPTransport] = {}
        self._by_name: dict[str, httpx.AsyncHTTPTransport] = {}
        for name, base in settings.upstreams.items():
            proxy = env_proxy_for(base, env)
            if proxy is None:
                self._by_name[name] = self.direct
            else:
                if proxy not in self._by_proxy:
                    self._by_proxy[proxy] = httpx.AsyncHTTPTransport(limits=limits, proxy=proxy)
                self._by_name[name] = self._by_proxy[proxy]

    def via_proxy(self, name: str) -> bool:
        return self._by_name.get(name, self.direct) is not self.direct

    async def send(self, name: str, method: str, url: str, headers: list[tuple[bytes, bytes]],
                   content: bytes | object) -> httpx.Response:
        """Send and return once the answer's headers are in (its body still to be read from
        ``response.stream``; close it with ``response.aclose()``). Raises ``httpx.HTTPError``."""
        request = httpx.Request(method, url, headers=headers, content=content,  # type: ignore[arg-type]
                                extensions={"timeout": self.timeout})
        return await self._by_name.get(name, self.direct).handle_async_request(request)

    async def aclose(self) -> None:
        await self.direct.aclose()
        for transport in self._by_proxy.values():
            await transport.aclose()
