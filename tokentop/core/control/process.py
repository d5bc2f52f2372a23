"""Process identity and the only code in tokentop that sends signals.

A session's process is recorded as a :class:`ProcessIdentity` (pid + create time + uid). Before any
signal, :func:`verify` re-reads the live process and refuses — with a :class:`Refused` naming the
rule — when:

* the pid is <= 1 (init, the kernel, "every process") or a kernel thread;
* it is tokentop itself or one of its ancestors (the shell, the terminal, the session leader);
* it belongs to another user (even when tokentop runs as root);
* it no longer exists, or the pid now belongs to another process (a different create time: the pid
  was recycled), or its uid differs from the one recorded.

Signals go to the process group when the process leads its own group (``tokentop run`` makes sure
it does) and that group does not contain tokentop; otherwise to the pid alone.
"""

from __future__ import annotations

import asyncio
import os
import signal as _signal
import time
from dataclasses import dataclass
from typing import Any, Callable, Final, Mapping

import psutil

#: Two readings of one process's create time agree to well within this (seconds).
CREATE_TIME_TOLERANCE_S: Final = 0.05
#: Signals a caller may name for terminate/kill; anything else is refused.
ALLOWED_SIGNALS: Final = {"TERM": _signal.SIGTERM, "INT": _signal.SIGINT, "HUP": _signal.SIGHUP,
                          "QUIT": _signal.SIGQUIT, "KILL": _signal.SIGKILL}


class Refused(Exception):
    """The action was not attempted. ``code`` is machine-readable, ``reason`` says why to a human."""

    def __init__(self, code: str, reason: str) -> None:
        self.code = code
        self.reason = reason
        super().__init__(reason)


@dataclass(frozen=True, slots=True)
class ProcessIdentity:
    """Who a session's process is: what must still hold before tokentop signals it."""

    pid: int
    create_time: float
    uid: int
    cmd: str = ""
    cwd: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"pid": self.pid, "create_time": self.create_time, "uid": self.uid, "cmd": self.cmd, "cwd": self.cwd}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ProcessIdentity:
        """Validate a record (e.g. the body of ``POST /v1/sessions/{id}/process``); ``ValueError`` names the field."""
        pid = data.get("pid")
        if isinstance(pid, bool) or not isinstance(pid, int) or pid <= 0:
            raise ValueError(f"pid must be a positive integer, got {pid!r}")
        create_time = data.get("create_time")
        if isinstance(create_time, bool) or not isinstance(create_time, (int, float)) or create_time <= 0:
            raise ValueError(f"create_time must be the process start time in epoch seconds, got {create_time!r}")
        uid = data.get("uid")
        if isinstance(uid, bool) or not isinstance(uid, int) or uid < 0:
            raise ValueError(f"uid must be a non-negative integer, got {uid!r}")
        cmd = data.get("cmd") or ""
        if not isinstance(cmd, str):
            raise ValueError("cmd must be a string")
        cwd = data.get("cwd")
        if cwd is not None and not isinstance(cwd, str):
            raise ValueError("cwd must be a string")
        return cls(pid, float(create_time), uid, cmd[:1024], cwd)


def identify(pid: int) -> ProcessIdentity:
    """The identity of the live process ``pid`` now. ``Refused('gone')`` when there is none."""
    if pid <= 0:
        raise Refused("pid_invalid", f"pid {pid} is not a process")
    try:
        proc = psutil.Process(pid)
        with proc.oneshot():
            create_time = proc.create_time()
            uid = proc.uids().real
            try:
                cmd = " ".join(proc.cmdline()) or proc.name()
            except (psutil.AccessDenied, psutil.ZombieProcess):
                cmd = proc.name()
            try:
                cwd: str | None = proc.cwd()
            except (psutil.AccessDenied, psutil.ZombieProcess, OSError):
                cwd = None
    except psutil.NoSuchProcess:
        raise Refused("gone", f"process {pid} is not running") from None
    except psutil.AccessDenied:
        raise Refused("no_permission", f"process {pid} cannot be inspected (permission denied)") from None
    return ProcessIdentity(pid, create_time, uid, cmd[:1024], cwd)


def protected_pids() -> set[int]:
    """tokentop's own pid and all its ancestors: never signalled."""
    me = psutil.Process()
    pids = {me.pid}
    try:
        pids.update(p.pid for p in me.parents())
    except psutil.Error:
        pass
    return pids


def verify(recorded: ProcessIdentity, *, my_uid: int | None = None) -> psutil.Process:
    """Check every refusal rule against the live process; return it when ``recorded`` may be signalled."""
    pid = recorded.pid
    if pid <= 1:
        raise Refused("pid_invalid", f"refusing pid {pid}: pids <= 1 are init or mean 'every process'")
    if pid in protected_pids():
        what = "tokentop itself" if pid == os.getpid() else "an ancestor of tokentop (its shell or terminal)"
        raise Refused("protected", f"refusing pid {pid}: it is {what}")
    my_uid = os.getuid() if my_uid is None else my_uid
    if recorded.uid != my_uid:
        raise Refused("other_user", f"refusing pid {pid}: it was recorded as uid {recorded.uid}, not yours ({my_uid})")
    try:
        proc = psutil.Process(pid)
        with proc.oneshot():
            create_time = proc.create_time()
            uid = proc.uids().real
            ppid = proc.ppid()
            status = proc.status()
    except psutil.NoSuchProcess:
        raise Refused("gone", f"process {pid} has already exited") from None
    except psutil.AccessDenied:
        raise Refused("no_permission", f"refusing pid {pid}: permission denied reading it") from None
    if abs(create_time - recorded.create_time) > CREATE_TIME_TOLERANCE_S:
        raise Refused(
            "recycled",
            f"refusing pid {pid}: it started at {_fmt_time(create_time)}, not {_fmt_time(recorded.create_time)} "
            "as recorded — the pid now belongs to a different process",
        )
    if uid != my_uid:
        raise Refused("other_user", f"refusing pid {pid}: it belongs to uid {uid}, not to you (uid {my_uid})")
    if uid != recorded.uid:
        raise Refused("identity", f"refusing pid {pid}: its uid {uid} differs from the recorded {recorded.uid}")
    if pid == 2 or ppid == 2:
        raise Refused("pid_invalid", f"refusing pid {pid}: it is a kernel thread")
    if status == psutil.STATUS_ZOMBIE:
        raise Refused("gone", f"process {pid} has already exited (zombie, waiting for its parent)")
    return proc


def _fmt_time(ts: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ts)) + f".{int((ts % 1) * 100):02d}"


def signal_target(pid: int) -> tuple[str, int]:
    """("group", pgid) when the process leads a group tokentop is not in, else ("pid", pid)."""
    try:
        pgid = os.getpgid(pid)
    except ProcessLookupError:
        return ("pid", pid)
    if pgid == pid and pgid != os.getpgrp() and pgid > 1:
        return ("group", pgid)
    return ("pid", pid)


def send(recorded: ProcessIdentity, sig: int) -> str:
    """Verify, then send ``sig`` to the process group (or pid). Returns what was signalled."""
    verify(recorded)
    kind, target = signal_target(recorded.pid)
    try:
        if kind == "group":
            os.killpg(target, sig)
        else:
            os.kill(target, sig)
    except ProcessLookupError:
        raise Refused("gone", f"process {recorded.pid} exited before the signal") from None
    except PermissionError:
        raise Refused("no_permission", f"the system refused to signal pid {recorded.pid} (permission denied)") from None
    name = _signal.Signals(sig).name
    return f"{name} sent to process group {target}" if kind == "group" else f"{name} sent to pid {target}"


def alive(recorded: ProcessIdentity) -> bool:
    """Still the recorded process, and not a zombie."""
    try:
        proc = psutil.Process(recorded.pid)
        if abs(proc.create_time() - recorded.create_time) > CREATE_TIME_TOLERANCE_S:
            return False
        return proc.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def status(recorded: ProcessIdentity) -> str | None:
    """psutil status ('running', 'sleeping', 'stopped', ...) of the recorded process, ``None`` if gone."""
    try:
        proc = psutil.Process(recorded.pid)
        if abs(proc.create_time() - recorded.create_time) > CREATE_TIME_TOLERANCE_S:
            return None
        return proc.status()
    except psutil.Error:
        return None


def pause(recorded: ProcessIdentity) -> str:
    return send(recorded, _signal.SIGSTOP)


def resume(recorded: ProcessIdentity) -> str:
    return send(recorded, _signal.SIGCONT)


def parse_signal(name: str | None, default: str) -> tuple[str, int]:
    """``"TERM"``/``"SIGTERM"``/``"15"`` → ("TERM", 15); unknown names → ``Refused('bad_signal')``."""
    raw = (name or default).strip().upper()
    if raw.startswith("SIG"):
        raw = raw[3:]
    if raw.isdigit():
        for key, value in ALLOWED_SIGNALS.items():
            if int(value) == int(raw):
                return key, int(value)
    if raw in ALLOWED_SIGNALS:
        return raw, int(ALLOWED_SIGNALS[raw])
    raise Refused("bad_signal", f"signal {name!r} is not allowed; use one of {', '.join(ALLOWED_SIGNALS)}")


async def terminate(
    recorded: ProcessIdentity,
    *,
    sig: int = _signal.SIGTERM,
    grace_s: float = 5.0,
    poll_s: float = 0.05,
    sleep: Callable[[float], Any] = asyncio.sleep,
) -> str:
    """Send ``sig`` (and SIGCONT, so a paused process can act on it); SIGKILL after ``grace_s`` if alive.

    The identity is re-checked before the SIGKILL: a process that exited and whose pid was reused
    during the grace period is never killed.
    """
    said = send(recorded, sig)
    if sig == _signal.SIGKILL:
        return said
    try:
        send(recorded, _signal.SIGCONT)
    except Refused:
        pass
    waited = 0.0
    while waited < grace_s:
        if not alive(recorded):
            return f"{said}; exited after {waited:.1f} s"
        await sleep(poll_s)
        waited += poll_s
    if not alive(recorded):
        return f"{said}; exited after {waited:.1f} s"
    try:
        send(recorded, _signal.SIGKILL)
    except Refused as exc:
        if exc.code == "gone":
            return f"{said}; exited after {waited:.1f} s"
        raise
    return f"{said}; still alive after {grace_s:g} s grace, so SIGKILL sent"
