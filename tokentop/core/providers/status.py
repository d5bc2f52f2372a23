"""``status["providers"]``: how each provider's poller is doing, as every snapshot carries it.

Written by the feed (:func:`tokentop.core.providers.attach.attach` and each
:meth:`~tokentop.core.providers.poller.ProviderPoller.status`) with ``to_json``; read back by the
Providers screen with :meth:`ProvidersStatus.of`, from an embedded feed's snapshot or a remote
feed's JSON alike. The JSON is documented in docs/api.md (§ Live status). It never holds a key,
only its masked form.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Mapping

if TYPE_CHECKING:
    from tokentop.core.snapshot import Snapshot


def _num(value: object) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _int(value: object) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _text(value: object) -> str | None:
    return str(value) if value not in (None, "") else None


@dataclass(frozen=True, slots=True)
class ProviderStatus:
    """One provider: polled (``enabled``) with its health, or left out with the ``reason``."""

    enabled: bool
    #: why it is not polled (no key, disabled in config, a refused key file)
    reason: str | None = None
    #: the masked key and where it came from (``OPENAI_ADMIN_KEY`` or ``key file PATH``)
    key: str = ""
    key_source: str = ""
    base_url: str = ""
    last_success_at: float | None = None
    #: the last failure (key masked); for a left-out provider, a key file that was refused
    last_error: str | None = None
    last_error_at: float | None = None
    rows_rejected: int = 0
    polls: int = 0
    #: the providers view's unattributed-spend figures (``Unattributed.to_json``)
    unattributed: Mapping[str, Any] | None = None

    @classmethod
    def left_out(cls, reason: str, last_error: str | None = None) -> ProviderStatus:
        return cls(enabled=False, reason=reason, last_error=last_error)

    def to_json(self) -> dict[str, Any]:
        if not self.enabled:
            out: dict[str, Any] = {"enabled": False, "reason": self.reason}
            if self.last_error:
                out["last_error"] = self.last_error
            return out
        return {
            "enabled": True,
            "key": self.key,
            "key_source": self.key_source,
            "base_url": self.base_url,
            "last_success_at": self.last_success_at,
            "last_error": self.last_error,
            "last_error_at": self.last_error_at,
            "rows_rejected": self.rows_rejected,
            "polls": self.polls,
            "unattributed": None if self.unattributed is None else dict(self.unattributed),
        }

    @classmethod
    def from_json(cls, obj: object) -> ProviderStatus | None:
        if not isinstance(obj, dict):
            return None
        unattributed = obj.get("unattributed")
        return cls(
            enabled=obj.get("enabled") is True,
            reason=_text(obj.get("reason")),
            key=str(obj.get("key") or ""),
            key_source=str(obj.get("key_source") or ""),
            base_url=str(obj.get("base_url") or ""),
            last_success_at=_num(obj.get("last_success_at")),
            last_error=_text(obj.get("last_error")),
            last_error_at=_num(obj.get("last_error_at")),
            rows_rejected=_int(obj.get("rows_rejected")),
            polls=_int(obj.get("polls")),
            unattributed=unattributed if isinstance(unattributed, dict) else None,
        )


@dataclass(frozen=True, slots=True)
class ProvidersStatus:
    """Every configured provider by name; or, when ``[providers]`` could not be read, the ``error``."""

    KEY: ClassVar[str] = "providers"

    providers: Mapping[str, ProviderStatus] = field(default_factory=dict)
    error: str | None = None

    def to_json(self) -> dict[str, Any]:
        if self.error is not None:
            return {"error": self.error}
        return {name: p.to_json() for name, p in self.providers.items()}

    @classmethod
    def from_json(cls, obj: object) -> ProvidersStatus | None:
        if not isinstance(obj, dict):
            return None
        if isinstance(obj.get("error"), str):
            return cls(error=obj["error"])
        found = {str(name): ProviderStatus.from_json(entry) for name, entry in obj.items()}
        return cls(providers={name: p for name, p in found.items() if p is not None})

    @classmethod
    def of(cls, snapshot: Snapshot | None) -> ProvidersStatus | None:
        return None if snapshot is None else cls.from_json(snapshot.status.get(cls.KEY))

    @property
    def any_error(self) -> bool:
        """A config error, or a provider left out because its key file was refused."""
        return self.error is not None or any(p.last_error for p in self.providers.values())
