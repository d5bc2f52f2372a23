"""Controllers (the port the live view talks to) for an embedded feed and for a feed over HTTP.

* :class:`LocalController` wraps the :class:`ControlService` of a feed running in this process: from
  another thread (the UI's), calls hop onto the feed's loop; on the feed's loop (the NATS control
  responder) they run directly.
* :class:`RemoteController` calls the feed's control API with the local token.

Both are also blockers (:class:`~tokentop.core.control.port.Blocker`: the ``b`` key, blocks at the API).
Build the right one with :func:`build_controller`.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import httpx

from tokentop.config import state_dir
from tokentop.core.control.port import (
    Action, BlockTarget, Candidate, Controller, NoController, Outcome, Plan, Target,
)
from tokentop.core.feed.auth import read_token, token_path

if TYPE_CHECKING:
    from tokentop.core.control.service import ControlService
    from tokentop.core.feed.runner import FeedRunner


class LocalController:
    """A feed's control service in this process. With ``runner`` (the embedded feed, used from the
    UI's thread) calls hop onto the feed's loop; without, the caller is on that loop already."""

    def __init__(self, control: ControlService, *, runner: FeedRunner | None = None, origin: str = "ui") -> None:
        self.runner = runner
        self.control = control
        self.origin = origin

    def _feed_loop(self) -> asyncio.AbstractEventLoop | None:
        """The feed's loop when the caller runs on another thread (a hop is needed), else ``None``."""
        loop = self.runner.loop if self.runner is not None else None
        if loop is None or not loop.is_running():
            return None
        try:
            return loop if asyncio.get_running_loop() is not loop else None
        except RuntimeError:
            return loop

    def plan(self, target: Target) -> Plan:
        loop = self._feed_loop()
        if loop is not None:
            async def take() -> Plan:
                return self.control.plan(target)

            return asyncio.run_coroutine_threadsafe(take(), loop).result(30)
        return self.control.plan(target)

    async def act(self, target: Target, action: Action, *, pid: int | None = None, signal: str | None = None) -> Outcome:
        coro = self.control.act(target.session, action, pid=pid, signal=signal, origin=self.origin)
        loop = self._feed_loop()
        if loop is not None:
            result = await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(coro, loop))
        else:
            result = await coro
        return result.outcome

    # -- blocks at the API ----------------------------------------------------------------------------
    def block_unavailable(self) -> str | None:
        return None

    async def block(self, target: BlockTarget, *, message: str | None = None) -> Outcome:
        result = await self._on_feed(self.control.block(target.scope, target.key, origin=self.origin, message=message))
        return Outcome(target.describe(), "block", result.ok, result.message)

    async def unblock(self, target: BlockTarget) -> Outcome:
        result = await self._on_feed(self.control.unblock(target.scope, target.key, origin=self.origin))
        return Outcome(target.describe(), "unblock", result.ok, result.message)

    async def _on_feed(self, coro: Any) -> Any:
        loop = self._feed_loop()
        if loop is not None:
            return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(coro, loop))
        return await coro


class RemoteController:
    """A feed reached over HTTP (or a Unix socket): the control API with the local token."""

    def __init__(self, url: str, token: str, *, timeout_s: float = 5.0, act_timeout_s: float = 60.0, origin: str = "ui") -> None:
        from tokentop.core.feed.client import _async_client_args, _client_args

        self.url = url
        self.token = token
        self.origin = origin
        self._headers = {"authorization": f"Bearer {token}"}
        self._base, self._kwargs = _client_args(url)
        self._abase, self._akwargs_factory = url, _async_client_args
        self.timeout_s = timeout_s
        self.act_timeout_s = act_timeout_s

    @staticmethod
    def _path(session: str, tail: str) -> str:
        return f"/v1/sessions/{quote(session, safe='')}/{tail}"

    def plan(self, target: Target) -> Plan:
        try:
            with httpx.Client(base_url=self._base, headers=self._headers, timeout=self.timeout_s, **self._kwargs) as c:
                r = c.get(self._path(target.session, "plan"))
        except httpx.HTTPError as exc:
            return Plan(target, False, f"the feed at {self.url} did not answer: {exc}")
        if r.status_code != 200:
            return Plan(target, False, f"the feed refused: {_error_text(r)}")
        data = r.json()
        cands = tuple(Candidate(c["pid"], c.get("cmd") or "", float(c.get("start_time") or 0), c.get("cwd"))
                      for c in data.get("candidates") or ())
        return Plan(target, bool(data.get("can_act")), data.get("reason"), pid=data.get("pid"), cmd=data.get("cmd"),
                    candidates=cands)

    async def act(self, target: Target, action: Action, *, pid: int | None = None, signal: str | None = None) -> Outcome:
        body: dict[str, Any] = {"origin": self.origin}
        if pid is not None:
            body["pid"] = pid
        if signal is not None:
            body["signal"] = signal
        elif action == "kill":
            body["signal"] = "KILL"  # the port's "kill" is SIGKILL; the API's bare /kill means TERM first
        base, kwargs = self._akwargs_factory(self.url)
        try:
            async with httpx.AsyncClient(base_url=base, headers=self._headers, timeout=self.act_timeout_s, **kwargs) as c:
                r = await c.post(self._path(target.session, action), json=body)
        except httpx.HTTPError as exc:
            return Outcome(target.session, action, False, f"the feed at {self.url} did not answer: {exc}")
        try:
            data = r.json()
        except ValueError:
            data = {}
        if "ok" in data:
            return Outcome(target.session, action, bool(data["ok"]), str(data.get("message") or ""))
        return Outcome(target.session, action, False, f"the feed refused: {_error_text(r)}")

    # -- blocks at the API ----------------------------------------------------------------------------
    def block_unavailable(self) -> str | None:
        return None

    async def block(self, target: BlockTarget, *, message: str | None = None) -> Outcome:
        body: dict[str, Any] = {"scope": target.scope, "key": target.key, "origin": self.origin}
        if message:
            body["message"] = message
        return await self._block_call("block", target, body)

    async def unblock(self, target: BlockTarget) -> Outcome:
        return await self._block_call("unblock", target, {"scope": target.scope, "key": target.key, "origin": self.origin})

    async def _block_call(self, action: str, target: BlockTarget, body: dict[str, Any]) -> Outcome:
        base, kwargs = self._akwargs_factory(self.url)
        try:
            async with httpx.AsyncClient(base_url=base, headers=self._headers, timeout=self.timeout_s, **kwargs) as c:
                r = await c.post(f"/v1/{action}", json=body)
        except httpx.HTTPError as exc:
            return Outcome(target.describe(), action, False, f"the feed at {self.url} did not answer: {exc}")
        try:
            data = r.json()
        except ValueError:
            data = {}
        if "ok" in data:
            return Outcome(target.describe(), action, bool(data["ok"]), str(data.get("message") or ""))
        return Outcome(target.describe(), action, False, f"the feed refused: {_error_text(r)}")


def _error_text(r: httpx.Response) -> str:
    try:
        return str(r.json().get("error") or r.text)[:300]
    except ValueError:
        return f"HTTP {r.status_code}"


class UnavailableController:
    """No way to act (e.g. no token for a remote feed): every plan says exactly why."""

    def __init__(self, reason: str) -> None:
        self.reason = reason

    def plan(self, target: Target) -> Plan:
        return Plan(target, False, self.reason, pid=target.pid, cmd=target.cmd)

    async def act(self, target: Target, action: Action, *, pid: int | None = None, signal: str | None = None) -> Outcome:
        return Outcome(target.session, action, False, self.reason)

    def block_unavailable(self) -> str | None:
        return self.reason

    async def block(self, target: BlockTarget, *, message: str | None = None) -> Outcome:
        return Outcome(target.describe(), "block", False, self.reason)

    async def unblock(self, target: BlockTarget) -> Outcome:
        return Outcome(target.describe(), "unblock", False, self.reason)


def build_controller(*, runner: FeedRunner | None = None, url: str | None = None, token: str | None = None,
                     origin: str = "ui") -> Controller:
    """The Controller for the live view.

    * ``runner``: an embedded :class:`~tokentop.core.feed.runner.FeedRunner` → acts in-process
      through its control service (a feed without one says so for every plan).
    * ``url``: a feed reached over HTTP/Unix socket → its control API with ``token`` (default: the
      local token file in the state dir). Without a token the controller explains it cannot act.
    """
    if runner is not None:
        control = runner.parts.control
        if control is None:
            return UnavailableController("this feed runs without the control layer")
        return LocalController(control, runner=runner, origin=origin)
    if url is not None:
        if token is None:
            token = read_token(state_dir())
        if not token:
            return UnavailableController(
                f"no local token found (expected in {_token_hint()}): control of the feed at {url} needs it"
            )
        return RemoteController(url, token, origin=origin)
    return NoController()


def _token_hint() -> str:
    return str(token_path(state_dir()))
