"""The ledger keeps everything unless a retention is configured; a configured one says what it deleted.

Real processes: a 10-year history imported with ``tokentop import --days 3650``, then ``tokentop serve``
started and stopped as a user would; the ledger is counted before and after.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.sources.test_windows import date_files_by_last_line
from tests.test_cli_core import free_port, tokentop
from tokentop import config as config_mod
from tokentop.config import ConfigError
from tokentop.core.feed.runner import FeedRunner
from tokentop.core.ledger import Ledger
from tokentop.core.retention import RetentionStatus, last_prune

GEN = Path(__file__).resolve().parents[2] / "bench" / "gen_agent_logs.py"
YEAR = 365 * 86400.0


@pytest.fixture(scope="module")
def old_corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Agent logs of a month that ended five years ago, dated as such."""
    out = tmp_path_factory.mktemp("old-corpus")
    end = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 5 * YEAR))
    subprocess.run([sys.executable, str(GEN), "--out", str(out), "--lines", "1500", "--sessions", "15", "--seed", "5",
                    "--end", end, "--days", "30"], check=True, capture_output=True)
    date_files_by_last_line(out)
    return out


def rows(path: Path) -> int:
    with sqlite3.connect(path) as conn:
        return conn.execute("SELECT COUNT(*) FROM events").fetchone()[0]


def serve_once(cwd: Path) -> str:
    """Start ``tokentop serve``, wait until it answers, stop it with Ctrl-C; its stderr."""
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "tokentop", "serve", "--listen", f"127.0.0.1:{port}"],
                            stderr=subprocess.PIPE, text=True, cwd=cwd)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=0.5).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert proc.poll() is None and time.monotonic() < deadline, "feed did not start"
            time.sleep(0.1)
        status = httpx.get(f"http://127.0.0.1:{port}/v1/snapshot", timeout=5).json()["status"]
    finally:
        proc.send_signal(2)
        _, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, err
    return json.dumps(status) + "\n" + err


@pytest.fixture
def imported(old_corpus: Path, isolated_dirs: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("HOME", str(old_corpus))
    r = tokentop("import", "--days", "3650")
    assert r.returncode == 0, r.stderr
    ledger = isolated_dirs / "data" / "tokentop.db"
    assert rows(ledger) > 100
    return ledger


def test_serve_after_a_ten_year_import_keeps_every_row(imported: Path) -> None:
    before = rows(imported)
    out = serve_once(Path(__file__).parents[2])
    assert rows(imported) == before  # before: every one of them deleted (a 90-day retention by default)
    assert "deleted" not in out and '"retention"' not in out
    # nor does a report or a second import
    assert tokentop("report", "--days", "3650").returncode == 0
    assert tokentop("import", "--days", "3650").returncode == 0
    assert rows(imported) == before


def test_a_configured_retention_prunes_and_says_what_it_removed(imported: Path, isolated_dirs: Path) -> None:
    before = rows(imported)
    cfg = isolated_dirs / "cfg" / "config.toml"
    cfg.parent.mkdir(parents=True, exist_ok=True)
    cfg.write_text("[ledger]\nretention_days = 30\n")
    # the import says a feed will delete what it brings in from before the retention
    note = tokentop("import", "--days", "3650").stderr
    assert "retention_days = 30" in note and "0 to keep everything" in note

    out = serve_once(Path(__file__).parents[2])
    assert rows(imported) == 0
    status_line, err = out.split("\n", 1)
    assert f"deleted {before:,} events dated before" in err and "retention_days = 30" in err
    retention = json.loads(status_line)["retention"]
    assert retention["removed"] == before and retention["retention_days"] == 30
    cut = time.strptime(retention["before"], "%Y-%m-%dT%H:%M:%SZ")
    assert abs(time.mktime(cut) - time.timezone - (time.time() - 30 * 86400)) < 120

    # the report says why those days are empty
    r = tokentop("report", "--days", "3650")
    assert f"deleted {before:,} events dated before {retention['before']}" in r.stdout
    assert "this report has nothing before" in r.stdout
    report = json.loads(tokentop("report", "--days", "3650", "--json").stdout)
    assert report["pruned"]["removed"] == before
    assert "pruned" not in json.loads(tokentop("report", "--days", "7", "--json").stdout)  # the cut is outside


def test_retention_in_process_status_and_record(tmp_path: Path) -> None:
    from tokentop.core.events import Event
    from tokentop.core.pricing import Cost

    path = tmp_path / "l.db"
    now = time.time()
    with Ledger(path) as ledger:
        ledger.append([(Event(id=f"e{i}", ts=now - (i + 0.5) * 86400.0, agent="a", input_tokens=1), Cost(1, "estimated"))
                       for i in range(100)])
        assert ledger.prune(now) == 0  # no retention given: nothing deleted
    cfg = config_mod.from_mapping({"ledger": {"path": str(path), "retention_days": 30}})
    runner = FeedRunner(cfg, listen="127.0.0.1:0", host_name="h")
    try:
        assert runner.pruned is not None and runner.pruned.removed == 70  # 30.5 to 99.5 days old
        status = RetentionStatus.of(runner.service.snapshot())
        assert status is not None and status.pruned == runner.pruned
        assert last_prune(runner.ledger) == runner.pruned
        assert runner.ledger.count() == 30
    finally:
        runner.stop()


def test_retention_days_accepts_zero_and_refuses_negatives() -> None:
    assert config_mod.from_mapping({}).ledger.retention_days == 0
    assert config_mod.from_mapping({"ledger": {"retention_days": 0}}).ledger.retention_days == 0
    with pytest.raises(ConfigError, match="retention_days must be 0 or more"):
        config_mod.from_mapping({"ledger": {"retention_days": -1}})
