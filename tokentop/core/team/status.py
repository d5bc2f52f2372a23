"""Team mode's snapshot status entries, typed: ``status["fleet"]`` (a fleet feed's consumer) and
``status["nats"]`` (a host feed's publisher).

The writers (:class:`~tokentop.core.team.fleet.FleetConsumer`,
:class:`~tokentop.core.team.publisher.Publisher`) publish ``to_json()``; readers (the live view's
header and Hosts view) use ``of(snapshot)``, which reads an embedded feed's snapshot and a remote
feed's JSON alike and tolerates missing or ill-typed fields. The JSON is documented in docs/team.md.
This module imports nothing from NATS, so the UI can read the status without it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Mapping

if TYPE_CHECKING:
    from tokentop.core.snapshot import Snapshot


def _num(value: object) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _int(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _text(value: object) -> str | None:
    return str(value) if value not in (None, "") else None


@dataclass(frozen=True, slots=True)
class FleetHost:
    """One host as the fleet sees it."""

    #: an event or a heartbeat within the reporting window
    reporting: bool = False
    #: seconds since its last event or heartbeat (``None``: never)
    last_report_s_ago: float | None = None
    #: fleet receive time minus the host's accept time of its newest event
    lag_s: float | None = None
    events: int = 0
    #: the host's outbox backlog, from its heartbeat
    outbox_pending: int | None = None

    def to_json(self) -> dict[str, Any]:
        return {"reporting": self.reporting, "last_report_s_ago": self.last_report_s_ago, "lag_s": self.lag_s,
                "events": self.events, "outbox_pending": self.outbox_pending}

    @classmethod
    def from_json(cls, obj: object) -> FleetHost | None:
        if not isinstance(obj, dict):
            return None
        return cls(reporting=bool(obj.get("reporting")), last_report_s_ago=_num(obj.get("last_report_s_ago")),
                   lag_s=_num(obj.get("lag_s")), events=_int(obj.get("events")) or 0,
                   outbox_pending=_int(obj.get("outbox_pending")))


@dataclass(frozen=True, slots=True)
class FleetStatus:
    """``status["fleet"]``: the fleet consumer's connection and every host that reported."""

    KEY: ClassVar[str] = "fleet"

    url: str = ""
    stream: str = ""
    consumer: str = ""
    connected: bool = True
    #: hosts with an event or a heartbeat in the last ``reporting_window_s`` (``None``: not sent)
    hosts_reporting: int | None = None
    reporting_window_s: float | None = None
    hosts: Mapping[str, FleetHost] = field(default_factory=dict)
    received: int = 0
    #: stream messages this view has not read yet (``None``: unknown)
    pending: int | None = None
    bad_messages: int = 0
    last_bad: str | None = None
    last_error: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "url": self.url,
            "stream": self.stream,
            "consumer": self.consumer,
            "connected": self.connected,
            "hosts_reporting": self.hosts_reporting,
            "reporting_window_s": self.reporting_window_s,
            "hosts": {name: h.to_json() for name, h in self.hosts.items()},
            "received": self.received,
            "pending": self.pending,
            "bad_messages": self.bad_messages,
            "last_bad": self.last_bad,
            "last_error": self.last_error,
        }

    @classmethod
    def from_json(cls, obj: object) -> FleetStatus | None:
        if not isinstance(obj, dict):
            return None
        raw_hosts = obj.get("hosts")
        hosts = {str(k): FleetHost.from_json(v) for k, v in raw_hosts.items()} if isinstance(raw_hosts, dict) else {}
        return cls(
            url=str(obj.get("url") or ""),
            stream=str(obj.get("stream") or ""),
            consumer=str(obj.get("consumer") or ""),
            # only an explicit false says the consumer lost NATS
            connected=obj.get("connected") is not False,
            hosts_reporting=_int(obj.get("hosts_reporting")),
            reporting_window_s=_num(obj.get("reporting_window_s")),
            hosts={k: h for k, h in hosts.items() if h is not None},
            received=_int(obj.get("received")) or 0,
            pending=_int(obj.get("pending")),
            bad_messages=_int(obj.get("bad_messages")) or 0,
            last_bad=_text(obj.get("last_bad")),
            last_error=_text(obj.get("last_error")),
        )

    @classmethod
    def of(cls, snapshot: Snapshot | None) -> FleetStatus | None:
        """The fleet status of a fleet feed's snapshot; ``None`` for any other feed."""
        return None if snapshot is None else cls.from_json(snapshot.status.get(cls.KEY))


@dataclass(frozen=True, slots=True)
class NatsStatus:
    """``status["nats"]`` of a publishing host: connection, outbox backlog, what went out."""

    KEY: ClassVar[str] = "nats"

    connected: bool = False
    last_error: str | None = None
    url: str = ""
    subject: str = ""
    #: JetStream stream check (``ensure_stream``'s answer; ``differs`` when its config is not ours)
    stream: Mapping[str, Any] | None = None
    outbox_pending: int = 0
    published: int = 0
    duplicates: int = 0
    expired: int = 0
    failures: int = 0
    #: the publisher never started (e.g. a credentials file is missing): only role, connected and
    #: last_error are published
    failed: bool = False

    @classmethod
    def not_started(cls, error: str) -> NatsStatus:
        return cls(connected=False, last_error=error, failed=True)

    def to_json(self) -> dict[str, Any]:
        if self.failed:
            return {"role": "host", "connected": self.connected, "last_error": self.last_error}
        return {
            "role": "host",
            "url": self.url,
            "subject": self.subject,
            "connected": self.connected,
            "stream": None if self.stream is None else dict(self.stream),
            "outbox_pending": self.outbox_pending,
            "published": self.published,
            "duplicates": self.duplicates,
            "expired": self.expired,
            "failures": self.failures,
            "last_error": self.last_error,
        }

    @classmethod
    def from_json(cls, obj: object) -> NatsStatus | None:
        if not isinstance(obj, dict):
            return None
        stream = obj.get("stream")
        return cls(
            connected=obj.get("connected") is True,
            last_error=_text(obj.get("last_error")),
            url=str(obj.get("url") or ""),
            subject=str(obj.get("subject") or ""),
            stream=stream if isinstance(stream, dict) else None,
            outbox_pending=_int(obj.get("outbox_pending")) or 0,
            published=_int(obj.get("published")) or 0,
            duplicates=_int(obj.get("duplicates")) or 0,
            expired=_int(obj.get("expired")) or 0,
            failures=_int(obj.get("failures")) or 0,
            failed="subject" not in obj,
        )

    @classmethod
    def of(cls, snapshot: Snapshot | None) -> NatsStatus | None:
        return None if snapshot is None else cls.from_json(snapshot.status.get(cls.KEY))
