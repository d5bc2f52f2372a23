"""The ``[nats]`` config section and how it becomes a NATS connection.

Declared here (not in ``tokentop/config.py``) so team mode owns its settings; config.py pulls
:data:`SECTIONS`. Credentials follow NATS's own auth options and are always read from files
(a ``.creds`` file, an nkey seed file, a token file), so no secret ever sits in ``config.toml``.
"""

from __future__ import annotations

import hashlib
import logging
import re
import time
from dataclasses import dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from tokentop.core.setting import NUM, Setting, positive

if TYPE_CHECKING:
    from tokentop.config import Config

log = logging.getLogger("tokentop.team")

#: Stream subjects: events of host H go to ``tokentop.events.H``; control requests to ``tokentop.control.H``.
EVENTS_PREFIX: Final = "tokentop.events"
CONTROL_PREFIX: Final = "tokentop.control"
HEARTBEAT_PREFIX: Final = "tokentop.heartbeat"


def _limit(v: Any) -> str | None:
    return None if v == -1 or v > 0 else "must be -1 (no limit) or greater than 0"


def _stream_name(v: Any) -> str | None:
    return None if re.fullmatch(r"[A-Za-z0-9_-]{1,64}", v) else "must be 1-64 letters, digits, '_' or '-'"


def _storage(v: Any) -> str | None:
    return None if v in ("file", "memory") else "must be 'file' or 'memory'"


def _replicas(v: Any) -> str | None:
    return None if 1 <= v <= 5 else "must be between 1 and 5"


SETTINGS: Final = {
    "url": Setting(str, "", "NATS server(s), comma-separated, e.g. nats://10.0.0.5:4222 (empty: team mode off)"),
    "creds_file": Setting(str, "", "NATS .creds file (JWT + nkey) for decentralized auth"),
    "nkey_seed_file": Setting(str, "", "file holding an nkey seed (SU...) for nkey auth"),
    "token_file": Setting(str, "", "file holding a NATS auth token"),
    "stream": Setting(str, "TOKENTOP", "JetStream stream that holds every host's events", _stream_name),
    "max_age_days": Setting(NUM, 7, "stream retention: events older than this are dropped", positive),
    "max_bytes": Setting(int, 1024**3, "stream retention: size limit in bytes (-1: none)", _limit),
    "max_msgs": Setting(int, -1, "stream retention: message count limit (-1: none)", _limit),
    "duplicate_window_s": Setting(NUM, 120, "JetStream publish de-duplication window (Nats-Msg-Id)", positive),
    "storage": Setting(str, "file", "stream storage: 'file' or 'memory'", _storage),
    "replicas": Setting(int, 1, "stream replicas (clustered JetStream)", _replicas),
    "publish_window": Setting(int, 1000, "most publishes awaiting a JetStream ack at once", positive),
    "ack_timeout_s": Setting(NUM, 5, "a publish not acknowledged in this time is retried", positive),
    "heartbeat_s": Setting(NUM, 10, "seconds between a host's heartbeats (fleet 'reporting' status)", positive),
    "consumer": Setting(str, "", "durable consumer name of this fleet view (default: derived from host and ledger)"),
    "consumer_inactive_days": Setting(NUM, 7, "the server deletes a fleet view's consumer unused this long", positive),
    "fleet_ledger_path": Setting(str, "", "SQLite file of the fleet view (default: fleet.db in the user data dir)"),
    "allow_remote_control": Setting(bool, False, "accept kill/pause/resume for this host's sessions over NATS"),
    "control_secret_file": Setting(str, "", "fleet shared secret file (mode 0600), needed to send or accept control"),
    "control_timeout_s": Setting(NUM, 10, "how long a remote control request waits for the host's answer", positive),
}

SECTIONS: Final = {"nats": SETTINGS}


@dataclass(frozen=True)
class NatsSettings:
    url: str = ""
    creds_file: str = ""
    nkey_seed_file: str = ""
    token_file: str = ""
    stream: str = "TOKENTOP"
    max_age_days: float = 7
    max_bytes: int = 1024**3
    max_msgs: int = -1
    duplicate_window_s: float = 120
    storage: str = "file"
    replicas: int = 1
    publish_window: int = 1000
    ack_timeout_s: float = 5
    heartbeat_s: float = 10
    consumer: str = ""
    consumer_inactive_days: float = 7
    fleet_ledger_path: str = ""
    allow_remote_control: bool = False
    control_secret_file: str = ""
    control_timeout_s: float = 10

    @classmethod
    def from_config(cls, cfg: Config, **overrides: Any) -> NatsSettings:
        section = cfg.nats
        values = {f.name: getattr(section, f.name) for f in fields(cls)}
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)

    @property
    def servers(self) -> list[str]:
        return [u.strip() for u in self.url.split(",") if u.strip()]

    def connect_options(self) -> dict[str, Any]:
        """Keyword arguments for ``nats.connect`` (auth from files; reconnect forever)."""
        opts: dict[str, Any] = {
            "servers": self.servers,
            "allow_reconnect": True,
            "max_reconnect_attempts": -1,
            "reconnect_time_wait": 0.5,
            "connect_timeout": 2,
            # without an error callback nats-py prints a traceback to stderr on every failed
            # reconnect (twice a second while the server is down)
            "error_cb": quiet_nats_error,
        }
        if self.creds_file:
            opts["user_credentials"] = _existing(self.creds_file, "nats.creds_file")
        if self.nkey_seed_file:
            opts["nkeys_seed"] = _existing(self.nkey_seed_file, "nats.nkey_seed_file")
        if self.token_file:
            path = _existing(self.token_file, "nats.token_file")
            opts["token"] = Path(path).read_text(encoding="utf-8").strip()
        return opts

    def redacted_url(self) -> str:
        """The URL(s) with any user:password removed (for logs and status)."""
        return ",".join(re.sub(r"//[^@/]*@", "//***@", u) for u in self.servers)


def _existing(path: str, key: str) -> str:
    p = Path(path).expanduser()
    if not p.is_file():
        raise ValueError(f"{key}: no such file: {p}")
    return str(p)


_SUBJECT_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")


def subject_token(name: str) -> str:
    """A host name as one NATS subject token: no dots, spaces or wildcards.

    Names that needed changing get a short hash suffix, so two different host names never share a
    subject (``a.b`` and ``a_b`` stay apart)."""
    safe = _SUBJECT_UNSAFE.sub("_", name)[:64] or "_"
    if safe != name:
        safe = f"{safe}-{hashlib.sha256(name.encode()).hexdigest()[:8]}"
    return safe


def events_subject(host: str) -> str:
    return f"{EVENTS_PREFIX}.{subject_token(host)}"


def control_subject(host: str) -> str:
    return f"{CONTROL_PREFIX}.{subject_token(host)}"


def heartbeat_subject(host: str) -> str:
    return f"{HEARTBEAT_PREFIX}.{subject_token(host)}"


_last_nats_error: dict[str, float] = {}
#: the same NATS connection problem is logged at most once this often (seconds)
NATS_ERROR_LOG_EVERY_S: Final = 60.0


async def quiet_nats_error(exc: Exception) -> None:
    """nats-py's error callback: one log line per kind of problem a minute, no traceback (the
    status of the part that owns the connection says whether it is connected)."""
    text = f"{type(exc).__name__}: {exc}"
    now = time.monotonic()
    key = type(exc).__name__
    if now - _last_nats_error.get(key, -NATS_ERROR_LOG_EVERY_S) >= NATS_ERROR_LOG_EVERY_S:
        _last_nats_error[key] = now
        log.warning("NATS: %s (retrying; logged once a minute)", text)
