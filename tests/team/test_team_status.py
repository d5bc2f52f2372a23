"""Team mode's snapshot status typed: ``status.fleet`` (FleetStatus, read by the header and the Hosts
view) and ``status.nats`` (NatsStatus). Writer and reader agree through an embedded snapshot and a
remote feed's JSON; a partial or odd status from another tokentop is read tolerantly."""

from __future__ import annotations

from tokentop.core.team.status import FleetHost, FleetStatus, NatsStatus

FLEET = FleetStatus(
    url="nats://127.0.0.1:4222", stream="TOKENTOP", consumer="fleet-box-1234", connected=True, hosts_reporting=1,
    reporting_window_s=60.0,
    hosts={"box-1": FleetHost(reporting=True, last_report_s_ago=0.4, lag_s=0.12, events=40, outbox_pending=0),
           "gpu-3": FleetHost(reporting=False, last_report_s_ago=600.0, lag_s=None, events=3, outbox_pending=None)},
    received=43, pending=0, bad_messages=1, last_bad="tokentop.events.x: not JSON", last_error=None,
)


def test_fleet_status_over_the_wire(status_snapshots) -> None:
    embedded, remote = status_snapshots("fleet", FLEET.to_json())
    for snap in (embedded, remote):
        assert FleetStatus.of(snap) == FLEET
    assert set(FLEET.to_json()) == {"url", "stream", "consumer", "connected", "hosts_reporting", "reporting_window_s",
                                    "hosts", "received", "pending", "bad_messages", "last_bad", "last_error"}


def test_a_snapshot_of_a_host_feed_has_no_fleet_status(status_snapshots) -> None:
    embedded, remote = status_snapshots("feed", "http://127.0.0.1:7411")
    assert FleetStatus.of(embedded) is None and FleetStatus.of(remote) is None and FleetStatus.of(None) is None


def test_fleet_reader_is_tolerant() -> None:
    read = FleetStatus.from_json({"hosts": {"a": {"reporting": 1, "lag_s": "slow", "events": 2.5}, "b": "?"},
                                  "pending": None, "connected": None})
    assert read is not None
    assert read.connected  # only an explicit false means the consumer lost NATS
    assert read.hosts == {"a": FleetHost(reporting=True, lag_s=None, events=0)}
    assert read.hosts_reporting is None and read.reporting_window_s is None and read.pending is None
    assert FleetStatus.from_json({"connected": False}).connected is False  # type: ignore[union-attr]


def test_nats_status_over_the_wire(status_snapshots) -> None:
    publishing = NatsStatus(connected=True, last_error=None, url="nats://***@h:4222", subject="tokentop.events.box",
                            stream={"stream": "TOKENTOP", "created": True, "differs": {}}, outbox_pending=5,
                            published=100, duplicates=1, expired=0, failures=2)
    not_started = NatsStatus.not_started("nats.creds_file: no such file: /x")
    assert not_started.to_json() == {"role": "host", "connected": False, "last_error": "nats.creds_file: no such file: /x"}
    assert publishing.to_json()["role"] == "host"
    for status in (publishing, not_started):
        embedded, remote = status_snapshots("nats", status.to_json())
        assert NatsStatus.of(embedded) == status and NatsStatus.of(remote) == status
