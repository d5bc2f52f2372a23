"""Who made a request: agent, session and project of the event, from what the client sent.

Agent, first match wins:
  1. ``X-Tokentop-Agent`` header;
  2. the ``User-Agent``, by :data:`USER_AGENTS` (prefix, case-insensitive);
  3. the route's upstream name (``openai``, ``anthropic``, ``openrouter``, ...).

Session, first match wins:
  1. ``X-Tokentop-Session`` header;
  2. the agent's own session id, where it sends one: Claude Code's ``metadata.user_id``
     (``user_<hash>_account_<uuid>_session_<uuid>``, or a JSON text with ``session_id``) and Codex's
     ``session_id`` header — the same ids their logs carry, so the proxy's rows and the log rows
     are one session;
  3. the client's connection: ``conn-<peer address>:<port>`` (stable while the connection lives;
     an agent holding several keep-alive connections shows as several sessions).

Project: ``X-Tokentop-Project`` only.
"""

from __future__ import annotations

import json
from typing import Any, Final, Mapping

from tokentop.core.events import MAX_STRING_LEN

#: ``User-Agent`` prefix (lower case) -> agent name. Documented in docs/proxy.md.
USER_AGENTS: Final[tuple[tuple[str, str], ...]] = (
    ("claude-cli/", "claude-code"),
    ("claude-code/", "claude-code"),
    ("codex_cli_rs/", "codex"),
    ("codex_exec/", "codex"),
    ("codex_vscode/", "codex"),
    ("codex-", "codex"),
    ("opencode/", "opencode"),
    ("aider/", "aider"),
    ("litellm/", "litellm"),
    ("openai/python", "openai-python"),
    ("openai/js", "openai-node"),
    ("anthropic/python", "anthropic-python"),
    ("anthropic/js", "anthropic-node"),
    ("ai-sdk/", "ai-sdk"),
    ("python-httpx/", "httpx"),
    ("curl/", "curl"),
)

AGENT_HEADER: Final = b"x-tokentop-agent"
SESSION_HEADER: Final = b"x-tokentop-session"
PROJECT_HEADER: Final = b"x-tokentop-project"
#: Headers by which an agent names its own session (Codex sends ``session_id``).
AGENT_SESSION_HEADERS: Final = (b"session_id", b"session-id", b"x-codex-session-id", b"x-session-id")


def _clean(raw: bytes | str | None) -> str | None:
    if raw is None:
        return None
    text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw
    text = "".join(ch for ch in text if ch.isprintable()).strip()
    return text[:MAX_STRING_LEN] or None


def agent_from_user_agent(user_agent: str | None) -> str | None:
    if not user_agent:
        return None
    low = user_agent.lower()
    for prefix, name in USER_AGENTS:
        if low.startswith(prefix):
            return name
    return None


def claude_session(body: Mapping[str, Any] | None) -> str | None:
    """Claude Code's session id from a Messages request's ``metadata.user_id``."""
    if not body:
        return None
    meta = body.get("metadata")
    user_id = meta.get("user_id") if isinstance(meta, Mapping) else None
    if not isinstance(user_id, str) or not user_id:
        return None
    if user_id.startswith("{"):
        try:
            data = json.loads(user_id)
        except ValueError:
            return None
        sid = data.get("session_id") if isinstance(data, dict) else None
        return _clean(sid) if isinstance(sid, str) else None
    head, sep, sid = user_id.rpartition("_session_")
    return _clean(sid) if sep and head else None


def identify(headers: Mapping[bytes, bytes], body: Mapping[str, Any] | None, upstream: str,
             client: tuple[str, int] | None) -> tuple[str, str | None, str | None]:
    """(agent, session, project) of a request; ``headers`` keyed by lower-case name."""
    agent = _clean(headers.get(AGENT_HEADER)) or agent_from_user_agent(_clean(headers.get(b"user-agent"))) or upstream
    session = _clean(headers.get(SESSION_HEADER)) or claude_session(body)
    if session is None:
        for name in AGENT_SESSION_HEADERS:
            session = _clean(headers.get(name))
            if session:
                break
    if session is None and client is not None:
        session = f"conn-{client[0]}:{client[1]}"
    return agent, session, _clean(headers.get(PROJECT_HEADER))
