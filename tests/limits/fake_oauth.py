"""A fake Anthropic OAuth usage endpoint: a real Starlette app served by uvicorn on 127.0.0.1.

``GET /api/oauth/usage`` checks the bearer token and the ``anthropic-beta`` header as the real one
does, and answers what the test scripted: a JSON body (either shape), or a status with headers
(429 with ``Retry-After``, 401). Every request is recorded (method, path, headers).
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route


@dataclass
class Scripted:
    status: int = 200
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)


class FakeOAuth:
    def __init__(self, token: str) -> None:
        self.token = token
        self.answers: deque[Scripted] = deque()
        #: answered when nothing is scripted
        self.default = Scripted(200, {"five_hour": {"utilization": 10.0, "resets_at": None}})
        self.requests: list[dict[str, Any]] = []
        self.app = Starlette(routes=[Route("/api/oauth/usage", self.usage, methods=["GET"])])

    def script(self, status: int = 200, body: Any = None, **headers: str) -> None:
        self.answers.append(Scripted(status, body, {k.replace("_", "-"): v for k, v in headers.items()}))

    async def usage(self, request: Request) -> Response:
        self.requests.append({"path": request.url.path, "headers": dict(request.headers)})
        if request.headers.get("authorization") != f"Bearer {self.token}":
            return JSONResponse({"type": "error", "error": {"type": "authentication_error",
                                                           "message": "OAuth token has expired"}}, 401)
        if request.headers.get("anthropic-beta") != "oauth-2025-04-20":
            return JSONResponse({"type": "error", "error": {"type": "invalid_request_error"}}, 400)
        answer = self.answers.popleft() if self.answers else self.default
        if answer.status != 200:
            return JSONResponse({"type": "error", "error": {"type": "rate_limit_error" if answer.status == 429 else
                                                           "error", "message": "scripted"}},
                                answer.status, headers=answer.headers)
        return JSONResponse(answer.body, 200, headers=answer.headers)


class FakeServer:
    def __init__(self, fake: FakeOAuth) -> None:
        self.fake = fake
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.server = uvicorn.Server(uvicorn.Config(fake.app, log_level="warning", access_log=False, lifespan="off"))
        self.server.install_signal_handlers = lambda: None  # type: ignore[method-assign]
        self.thread = threading.Thread(target=lambda: asyncio.run(self.server.serve(sockets=[self.sock])), daemon=True)

    def start(self) -> FakeServer:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if time.monotonic() > deadline:
                raise TimeoutError("fake OAuth endpoint did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)
