"""tokentop.emitter against a real feed, and against no feed at all."""

from __future__ import annotations

import socket
import time

import pytest

from tokentop.emitter import AsyncEmitter, Emitter


def free_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def test_emitter_batches_to_the_feed(feed) -> None:
    with Emitter(agent="py-agent", session="sess-1", feed=feed.address, batch_size=50) as em:
        for i in range(120):
            assert em.emit(model="gpt-5", input_tokens=1000, output_tokens=100)
        assert em.flush(5)
    assert em.sent == 120 and em.dropped == 0
    snap = feed.snapshot()
    assert snap.totals.requests_today == 120
    row = snap.find("sessions", "sess-1")
    assert row.agent == "py-agent" and row.pid is not None


def test_emitter_never_blocks_and_drops_with_a_counter_when_the_feed_is_down() -> None:
    em = Emitter(agent="a", feed=f"http://127.0.0.1:{free_port()}", max_queue=10, flush_interval_s=0.05)
    t0 = time.monotonic()
    results = [em.emit(input_tokens=1) for _ in range(25)]
    assert time.monotonic() - t0 < 0.5
    assert results.count(False) >= 15
    em.close(timeout_s=0.3)
    assert em.dropped == 25 and em.sent == 0
    assert "unreachable" in (em.last_error or "")


def test_emitter_rejects_unknown_fields() -> None:
    em = Emitter(agent="a", feed="http://127.0.0.1:9")
    try:
        with pytest.raises(TypeError, match="unknown event field"):
            em.emit(tokens=5)
    finally:
        em.close(timeout_s=0.1)


def test_emitter_counts_rejections(feed) -> None:
    with Emitter(agent="a", feed=feed.address) as em:
        em.emit(input_tokens=5, cache_read_tokens=9)
        em.emit(input_tokens=5)
        em.flush(5)
    assert em.rejected == 1 and em.sent == 1
    assert "cache_read_tokens" in em.last_error


async def test_async_emitter(feed) -> None:
    em = AsyncEmitter(agent="async-agent", feed=feed.address, batch_size=10)
    for _ in range(35):
        em.emit(model="claude-sonnet-4", input_tokens=10, output_tokens=1)
    assert await em.flush(5)
    await em.close()
    assert em.sent == 35
    assert feed.snapshot().find("agents", "async-agent").requests_today == 35
