"""Fixtures: a fake OpenAI/Anthropic upstream (real uvicorn on 127.0.0.1), a real feed, and the
proxy itself running in its own thread and loop, its events going into that feed."""

from __future__ import annotations

from typing import Any, Callable, Iterator

import pytest

from tests.proxy.fake_upstream import FakeServer
from tests.proxy.helpers import TOKEN, RunningProxy

from tokentop.core.proxy.server import build_proxy
from tokentop.core.proxy.settings import ProxySettings
from tokentop.core.proxy.sink import EventSink, ServiceSink

@pytest.fixture
def upstream() -> Iterator[FakeServer]:
    server = FakeServer().start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def make_proxy(feed: Any, upstream: FakeServer) -> Iterator[Callable[..., RunningProxy]]:
    """``make_proxy(**settings)``: a running proxy whose ``openai``, ``anthropic`` and ``compat``
    upstreams are the fake; events into the ``feed`` fixture's service."""
    running: list[RunningProxy] = []

    def make(sink: EventSink | None = None, **overrides: Any) -> RunningProxy:
        upstreams = {"openai": upstream.url, "anthropic": upstream.url, "compat": upstream.url + "/api"}
        upstreams.update(overrides.pop("upstreams", {}))
        settings = ProxySettings(listen="127.0.0.1:0", upstreams=upstreams, **overrides)
        part = build_proxy(settings, sink or ServiceSink(feed.service, feed.loop), token=TOKEN, host="test-host")
        proxy = RunningProxy(part, feed)
        running.append(proxy)
        return proxy

    try:
        yield make
    finally:
        for p in running:
            p.stop()


@pytest.fixture
def proxy(make_proxy: Callable[..., RunningProxy]) -> RunningProxy:
    return make_proxy()
