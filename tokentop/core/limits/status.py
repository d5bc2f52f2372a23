"""``status["limits"]``: how the quota sources are doing (the windows themselves are ``snapshot.limits``).

Written by the feed's limits part (:mod:`tokentop.core.limits.attach`) with :meth:`LimitsStatus.to_json`;
read back by the live view with :meth:`LimitsStatus.of`, from an embedded feed's snapshot or a
remote feed's JSON alike. Documented in docs/limits.md. It never holds a token.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Mapping

if TYPE_CHECKING:
    from tokentop.core.snapshot import Snapshot


def _int(value: object) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


@dataclass(frozen=True, slots=True)
class LimitsStatus:
    KEY: ClassVar[str] = "limits"

    #: the OAuth usage poller: ``{"enabled": false}`` or its state (``state``, ``message``,
    #: ``next_at``, ``last_success_at``, ``calls``, ``account``)
    oauth: Mapping[str, Any] = field(default_factory=dict)
    #: statusLine payloads: ``received``, ``refused``, ``last_at``, ``version``, ``rate_limits``
    #: (``present`` / ``absent`` / ``null``), ``sessions`` (the last few: session, model, cost_usd, at)
    statusline: Mapping[str, Any] = field(default_factory=dict)
    #: Codex ``rate_limits`` objects read from rollouts
    codex_rate_limits: int = 0
    #: agent → ``{"state": "learning" | "active" | "idle" | "official", "limit_tokens", "blocks"}``
    estimate: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    #: sentences for the user (a stopped OAuth poller, Claude Code sending no quota data)
    notes: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {"oauth": dict(self.oauth), "statusline": dict(self.statusline),
                "codex_rate_limits": self.codex_rate_limits,
                "estimate": {k: dict(v) for k, v in self.estimate.items()}, "notes": list(self.notes)}

    @classmethod
    def from_json(cls, obj: object) -> LimitsStatus | None:
        if not isinstance(obj, dict):
            return None
        oauth = obj.get("oauth")
        statusline = obj.get("statusline")
        estimate = obj.get("estimate")
        notes = obj.get("notes")
        return cls(
            oauth=oauth if isinstance(oauth, dict) else {},
            statusline=statusline if isinstance(statusline, dict) else {},
            codex_rate_limits=_int(obj.get("codex_rate_limits")),
            estimate={str(k): v for k, v in estimate.items() if isinstance(v, dict)} if isinstance(estimate, dict) else {},
            notes=tuple(str(n) for n in notes if isinstance(n, str)) if isinstance(notes, list) else (),
        )

    @classmethod
    def of(cls, snapshot: Snapshot | None) -> LimitsStatus | None:
        return None if snapshot is None else cls.from_json(snapshot.status.get(cls.KEY))
