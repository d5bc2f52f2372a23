"""The local token: a secret file (mode 0600) in the state dir that control actions require.

Anyone who can read the file is the user (or root); a browser page or another user on the
machine cannot. Compare with :func:`token_matches`, never with ``==``.
"""

from __future__ import annotations

import hmac
import os
import secrets
import stat
from pathlib import Path
from typing import Final, Mapping

from tokentop.core.private import private_dir

TOKEN_FILE: Final = "token"


class TokenError(PermissionError):
    pass


def token_path(state_dir: Path) -> Path:
    return state_dir / TOKEN_FILE


def load_or_create_token(state_dir: Path) -> str:
    """Read the token, creating it (0600, in a 0700 dir) on first use. Refuses a file others can read:
    a secret others could read must be replaced, not just hidden again."""
    private_dir(state_dir)
    path = token_path(state_dir)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        pass
    else:
        with os.fdopen(fd, "w") as fh:
            fh.write(secrets.token_urlsafe(32) + "\n")
    mode = path.stat().st_mode
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise TokenError(f"{path} is readable by other users (mode {stat.filemode(mode)}); run: chmod 600 {path}")
    token = path.read_text(encoding="utf-8").strip()
    if not token:
        raise TokenError(f"{path} is empty; delete it and tokentop will create a new one")
    return token


def read_token(state_dir: Path) -> str | None:
    """The token if the file exists (clients), else ``None``."""
    path = token_path(state_dir)
    try:
        return path.read_text(encoding="utf-8").strip() or None
    except OSError:
        return None


def token_matches(expected: str, headers: Mapping[str, str], query: Mapping[str, str] | None = None) -> bool:
    """True when the request carries the token (``Authorization: Bearer``, ``X-Tokentop-Token`` or ``?token=``)."""
    given = ""
    auth = headers.get("authorization", "")
    if auth.lower().startswith("bearer "):
        given = auth[7:].strip()
    given = given or headers.get("x-tokentop-token", "") or (query or {}).get("token", "")
    return bool(given) and hmac.compare_digest(given.encode(), expected.encode())
