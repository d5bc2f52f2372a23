"""A feed runs exactly the parts it is given (core/feed/assemble.py): no part registers itself, a
part that is not listed is not there, and what the parts provide is reachable, typed, on
``runner.parts``."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest

from tokentop import config as config_mod
from tokentop.core.control import attach as control
from tokentop.core.feed import otlp
from tokentop.core.feed.assemble import FLEET_FEED, HOST_FEED
from tokentop.core.feed.parts import Attached, FeedBase
from tokentop.core.feed.runner import FeedRunner
from tokentop.core.sources import attach as sources
from tokentop.core.team import attach as team


def config(tmp_path: Path, **sections: dict) -> config_mod.Config:
    return config_mod.from_mapping({"ledger": {"path": str(tmp_path / "feed.db")}, **sections})


def test_the_host_and_fleet_feeds_are_the_documented_lists() -> None:
    # docs/architecture.md lists these; the fleet feed never reads local logs nor publishes
    assert sources.attach in HOST_FEED and team.attach in HOST_FEED
    assert sources.attach not in FLEET_FEED and team.attach not in FLEET_FEED and team.attach_fleet in FLEET_FEED
    # the parts that act through the control service come after it
    assert HOST_FEED.index(control.attach) < HOST_FEED.index(control.attach_policy) < HOST_FEED.index(team.attach)


def test_a_feed_without_parts_serves_only_its_core(tmp_path: Path) -> None:
    runner = FeedRunner(config(tmp_path), listen="127.0.0.1:0", attachments=()).start_in_thread(require_listen=True)
    try:
        assert runner.parts == Attached()
        url = runner.address
        assert httpx.get(f"{url}/healthz").status_code == 200
        ok = httpx.post(f"{url}/v1/events", json={"id": "e1", "ts": time.time(), "agent": "a", "model": "gpt-4o",
                                                 "input_tokens": 1, "output_tokens": 1})
        assert ok.status_code == 202 and ok.json()["accepted"] == 1  # ingest is the feed's own
        headers = {"authorization": f"Bearer {runner.token}"}
        assert httpx.post(f"{url}/v1/logs", json={}, headers=headers).status_code == 404  # no OTLP part
        assert httpx.get(f"{url}/v1/sessions/s/plan", headers=headers).status_code == 404  # no control part
    finally:
        runner.stop()


def test_the_host_feed_has_its_parts_on_runner_parts(tmp_path: Path) -> None:
    runner = FeedRunner(config(tmp_path, sources={"enabled": []}), listen="127.0.0.1:0").start_in_thread(require_listen=True)
    try:
        parts = runner.parts
        assert parts.otlp is not None and parts.control is not None
        assert parts.sources is None and parts.providers == () and parts.policy is None  # nothing configured
        assert parts.publisher is None and parts.fleet is None and parts.nats_error is None
        assert httpx.post(f"{runner.address}/v1/logs", json={}).status_code == 200
        r = httpx.get(f"{runner.address}/v1/sessions/s/plan", headers={"authorization": f"Bearer {runner.token}"})
        assert r.status_code == 200 and r.json()["can_act"] is False
    finally:
        runner.stop()


def test_two_parts_providing_the_same_handle_is_a_wiring_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="two attachments of one feed both provide 'otlp'"):
        FeedRunner(config(tmp_path), attachments=(otlp.attach, otlp.attach))


def test_the_policy_part_needs_the_control_part_before_it(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="list control's attach before it"):
        FeedRunner(config(tmp_path), attachments=(control.attach_policy,))


def test_a_part_of_ones_own_gets_the_feed_and_adds_a_route(tmp_path: Path) -> None:
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route

    seen: list[FeedBase] = []

    def hello(feed: FeedBase) -> Attached:
        seen.append(feed)

        async def answer(request):  # noqa: ANN001, ANN202
            return PlainTextResponse(f"hello from {feed.service.host}")

        return Attached(routes=(Route("/v1/hello", answer),))

    runner = FeedRunner(config(tmp_path), listen="127.0.0.1:0", host_name="box", attachments=(control.attach, hello))
    runner.start_in_thread(require_listen=True)
    try:
        assert httpx.get(f"{runner.address}/v1/hello").text == "hello from box"
        (feed,) = seen
        assert feed.service is runner.service and feed.parts.control is runner.parts.control  # it sees the parts before it
    finally:
        runner.stop()
