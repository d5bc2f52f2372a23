"""Best-effort: which running agent process (``claude``, ``codex``, ``opencode``, ``gemini``, ...)
could be behind a session seen only in its agent's logs.

A process qualifies when it is the user's, its name (or its command's first words) names the
session's agent, it started before the session's first request, and its working directory is the
session's project (the full path, or a directory of that name). One match is offered as the plan;
several are listed as candidates and nothing acts until the user picks one.
"""

from __future__ import annotations

import os
from typing import Final, Iterable

import psutil

from tokentop.core.control.port import Candidate

#: Agent name (as events spell it) → process names that run it.
AGENT_PROCESS_NAMES: Final = {
    "claude": ("claude",),
    "claude-code": ("claude",),
    "claude_code": ("claude",),
    "codex": ("codex",),
    "codex-cli": ("codex",),
    "codex_cli": ("codex",),
    # the other agents tokentop reads (tokentop/core/sources/formats.py), by the command that runs them
    "opencode": ("opencode",),
    "kilo": ("kilo", "kilocode"),
    "copilot-cli": ("copilot",),
    "droid": ("droid",),
    "gemini-cli": ("gemini",),
    "qwen-code": ("qwen",),
    "pi": ("pi",),
    "amp": ("amp",),
    "kimi": ("kimi",),
}
#: A process may be reported to start a little after the session's first event (clock skew, rounding).
START_SLACK_S: Final = 2.0
MAX_CANDIDATES: Final = 20


def process_names_for(agent: str | None) -> tuple[str, ...]:
    if not agent:
        return ("claude", "codex")
    key = agent.lower()
    if key in AGENT_PROCESS_NAMES:
        return AGENT_PROCESS_NAMES[key]
    for name in ("claude", "codex"):
        if name in key:
            return (name,)
    return (key,)


def runs_named(names: tuple[str, ...], cmd: str) -> bool:
    """Does a recorded command line (words joined by spaces) run one of ``names``?"""
    return _runs(names, "", cmd.split(" ")[:3])


def _runs(names: tuple[str, ...], pname: str, cmdline: list[str]) -> bool:
    if pname in names:
        return True
    for word in cmdline[:3]:  # node /usr/lib/.../bin/claude ...
        if os.path.basename(word) in names:
            return True
    return False


def cwd_matches(cwd: str | None, project: str | None) -> bool:
    if not project:
        return True
    if not cwd:
        return False
    if project.startswith("/"):
        return os.path.normpath(cwd) == os.path.normpath(project)
    return os.path.basename(os.path.normpath(cwd)) == project


def find_candidates(
    *,
    agent: str | None,
    project: str | None,
    first_seen: float | None,
    exclude: Iterable[int] = (),
    processes: Iterable[psutil.Process] | None = None,
) -> list[Candidate]:
    """Candidate processes for a session, oldest first (see module doc)."""
    names = process_names_for(agent)
    me = os.getuid()
    skip = set(exclude) | {os.getpid()}
    out: list[Candidate] = []
    procs = processes if processes is not None else psutil.process_iter(["pid", "name", "cmdline", "uids", "create_time"])
    for proc in procs:
        try:
            info = proc.info if hasattr(proc, "info") else {}
            pid = info.get("pid", proc.pid)
            if pid <= 1 or pid in skip:
                continue
            uids = info.get("uids") or proc.uids()
            if uids.real != me:
                continue
            pname = (info.get("name") or proc.name() or "").lower()
            cmdline = info.get("cmdline") or []
            if not _runs(names, pname, cmdline):
                continue
            create_time = info.get("create_time") or proc.create_time()
            if first_seen is not None and create_time > first_seen + START_SLACK_S:
                continue
            try:
                cwd: str | None = proc.cwd()
            except (psutil.AccessDenied, OSError):
                cwd = None
            if not cwd_matches(cwd, project):
                continue
            out.append(Candidate(pid=pid, cmd=" ".join(cmdline)[:300] or pname, start_time=create_time, cwd=cwd))
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
        if len(out) >= MAX_CANDIDATES:
            break
    out.sort(key=lambda c: (c.start_time, c.pid))
    return out
