"""``tokentop doctor``: a tree with two agents present and one missing, a malformed line and a broken
session document, a ledger, an invalid config, with and without a running feed."""

from __future__ import annotations

import io
import json
import os
import time
from contextlib import redirect_stdout
from pathlib import Path

import pytest

from tests.sources.agent_helpers import touch_old, write
from tests.sources.test_gemini_cli import gemini, meta, project, session_file
from tests.sources.test_pi import assistant, file_name, header, sessions
from typing import Any, Mapping

from tokentop import cli
from tokentop import config as config_mod
from tokentop.core.events import Event
from tokentop.core.feed.runner import FeedRunner
from tokentop.core.ledger import SCHEMA_VERSION, Ledger
from tokentop.core.sources import documents, gemini_cli
from tokentop.core.sources.diagnose import diagnose
from tokentop.core.sources.formats import FORMATS
from tokentop.core.sources.protocol import LineReader, LogFormat
from tokentop.core.sources.settings import SourceSettings


@pytest.fixture
def tree(isolated_dirs: Path) -> Path:
    gemini_cli._PROJECTS.clear()
    home = Path(os.environ["HOME"])
    pdir = project(home)
    good = json.dumps(gemini("m3"), separators=(",", ":"))
    write(session_file(pdir), [meta(), gemini("m1"), gemini("m2"), good[:-12]])  # the last line is cut short
    broken = pdir / "chats" / "session-2026-03-01T10-00-0b0b0b0b.json"
    broken.write_text('{"sessionId": "0b0b0b0b", "messages": [{"id": ')  # an old session document, broken
    touch_old(broken, documents.SETTLE_S + 10)
    write(sessions(home) / file_name("2dd46188-a1a0-4393-912d-a5445bfd6ec1"),
          [header("2dd46188-a1a0-4393-912d-a5445bfd6ec1"), assistant("a1a1a1a1", None)])
    return home


def doctor(*args: str) -> tuple[int, str]:
    buf = io.StringIO()
    with redirect_stdout(buf):
        code = cli.main(["doctor", *args])
    return code, buf.getvalue()


def by_name(report: dict) -> dict[str, dict]:
    return {s["name"]: s for s in report["sources"]}


def test_two_agents_found_one_missing_and_every_problem_named(tree: Path) -> None:
    code, out = doctor("--json")
    assert code == 0
    report = json.loads(out)
    src = by_name(report)
    assert list(src) == [f.name for f in FORMATS]  # every source, in the list's order
    g, q, p = src["gemini-cli"], src["qwen-code"], src["pi"]
    assert (g["found"], g["enabled"], g["files"], g["files_read"], g["records"]) == (True, True, 2, 2, 2)
    assert g["problems"] == {"malformed": 1, "unreadable_documents": 1}
    assert g["warnings"] and "cannot read the document" in g["warnings"][0]
    assert g["last_record_ts"] is not None and g["error"] is None
    assert g["roots"] == [{"path": str(tree / ".gemini" / "tmp"), "exists": True}]
    assert (q["found"], q["files"], q["records"], q["roots"][0]["exists"]) == (False, 0, 0, False)
    assert (p["found"], p["records"], p["problems"]) == (True, 1, {})
    assert report["config"] == {"path": str(Path(os.environ["TOKENTOP_CONFIG_DIR"]) / "config.toml"), "exists": False,
                                "valid": True, "error": None}
    assert report["feed"]["reachable"] is False
    assert report["ledger"]["exists"] is False
    # read-only: no cursor written, no ledger created, nothing imported
    assert not Path(report["ledger"]["path"]).exists()

    code, text = doctor()
    assert code == 0
    assert "gemini-cli   on   2 files, 2 read" in text and "2 requests, newest" in text
    assert "problems: malformed 1, unreadable documents 1" in text
    assert "qwen-code    on   not found" in text
    assert "~/.qwen/projects (missing)" in text
    assert text.rstrip().endswith("ok")


def test_the_ledger_is_read_without_changing_it(tree: Path) -> None:
    cfg_path = Path(os.environ["TOKENTOP_DATA_DIR"]) / "tokentop.db"
    assert cli.main(["import", "--quiet"]) == 0
    before = sorted(os.listdir(cfg_path.parent))
    code, out = doctor("--json")
    report = json.loads(out)
    lg = report["ledger"]
    assert (lg["exists"], lg["schema_version"], lg["supported_version"], lg["events"]) == (True, SCHEMA_VERSION,
                                                                                          SCHEMA_VERSION, 3)
    assert {r["source"]: r["events"] for r in lg["by_source"]} == {"gemini-cli-log": 2, "pi-log": 1}
    assert by_name(report)["gemini-cli"]["ledger_events"] == 2
    assert sorted(os.listdir(cfg_path.parent)) == before  # no -wal/-shm left beside it
    # a ledger from a newer tokentop is an error, named, and the exit status says so
    ledger = Ledger(cfg_path)
    ledger.set_meta("schema_version", str(SCHEMA_VERSION + 1))
    ledger.close()
    code, out = doctor("--json")
    assert code == 1 and "newer tokentop" in json.loads(out)["ledger"]["error"]


def test_an_invalid_config_is_reported_and_the_rest_still_checked(tree: Path) -> None:
    cfg = Path(os.environ["TOKENTOP_CONFIG_DIR"]) / "config.toml"
    cfg.parent.mkdir(parents=True, exist_ok=True)
    cfg.write_text("[sources]\nbackfill_days = 'soon'\n")
    code, out = doctor("--json")
    report = json.loads(out)
    assert code == 1 and report["config"]["valid"] is False and "backfill_days" in report["config"]["error"]
    assert by_name(report)["pi"]["records"] == 1


def test_a_running_feed_is_found_and_its_sources_state_shown(tree: Path, tmp_path: Path) -> None:
    cfg = {"ledger": {"path": str(tmp_path / "feed.db")}}
    runner = FeedRunner(config_mod.from_mapping(cfg), listen="127.0.0.1:0", host_name="test-host")
    runner.start_in_thread(require_listen=True)
    try:
        deadline = time.monotonic() + 10
        while runner.snapshot().status.get("import", {}).get("state") != "done":
            assert time.monotonic() < deadline
            time.sleep(0.05)
        code, out = doctor("--json", "--feed", runner.address)
        feed = json.loads(out)["feed"]
        assert feed["reachable"] is True and feed["url"] == runner.address
        assert feed["import"]["state"] == "done" and feed["sources"]["state"] in ("watching", "polling", "starting")
        code, text = doctor("--feed", runner.address)
        assert f"feed     {runner.address}: answers, sources" in text
    finally:
        runner.stop()


class Broken(LineReader):
    """A reader with a bug: the report names it and the other sources still run."""

    def feed(self, raw: bytes, offset: int, live: bool, now: float, out: list[Event], stats: dict[str, int]) -> None:
        raise RuntimeError("reader bug")


def broken_roots(values: Mapping[str, Any], env: Mapping[str, str]) -> tuple[Path, ...]:
    return (Path(env["HOME"]) / ".gemini" / "tmp",)


def test_a_failing_reader_is_reported_and_the_others_still_run(tree: Path) -> None:
    broken = LogFormat(name="broken-agent", roots=broken_roots, reader=Broken, accept=gemini_cli.in_chats)
    formats = FORMATS + (broken,)
    cfg = config_mod.from_mapping({})
    settings = SourceSettings.from_config(cfg, formats=formats)
    settings.enabled = (*settings.enabled, "broken-agent")
    reports = {r.name: r for r in diagnose(settings, 1.0)}
    assert reports["broken-agent"].error is not None and reports["broken-agent"].error.startswith("RuntimeError: reader bug")
    assert reports["pi"].records == 1 and reports["gemini-cli"].records == 2
