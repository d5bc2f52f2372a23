"""Admin keys: from the environment or a private key file; always shown masked.

A key file must not be readable (or writable) by group or others: a key that anyone on the machine
can read is refused with a message saying how to fix it. :class:`AdminKey` masks itself in
``str``/``repr`` so a stray log line or f-string cannot leak it, and :func:`redact` scrubs the key
out of any text (provider error bodies echo keys back).
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass, field
from pathlib import Path


class AdminKeyError(Exception):
    """No usable admin key. The message names where a key is looked for; never contains a key."""


def mask(secret: str) -> str:
    """``sk-admin-…wxyz``: enough to recognise a key, not to use it."""
    if len(secret) < 16:
        return "…" if secret else ""
    head = secret[:9] if secret.startswith("sk-") else secret[:4]
    return f"{head}…{secret[-4:]}"


@dataclass(frozen=True)
class AdminKey:
    value: str = field(repr=False)
    #: Where it came from, for messages: ``OPENAI_ADMIN_KEY`` or ``key file /path``.
    source: str = ""

    @property
    def masked(self) -> str:
        return mask(self.value)

    def __str__(self) -> str:
        return self.masked

    def __repr__(self) -> str:
        return f"AdminKey({self.masked}, from {self.source})"


def redact(text: str, key: AdminKey | str | None) -> str:
    secret = key.value if isinstance(key, AdminKey) else key
    if not secret:
        return text
    text = text.replace(secret, mask(secret))
    # a provider may echo a prefix of a long key (OpenAI: "sk-admin-****wxyz"); scrub long prefixes too
    if len(secret) >= 24:
        text = text.replace(secret[:-4], mask(secret)[:-4])
    return text


def read_key_file(path: str | os.PathLike[str]) -> str:
    p = Path(path).expanduser()
    try:
        st = os.stat(p)
    except FileNotFoundError:
        raise AdminKeyError(f"key file {p} does not exist") from None
    except OSError as exc:
        raise AdminKeyError(f"key file {p}: cannot read: {exc.strerror}") from None
    if not stat.S_ISREG(st.st_mode):
        raise AdminKeyError(f"key file {p} is not a regular file")
    if st.st_mode & 0o077:
        raise AdminKeyError(
            f"refusing key file {p}: its mode {stat.S_IMODE(st.st_mode):04o} lets other users read or change it; "
            f"run: chmod 600 {p}"
        )
    if hasattr(os, "getuid") and st.st_uid != os.getuid():
        raise AdminKeyError(f"refusing key file {p}: it belongs to another user (uid {st.st_uid})")
    try:
        value = p.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise AdminKeyError(f"key file {p}: cannot read: {exc}") from None
    if not value or "\n" in value:
        raise AdminKeyError(f"key file {p} must hold exactly one key on one line")
    return value


def load_admin_key(env_var: str, key_file: str = "", environ: os._Environ[str] | dict[str, str] | None = None) -> AdminKey:
    """The env var wins; else the key file; else :class:`AdminKeyError` naming both places."""
    env = os.environ if environ is None else environ
    value = (env.get(env_var) or "").strip()
    if value:
        return AdminKey(value, env_var)
    if key_file:
        return AdminKey(read_key_file(key_file), f"key file {Path(key_file).expanduser()}")
    raise AdminKeyError(f"no admin key: set {env_var} or key_file in the config")
