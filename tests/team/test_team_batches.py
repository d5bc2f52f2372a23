"""Several events in one stream message (``[nats] events_per_message``): opt-in, read by the fleet
exactly like one event per message, revisions and retries included; a bad entry of a batch is
skipped alone."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import pytest

from tests.team.helpers import events, fleet_runner, host_runner, ingest, stream_ids, stream_state, totals, wait_for
from tests.team.natsserver import NatsServer
from tokentop import config as config_mod
from tokentop.core.setting import ConfigError
from tokentop.core.events import Event
from tokentop.core.pricing import Cost
from tokentop.core.team import outbox
from tokentop.core.team.wire import WireError, batch_msg_id, decode_message, encode, encode_batch


def test_batches_reach_the_fleet_exactly_with_revisions_in_them(tmp_path: Path, nats_server: NatsServer) -> None:
    a = host_runner(tmp_path, "host-a", nats_server.url, nats={"events_per_message": 25})
    fleet = fleet_runner(tmp_path, nats_server.url)
    try:
        first = events("b", 110)
        assert ingest(a, first).accepted == 110
        # revisions queue after their first records: some land in the same message as others' firsts
        result = ingest(a, [dict(first[0], output_tokens=900), dict(first[57], output_tokens=5000, model="claude-opus-4-5")])
        assert result.revised == 2
        assert ingest(a, events("b", 7, start=110)).accepted == 7
        host = totals(a)

        def caught_up():
            t = totals(fleet)
            return t.output_tokens_today == host.output_tokens_today and t.requests_today == 117 and t
        t = wait_for(caught_up, what="the fleet to count every event of every batch")
        assert (t.usd_today, t.tokens_today) == (host.usd_today, host.tokens_today)
        assert {r.key: r.usd_today for r in fleet.snapshot().models} == {r.key: r.usd_today for r in a.snapshot().models}
        wait_for(lambda: outbox.count(a.ledger) == 0, what="outbox drained")
        # far fewer messages than events, and every stored state went out once, in commit order
        assert stream_state(nats_server.url).messages <= 10
        ids = stream_ids(nats_server.url)
        assert ids == [f"b-{i}" for i in range(110)] + ["b-0", "b-57"] + [f"b-{i}" for i in range(110, 117)]
        status = wait_for(lambda: (s := a.snapshot().status["nats"])["published"] == 119 and s, what="publisher status")
        assert status["failures"] == 0
        assert fleet.ledger.count() == 117 and fleet.snapshot().status["fleet"]["bad_messages"] == 0
    finally:
        a.stop()
        fleet.stop()


def test_a_batch_retried_after_a_lost_ack_is_counted_once(tmp_path: Path, nats_server: NatsServer) -> None:
    from tests.team.natsserver import CuttableProxy

    proxy = CuttableProxy(nats_server.port)
    a = host_runner(tmp_path, "host-a", proxy.url, nats={"events_per_message": 5})
    fleet = fleet_runner(tmp_path, nats_server.url)
    try:
        wait_for(lambda: a.snapshot().status["nats"]["connected"], what="publisher connected")
        proxy.lose_answers()
        ingest(a, events("x", 12))
        wait_for(lambda: stream_state(nats_server.url).messages >= 1, what="stored without acks")
        wait_for(lambda: a.snapshot().status["nats"]["failures"] >= 1, what="the publisher to time out")
        assert outbox.count(a.ledger) == 12  # nothing is forgotten without an ack
        proxy.restore()
        wait_for(lambda: outbox.count(a.ledger) == 0, timeout=20, what="retried batches acknowledged")
        wait_for(lambda: totals(fleet).requests_today == 12, what="fleet")
        time.sleep(0.5)  # a copy, had one got through, would be counted by now
        assert fleet.ledger.count() == 12 and totals(fleet).usd_today == totals(a).usd_today
    finally:
        a.stop()
        fleet.stop()
        proxy.close()


def test_a_bad_entry_of_a_batch_is_skipped_alone(tmp_path: Path, nats_server: NatsServer) -> None:
    import nats

    now = time.time()
    good = [(Event(id=f"r-{i}", ts=now, agent="a", host="rogue-host", model="gpt-4o", input_tokens=10 + i),
             Cost(1000 + i, "estimated"), now) for i in range(2)]
    batch = json.loads(encode_batch(good))
    batch["events"].insert(1, {"event": {"id": "r-bad", "ts": now, "input_tokens": -5}, "cost_pusd": 1,
                               "cost_kind": "estimated", "accepted_at": now})

    async def publish() -> None:
        nc = await nats.connect(nats_server.url)
        js = nc.jetstream()
        from tokentop.core.team.stream import ensure_stream
        from tokentop.core.team.settings import NatsSettings

        await ensure_stream(js, NatsSettings(url=nats_server.url))
        await js.publish("tokentop.events.rogue", json.dumps(batch).encode())
        await nc.close()

    asyncio.run(publish())
    fleet = fleet_runner(tmp_path, nats_server.url)
    try:
        t = wait_for(lambda: (t := totals(fleet)).requests_today == 2 and t, what="the good entries")
        assert t.input_tokens_today == 21
        status = fleet.snapshot().status["fleet"]
        assert status["bad_messages"] == 1 and "events[1]: bad event: input_tokens" in status["last_bad"]
    finally:
        fleet.stop()


def test_the_wire_reads_one_event_or_a_batch() -> None:
    now = time.time()
    e1 = Event(id="e1", ts=now, agent="a", host="h", model="m", input_tokens=5)
    e2 = Event(id="e2", ts=now, agent="a", host="h", model="m", output_tokens=7)
    got, bad = decode_message(encode(e1, Cost(3, "estimated"), now), now)
    assert [g.event for g in got] == [e1] and not bad
    got, bad = decode_message(encode_batch([(e1, Cost(3, "estimated"), now), (e2, Cost(None, "unpriced"), now)]), now)
    assert [(g.event, g.cost) for g in got] == [(e1, Cost(3, "estimated")), (e2, Cost(None, "unpriced"))] and not bad
    # orjson refuses a lone surrogate: the stdlib writes and reads it, and the entry meets the contract's rule
    odd = Event(id="e\ud800", ts=now, agent="a")
    got, bad = decode_message(encode_batch([(odd, Cost(None, "unpriced"), now), (e1, Cost(3, "estimated"), now)]), now)
    assert [g.event for g in got] == [e1] and bad == ["events[0]: bad event: id: must be valid Unicode text "
                                                     "(it holds a lone surrogate escape)"]
    with pytest.raises(WireError, match="events: not a list"):
        decode_message(b'{"v":1,"events":{}}', now)
    with pytest.raises(WireError, match="not a tokentop v1 message"):
        decode_message(b'{"v":2,"events":[]}', now)
    # the same batch has the same message id (a resend is a JetStream duplicate); another cut does not
    assert batch_msg_id(["a", "b"]) == batch_msg_id(["a", "b"]) != batch_msg_id(["a", "b", "c"])


@pytest.mark.parametrize("value", [0, 1001])
def test_events_per_message_out_of_range_is_refused(value: int) -> None:
    with pytest.raises(ConfigError, match="events_per_message.*between 1 and 1000"):
        config_mod.from_mapping({"nats": {"events_per_message": value}})
