"""Hosts publish every accepted event to JetStream once; a fleet view sums them exactly."""

from __future__ import annotations

from pathlib import Path

from tests.team.helpers import events, fleet_runner, host_runner, ingest, stream_ids, stream_state, totals, wait_for
from tests.team.natsserver import NatsServer
from tokentop.core.team import outbox


def test_two_hosts_and_a_fleet_view_sum_exactly(tmp_path: Path, nats_server: NatsServer) -> None:
    # host b prices its private model with an override the fleet does not know: the fleet must still
    # count exactly the cost b accepted (carried on the wire), not re-price it
    a = host_runner(tmp_path, "host-a", nats_server.url)
    b = host_runner(tmp_path, "host-b", nats_server.url,
                    pricing={"my-finetune": {"input": 3.0, "output": 15.0}})
    fleet = fleet_runner(tmp_path, nats_server.url)
    try:
        assert ingest(a, events("a", 40)).accepted == 40
        assert ingest(b, events("b", 25, model="my-finetune", provider="custom")).accepted == 25
        assert ingest(b, events("b", 5, start=25)).accepted == 5
        ta, tb = totals(a), totals(b)
        assert tb.unpriced_requests_today == 0 and tb.usd_today > 0

        def caught_up():
            t = totals(fleet)
            return t.requests_today == 70 and t
        tf = wait_for(caught_up, what="fleet to see 70 events")
        assert tf.usd_today == ta.usd_today + tb.usd_today
        assert tf.tokens_today == ta.tokens_today + tb.tokens_today
        assert tf.unpriced_requests_today == 0
        snap = fleet.snapshot()
        hosts = {r.key: r for r in snap.hosts}
        assert set(hosts) == {"host-a", "host-b"}
        assert hosts["host-a"].usd_today == ta.usd_today and hosts["host-b"].usd_today == tb.usd_today
        assert {r.host for r in snap.sessions} == {"host-a", "host-b"}
        status = wait_for(lambda: (s := fleet.snapshot().status["fleet"])["hosts_reporting"] == 2 and s)
        assert set(status["hosts"]) == {"host-a", "host-b"} and status["hosts"]["host-a"]["lag_s"] is not None
        # every outbox row went out and was acknowledged; the stream holds each event once
        wait_for(lambda: outbox.count(a.ledger) == 0 and outbox.count(b.ledger) == 0, what="outboxes empty")
        assert stream_state(nats_server.url).messages == 70
        wait_for(lambda: a.snapshot().status["nats"]["published"] == 40, what="publisher status")
    finally:
        for r in (a, b, fleet):
            r.stop()


def test_nats_down_host_keeps_working_and_backlog_arrives_once_in_order(tmp_path: Path, nats_server: NatsServer) -> None:
    a = host_runner(tmp_path, "host-a", nats_server.url)
    fleet = fleet_runner(tmp_path, nats_server.url)
    try:
        ingest(a, events("e", 20))
        wait_for(lambda: totals(fleet).requests_today == 20, what="first 20 at the fleet")
        nats_server.stop()
        # the host keeps accepting and counting while NATS is down; the outbox holds the backlog
        assert ingest(a, events("e", 30, start=20)).accepted == 30
        assert totals(a).requests_today == 50
        wait_for(lambda: not a.snapshot().status["nats"]["connected"], what="publisher to notice")
        assert outbox.count(a.ledger) == 30
        nats_server.start()
        ingest(a, events("e", 10, start=50))
        wait_for(lambda: totals(fleet).requests_today == 60, timeout=20, what="backlog at the fleet")
        wait_for(lambda: outbox.count(a.ledger) == 0, what="outbox drained")
        assert stream_state(nats_server.url).messages == 60
        assert fleet.ledger.count() == 60
        # in order: the stream holds e-0 .. e-59 in commit order
        ids = stream_ids(nats_server.url)
        assert ids == [f"e-{i}" for i in range(60)]
        assert totals(fleet).usd_today == totals(a).usd_today
    finally:
        a.stop()
        fleet.stop()


def test_publish_retried_after_a_lost_ack_is_stored_once(tmp_path: Path, nats_server: NatsServer) -> None:
    from tests.team.natsserver import CuttableProxy

    proxy = CuttableProxy(nats_server.port)
    a = host_runner(tmp_path, "host-a", proxy.url)
    fleet = fleet_runner(tmp_path, nats_server.url)
    try:
        wait_for(lambda: a.snapshot().status["nats"]["connected"], what="publisher connected")
        proxy.lose_answers()
        ingest(a, events("x", 12))
        # the publishes reach the server and are stored, but no ack comes back ...
        wait_for(lambda: stream_state(nats_server.url).messages == 12, what="stored without acks")
        wait_for(lambda: a.snapshot().status["nats"]["failures"] >= 1, what="the publisher to time out")
        assert outbox.count(a.ledger) == 12  # nothing is forgotten without an ack
        proxy.restore()
        # ... so the publisher sends them again after reconnecting: JetStream drops the copies
        wait_for(lambda: outbox.count(a.ledger) == 0, timeout=20, what="retried publishes acknowledged")
        # (the status is refreshed just after the outbox delete: wait for it, do not race it)
        wait_for(lambda: a.snapshot().status["nats"]["duplicates"] >= 12, what="JetStream to report the copies")
        assert stream_state(nats_server.url).messages == 12
        wait_for(lambda: totals(fleet).requests_today == 12, what="fleet")
        assert fleet.ledger.count() == 12
    finally:
        a.stop()
        fleet.stop()
        proxy.close()


def test_viewer_restarted_mid_stream_resumes_without_gaps_or_repeats(tmp_path: Path, nats_server: NatsServer) -> None:
    import threading
    import time

    a = host_runner(tmp_path, "host-a", nats_server.url)
    v1 = fleet_runner(tmp_path, nats_server.url, "viewer-1")
    v2 = fleet_runner(tmp_path, nats_server.url, "viewer-2")  # a second view of the same fleet, all along
    posted = [0]
    stop = threading.Event()

    def post() -> None:
        while not stop.is_set():
            ingest(a, events("r", 5, start=posted[0]))
            posted[0] += 5
            time.sleep(0.005)

    poster = threading.Thread(target=post)
    try:
        poster.start()
        wait_for(lambda: totals(v1).requests_today >= 30, what="viewer 1 reading")
        v1.stop()  # mid-stream: events keep arriving while it is away
        at_stop = posted[0]
        wait_for(lambda: posted[0] >= at_stop + 50, what="events posted while viewer 1 is away")
        v1 = fleet_runner(tmp_path, nats_server.url, "viewer-1")
        time.sleep(0.2)
        stop.set()
        poster.join()
        total = posted[0]
        for v in (v1, v2):
            wait_for(lambda v=v: totals(v).requests_today == total, what=f"all {total} events at every viewer")
            assert totals(v).usd_today == totals(a).usd_today
            assert v.ledger.count() == total
        # viewer 1 resumed where it stopped: it replayed its own ledger and read only the rest
        assert v1.replayed >= 30
        assert v1.parts.fleet.received <= total - v1.replayed + 1000  # at most one unacked batch again
        assert v1.replayed + v1.service.counters.accepted == total
    finally:
        stop.set()
        for r in (a, v1, v2):
            r.stop()

def test_server_stopped_and_restarted_mid_stream_every_event_arrives_once(tmp_path: Path, nats_server: NatsServer) -> None:
    import threading
    import time

    a = host_runner(tmp_path, "host-a", nats_server.url)
    b = host_runner(tmp_path, "host-b", nats_server.url)
    fleet = fleet_runner(tmp_path, nats_server.url)
    posted = {"a": 0, "b": 0}
    stop = threading.Event()

    def post(runner, name: str) -> None:  # type: ignore[no-untyped-def]
        i = 0
        while not stop.is_set():
            assert ingest(runner, events(name, 5, start=i)).accepted == 5  # the host never refuses work
            i += 5
            posted[name] = i
            time.sleep(0.01)

    threads = [threading.Thread(target=post, args=(a, "a")), threading.Thread(target=post, args=(b, "b"))]
    try:
        for t in threads:
            t.start()
        wait_for(lambda: totals(fleet).requests_today >= 50, what="stream flowing")
        nats_server.stop()
        time.sleep(0.5)
        nats_server.start()
        wait_for(lambda: a.snapshot().status["nats"]["connected"], timeout=15, what="reconnect")
        time.sleep(0.3)
        stop.set()
        for t in threads:
            t.join()
        total = posted["a"] + posted["b"]
        wait_for(lambda: totals(fleet).requests_today == total, timeout=20, what=f"all {total} events at the fleet")
        assert fleet.ledger.count() == total
        assert stream_state(nats_server.url).messages == total
        assert totals(fleet).usd_today == totals(a).usd_today + totals(b).usd_today
    finally:
        stop.set()
        for r in (a, b, fleet):
            r.stop()


def test_host_started_while_nats_is_down_publishes_its_backlog_later(tmp_path: Path, nats_server: NatsServer) -> None:
    nats_server.stop()
    a = host_runner(tmp_path, "host-a", nats_server.url)
    try:
        assert ingest(a, events("d", 7)).accepted == 7
        assert a.snapshot().status["nats"]["connected"] is False
        nats_server.start()
        wait_for(lambda: outbox.count(a.ledger) == 0, timeout=20, what="backlog published")
        assert stream_state(nats_server.url).messages == 7
    finally:
        a.stop()


def test_team_mode_off_keeps_no_outbox(tmp_path: Path) -> None:
    from tokentop import config as config_mod
    from tokentop.core.feed.runner import FeedRunner

    cfg = config_mod.from_mapping({"ledger": {"path": str(tmp_path / "l.db")}, "nats": {"url": "nats://127.0.0.1:9"}})
    r = FeedRunner(cfg, listen="127.0.0.1:0", host_name="h")
    r.ledger.close()
    # the same ledger without [nats] url: no longer queues events for NATS
    cfg = config_mod.from_mapping({"ledger": {"path": str(tmp_path / "l.db")}})
    r = FeedRunner(cfg, listen="127.0.0.1:0", host_name="h")
    try:
        import asyncio

        asyncio.run(r.service.ingest_objects([(None, e) for e in events("off", 3)]))
        assert outbox.count(r.ledger) == 0
        assert r.ledger.count() == 3
    finally:
        r.ledger.close()


def test_a_bad_message_on_the_stream_is_skipped_counted_and_named(tmp_path: Path, nats_server: NatsServer) -> None:
    import asyncio

    import nats

    a = host_runner(tmp_path, "host-a", nats_server.url)
    try:
        ingest(a, events("g", 3))
        wait_for(lambda: outbox.count(a.ledger) == 0, what="published")

        async def garbage() -> None:
            nc = await nats.connect(nats_server.url)
            await nc.jetstream().publish("tokentop.events.rogue", b"{not json")
            await nc.close()

        asyncio.run(garbage())
        ingest(a, events("g", 2, start=3))
        fleet = fleet_runner(tmp_path, nats_server.url)
        try:
            wait_for(lambda: totals(fleet).requests_today == 5, what="good events around the bad one")
            status = fleet.snapshot().status["fleet"]
            assert status["bad_messages"] == 1 and "tokentop.events.rogue: not JSON" in status["last_bad"]
        finally:
            fleet.stop()
    finally:
        a.stop()


def test_outbox_trigger_does_not_make_duplicates_look_new(tmp_path: Path) -> None:
    """With the outbox trigger on, a batch half made of stored ids must still count those as
    duplicates (the ledger must not count the trigger's own inserts as new events)."""
    import asyncio

    from tokentop.core.feed.service import FeedService
    from tokentop.core.ledger import Ledger
    from tokentop.core.team import outbox as ob

    ledger = Ledger(tmp_path / "l.db")
    ob.install(ledger)
    try:
        first = FeedService(ledger, host="h")
        asyncio.run(first.ingest_objects([(None, e) for e in events("k", 5)]))
        # a fresh service (restart: empty in-memory id set) gets 5 old + 5 new ids in one batch
        again = FeedService(ledger, host="h")
        result = asyncio.run(again.ingest_objects([(None, e) for e in events("k", 10)]))
        assert (result.accepted, result.duplicates) == (5, 5)
        assert again.snapshot().totals.requests_today == 5
        assert ob.count(ledger) == 10 and ledger.count() == 10
    finally:
        ledger.close()


def test_events_without_a_host_are_published_under_the_publishing_host(tmp_path: Path, nats_server: NatsServer) -> None:
    import time

    from tokentop.core.events import Event

    a = host_runner(tmp_path, "host-a", nats_server.url)
    fleet = fleet_runner(tmp_path, nats_server.url)
    try:
        # a log source builds events itself and may leave host empty
        a.run_coroutine(a.service.ingest_events([Event(id="src-1", ts=time.time(), agent="codex", session="s",
                                                       provider="openai", model="gpt-4o", input_tokens=10)]))
        wait_for(lambda: totals(fleet).requests_today == 1, what="fleet")
        snap = fleet.snapshot()
        assert [r.key for r in snap.hosts] == ["host-a"] and snap.sessions[0].host == "host-a"
    finally:
        a.stop()
        fleet.stop()


def test_an_existing_stream_that_cannot_hold_the_events_is_refused_with_the_reason(tmp_path: Path, nats_server: NatsServer) -> None:
    import asyncio

    import nats

    async def squat() -> None:
        nc = await nats.connect(nats_server.url)
        await nc.jetstream().add_stream(name="TOKENTOP", subjects=["other.>"])
        await nc.close()

    asyncio.run(squat())
    a = host_runner(tmp_path, "host-a", nats_server.url)
    try:
        assert ingest(a, events("s", 3)).accepted == 3  # the host keeps working locally
        status = wait_for(lambda: (s := a.snapshot().status["nats"])["last_error"] and s, what="the refusal")
        assert "stream TOKENTOP exists with subjects ['other.>'], not tokentop.events.>" in status["last_error"]
        assert outbox.count(a.ledger) == 3
    finally:
        a.stop()


def test_two_views_on_one_machine_never_share_a_durable(tmp_path: Path, nats_server: NatsServer) -> None:
    """A second view of the same fleet ledger would split the messages with the first: it is refused,
    or (the live view) runs privately, and both see every event."""
    import pytest

    from tokentop import config as config_mod
    from tokentop.core.team.fleet_feed import FleetBusy, build_fleet_runner

    a = host_runner(tmp_path, "host-a", nats_server.url)
    cfg = config_mod.from_mapping({"nats": {"url": nats_server.url}})
    first = build_fleet_runner(cfg, listen="127.0.0.1:0").start_in_thread(require_listen=True)
    try:
        with pytest.raises(FleetBusy, match="another fleet view on this machine uses"):
            build_fleet_runner(cfg, listen="127.0.0.1:0")
        second = build_fleet_runner(cfg, listen="127.0.0.1:0", private_if_busy=True).start_in_thread(require_listen=True)
        try:
            assert second.parts.fleet.private and second.ledger.path == ":memory:"
            assert second.parts.fleet.consumer != first.parts.fleet.consumer
            ingest(a, events("two", 40))
            for v in (first, second):
                wait_for(lambda v=v: totals(v).requests_today == 40, what="every event at both views")
        finally:
            second.stop()
    finally:
        first.stop()
        a.stop()
    # the lock goes with the view: the ledger can be used again
    again = build_fleet_runner(cfg, listen="127.0.0.1:0")
    assert not again.parts.fleet.private
    again.stop()  # never started: releases the lock and closes the ledger
