"""The proxy's own answers, in the error shape of the protocol the client speaks.

An agent must report "tokentop stopped this request" the way it reports any API error — its SDK
parses these bodies into its usual exception (``openai.RateLimitError``,
``anthropic.RateLimitError``, ``APIStatusError`` for 502/504, ...). Messages never carry a
request's headers (keys) or body.
"""

from __future__ import annotations

import json
from typing import Final

from tokentop.core.proxy.routes import Family

#: Anthropic's error ``type`` for the statuses the proxy answers with itself.
_ANTHROPIC_TYPES: Final = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    502: "api_error",
    503: "overloaded_error",
    504: "timeout_error",
}
#: OpenAI's error ``type`` / ``code`` for the same statuses.
_OPENAI_TYPES: Final = {
    400: ("invalid_request_error", None),
    401: ("invalid_request_error", "invalid_api_key"),
    403: ("invalid_request_error", None),
    404: ("invalid_request_error", "not_found"),
    413: ("invalid_request_error", "request_too_large"),
    429: ("insufficient_quota", "insufficient_quota"),
    500: ("server_error", None),
    502: ("server_error", "upstream_unreachable"),
    503: ("server_error", "proxy_overloaded"),
    504: ("server_error", "upstream_timeout"),
}


def error_body(family: Family, status: int, message: str) -> bytes:
    if family == "anthropic":
        body: dict[str, object] = {"type": "error", "error": {"type": _ANTHROPIC_TYPES.get(status, "api_error"), "message": message}}
    else:
        kind, code = _OPENAI_TYPES.get(status, ("server_error", None))
        body = {"error": {"message": message, "type": kind, "param": None, "code": code}}
    return json.dumps(body, ensure_ascii=False).encode()


def error_headers(body: bytes, *, retry: bool) -> list[tuple[bytes, bytes]]:
    """Headers of a proxy answer. ``x-should-retry: false`` tells the OpenAI and Anthropic SDKs
    (and Claude Code, built on the latter) not to retry: a blocked request must not become a
    retry storm, while a 502/504 may be retried as the SDK sees fit."""
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (b"x-tokentop-proxy", b"1"),
    ]
    if not retry:
        headers.append((b"x-should-retry", b"false"))
    return headers
