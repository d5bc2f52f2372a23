"""Fixtures for provider tests: a real fake-provider HTTP server on 127.0.0.1, a ledger, a store."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Iterator

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from fake_provider_api import FakeAPI, FakeServer  # noqa: E402


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
