"""Revisions through the feed: the answer says ``revised``, every reader sees the revised figures,
and repeats are answered from memory without a ledger round trip."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import time
from pathlib import Path

import httpx
import websockets

from tokentop.commands.report import build as report
from tokentop.core.aggregate import Aggregator
from tokentop.core.events import Event
from tokentop.core.feed.service import FeedService
from tokentop.core.ledger import Ledger


def post(feed, objs) -> httpx.Response:
    return httpx.post(f"{feed.address}/v1/events", content="\n".join(json.dumps(o) for o in objs), timeout=10)


def record(out: int, **kw) -> dict:
    base = {"id": "req-1", "ts": time.time() - 30, "agent": "bot", "session": "s1", "model": "claude-sonnet-4-5",
            "provider": "anthropic", "input_tokens": 20_000, "output_tokens": out}
    base.update(kw)
    return base


def test_post_answers_revised_and_the_snapshot_requests_stream_and_report_show_the_revision(feed) -> None:
    first = record(3)
    assert post(feed, [first]).json() == {"accepted": 1, "revised": 0, "duplicates": 0, "rejected": 0, "errors": []}

    async def watch() -> dict:
        async with websockets.connect(feed.address.replace("http", "ws") + "/v1/stream") as ws:
            frame = json.loads(await ws.recv())
            assert frame["totals"]["output_tokens_today"] == 3
            r = await asyncio.to_thread(post, feed, [record(2701), first])  # the final usage, and a late copy
            assert r.status_code == 202
            assert r.json() == {"accepted": 0, "revised": 1, "duplicates": 1, "rejected": 0, "errors": []}
            while True:
                frame = json.loads(await ws.recv())
                if frame["totals"]["output_tokens_today"] != 3:
                    return frame

    frame = asyncio.run(asyncio.wait_for(watch(), 15))
    assert (frame["totals"]["requests_today"], frame["totals"]["output_tokens_today"]) == (1, 2701)
    assert frame["status"]["ingest"] == {"accepted": 1, "revised": 1, "duplicates": 1, "rejected": 0}
    (item,) = httpx.get(f"{feed.address}/v1/requests", timeout=5).json()["requests"]
    assert item["output_tokens"] == 2701
    data = report(feed.ledger, days=1, by="agent")
    (row,) = data["by_agent"]
    assert (row["requests"], row["output_tokens"]) == (1, 2701)
    assert abs(row["usd"] - float(feed.snapshot().totals.usd_today)) < 1e-9


def test_a_revision_with_another_model_moves_the_request_between_rows(feed) -> None:
    post(feed, [record(10)])
    post(feed, [record(400, model="claude-opus-4-5")])  # a model fallback: the whole record moves
    snap = feed.snapshot()
    assert {r.key: r.requests_today for r in snap.models if r.requests_today} == {"claude-opus-4-5": 1}
    assert snap.totals.requests_today == 1


class CountingLedger(Ledger):
    """A real ledger that counts the appends reaching SQLite."""

    appends = 0

    def submit(self, items, received_at=None):  # noqa: ANN001, ANN201
        self.appends += 1
        return super().submit(items, received_at)


def test_repeats_and_records_no_larger_than_the_stored_one_never_reach_sqlite(tmp_path: Path) -> None:
    """A retried POST, and Claude Code 2.1.97+ writing the same final usage on every block line of a
    response (later timestamps, no more tokens), are answered from memory."""
    now = time.time()
    ledger = CountingLedger(tmp_path / "l.db")
    service = FeedService(ledger, aggregator=Aggregator(), clock=lambda: now)
    line = Event(id="claude:req_1", ts=now - 9, agent="claude-code", model="claude-opus-5", input_tokens=36_000,
                 output_tokens=1008, revision=1)

    batches = [
        [line],
        [line],  # a retried POST: the very same record
        [dataclasses.replace(line)],  # an equal copy (another object)
        [dataclasses.replace(line, ts=now - 8)],  # the next block line of the response: same usage, later
        [dataclasses.replace(line, ts=now - 7, output_tokens=10)],  # an older partial count arriving late
    ]

    async def run() -> list[tuple[int, int, int]]:
        out = []
        for batch in batches:
            r = await service.ingest_events(batch)
            out.append((r.accepted, r.revised, r.duplicates))
        return out

    assert asyncio.run(run()) == [(1, 0, 0), (0, 0, 1), (0, 0, 1), (0, 0, 1), (0, 0, 1)]
    assert ledger.appends == 1  # only the first record went to SQLite
    assert asyncio.run(service.ingest_events([dataclasses.replace(line, output_tokens=2000)])).revised == 1
    assert ledger.appends == 2
    ledger.close()


def test_a_restarted_feed_remembers_the_stored_records_for_the_memory_check(tmp_path: Path) -> None:
    now = time.time()
    e = Event(id="x", ts=now - 5, agent="a", input_tokens=10, output_tokens=5)
    with CountingLedger(tmp_path / "l.db") as ledger:
        asyncio.run(FeedService(ledger, clock=lambda: now).ingest_events([e]))
    with CountingLedger(tmp_path / "l.db") as ledger:
        service = FeedService(ledger, clock=lambda: now)
        service.rebuild()
        assert asyncio.run(service.ingest_events([e])).duplicates == 1 and ledger.appends == 0


class FailingOnce(Ledger):
    """A real ledger whose next append fails (a disk error), once."""

    fail = True

    def submit(self, items, received_at=None):  # noqa: ANN001, ANN201
        if self.fail:
            self.fail = False
            from concurrent.futures import Future

            from tokentop.core.ledger import LedgerError

            fut: Future = Future()
            fut.set_exception(LedgerError("ledger write failed: disk I/O error"))
            return fut
        return super().submit(items, received_at)


def test_a_failed_append_forgets_the_batch_so_its_retry_is_stored(tmp_path: Path) -> None:
    """Regression: an id offered twice in a failed batch (a record and its revision) must not stay
    remembered as stored, or the retry would be answered as a duplicate and lost."""
    import pytest

    from tokentop.core.ledger import LedgerError

    now = time.time()
    ledger = FailingOnce(tmp_path / "l.db")
    service = FeedService(ledger, clock=lambda: now)
    first = Event(id="x", ts=now - 5, agent="a", input_tokens=10, output_tokens=5)
    fuller = dataclasses.replace(first, output_tokens=50)
    with pytest.raises(LedgerError):
        asyncio.run(service.ingest_events([first, fuller]))
    retry = asyncio.run(service.ingest_events([first, fuller]))
    assert (retry.accepted, retry.revised, retry.duplicates) == (1, 1, 0)
    assert ledger.get("x").event.output_tokens == 50
    ledger.close()
