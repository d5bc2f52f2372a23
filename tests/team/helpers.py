"""Test helpers for team mode: host feeds and fleet views on real loopback servers, waiting, events."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any, Callable

from tokentop import config as config_mod
from tokentop.core.feed.runner import FeedRunner
from tokentop.core.team.fleet_feed import build_fleet_runner


def host_runner(tmp_path: Path, name: str, nats_url: str, *, nats: dict[str, Any] | None = None,
                pricing: dict[str, Any] | None = None, start: bool = True) -> FeedRunner:
    base = tmp_path / name
    raw: dict[str, Any] = {
        "ledger": {"path": str(base / "ledger.db")},
        "nats": {"url": nats_url, "ack_timeout_s": 1, "heartbeat_s": 0.5, **(nats or {})},
    }
    if pricing:
        raw["pricing"] = pricing
    cfg = config_mod.from_mapping(raw)
    runner = FeedRunner(cfg, listen="127.0.0.1:0", host_name=name, token_dir=base / "state")
    if start:
        runner.start_in_thread(require_listen=True)
    return runner


def fleet_runner(tmp_path: Path, nats_url: str, name: str = "viewer", *, start: bool = True) -> FeedRunner:
    cfg = config_mod.from_mapping({"ledger": {"path": str(tmp_path / name / "unused.db")},
                                   "nats": {"url": nats_url, "ack_timeout_s": 1}})
    runner = build_fleet_runner(cfg, listen="127.0.0.1:0", ledger_path=tmp_path / name / "fleet.db",
                                consumer=f"test-{name}")
    runner.token_dir = tmp_path / name / "state"
    if start:
        runner.start_in_thread(require_listen=True)
    return runner


def wait_for(predicate: Callable[[], Any], timeout: float = 10.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.02)


def events(prefix: str, n: int, *, start: int = 0, model: str = "claude-sonnet-4-5", provider: str = "anthropic",
           session: str | None = None) -> list[dict[str, Any]]:
    now = time.time()
    return [
        {"id": f"{prefix}-{i}", "ts": now, "agent": "claude-code", "session": session or f"{prefix}-s{i % 3}",
         "provider": provider, "model": model, "input_tokens": 1000 + i, "output_tokens": 100 + i}
        for i in range(start, start + n)
    ]


def ingest(runner: FeedRunner, objs: list[dict[str, Any]]) -> Any:
    # generous: the CI box may be busy; a slow ingest is not what these tests measure
    return runner.run_coroutine(runner.service.ingest_objects([(None, o) for o in objs]), timeout=60)


def stream_state(nats_url: str, stream: str = "TOKENTOP") -> Any:
    import nats

    async def go() -> Any:
        nc = await nats.connect(nats_url)
        try:
            return (await nc.jetstream().stream_info(stream)).state
        finally:
            await nc.close()

    return asyncio.run(go())


def totals(runner: FeedRunner) -> Any:
    return runner.snapshot().totals


def stream_ids(url: str) -> list[str]:
    """Event ids in the stream, in stream order (read with a throwaway consumer)."""
    import json

    import nats

    async def go() -> list[str]:
        nc = await nats.connect(url)
        js = nc.jetstream()
        sub = await js.pull_subscribe("tokentop.events.>", stream="TOKENTOP")
        out: list[str] = []
        try:
            while True:
                msgs = await sub.fetch(500, timeout=0.5)
                for m in msgs:
                    obj = json.loads(m.data)
                    out.extend(item["event"]["id"] for item in obj.get("events") or [obj])  # a batch, or one
        except Exception:
            pass
        await nc.close()
        return out

    return asyncio.run(go())

