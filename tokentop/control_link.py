"""Let tokentop pause, resume and stop an agent that runs inside a bigger process (cannot be signalled).

    from tokentop.control_link import ControlLink

    link = ControlLink(session="my-session").start()   # feed from TOKENTOP_FEED, else 127.0.0.1:7411
    while not link.stop_requested:
        link.wait_if_paused()                            # blocks while tokentop has the session paused
        call_the_model()
    link.close()

A background thread keeps a WebSocket to the feed's ``/v1/publish``, announces the session
(``{"type": "hello", "session": ...}``), and answers each control message (``pause`` / ``resume`` /
``stop``) with a ``control_ack`` once the optional callbacks ran. It reconnects with backoff and
never raises into the agent. Protocol: ``docs/control.md``.
"""

from __future__ import annotations

import json
import os
import threading
from typing import Any, Callable

__all__ = ["ControlLink"]

DEFAULT_FEED = "http://127.0.0.1:7411"
Callback = Callable[[], object]


class ControlLink:
    def __init__(
        self,
        session: str | None = None,
        *,
        feed: str | None = None,
        on_pause: Callback | None = None,
        on_resume: Callback | None = None,
        on_stop: Callback | None = None,
        retry_s: float = 1.0,
        token: str | None = None,
    ) -> None:
        self.session = session or os.environ.get("TOKENTOP_SESSION")
        if not self.session:
            raise ValueError("ControlLink needs a session id (argument or TOKENTOP_SESSION)")
        self.feed = (feed or os.environ.get("TOKENTOP_FEED") or DEFAULT_FEED).rstrip("/")
        self.callbacks = {"pause": on_pause, "resume": on_resume, "stop": on_stop}
        self.retry_s = retry_s
        #: the local token, needed only when the feed sets ``[feed] ingest_requires_token``
        self._headers = {"Authorization": f"Bearer {token}"} if token else None
        self._running = threading.Event()
        self._running.set()
        self._closing = threading.Event()
        self._connected = threading.Event()
        self.stop_requested = False
        self.messages_handled = 0
        self.last_error: str | None = None
        self._ws: Any = None
        self._thread: threading.Thread | None = None

    # -- for the agent -----------------------------------------------------------------------------
    @property
    def paused(self) -> bool:
        return not self._running.is_set()

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    def wait_connected(self, timeout_s: float = 5.0) -> bool:
        return self._connected.wait(timeout_s)

    def wait_if_paused(self, timeout_s: float | None = None) -> bool:
        """Block while paused. True when free to go on (also once a stop is requested)."""
        return self._running.wait(timeout_s)

    def start(self) -> ControlLink:
        self._thread = threading.Thread(target=self._run, name="tokentop-control-link", daemon=True)
        self._thread.start()
        return self

    def close(self, timeout_s: float = 2.0) -> None:
        self._closing.set()
        ws = self._ws
        if ws is not None:
            try:
                ws.close()
            except Exception:
                pass
        if self._thread is not None:
            self._thread.join(timeout_s)

    def __enter__(self) -> ControlLink:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- the thread --------------------------------------------------------------------------------
    def _connect(self) -> Any:
        from websockets.sync.client import connect, unix_connect

        if self.feed.startswith("unix:"):
            return unix_connect(self.feed[5:], "ws://tokentop/v1/publish", open_timeout=5,
                                additional_headers=self._headers)
        base = self.feed
        url = ("wss://" + base[8:] if base.startswith("https://") else "ws://" + base.removeprefix("http://"))
        return connect(url + "/v1/publish", open_timeout=5, additional_headers=self._headers)

    def _run(self) -> None:
        delay = self.retry_s
        while not self._closing.is_set():
            try:
                with self._connect() as ws:
                    self._ws = ws
                    ws.send(json.dumps({"type": "hello", "session": self.session}))
                    for raw in ws:
                        msg = json.loads(raw)
                        kind = msg.get("type")
                        if kind == "hello_ack":
                            self._connected.set()
                            delay = self.retry_s
                        elif kind == "control" and msg.get("session") == self.session:
                            ws.send(json.dumps(self._handle(msg)))
            except Exception as exc:  # feed down, connection dropped: retry, never raise into the agent
                self.last_error = str(exc) or type(exc).__name__
            finally:
                self._ws = None
                self._connected.clear()
            if self._closing.wait(delay):
                break
            delay = min(delay * 2, 10.0)

    def _handle(self, msg: dict[str, Any]) -> dict[str, Any]:
        action = msg.get("action")
        ack: dict[str, Any] = {"type": "control_ack", "id": msg.get("id"), "session": self.session}
        if action not in self.callbacks:
            return dict(ack, ok=False, message=f"unknown action {action!r}")
        callback = self.callbacks[action]
        try:
            if callback is not None:
                callback()
        except Exception as exc:
            return dict(ack, ok=False, message=f"the agent's {action} handler failed: {exc}")
        if action == "pause":
            self._running.clear()
        elif action == "resume":
            self._running.set()
        else:
            self.stop_requested = True
            self._running.set()  # let a paused agent run to its stop check
        self.messages_handled += 1
        return dict(ack, ok=True, message={"pause": "paused", "resume": "resumed", "stop": "stopping"}[action])
