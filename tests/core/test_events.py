from __future__ import annotations

import pytest

from tokentop.core.events import Event, EventError, parse_event, parse_timestamp

NOW = 1_795_000_000.0  # 2026-11-18


def parse(**fields):
    return parse_event(fields, now=NOW)


def test_minimal_event_gets_defaults() -> None:
    e = parse()
    assert e.agent == "unknown"
    assert e.ts == NOW
    assert e.status == "ok"
    assert e.id_generated and len(e.id) == 32
    assert e.tokens == 0


def test_full_event_round_trips_through_to_dict() -> None:
    e = parse(id="r1", ts="2026-11-18T10:00:00Z", agent="coder", session="s1", project="p", host="h", pid=42,
              provider="openai", model="gpt-5", input_tokens=10_000, output_tokens=2_000, cache_read_tokens=8_000,
              reasoning_tokens=500, cost_usd=0.01, latency_ms=900, status="error", source="test", branch="main")
    again = parse_event(e.to_dict(), now=NOW)
    assert again == e
    assert e.uncached_input_tokens == 2_000


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"output_tokens": -3}, "output_tokens: must be a non-negative integer, got -3"),
        ({"input_tokens": "12"}, "input_tokens: must be a non-negative integer, got '12'"),
        ({"input_tokens": 1.5}, "input_tokens: must be a non-negative integer, got 1.5"),
        ({"input_tokens": True}, "input_tokens: must be a non-negative integer, got True"),
        ({"cost_usd": -1}, "cost_usd: must be a non-negative number, got -1"),
        ({"status": "fine"}, "status: must be 'ok' or 'error', got 'fine'"),
        ({"pid": 0}, "pid: must be a positive integer, got 0"),
        ({"agent": 5}, "agent: must be a string, got int"),
        ({"ts": "yesterday"}, "ts: must be an RFC 3339 timestamp"),
        ({"ts": "2026-11-18T10:00:00"}, "ts: must be an RFC 3339 timestamp"),  # no zone: ambiguous
        ({"ts": 1_795_000_000_000}, "ts: looks like milliseconds"),
        ({"input_tokens": 5, "cache_read_tokens": 6}, "input_tokens: must include cache reads and writes"),
        ({"output_tokens": 5, "reasoning_tokens": 6}, "reasoning_tokens: is part of output_tokens"),
        ({"agent": "x" * 513}, "agent: must be at most 512 characters"),
    ],
)
def test_validation_names_field_and_problem(fields: dict, message: str) -> None:
    with pytest.raises(EventError) as info:
        parse(**fields)
    assert str(info.value).startswith(message)


def test_far_future_rejected_near_future_accepted() -> None:
    with pytest.raises(EventError, match="ts: is 3600 s in the future"):
        parse(ts=NOW + 3600)
    assert parse(ts=NOW + 60).ts == NOW + 60


def test_ancient_timestamps_rejected() -> None:
    with pytest.raises(EventError, match="days in the past"):
        parse(ts=NOW - 500 * 86400)


def test_unknown_fields_are_ignored() -> None:
    e = parse(model="gpt-5", favourite_colour="blue", kind="turn")
    assert e.model == "gpt-5"


def test_not_an_object() -> None:
    with pytest.raises(EventError, match="an event must be a JSON object, got list"):
        parse_event([1, 2], now=NOW)


def test_numeric_ids_and_whitespace() -> None:
    e = parse(id=17, session=" s1 ", agent="  ")
    assert e.id == "17" and e.session == "s1" and e.agent == "unknown"


def test_rfc3339_offsets() -> None:
    assert parse_timestamp("2026-11-18T12:00:00+02:00") == parse_timestamp("2026-11-18T10:00:00Z")
    assert parse_timestamp("2026-11-18T10:00:00.250Z") == parse_timestamp("2026-11-18T10:00:00Z") + 0.25


def test_defaults_fill_missing_fields_only() -> None:
    e = parse_event({"host": "mine"}, now=NOW, defaults={"host": "feed-host"})
    assert e.host == "mine"
    assert parse_event({}, now=NOW, defaults={"host": "feed-host"}).host == "feed-host"


def test_fast_path_and_general_checks_agree() -> None:
    a = parse(id="x", ts=NOW - 5.5, input_tokens=10, output_tokens=3, agent="a")
    b = parse(id="x", ts=str(NOW - 5.5).join(("", "")) and NOW - 5.5, input_tokens=10.0, output_tokens=3.0, agent=" a ")
    assert a == b
    assert hash(a) == hash(b)


# -- one spelling per field: every field of Event through every form it takes ----------------------

#: a value for every contract field, each different from its default (and valid together)
SAMPLE = {
    "id": "req-1", "ts": NOW - 60.0, "agent": "coder", "session": "s-1", "project": "proj", "host": "box",
    "pid": 4242, "provider": "anthropic", "model": "claude-sonnet-4-5", "input_tokens": 10_000,
    "output_tokens": 2_000, "cache_read_tokens": 6_000, "cache_write_tokens": 3_000, "cache_write_1h_tokens": 1_000,
    "reasoning_tokens": 500, "cost_usd": 0.125, "latency_ms": 812.5, "status": "error", "source": "otlp",
    "branch": "main", "revision": 3, "speed": "fast", "web_searches": 2,
}


def test_every_event_field_survives_every_spelling() -> None:
    """parse_event -> to_dict -> ledger row -> read back -> worker tuple, field by field. A field
    added to Event without a sample here, or missing from any spelling, fails with its name."""
    import dataclasses

    from tokentop.core.events import EVENT_FIELDS, UNSTORED_FIELDS, event_tuple
    from tokentop.core.ledger import Ledger
    from tokentop.core.pricing import Cost

    names = [f.name for f in dataclasses.fields(Event)]
    assert sorted(SAMPLE) == sorted(n for n in names if n not in UNSTORED_FIELDS), "give every new field a sample"
    assert EVENT_FIELDS == tuple(n for n in names if n not in UNSTORED_FIELDS)
    for f in dataclasses.fields(Event):
        if f.name in SAMPLE:
            assert SAMPLE[f.name] != f.default, f"{f.name}: the sample must differ from the default"

    e = parse_event(dict(SAMPLE), now=NOW)
    assert {n: getattr(e, n) for n in SAMPLE} == SAMPLE  # parse_event reads every field
    assert not e.id_generated
    assert parse_event(e.to_dict(), now=NOW) == e  # the contract JSON writes every field
    generated = parse_event({k: v for k, v in SAMPLE.items() if k != "id"}, now=NOW)
    assert generated.id_generated

    cost = Cost(123_456, "provided")
    with Ledger(":memory:") as ledger:
        assert ledger.append([(e, cost), (generated, cost)], received_at=NOW) == [True, True]
        back = {s.event.id: s for s in ledger.events_since(0)}
    stored = back["req-1"]
    assert {n: getattr(stored.event, n) for n in SAMPLE} == SAMPLE  # ledger row and read-back
    assert stored.event == e and stored.cost == cost and stored.received_at == NOW
    # id_generated is about one ingest, not stored: read back, the event has its (now known) id
    assert back[generated.id].event == dataclasses.replace(generated, id_generated=False)

    for event in (e, generated):
        t = event_tuple(event)  # what a worker process pickles
        assert t == tuple(getattr(event, n) for n in names)
        assert Event(*t) == event and Event(*t).id_generated == event.id_generated


def test_a_spelling_that_misses_a_field_fails_loudly(monkeypatch: pytest.MonkeyPatch) -> None:
    from tokentop.core import events

    events.check_field_spellings()  # the real spellings pass (they ran at import, too)
    monkeypatch.setattr(events, "event_tuple", lambda e: (e.id, e.ts))
    with pytest.raises(RuntimeError, match=r"not all spelled in: event_tuple$"):
        events.check_field_spellings()
    monkeypatch.undo()
    swapped = events.event_row
    monkeypatch.setattr(events, "event_row", lambda e, c, r: (e.ts, e.id, *swapped(e, c, r)[2:]))  # two swapped
    with pytest.raises(RuntimeError, match=r"not all spelled in: event_row$"):
        events.check_field_spellings()
