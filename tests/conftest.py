"""Shared fixtures: every test gets private config/data/state dirs and HOME; a real feed on loopback."""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator

import pytest

from tokentop import config as config_mod

if TYPE_CHECKING:
    from tokentop.core.feed.runner import FeedRunner
    from tokentop.core.snapshot import Snapshot


def pytest_configure(config: pytest.Config) -> None:
    """A shell starts a background job (``cmd &`` without job control) with SIGINT ignored, and an
    ignored signal stays ignored through exec: the processes the tests start (and Ctrl-C in them:
    ``tokentop import``, ``tokentop proxy``, the parser workers) would then never see it. The tests
    run as from a terminal; in the processes they start, SIGINT is back to its default."""
    if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)


@pytest.fixture(autouse=True)
def isolated_dirs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """No test reads or writes the real user's dirs, agent logs or feed."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("TOKENTOP_CONFIG_DIR", str(tmp_path / "cfg"))
    monkeypatch.setenv("TOKENTOP_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("TOKENTOP_STATE_DIR", str(tmp_path / "state"))
    for var in ("TOKENTOP_CONFIG", "TOKENTOP_FEED", "CLAUDE_CONFIG_DIR", "CODEX_HOME", "NO_COLOR",
                "OPENAI_ADMIN_KEY", "ANTHROPIC_ADMIN_KEY", "TOKENTOP_OPENAI_BASE_URL", "TOKENTOP_ANTHROPIC_BASE_URL",
                "GEMINI_CLI_HOME", "QWEN_RUNTIME_DIR", "QWEN_HOME", "PI_CODING_AGENT_DIR"):
        monkeypatch.delenv(var, raising=False)
    # the store sources' locations (OpenCode/Kilo, Copilot CLI)
    for var in ("XDG_DATA_HOME", "OPENCODE_DB", "COPILOT_HOME", "COPILOT_OTEL_FILE_EXPORTER_PATH"):
        monkeypatch.delenv(var, raising=False)
    return tmp_path


@pytest.fixture
def feed(tmp_path: Path) -> Iterator[FeedRunner]:
    """A real feed (uvicorn) on a free loopback port, in its own thread. ``feed.address`` is its URL."""
    from tokentop.core.feed.runner import FeedRunner

    cfg = config_mod.from_mapping({"ledger": {"path": str(tmp_path / "feed.db")}})
    runner = FeedRunner(cfg, listen="127.0.0.1:0", host_name="test-host")
    runner.start_in_thread(require_listen=True)
    try:
        yield runner
    finally:
        runner.stop()


@pytest.fixture
def status_snapshots(tmp_path: Path) -> Iterator[Callable[[str, Any], tuple[Snapshot, Snapshot]]]:
    """``(key, value) -> (embedded, remote)``: a feed's snapshot carrying ``status[key] = value``, as an
    embedded live view gets it (the object) and as a remote one does (through the stream's JSON)."""
    import orjson

    from tokentop.core.feed.service import FeedService
    from tokentop.core.ledger import Ledger
    from tokentop.core.snapshot import Snapshot  # noqa: F811

    ledger = Ledger(tmp_path / "status.db")

    def make(key: str, value: Any) -> tuple[Snapshot, Snapshot]:
        service = FeedService(ledger)
        service.set_status(key, value)
        embedded = service.snapshot()
        return embedded, Snapshot.from_json(orjson.loads(orjson.dumps(embedded.to_json())))

    try:
        yield make
    finally:
        ledger.close()
