"""Installing ``tokentop statusline`` as Claude Code's statusLine, safely, and undoing it exactly.

``tokentop setup claude-statusline`` edits Claude Code's user settings
(``$CLAUDE_CONFIG_DIR/settings.json``, else ``~/.claude/settings.json``):

* the file as it was is copied beside itself first (``settings.json.tokentop-backup-<UTC time>``,
  never over an existing file, with the same permissions);
* an existing statusLine command is kept: ours runs it with the same input and prints its output
  after our line (``tokentop statusline --chain '<their command>'``); its other keys
  (``padding``, ``refreshInterval``, ...) are kept as they were;
* the new file is valid JSON (checked by reading it back before it replaces the old one), written
  to a temporary file in the same directory and renamed over the old one (atomic), with the old
  file's permissions;
* what was done is recorded in tokentop's state dir, so ``--undo`` puts back the file byte for
  byte — or, when settings.json was edited since, only the ``statusLine`` entry as it was, keeping
  the other edits.

A settings file that is not valid JSON (or not an object) is refused untouched.
"""

from __future__ import annotations

import hashlib
import json
import os
import shlex
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Mapping

SETTINGS_FILE: Final = "settings.json"
#: what marks a statusLine command as ours (``tokentop statusline`` or the installed launcher)
MARK: Final = "statusline"


class InstallError(Exception):
    """Nothing was changed; the message says why and what to do."""


def claude_dir(explicit: str | None = None, env: Mapping[str, str] | None = None) -> Path:
    """Claude Code's config dir: ``explicit``, else the first of ``$CLAUDE_CONFIG_DIR``, else ``~/.claude``."""
    env = os.environ if env is None else env
    raw = explicit or env.get("CLAUDE_CONFIG_DIR", "").split(",")[0].strip()
    if raw:
        return Path(raw).expanduser()
    return Path(env.get("HOME") or Path.home()) / ".claude"


def is_ours(status_line: object) -> bool:
    command = status_line.get("command") if isinstance(status_line, dict) else None
    return isinstance(command, str) and "tokentop" in command and MARK in command


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _state_file(state_dir: Path, settings: Path) -> Path:
    return state_dir / f"claude-statusline-{_sha(str(settings.resolve()).encode())[:12]}.json"


def _read_settings(path: Path) -> tuple[bytes | None, dict[str, Any]]:
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return None, {}
    except OSError as exc:
        raise InstallError(f"cannot read {path}: {exc.strerror or exc}") from None
    if not raw.strip():
        return raw, {}
    try:
        data = json.loads(raw)
    except ValueError as exc:
        raise InstallError(f"{path} is not valid JSON ({exc}); fix it first — nothing was changed") from None
    if not isinstance(data, dict):
        raise InstallError(f"{path} holds a JSON {type(data).__name__}, not an object; nothing was changed")
    return raw, data


def write_atomic(path: Path, data: bytes, mode: int | None = None) -> None:
    """Write ``data`` to ``path`` through a temporary file in the same directory and a rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        if mode is not None:
            os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def _backup(path: Path, raw: bytes, mode: int, now: float) -> Path:
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(now))
    target = path.with_name(f"{path.name}.tokentop-backup-{stamp}")
    n = 2
    while True:
        try:
            fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
            break
        except FileExistsError:
            target = path.with_name(f"{path.name}.tokentop-backup-{stamp}-{n}")
            n += 1
    with os.fdopen(fd, "wb") as fh:
        fh.write(raw)
    return target


def render(data: Mapping[str, Any]) -> bytes:
    text = json.dumps(data, indent=2, ensure_ascii=False) + "\n"
    json.loads(text)  # valid JSON, or nothing is written
    return text.encode("utf-8")


@dataclass(frozen=True)
class Installed:
    settings: Path
    command: str
    #: the previous statusLine command now chained after ours (``None``: there was none)
    chained: str | None
    backup: Path | None
    already: bool = False


def install(directory: Path, state_dir: Path, *, command: str, now: float | None = None) -> Installed:
    """Make ``command`` (how ``tokentop statusline`` is started) Claude Code's statusLine (see the
    module's rules)."""
    now = time.time() if now is None else now
    settings = directory / SETTINGS_FILE
    raw, data = _read_settings(settings)
    existing = data.get("statusLine")
    if is_ours(existing):
        return Installed(settings, existing["command"], None, None, already=True)  # type: ignore[index]
    chained: str | None = None
    keep: dict[str, Any] = {}
    if existing is not None:
        if not isinstance(existing, dict) or existing.get("type", "command") != "command" \
                or not isinstance(existing.get("command"), str):
            raise InstallError(f"{settings} has a statusLine tokentop cannot chain ({json.dumps(existing)[:120]}); "
                               f"remove it or make it a command, then run this again — nothing was changed")
        chained = existing["command"]
        keep = {k: v for k, v in existing.items() if k not in ("type", "command")}
    ours = command
    if chained:
        ours += f" --chain {shlex.quote(chained)}"
    new = dict(data)
    new["statusLine"] = {"type": "command", "command": ours, **({"padding": 0} if not keep else keep)}
    body = render(new)
    mode = 0o600
    backup = None
    if raw is not None:
        mode = settings.stat().st_mode & 0o777
        backup = _backup(settings, raw, mode, now)
    state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    record = {"v": 1, "settings": str(settings), "backup": str(backup) if backup else None,
              "existed": raw is not None, "original_sha256": _sha(raw) if raw is not None else None,
              "written_sha256": _sha(body), "previous": existing, "installed_at": now}
    write_atomic(_state_file(state_dir, settings), (json.dumps(record, indent=2) + "\n").encode(), 0o600)
    write_atomic(settings, body, mode)
    return Installed(settings, ours, chained, backup)


@dataclass(frozen=True)
class Undone:
    settings: Path
    #: ``exact`` (the file as it was, byte for byte), ``removed`` (there was no file before),
    #: ``entry`` (settings.json changed since: only the statusLine entry put back), ``left`` (the
    #: statusLine is no longer ours: left alone)
    how: str
    backup: Path | None


def undo(directory: Path, state_dir: Path) -> Undone:
    """Put Claude Code's statusLine back as it was before :func:`install`."""
    settings = directory / SETTINGS_FILE
    record_path = _state_file(state_dir, settings)
    try:
        record = json.loads(record_path.read_bytes())
    except FileNotFoundError:
        raise InstallError(f"tokentop did not install a statusLine into {settings} (no record in {state_dir}); "
                           f"nothing to undo") from None
    except ValueError:
        raise InstallError(f"the install record {record_path} is unreadable; restore {settings} by hand from its "
                           f"*.tokentop-backup-* copy") from None
    backup = Path(record["backup"]) if record.get("backup") else None
    try:
        current: bytes | None = settings.read_bytes()
    except FileNotFoundError:
        current = None
    if current is not None and _sha(current) == record.get("written_sha256"):
        # untouched since install: the file as it was, byte for byte
        mode = settings.stat().st_mode & 0o777
        if not record.get("existed"):
            settings.unlink()
            how = "removed"
        else:
            if backup is None or not backup.is_file():
                raise InstallError(f"the backup {backup} is gone; {settings} was left as it is")
            original = backup.read_bytes()
            if _sha(original) != record.get("original_sha256"):
                raise InstallError(f"the backup {backup} changed since install; {settings} was left as it is")
            write_atomic(settings, original, mode)
            how = "exact"
    else:
        raw, data = _read_settings(settings)
        if not is_ours(data.get("statusLine")):
            how = "left"
        else:
            previous = record.get("previous")
            if previous is None:
                data.pop("statusLine", None)
            else:
                data["statusLine"] = previous
            mode = settings.stat().st_mode & 0o777
            write_atomic(settings, render(data), mode)
            how = "entry"
    record_path.unlink()
    return Undone(settings, how, backup)
