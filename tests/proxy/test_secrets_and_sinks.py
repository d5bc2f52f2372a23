"""Keys never land anywhere tokentop writes; events reach a remote feed durably."""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
from pathlib import Path

import anthropic
import httpx
import openai
import pytest

from tokentop import config as config_mod
from tokentop.core.events import Event
from tokentop.core.proxy.sink import EventPump, FeedSink, SinkError

OPENAI_SECRET = "sk-proj-SECRET-d9f8a7b6c5e4d3c2b1a0"
ANTHROPIC_SECRET = "sk-ant-api03-SECRET-0a1b2c3d4e5f6a7b8c9d"
ORG_SECRET = "org-SECRET-7e6d5c4b"


def test_keys_never_appear_in_files_logs_events_or_snapshots(make_proxy, feed, upstream, tmp_path: Path, caplog) -> None:
    caplog.set_level(logging.DEBUG)
    proxy = make_proxy()
    oa = openai.OpenAI(base_url=proxy.url + "/v1", api_key=OPENAI_SECRET, organization=ORG_SECRET, max_retries=0)
    an = anthropic.Anthropic(base_url=proxy.url, api_key=ANTHROPIC_SECRET, max_retries=0)
    an_x = anthropic.Anthropic(base_url=proxy.url, api_key=None, auth_token=None, max_retries=0,
                               default_headers={"x-api-key": ANTHROPIC_SECRET})
    oa.chat.completions.create(model="gpt-5", messages=[{"role": "user", "content": "x"}])
    list(oa.chat.completions.create(model="gpt-5", messages=[{"role": "user", "content": "x"}], stream=True))
    an.messages.create(model="claude-sonnet-4-5", max_tokens=5, messages=[{"role": "user", "content": "x"}])
    an_x.messages.create(model="claude-sonnet-4-5", max_tokens=5, messages=[{"role": "user", "content": "x"}])
    with pytest.raises(openai.AuthenticationError):
        oa.chat.completions.create(model="gpt-5", messages=[], extra_headers={"x-fake": "error-401"})
    with pytest.raises(httpx.RemoteProtocolError):
        with httpx.stream("POST", proxy.url + "/v1/messages", json={"model": "m", "max_tokens": 1, "stream": True, "messages": []},
                          headers={"x-api-key": ANTHROPIC_SECRET, "anthropic-version": "2023-06-01", "x-fake": "drop"}) as r:
            for _ in r.iter_raw():
                pass
    proxy.call(lambda: proxy.part.blocks.block("agent", "openai-python"))
    with pytest.raises(openai.RateLimitError):
        oa.chat.completions.create(model="gpt-5", messages=[])
    dead = make_proxy(upstreams={"openai": "http://127.0.0.1:9"})
    with pytest.raises(openai.InternalServerError) as info:
        openai.OpenAI(base_url=dead.url + "/v1", api_key=OPENAI_SECRET, max_retries=0).chat.completions.create(model="m", messages=[])
    assert OPENAI_SECRET not in str(info.value.body)
    assert upstream.api.seen[0].headers["authorization"] == f"Bearer {OPENAI_SECRET}"  # they did reach the upstream

    events = proxy.events(7) + dead.events(8)
    status = httpx.get(proxy.url + "/_tokentop/status", headers={"x-tokentop-token": "local-token-for-tests"}).text
    snapshot = json.dumps(feed.snapshot().to_json(2000))
    recent = httpx.get(feed.address + "/v1/requests?limit=100").text
    feed.ledger.call(lambda c: c.execute("PRAGMA wal_checkpoint(FULL)"))
    blobs = {"events": json.dumps([e.to_dict() for e in events]), "status": status, "snapshot": snapshot, "requests": recent,
             "logs": caplog.text + "\n".join(str(r.exc_info) for r in caplog.records)}
    for path in tmp_path.rglob("*"):
        if path.is_file():
            blobs[str(path)] = path.read_bytes().decode("latin-1")
    assert any(p.endswith(".db") for p in blobs)  # the ledger was scanned
    for secret in (OPENAI_SECRET, ANTHROPIC_SECRET, ORG_SECRET, "SECRET"):
        leaks = [where for where, text in blobs.items() if secret in text]
        assert not leaks, f"{secret} found in {leaks}"


def _event(i: int) -> Event:
    return Event(id=f"proxy-test-{i}", ts=time.time(), agent="a", model="gpt-5", input_tokens=10, output_tokens=1, source="proxy")


def test_feed_sink_delivers_after_the_feed_comes_up_and_nothing_is_lost(tmp_path: Path) -> None:
    import socket

    from tokentop.core.feed.runner import FeedRunner

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    sink = FeedSink(f"http://127.0.0.1:{port}")
    result: dict = {}

    async def main() -> None:
        pump = EventPump(sink, max_queue=100)
        task = asyncio.get_running_loop().create_task(pump.run())
        for i in range(5):
            pump.put(_event(i))
        await asyncio.sleep(0.3)
        result["while_down"] = pump.status()
        started.set()
        ok = await pump.drain(15)
        result["after"] = (ok, pump.status())
        task.cancel()
        await sink.aclose()

    started = threading.Event()
    runner_box: list = []

    def start_feed() -> None:
        started.wait(10)
        cfg = config_mod.from_mapping({"ledger": {"path": str(tmp_path / "late.db")}})
        runner_box.append(FeedRunner(cfg, listen=f"127.0.0.1:{port}", host_name="late").start_in_thread(require_listen=True))

    t = threading.Thread(target=start_feed)
    t.start()
    try:
        asyncio.run(main())
    finally:
        t.join()
    runner = runner_box[0]
    try:
        assert result["while_down"]["queued"] == 5 and result["while_down"]["failures"] >= 1
        assert "unreachable" in result["while_down"]["last_error"]
        ok, status = result["after"]
        assert ok and status["delivered"] == 5 and status["dropped"] == 0 and status["last_error"] is None
        assert sorted(s.event.id for s in runner.ledger.events_since(0)) == [f"proxy-test-{i}" for i in range(5)]
        assert all(s.event.host == "late" for s in runner.ledger.events_since(0))  # the feed filled its host
    finally:
        runner.stop()


def test_feed_sink_sends_the_token_and_reports_a_refusal(feed) -> None:
    async def main() -> None:
        sink = FeedSink(feed.address, token=feed.token)
        await sink([_event(1)])
        await sink.aclose()
        bad = FeedSink(feed.address + "/nope")
        with pytest.raises(SinkError, match="answered 404"):
            await bad([_event(2)])
        await bad.aclose()

    asyncio.run(main())
    assert [s.event.id for s in feed.ledger.events_since(0)] == ["proxy-test-1"]


def test_pump_abandon_counts_what_never_reached_the_feed(caplog) -> None:
    class Down:
        async def __call__(self, events) -> None:
            raise SinkError("down")

    async def main() -> EventPump:
        pump = EventPump(Down(), max_queue=10)
        for i in range(3):
            pump.put(_event(i))
        assert not await pump.drain(0.1)
        assert pump.abandon() == 3
        return pump

    pump = asyncio.run(main())
    assert pump.dropped == 3 and pump.queued == 0
    assert "3 event(s) never reached the feed" in caplog.text
