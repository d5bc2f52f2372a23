"""Control routes on the feed (all need the local token) and the publish-socket hooks.

``POST /v1/sessions/{id}/pause`` · ``/resume`` · ``/kill`` (body ``{"signal": "TERM"|"INT"|"KILL"...,
"pid": N}``; TERM escalates to KILL after the grace) · ``/terminate`` (same as kill with TERM) ·
``GET /v1/sessions/{id}/plan`` · ``POST /v1/sessions/{id}/process`` (``tokentop run`` registers
pid/create_time/uid/cmd) · ``DELETE /v1/sessions/{id}/process`` · ``GET /v1/control/audit``.

Blocks at the API (the budget stop): ``GET /v1/blocks`` (what the feed's proxies must refuse; a
proxy in another process polls it, naming itself in ``X-Tokentop-Proxy``; ``ETag`` /
``If-None-Match``) · ``POST /v1/block`` / ``POST /v1/unblock`` (body ``{"scope", "key"}``, plus
``"message"`` and ``"for_s"`` / ``"until"`` for a block) · ``POST /v1/sessions/{id}/block`` /
``/unblock`` (the same for one session).
Contract: ``docs/control.md``.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any, Callable, TypeVar

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route
from starlette.websockets import WebSocket

from tokentop.core.control.port import Plan
from tokentop.core.control.process import ProcessIdentity, Refused, parse_signal, verify
from tokentop.core.control.service import BlockResult, ControlService
from tokentop.core.feed.server import BodyTooLarge, TokenGate, read_body

T = TypeVar("T")

MAX_CONTROL_BODY: int = 16 * 1024
MAX_SESSION_LEN: int = 512


def plan_to_json(plan: Plan) -> dict[str, Any]:
    return {
        "session": plan.target.session, "can_act": plan.can_act, "reason": plan.reason, "pid": plan.pid,
        "cmd": plan.cmd,
        "candidates": [{"pid": c.pid, "cmd": c.cmd, "start_time": c.start_time, "cwd": c.cwd} for c in plan.candidates],
    }


async def _json_body(request: Request) -> dict[str, Any] | Response:
    try:
        raw = await read_body(request, MAX_CONTROL_BODY)
    except BodyTooLarge:
        return JSONResponse({"error": f"body exceeds {MAX_CONTROL_BODY} bytes"}, 413)
    if not raw.strip():
        return {}
    try:
        body = json.loads(raw)
    except json.JSONDecodeError as exc:
        return JSONResponse({"error": f"body is not valid JSON: {exc.msg}"}, 400)
    except RecursionError:
        return JSONResponse({"error": "body is not valid JSON: nested too deeply"}, 400)
    if not isinstance(body, dict):
        return JSONResponse({"error": "body must be a JSON object"}, 400)
    return body


def routes(ctl: ControlService, gate: TokenGate) -> list[BaseRoute]:
    """The control routes over ``ctl``; every one needs the local token (``gate``)."""

    def session_of(request: Request) -> str | Response:
        """The request's session id, or the answer to send: 401/403 without the local token, 400 for a bad id."""
        denied = gate.refusal(request)
        if denied is not None:
            return denied
        session = request.path_params["session"]
        if not session or len(session) > MAX_SESSION_LEN:
            return JSONResponse({"error": f"session id must be 1..{MAX_SESSION_LEN} characters"}, 400)
        return session

    async def act(request: Request) -> Response:
        session = session_of(request)
        if isinstance(session, Response):
            return session
        body = await _json_body(request)
        if isinstance(body, Response):
            return body
        action = request.path_params["action"]
        if action in ("block", "unblock"):
            return await block_answer(ctl, action, "session", session, body)
        signal = body.get("signal")
        pid = body.get("pid")
        if signal is not None and not isinstance(signal, str):
            return JSONResponse({"error": "signal must be a name such as \"TERM\" or \"KILL\""}, 400)
        if pid is not None and (isinstance(pid, bool) or not isinstance(pid, int)):
            return JSONResponse({"error": "pid must be an integer"}, 400)
        if action in ("terminate", "kill"):
            # /kill without a signal is the safe default: TERM, then KILL after the grace
            try:
                name, _ = parse_signal(signal, "TERM")
            except Refused as exc:
                return JSONResponse({"error": exc.reason, "code": exc.code}, 400)
            action, signal = ("kill", "KILL") if name == "KILL" else ("terminate", name)
        origin = str(body.get("origin") or "api")[:40]
        result = await ctl.act(session, action, pid=pid, signal=signal, origin=origin)
        status = 200 if result.outcome.ok else (409 if result.code not in ("bad_action", "bad_signal") else 400)
        return JSONResponse(result.to_json(), status)

    async def plan(request: Request) -> Response:
        session = session_of(request)
        if isinstance(session, Response):
            return session
        # discovery walks the process table: off the event loop
        return JSONResponse(plan_to_json(await _in_thread(lambda: ctl.plan(session))))

    async def register(request: Request) -> Response:
        session = session_of(request)
        if isinstance(session, Response):
            return session
        if request.method == "DELETE":
            return JSONResponse({"session": session, "removed": ctl.unregister(session)})
        body = await _json_body(request)
        if isinstance(body, Response):
            return body
        try:
            ident = ProcessIdentity.from_json(body)
        except ValueError as exc:
            return JSONResponse({"error": str(exc)}, 400)
        try:
            verify(ident)  # the record must describe a live process of this user, as recorded
        except Refused as exc:
            return JSONResponse({"error": exc.reason, "code": exc.code}, 409)
        agent = body.get("agent") if isinstance(body.get("agent"), str) else None
        rec = ctl.register(session, ident, agent=agent, source="run")
        return JSONResponse({"session": session, "registered": rec.to_json()}, 201)

    async def audit(request: Request) -> Response:
        denied = gate.refusal(request)
        if denied is not None:
            return denied
        try:
            limit = max(1, min(int(request.query_params.get("limit", "50")), 10000))
        except ValueError:
            return JSONResponse({"error": "limit must be an integer"}, 400)
        session = request.query_params.get("session") or None
        records = await _in_thread(lambda: ctl.audit.recent(limit, session))
        return JSONResponse({"audit": [r.to_json() for r in records]})

    async def blocks(request: Request) -> Response:
        denied = gate.refusal(request)
        if denied is not None:
            return denied
        follower = request.headers.get("x-tokentop-proxy")
        if follower:
            ctl.blocks.saw_follower(follower)
        etag = ctl.blocks.etag
        if request.headers.get("if-none-match") == etag:
            return Response(status_code=304, headers={"etag": etag})
        return JSONResponse(ctl.blocks.to_json(), headers={"etag": etag})

    async def change_block(request: Request) -> Response:
        denied = gate.refusal(request)
        if denied is not None:
            return denied
        body = await _json_body(request)
        if isinstance(body, Response):
            return body
        scope, key = body.get("scope"), body.get("key") or ""
        if not isinstance(scope, str) or not isinstance(key, str):
            return JSONResponse({"error": "send {\"scope\": \"session|agent|model|project|global\", \"key\": \"...\"}"}, 400)
        action = "block" if request.url.path.endswith("/block") else "unblock"
        return await block_answer(ctl, action, scope, key, body)

    return [
        Route("/v1/blocks", blocks, methods=["GET"]),
        Route("/v1/block", change_block, methods=["POST"]),
        Route("/v1/unblock", change_block, methods=["POST"]),
        Route("/v1/sessions/{session:path}/plan", plan, methods=["GET"]),
        Route("/v1/sessions/{session:path}/process", register, methods=["POST", "DELETE"]),
        Route("/v1/sessions/{session:path}/{action:str}", act, methods=["POST"]),
        Route("/v1/control/audit", audit, methods=["GET"]),
    ]


async def block_answer(ctl: ControlService, action: str, scope: str, key: str, body: dict[str, Any]) -> Response:
    """Carry out a block / unblock asked over HTTP: 200 done, 409 nothing to lift, 400 a bad body."""
    origin = str(body.get("origin") or "api")[:40]
    result: BlockResult
    if action == "block":
        message = body.get("message")
        if message is not None and not isinstance(message, str):
            return JSONResponse({"error": "message must be a string"}, 400)
        until = body.get("until")
        for_s = body.get("for_s")
        for name, value in (("until", until), ("for_s", for_s)):
            if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0):
                return JSONResponse({"error": f"{name} must be a positive number of seconds"}, 400)
        if for_s is not None:
            until = ctl.service.clock() + float(for_s)
        result = await ctl.block(scope, key, origin=origin, message=message,
                                 until=float(until) if until is not None else None)
    else:
        result = await ctl.unblock(scope, key, origin=origin)
    status = 200 if result.ok else 400 if result.code == "bad_block" else 409
    return JSONResponse(result.to_json(), status)


async def _in_thread(fn: Callable[[], T]) -> T:
    return await asyncio.to_thread(fn)


class PublishHooks:
    """The control layer's answers on ``WS /v1/publish``: an emitter's ``hello`` binds its session
    to the socket (control messages then go to it), ``control_ack`` confirms one."""

    def __init__(self, ctl: ControlService) -> None:
        self.ctl = ctl

    async def on_meta(self, ws: WebSocket, message: dict[str, Any]) -> dict[str, Any] | None:
        kind = message.get("type")
        if kind == "hello":
            session = message.get("session")
            if not isinstance(session, str) or not session or len(session) > MAX_SESSION_LEN:
                return {"type": "error", "error": "hello needs \"session\": a non-empty string"}
            err = self.ctl.emitters.hello(ws, session)
            if err is not None:
                return {"type": "error", "error": err}
            return {"type": "hello_ack", "session": session, "control": True}
        if kind == "control_ack":
            known = self.ctl.emitters.acknowledge(message)
            return {"type": "control_ack_received", "id": message.get("id"), "known": known}
        return None

    async def on_closed(self, ws: WebSocket) -> None:
        self.ctl.emitters.closed(ws)
