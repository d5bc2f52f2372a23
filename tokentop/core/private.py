"""Private files and directories: what tokentop stores about your agents is readable by you alone.

The ledger (every request: agents, projects, sessions, spend), its ``-wal``/``-shm`` files, the
backups a schema upgrade writes, and the local token are created mode 0600; the directories tokentop
creates for them are 0700. An existing file of tokentop's with a wider mode is tightened to 0600
(logged), and so is an existing directory of tokentop's own (the data, state and config dirs),
when it belongs to this user; a directory that is not tokentop's own (a ledger
configured into ``~``) is never changed, and one tokentop cannot change is only warned about.
"""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path
from typing import Final

log = logging.getLogger("tokentop")

PRIVATE_FILE: Final = 0o600
PRIVATE_DIR: Final = 0o700


def own_dirs() -> set[Path]:
    """tokentop's own directories: the data, state and config dirs (after env overrides)."""
    from tokentop.config import config_dir, data_dir, state_dir  # here: the config imports core modules

    return {config_dir(), data_dir(), state_dir()}


def tighten(path: Path, mode: int) -> bool:
    """Remove every permission bit outside ``mode`` from ``path`` when it belongs to this user
    (logged); warn when it has such bits but cannot be changed. True when it was changed."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return False
    current = stat.S_IMODE(st.st_mode)
    if not current & ~mode & 0o777:
        return False
    if hasattr(os, "getuid") and st.st_uid != os.getuid():
        log.warning("%s is readable by others (mode %o) and belongs to another user: tokentop cannot make it "
                    "private", path, current)
        return False
    try:
        os.chmod(path, current & mode)
    except OSError as exc:
        log.warning("%s is readable by others (mode %o) and could not be made private: %s", path, current, exc)
        return False
    log.warning("made %s private: mode %o -> %o (tokentop's files are readable by you alone)",
                path, current, current & mode)
    return True


def private_dir(path: Path, *, own: bool | None = None) -> None:
    """Make sure ``path`` exists; created 0700 (missing parents get the usual mode). An existing
    directory is tightened to 0700 only when it is tokentop's own (``own``; default: one of
    :func:`own_dirs`)."""
    try:
        path.mkdir(parents=True, mode=PRIVATE_DIR)
        return
    except FileExistsError:
        pass
    if own is None:
        own = path.resolve() in {d.resolve() for d in own_dirs()}
    if own:
        tighten(path, PRIVATE_DIR)


def private_file(path: Path) -> None:
    """Create ``path`` (empty) with mode 0600 if it is missing, else tighten it to 0600."""
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_FILE))
    except FileExistsError:
        tighten(path, PRIVATE_FILE)


def private_sqlite(path: Path) -> None:
    """A SQLite file and its companions before SQLite opens them: the directory, the database
    (SQLite creates ``-wal``, ``-shm`` and ``-journal`` with the database's mode), and companions
    left by an earlier run with a wider mode."""
    private_dir(path.parent)
    private_file(path)
    for suffix in ("-wal", "-shm", "-journal"):
        tighten(Path(f"{path}{suffix}"), PRIVATE_FILE)
