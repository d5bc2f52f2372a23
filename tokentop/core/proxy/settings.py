"""The ``[proxy]`` config section (declared as data, pulled by ``tokentop/config.py``) and the
typed :class:`ProxySettings` the proxy runs with.

``upstreams`` maps a name to a base URL. ``openai`` and ``anthropic`` are built in and always
present (a user entry of the same name replaces the URL); any other name is reached through the
path prefix ``/<name>/...``. Semantics of every key: ``docs/proxy.md``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, Any, Final, Mapping

from tokentop.core.setting import NUM, Setting, one_of, positive

if TYPE_CHECKING:
    from tokentop.config import Config

DEFAULT_PORT: Final = 7413
DEFAULT_LISTEN: Final = f"127.0.0.1:{DEFAULT_PORT}"
BUILTIN_UPSTREAMS: Final[Mapping[str, str]] = {
    "openai": "https://api.openai.com",
    "anthropic": "https://api.anthropic.com",
}
#: Path prefixes that can never name an upstream: ``/v1/...`` is OpenAI's own API and
#: ``/_tokentop/...`` holds the proxy's status and block-list routes.
RESERVED_NAMES: Final = frozenset({"v1", "_tokentop"})
_NAME = re.compile(r"[a-z0-9][a-z0-9_.-]{0,63}")


def _upstreams(v: Any) -> str | None:
    for name, url in v.items():
        if name in RESERVED_NAMES:
            return f"name {name!r} is reserved (it is a route of the proxy itself)"
        if not _NAME.fullmatch(name):
            return f"name {name!r} must be 1-64 lower-case letters, digits, '.', '_' or '-'"
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            return f"{name}: base URL must be a string starting with http:// or https://, got {url!r}"
        if "?" in url or "#" in url:
            return f"{name}: base URL must not carry a query or fragment, got {url!r}"
    return None


def _listen(v: Any) -> str | None:
    host, sep, port = v.rpartition(":")
    if not sep or not port.isdigit() or not host or int(port) > 65535:
        return "must be HOST:PORT, e.g. 127.0.0.1:7413"
    return None


SETTINGS: Final = {
    "enabled": Setting(bool, False, "run the metering proxy inside `tokentop serve`"),
    "listen": Setting(str, DEFAULT_LISTEN, "where the proxy listens: HOST:PORT (loopback unless you mean it)", _listen),
    "connect_timeout_s": Setting(NUM, 10.0, "seconds to connect to an upstream (then 504)", positive),
    "read_timeout_s": Setting(NUM, 600.0, "longest silence from an upstream: before its answer or between two chunks (then 504)", positive),
    "write_timeout_s": Setting(NUM, 60.0, "longest stall sending a request body upstream", positive),
    "pool_timeout_s": Setting(NUM, 10.0, "wait for a free upstream connection when all are busy (then 503)", positive),
    "max_upstream_connections": Setting(int, 1000, "upstream connection pool size (concurrent requests in flight upstream)", positive),
    "max_inflight": Setting(int, 1000, "requests handled at once; more are answered 503", positive),
    "max_request_bytes": Setting(int, 32 * 1024 * 1024, "largest body of a metered request (read to learn model and stream); larger: 413", positive),
    "max_parse_bytes": Setting(int, 16 * 1024 * 1024, "largest response body or SSE event kept whole to read usage; larger ones pass through and usage is read from their tail", positive),
    "queue_max": Setting(int, 100_000, "events waiting for the feed; beyond this new events are dropped and counted", positive),
    "include_usage": Setting(bool, True, "ask streamed Chat Completions for their usage chunk when the client did not (and strip it again)"),
    "follow_blocks": Setting(bool, True, "a proxy sending to a feed over HTTP enforces that feed's blocks (budget stop), read from GET /v1/blocks"),
    "blocks_poll_s": Setting(NUM, 1.0, "seconds between reads of the feed's blocks", positive),
    "on_feed_unreachable": Setting(str, "open", "when the feed's blocks cannot be read for a while: open (let requests "
                                                "through, with a warning) or closed (answer 503)", one_of("open", "closed")),
    # last: `tokentop config init` writes a table-valued default as its own [header] block
    "upstreams": Setting(dict, dict(BUILTIN_UPSTREAMS), "name -> base URL, as a [proxy.upstreams] table; /<name>/... reaches it (openai and anthropic are built in)", _upstreams),
}

SECTIONS: Final = {"proxy": SETTINGS}


@dataclass(frozen=True, slots=True)
class ProxySettings:
    """What one proxy runs with. Build it from config with :meth:`from_config`; tests build it
    directly (e.g. ``ProxySettings(upstreams={"openai": fake.url})``)."""

    listen: str = DEFAULT_LISTEN
    upstreams: Mapping[str, str] = field(default_factory=lambda: dict(BUILTIN_UPSTREAMS))
    connect_timeout_s: float = 10.0
    read_timeout_s: float = 600.0
    write_timeout_s: float = 60.0
    pool_timeout_s: float = 10.0
    max_upstream_connections: int = 1000
    max_inflight: int = 1000
    max_request_bytes: int = 32 * 1024 * 1024
    max_parse_bytes: int = 16 * 1024 * 1024
    queue_max: int = 100_000
    include_usage: bool = True
    follow_blocks: bool = True
    blocks_poll_s: float = 1.0
    on_feed_unreachable: str = "open"
    enabled: bool = False

    def __post_init__(self) -> None:
        merged = {**BUILTIN_UPSTREAMS, **dict(self.upstreams)}
        problem = _upstreams(merged) or _listen(self.listen)
        if problem:
            raise ValueError(f"proxy settings: {problem}")
        object.__setattr__(self, "upstreams", {k: v.rstrip("/") for k, v in merged.items()})

    @classmethod
    def from_config(cls, cfg: Config, **overrides: Any) -> ProxySettings:
        section = cfg.section("proxy")
        values = {f.name: getattr(section, f.name) for f in fields(cls)}
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)

    @property
    def is_loopback(self) -> bool:
        host = self.listen.rpartition(":")[0].strip("[]")
        return host in ("127.0.0.1", "localhost", "::1") or host.startswith("127.")
