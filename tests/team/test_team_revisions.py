"""Revisions in team mode: a host's revised record reaches the fleet once, and the totals agree."""

from __future__ import annotations

from pathlib import Path

from tests.team.helpers import events, fleet_runner, host_runner, ingest, stream_ids, stream_state, totals, wait_for
from tests.team.natsserver import NatsServer
from tokentop.core.team import outbox


def test_revisions_reach_the_fleet_once_and_fleet_totals_equal_the_host(tmp_path: Path, nats_server: NatsServer) -> None:
    a = host_runner(tmp_path, "host-a", nats_server.url)
    fleet = fleet_runner(tmp_path, nats_server.url)
    try:
        first = events("a", 6)
        assert ingest(a, first).accepted == 6
        # three of them are revised: a streamed response's final output, one twice, one with a new model
        fuller = [dict(first[0], output_tokens=900), dict(first[1], output_tokens=500),
                  dict(first[2], output_tokens=400, model="claude-opus-4-5")]
        result = ingest(a, fuller)
        assert (result.accepted, result.revised, result.duplicates) == (0, 3, 0)
        result = ingest(a, [dict(first[1], output_tokens=800), dict(first[3], output_tokens=1)])  # one up, one down
        assert (result.revised, result.duplicates) == (1, 1)
        host = totals(a)
        assert host.requests_today == 6 and host.output_tokens_today == 900 + 800 + 400 + 103 + 104 + 105

        def caught_up():
            t = totals(fleet)
            return t.output_tokens_today == host.output_tokens_today and t
        fleet_totals = wait_for(caught_up, what="the fleet to apply the revisions")
        assert (fleet_totals.requests_today, fleet_totals.usd_today, fleet_totals.tokens_today) == \
            (host.requests_today, host.usd_today, host.tokens_today)
        assert {r.key: r.requests_today for r in fleet.snapshot().models} == \
            {r.key: r.requests_today for r in a.snapshot().models}
        wait_for(lambda: outbox.count(a.ledger) == 0, what="outbox empty")
        # every stored state went out: 6 records and 4 revisions queued; a revision is a message of its
        # own (not dropped as a copy of the first record). Two revisions of one id read after both
        # were stored are the same record and the same message id: JetStream keeps one of them.
        nats = wait_for(lambda: (s := a.snapshot().status["nats"])["published"] + s["duplicates"] == 10 and s,
                        what="every outbox row acknowledged")
        assert stream_state(nats_server.url).messages == nats["published"] >= 6 + 3
        ids = stream_ids(nats_server.url)
        assert ids.count("a-0") == ids.count("a-2") == 2 and ids.count("a-1") in (2, 3) and ids.count("a-3") == 1
        # the fleet ledger holds the host's final records, one per id
        fleet_rows = {s.event.id: s.event.output_tokens for s in fleet.ledger.events_since(0)}
        host_rows = {s.event.id: s.event.output_tokens for s in a.ledger.events_since(0)}
        assert fleet_rows == host_rows and len(fleet_rows) == 6
    finally:
        for r in (a, fleet):
            r.stop()


def test_a_redelivered_or_reordered_revision_changes_nothing_on_the_fleet(tmp_path: Path, nats_server: NatsServer) -> None:
    """The fleet applies records with the host's rule: a late copy of the first record (or the same
    revision twice) after the revision leaves the fleet's record and totals as they are."""
    a = host_runner(tmp_path, "host-a", nats_server.url)
    fleet = fleet_runner(tmp_path, nats_server.url)
    try:
        first = events("r", 1)
        ingest(a, first)
        ingest(a, [dict(first[0], output_tokens=777)])
        wait_for(lambda: totals(fleet).output_tokens_today == 777, what="the revision on the fleet")
        before = totals(fleet)
        # what a redelivery would hand the fleet's service: the first record, then the revision again
        for obj in (first[0], dict(first[0], output_tokens=777)):
            got = fleet.run_coroutine(fleet.service.ingest_objects([(None, dict(obj, host="host-a"))]), timeout=30)
            assert got.accepted == 0 and got.revised == 0 and got.duplicates == 1
        after = totals(fleet)
        assert (after.requests_today, after.output_tokens_today, after.usd_today) == \
            (before.requests_today, before.output_tokens_today, before.usd_today)
    finally:
        for r in (a, fleet):
            r.stop()
