"""Which upstream a request goes to, and which protocol it speaks (what the proxy meters).

* ``/v1/messages`` and ``/v1/messages/count_tokens`` go to ``anthropic``; every other ``/v1/...``
  path goes to ``openai`` — unless the request carries ``anthropic-version`` (an Anthropic client:
  ``/v1/models``, batches, files go to Anthropic then).
* ``/<name>/<rest>`` goes to the upstream ``name`` (``openai``, ``anthropic`` or one configured in
  ``[proxy.upstreams]``) at ``<base URL>/<rest>``. The protocol is recognised by the path's end
  (``.../chat/completions``, ``.../responses``, ``.../messages``, ...), so OpenAI-compatible bases
  with their own prefix (``https://openrouter.ai/api``) and Anthropic-compatible ones both work.
* Only ``POST`` to a model endpoint is *metered* (one event per request). Everything else passes
  through untouched and is only counted (``GET /v1/models``, files, batches, ``count_tokens``).

The query string is forwarded as sent (Claude Code posts to ``/v1/messages?beta=true``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal, Mapping

Protocol = Literal["chat", "completions", "responses", "embeddings", "messages", "count_tokens", "passthrough"]
Family = Literal["openai", "anthropic"]

METERED: Final = frozenset({"chat", "completions", "responses", "embeddings", "messages"})
#: Suffixes recognised on named upstreams, most specific first.
_SUFFIXES: Final[tuple[tuple[str, Protocol], ...]] = (
    ("/messages/count_tokens", "count_tokens"),
    ("/chat/completions", "chat"),
    ("/completions", "completions"),
    ("/responses", "responses"),
    ("/embeddings", "embeddings"),
    ("/messages", "messages"),
)
_V1: Final[Mapping[str, Protocol]] = {
    "/v1/chat/completions": "chat",
    "/v1/completions": "completions",
    "/v1/responses": "responses",
    "/v1/embeddings": "embeddings",
    "/v1/messages": "messages",
    "/v1/messages/count_tokens": "count_tokens",
}


@dataclass(frozen=True, slots=True)
class Route:
    #: upstream name: ``openai``, ``anthropic`` or a configured one (also the event's ``provider``)
    upstream: str
    #: full URL to forward to (base URL + path + query)
    url: str
    protocol: Protocol
    #: whose error shape the proxy's own answers use
    family: Family

    @property
    def metered(self) -> bool:
        return self.protocol in METERED


class UnknownUpstream(LookupError):
    def __init__(self, name: str, known: list[str]) -> None:
        self.name = name
        self.known = known
        super().__init__(
            f"tokentop proxy: no upstream named {name!r} (known: {', '.join(known)}); "
            "add it under [proxy.upstreams] or use /v1/... for OpenAI"
        )


def _protocol(method: str, rest: str, table: Mapping[str, Protocol] | None) -> Protocol:
    if method != "POST":
        return "passthrough"
    path = rest.rstrip("/")
    if table is not None:
        return table.get(path, "passthrough")
    if "/threads/" in path:  # OpenAI Assistants' /threads/{id}/messages is not Anthropic's
        return "passthrough"
    for suffix, protocol in _SUFFIXES:
        if path.endswith(suffix):
            return protocol
    return "passthrough"


def resolve(method: str, path: str, raw_path: str, query: str, upstreams: Mapping[str, str],
            anthropic_client: bool) -> Route:
    """The route of one request. ``path`` is the decoded path (for matching), ``raw_path`` the
    path as sent (forwarded unchanged). Raises :class:`UnknownUpstream`."""
    suffix = f"?{query}" if query else ""
    if path == "/v1" or path.startswith("/v1/"):
        protocol = _protocol(method, path, _V1)
        name = "anthropic" if protocol in ("messages", "count_tokens") or anthropic_client else "openai"
        return Route(name, upstreams[name] + raw_path + suffix, protocol, "anthropic" if name == "anthropic" else "openai")
    name, _, _rest = path.lstrip("/").partition("/")
    if name not in upstreams:
        if anthropic_client:  # e.g. Claude Code's non-/v1 calls under ANTHROPIC_BASE_URL
            return Route("anthropic", upstreams["anthropic"] + raw_path + suffix, "passthrough", "anthropic")
        raise UnknownUpstream(name, sorted(upstreams))
    raw_rest = raw_path.lstrip("/")[len(name):]  # keep the client's own encoding of the rest
    rest = path.lstrip("/")[len(name):]
    protocol = _protocol(method, rest, None)
    family: Family = "anthropic" if name == "anthropic" or protocol in ("messages", "count_tokens") else "openai"
    return Route(name, upstreams[name] + raw_rest + suffix, protocol, family)
