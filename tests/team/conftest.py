"""Team-mode fixtures: a real JetStream-enabled nats-server per test."""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import pytest

from tests.team.natsserver import NatsServer


@pytest.fixture
def nats_server(tmp_path: Path) -> Iterator[NatsServer]:
    server = NatsServer(tmp_path / "jetstream")
    server.start()
    try:
        yield server
    finally:
        server.stop()
