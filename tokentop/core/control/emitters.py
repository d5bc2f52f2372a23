"""Control for in-process agents that cannot be signalled: messages over ``WS /v1/publish``.

An emitter announces its session with ``{"type": "hello", "session": "S"}`` (the feed answers
``{"type": "hello_ack", "session": "S", "control": true}``). To act, the feed sends
``{"type": "control", "id": "...", "session": "S", "action": "pause"|"resume"|"stop"}`` on every socket
of that session and waits up to ``ack_timeout_s`` for
``{"type": "control_ack", "id": "...", "ok": true, "message": "..."}``.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any, Final

#: Port action → control message action.
MESSAGE_ACTIONS: Final = {"pause": "pause", "resume": "resume", "terminate": "stop", "kill": "stop"}
MAX_SOCKETS_PER_SESSION: Final = 16


class EmitterHub:
    def __init__(self) -> None:
        #: session -> sockets that said hello for it
        self.sessions: dict[str, list[Any]] = {}
        self._socket_sessions: dict[int, set[str]] = {}
        self._pending: dict[str, asyncio.Future[dict[str, Any]]] = {}

    def connected(self, session: str) -> bool:
        return bool(self.sessions.get(session))

    def hello(self, ws: Any, session: str) -> str | None:
        """Register ``ws`` for ``session``; returns an error text when refused."""
        socks = self.sessions.setdefault(session, [])
        if ws in socks:
            return None
        if len(socks) >= MAX_SOCKETS_PER_SESSION:
            return f"session {session!r} already has {MAX_SOCKETS_PER_SESSION} control sockets"
        socks.append(ws)
        self._socket_sessions.setdefault(id(ws), set()).add(session)
        return None

    def closed(self, ws: Any) -> None:
        for session in self._socket_sessions.pop(id(ws), set()):
            socks = self.sessions.get(session, [])
            if ws in socks:
                socks.remove(ws)
            if not socks:
                self.sessions.pop(session, None)

    def acknowledge(self, message: dict[str, Any]) -> bool:
        fut = self._pending.get(str(message.get("id")))
        if fut is None or fut.done():
            return False
        fut.set_result(message)
        return True

    async def send(self, session: str, action: str, timeout_s: float) -> tuple[bool, str]:
        """Send a control message to the session's emitters; (ok, what happened)."""
        socks = list(self.sessions.get(session, ()))
        if not socks:
            return False, f"no emitter of session {session!r} is connected"
        verb = MESSAGE_ACTIONS[action]
        loop = asyncio.get_running_loop()
        waits: list[asyncio.Future[dict[str, Any]]] = []
        ids: list[str] = []
        for ws in socks:
            mid = uuid.uuid4().hex
            fut: asyncio.Future[dict[str, Any]] = loop.create_future()
            self._pending[mid] = fut
            ids.append(mid)
            try:
                await ws.send_json({"type": "control", "id": mid, "session": session, "action": verb})
                waits.append(fut)
            except Exception:
                self._pending.pop(mid, None)
        try:
            if not waits:
                return False, f"could not send {verb!r} to the emitters of session {session!r} (sockets closed)"
            done, _ = await asyncio.wait(waits, timeout=timeout_s)
        finally:
            for mid in ids:
                self._pending.pop(mid, None)
        acks = [f.result() for f in done]
        good = [a for a in acks if a.get("ok", True) is True]
        if good:
            detail = str(good[0].get("message") or "").strip()[:200]
            return True, f"{verb!r} acknowledged by {len(good)} of {len(waits)} emitter(s)" + (f": {detail}" if detail else "")
        if acks:
            detail = str(acks[0].get("message") or acks[0].get("error") or "").strip()[:200]
            return False, f"the emitter refused {verb!r}" + (f": {detail}" if detail else "")
        return False, f"no emitter acknowledged {verb!r} within {timeout_s:g} s"
