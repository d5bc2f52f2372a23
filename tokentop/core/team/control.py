"""Control across hosts: kill/pause/resume of a session on another host, over NATS request/reply.

The requester sends a signed request to ``tokentop.control.<host>``; the host's
:class:`ControlResponder` checks it and, only then, hands it to the host's own
:class:`~tokentop.core.control.port.Controller` — the same code, identity checks, refusals and audit
as a local key press — and answers with the :class:`Outcome`.

Trust model (docs/team.md): a host acts on a remote request only when

1. its config says ``[nats] allow_remote_control = true`` (off by default), and
2. the request is signed (HMAC-SHA256) with the fleet's shared secret, read on both ends from a
   file that only its owner can read (mode 0600, owned by the user running tokentop), and
3. the request is fresh (its timestamp within ``MAX_SKEW_S`` of the host's clock) and not a replay
   of a request already seen (nonce).

The secret never travels: only the MAC does, so anyone who can read NATS traffic still cannot
forge or alter a request, and a captured one cannot be replayed. Answers are signed too, so the
requester knows the outcome came from a holder of the secret. Anything else is refused with a
reason, and the reason never contains the secret.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import os
import secrets
import stat
import time
from pathlib import Path
from typing import Any, Callable, Final

import nats
from nats.aio.msg import Msg

from tokentop.core.control.port import ACTIONS, Controller, Outcome, Plan, Target
from tokentop.core.team.settings import NatsSettings, control_subject

log = logging.getLogger("tokentop.team")

PROTOCOL: Final = 1
MAX_SKEW_S: Final = 60.0
MIN_SECRET_BYTES: Final = 16

class SecretError(ValueError):
    """The fleet secret file is missing, unsafe or empty (the message says which; never the secret)."""


def load_secret(path: str | os.PathLike[str]) -> bytes:
    if not str(path):
        raise SecretError("no fleet secret file configured ([nats] control_secret_file)")
    p = Path(path).expanduser()
    try:
        st = p.stat()
    except OSError as exc:
        raise SecretError(f"cannot read the fleet secret file {p}: {exc.strerror or exc}") from None
    if not stat.S_ISREG(st.st_mode):
        raise SecretError(f"the fleet secret file {p} is not a regular file")
    if hasattr(os, "getuid") and st.st_uid != os.getuid():
        raise SecretError(f"the fleet secret file {p} is not owned by this user")
    if st.st_mode & 0o077:
        raise SecretError(f"the fleet secret file {p} is readable by others (mode {stat.S_IMODE(st.st_mode):o}); chmod 600 it")
    data = p.read_bytes().strip()
    if len(data) < MIN_SECRET_BYTES:
        raise SecretError(f"the fleet secret in {p} is shorter than {MIN_SECRET_BYTES} bytes")
    return data


def create_secret(path: str | os.PathLike[str]) -> Path:
    """Write a new random fleet secret (mode 0600). Copy the file to every host of the fleet."""
    p = Path(path).expanduser()
    p.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(secrets.token_hex(32) + "\n")
    return p


def _mac(secret: bytes, body: str) -> str:
    return hmac.new(secret, body.encode(), hashlib.sha256).hexdigest()


def sign(secret: bytes, body: dict[str, Any]) -> bytes:
    text = json.dumps(body, separators=(",", ":"), sort_keys=True)
    return json.dumps({"body": text, "mac": _mac(secret, text)}).encode()


def _open(data: bytes, secret: bytes | None) -> tuple[dict[str, Any], bool]:
    """(body, signature valid). Raises ValueError for something that is not an envelope."""
    env = json.loads(data)
    if not isinstance(env, dict) or not isinstance(env.get("body"), str):
        raise ValueError("not a tokentop control message")
    body = json.loads(env["body"])
    if not isinstance(body, dict):
        raise ValueError("not a tokentop control message")
    mac = env.get("mac")
    ok = secret is not None and isinstance(mac, str) and hmac.compare_digest(mac, _mac(secret, env["body"]))
    return body, ok


class ControlResponder:
    """Answers control requests for this host on ``tokentop.control.<host>``.

    ``controller_for(origin)`` is the host's own :class:`Controller` for a request from ``origin``
    (``nats:<requester>``, which its audit records): the feed's control service, as a local key
    press would use it."""

    def __init__(self, settings: NatsSettings, host: str, controller_for: Callable[[str], Controller],
                 *, clock: Callable[[], float] = time.time) -> None:
        self.settings = settings
        self.host = host
        self.subject = control_subject(host)
        self.controller_for = controller_for
        self.clock = clock
        self._nonces: dict[str, float] = {}
        self.answered = 0
        self.refused = 0

    async def run(self) -> None:
        nc = None
        while nc is None:
            try:
                nc = await nats.connect(**self.settings.connect_options(), name=f"tokentop-control-{self.host}")
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - NATS down at start: keep trying
                log.debug("control responder cannot connect yet: %s", exc)
                await asyncio.sleep(1.0)
        try:
            await nc.subscribe(self.subject, cb=self._on_request)
            await asyncio.Event().wait()
        finally:
            try:
                await asyncio.wait_for(nc.close(), 2)
            except (Exception, asyncio.TimeoutError):  # noqa: BLE001
                pass

    async def _on_request(self, msg: Msg) -> None:
        if not msg.reply:
            return
        reply, secret = await self.handle(msg.data)
        try:
            await msg.respond(sign(secret, reply) if secret else json.dumps({"body": json.dumps(reply)}).encode())
        except Exception as exc:  # noqa: BLE001 - the requester went away
            log.debug("control reply not sent: %s", exc)

    async def handle(self, data: bytes) -> tuple[dict[str, Any], bytes | None]:
        """The answer to one request and the secret to sign it with (None: unsigned refusal)."""

        def refuse(reason: str, session: Any = None, action: Any = None, key: bytes | None = None) -> tuple[dict[str, Any], bytes | None]:
            self.refused += 1
            log.warning("refused remote control on %s: %s", self.host, reason)
            return ({"v": PROTOCOL, "host": self.host, "session": session, "action": action, "ok": False,
                     "message": f"host {self.host} refused: {reason}", "refused": True}, key)

        if not self.settings.allow_remote_control:
            return refuse("remote control is off on this host ([nats] allow_remote_control = false)")
        try:
            secret = load_secret(self.settings.control_secret_file)
        except SecretError as exc:
            log.warning("remote control: %s", exc)
            return refuse("this host has no usable fleet secret file (see its log)")
        try:
            body, valid = _open(data, secret)
        except (ValueError, UnicodeDecodeError):
            return refuse("the request is not a tokentop control message")
        session, action = body.get("session"), body.get("action")
        if not valid:
            return refuse("the request is not signed with the fleet secret", session, action)
        now = self.clock()
        ts, nonce = body.get("ts"), body.get("nonce")
        if not isinstance(ts, (int, float)) or abs(now - ts) > MAX_SKEW_S:
            return refuse(f"the request is stale or from the future (more than {MAX_SKEW_S:.0f} s off this host's clock)",
                          session, action, secret)
        self._nonces = {n: t for n, t in self._nonces.items() if now - t <= 2 * MAX_SKEW_S}
        if not isinstance(nonce, str) or nonce in self._nonces:
            return refuse("the request was already used (replay)", session, action, secret)
        self._nonces[nonce] = now
        if body.get("host") != self.host:
            return refuse(f"the request is for host {body.get('host')!r}", session, action, secret)
        if action not in ACTIONS or not isinstance(session, str) or not session:
            return refuse(f"unknown action {action!r} or no session", session, action, secret)
        pid, sig = body.get("pid"), body.get("signal")
        if pid is not None and (not isinstance(pid, int) or isinstance(pid, bool)):
            return refuse("pid must be an integer", session, action, secret)
        t = body.get("target") if isinstance(body.get("target"), dict) else {}
        target = Target(session=session, agent=t.get("agent"), model=t.get("model"), pid=t.get("pid") if isinstance(t.get("pid"), int) else pid,
                        host=self.host, cmd=t.get("cmd"))
        try:
            requester = body.get("from") if isinstance(body.get("from"), str) else "?"
            controller = self.controller_for(f"nats:{requester[:64]}")
            outcome = await controller.act(target, action, pid=pid, signal=sig if isinstance(sig, str) else None)
        except Exception as exc:  # noqa: BLE001 - the controller's failure is the answer, not a crash
            log.exception("controller failed on a remote %s of %s", action, session)
            outcome = Outcome(session, action, False, f"the control layer failed: {type(exc).__name__}")
        self.answered += 1
        log.info("remote %s of session %s from %s on %s: %s", action, session, body.get("from"), self.host,
                 "done" if outcome.ok else outcome.message)
        return ({"v": PROTOCOL, "host": self.host, "session": outcome.session, "action": outcome.action,
                 "ok": outcome.ok, "message": outcome.message}, secret)


class RemoteController:
    """A :class:`Controller` for sessions on other hosts: asks the session's host over NATS.

    ``local`` (the host's own controller) handles targets on ``local_host`` or without a host.
    """

    def __init__(self, settings: NatsSettings, *, local: Controller | None = None, local_host: str | None = None,
                 requester: str = "", clock: Callable[[], float] = time.time) -> None:
        self.settings = settings
        self.local = local
        self.local_host = local_host
        self.requester = requester
        self.clock = clock

    def _is_local(self, target: Target) -> bool:
        return self.local is not None and (target.host is None or target.host == self.local_host)

    def plan(self, target: Target) -> Plan:
        if self._is_local(target):
            return self.local.plan(target)  # type: ignore[union-attr]
        if not target.host:
            return Plan(target, False, "the session's host is unknown: its events carry no host name")
        try:
            load_secret(self.settings.control_secret_file)  # say so before the user confirms, not after
        except SecretError as exc:
            return Plan(target, False, f"cannot ask host {target.host}: {exc}")
        return Plan(target, True, f"host {target.host} decides, with its own rules", pid=target.pid, cmd=target.cmd)

    async def act(self, target: Target, action: str, *, pid: int | None = None, signal: str | None = None) -> Outcome:  # type: ignore[override]
        if self._is_local(target):
            return await self.local.act(target, action, pid=pid, signal=signal)  # type: ignore[union-attr,arg-type]
        if not target.host:
            return Outcome(target.session, action, False, "the session's host is unknown: its events carry no host name")
        try:
            secret = load_secret(self.settings.control_secret_file)
        except SecretError as exc:
            return Outcome(target.session, action, False, f"cannot ask host {target.host}: {exc}")
        body = {
            "v": PROTOCOL, "host": target.host, "session": target.session, "action": action, "pid": pid,
            "signal": signal, "ts": self.clock(), "nonce": secrets.token_hex(16), "from": self.requester,
            "target": {"agent": target.agent, "model": target.model, "pid": target.pid, "cmd": target.cmd},
        }
        return await request(self.settings, target.host, sign(secret, body), secret, target.session, action)


async def request(settings: NatsSettings, host: str, payload: bytes, secret: bytes | None, session: str, action: str) -> Outcome:
    """Send one control request to ``host`` and turn the answer (or its absence) into an Outcome."""
    timeout = float(settings.control_timeout_s)
    try:
        opts = settings.connect_options()
        opts["allow_reconnect"] = False
        nc = await nats.connect(**opts, name="tokentop-control-client")
    except Exception as exc:  # noqa: BLE001
        return Outcome(session, action, False,
                       f"cannot reach NATS at {settings.redacted_url()}: {type(exc).__name__}: {str(exc)[:200]}")
    try:
        try:
            msg = await nc.request(control_subject(host), payload, timeout=timeout)
        except nats.errors.NoRespondersError:
            return Outcome(session, action, False,
                           f"host {host} is not listening for control (is its feed running with --nats?)")
        except (nats.errors.TimeoutError, asyncio.TimeoutError):
            return Outcome(session, action, False, f"host {host} did not answer within {timeout:.0f} s")
        try:
            body, valid = _open(msg.data, secret)
        except (ValueError, UnicodeDecodeError):
            return Outcome(session, action, False, f"host {host} answered something that is not a control answer")
        message = str(body.get("message") or "")
        if not valid:
            # a refusal before the host checked the secret is unsigned; never take it as success
            return Outcome(session, action, False, message or f"host {host} sent an unsigned answer")
        return Outcome(str(body.get("session") or session), str(body.get("action") or action), bool(body.get("ok")), message)
    finally:
        try:
            await asyncio.wait_for(nc.close(), 2)
        except (Exception, asyncio.TimeoutError):  # noqa: BLE001
            pass

