"""Fixtures for provider tests: a real fake-provider HTTP server on 127.0.0.1, a ledger, a store."""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import pytest

from tests.providers.fake_provider_api import FakeAPI, FakeServer


@pytest.fixture
def fake_api() -> Iterator[FakeServer]:
    server = FakeServer(FakeAPI()).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def ledger(tmp_path: Path) -> Iterator["Ledger"]:  # noqa: F821
    from tokentop.core.ledger import Ledger

    led = Ledger(tmp_path / "ledger.db")
    try:
        yield led
    finally:
        led.close()
