"""The NDJSON ingest fast path (orjson per line) answers exactly as the standard library would."""

from __future__ import annotations

import json

import httpx

from tokentop.core.feed.server import split_payload


def post(feed, body: str) -> httpx.Response:
    return httpx.post(f"{feed.address}/v1/events", content=body)


def test_a_numeric_id_beyond_64_bits_keeps_every_digit(feed) -> None:
    # orjson would read 2**64 + 1 and 2**64 + 2 as the same float; they are two requests
    big = 2**64
    body = "\n".join(json.dumps({"id": big + k, "agent": "a", "input_tokens": 1}) for k in (1, 2))
    data = post(feed, body).json()
    assert (data["accepted"], data["duplicates"]) == (2, 0)
    ids = {item["id"] for item in httpx.get(f"{feed.address}/v1/requests?view=agents&key=a").json()["requests"]}
    assert ids == {str(big + 1), str(big + 2)}


def test_lines_only_the_standard_library_reads_are_judged_as_before(feed) -> None:
    body = "\n".join([
        '{"id": "ok1", "agent": "a"}',
        '{"id": "nan", "agent": "a", "latency_ms": NaN}',  # json reads NaN; the event check refuses it
        "",
        "{broken",
        '{"id": "ok2", "agent": "a", "project": "caf\\u00e9"}',
    ])
    data = post(feed, body).json()
    assert (data["accepted"], data["rejected"]) == (2, 2)
    assert data["errors"][0]["line"] == 4
    assert data["errors"][0]["error"] == "not valid JSON: Expecting property name enclosed in double quotes at column 2"
    assert data["errors"][1] == {"line": 2, "error": "latency_ms: must be a non-negative number, got nan"}


def test_a_lone_surrogate_is_rejected_by_name_and_never_stalls_the_ledger(feed) -> None:
    """Regression: json reads "\\ud800" as a lone surrogate that SQLite cannot store; the ledger's
    group commit failed outside its error handling and every request in it waited for ever."""
    body = "\n".join([
        '{"id": "s1", "agent": "a", "project": "x\\ud800"}',
        '{"id": "s2", "agent": "a"}',
    ])
    r = httpx.post(f"{feed.address}/v1/events", content=body, timeout=10)
    assert r.status_code == 202
    data = r.json()
    assert (data["accepted"], data["rejected"]) == (1, 1)
    assert data["errors"] == [{"line": 1, "error": "project: must be valid Unicode text (it holds a lone surrogate escape)"}]


def test_split_payload_matches_the_standard_library_line_by_line() -> None:
    lines = [
        '{"a": 1}', "  ", '\t{"b": [1, 2.5, -0.0, 1e308]}  ', "[1, 2]", '"text"', "12345678901234567890123",
        '{"c": 1e400}', '{"d": "\\u00e9\\n"}', "{oops}", '{"e": 1}\u2028',
    ]
    got = [(i, getattr(v, "error", v)) for i, v in split_payload("\n".join(lines))]
    want = []
    for i, line in enumerate("\n".join(lines).splitlines(), 1):
        if not line.strip():
            continue
        try:
            want.append((i, json.loads(line.strip())))
        except json.JSONDecodeError as exc:
            want.append((i, f"not valid JSON: {exc.msg} at column {exc.colno}"))
    assert got == want


def test_a_repeat_inside_one_batch_counts_once(feed) -> None:
    body = "\n".join(json.dumps({"id": "same", "agent": "a", "input_tokens": 5}) for _ in range(3))
    data = post(feed, body).json()
    assert (data["accepted"], data["duplicates"]) == (1, 2)
    assert feed.snapshot().totals.requests_today == 1


def test_the_feed_host_fills_only_a_missing_host(feed) -> None:
    body = "\n".join([
        json.dumps({"id": "h1", "agent": "a"}),
        json.dumps({"id": "h2", "agent": "a", "host": None}),
        json.dumps({"id": "h3", "agent": "a", "host": "elsewhere"}),
    ])
    assert post(feed, body).json()["accepted"] == 3
    hosts = {r.key for r in feed.snapshot().hosts}
    assert "elsewhere" in hosts and len(hosts) == 2


def test_a_row_sqlite_cannot_bind_fails_its_batch_instead_of_hanging(tmp_path) -> None:
    import pytest

    from tokentop.core.events import Event
    from tokentop.core.ledger import Ledger, LedgerError
    from tokentop.core.pricing import Cost

    with Ledger(tmp_path / "l.sqlite") as ledger:
        bad = Event(id="bad", ts=1.0e9, project="x\ud800")  # built directly, past parse_event's check
        fut = ledger.submit([(bad, Cost(None, "unpriced"))])
        with pytest.raises(LedgerError, match="ledger write failed"):
            fut.result(timeout=10)
        assert ledger.append([(Event(id="good", ts=1.0e9), Cost(None, "unpriced"))]) == [True]
