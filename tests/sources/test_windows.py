"""Import windows: a wider window reads the older part of files already read with a narrower one.

The same generated corpus imported with ``--days 3`` and then ``--days 365`` must equal a fresh
``--days 365`` import exactly (requests, tokens, cost); the summaries say what each run skipped and
what the wider run added. Files are dated like real ones (modified when their last line was
written), so the narrow run also skips whole files by their age.
"""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
import time
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

import pytest

from tests.sources.helpers import NOW, Harness, claude_line, write_lines
from tokentop import cli

GEN = Path(__file__).resolve().parents[2] / "bench" / "gen_agent_logs.py"
_TS = re.compile(rb'"timestamp":\s*"([0-9T:.\-]+)Z?"')


def date_files_by_last_line(root: Path) -> int:
    """Set each log file's mtime to its last timestamp (as a file an agent stopped writing then)."""
    n = 0
    for path in root.rglob("*.jsonl"):
        with open(path, "rb") as fh:
            fh.seek(max(0, path.stat().st_size - 65536))
            stamps = _TS.findall(fh.read())
        if not stamps:
            continue
        raw = stamps[-1].decode().split(".")[0]
        ts = time.mktime(time.strptime(raw, "%Y-%m-%dT%H:%M:%S")) - time.timezone + 1
        os.utime(path, (ts, ts))
        n += 1
    return n


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("windows-corpus")
    end = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 3600))
    subprocess.run([sys.executable, str(GEN), "--out", str(out), "--lines", "3000", "--sessions", "30", "--seed", "11",
                    "--end", end, "--days", "30"], check=True, capture_output=True)
    date_files_by_last_line(out)
    # sessions resumed today: a few week-old transcripts get new lines, so they straddle the narrow window
    old = sorted(p for p in (out / ".claude" / "projects").glob("*/*.jsonl") if p.stat().st_mtime < NOW - 5 * 86400)[:3]
    assert len(old) == 3
    for i, path in enumerate(old):
        write_lines(path, [claude_line(f"msg_resumed_{i}_{k}", f"req_resumed_{i}_{k}", ts=NOW - 7200 + k)
                           for k in range(2)], mode="a")
    assert date_files_by_last_line(out) > 30
    return out


def _run(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        code = cli.main(list(argv))
    return code, out.getvalue(), err.getvalue()


def totals(data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> dict:
    monkeypatch.setenv("TOKENTOP_DATA_DIR", str(data_dir))
    code, out, _ = _run("report", "--json", "--utc", "--days", "400", "--by", "model")
    assert code == 0
    report = json.loads(out)
    return {"totals": report["totals"], "by_model": report["by_model"]}


def test_a_wider_import_window_backfills_exactly_what_a_fresh_import_reads(
        corpus: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(corpus))
    # fresh import of a year
    monkeypatch.setenv("TOKENTOP_DATA_DIR", str(tmp_path / "fresh"))
    code, out, _ = _run("import", "--days", "365", "--json")
    assert code == 0
    fresh_summary = json.loads(out)
    fresh = totals(tmp_path / "fresh", monkeypatch)
    assert fresh["totals"]["requests"] == fresh_summary["new"] > 0

    # three days, then a year, on another ledger
    monkeypatch.setenv("TOKENTOP_DATA_DIR", str(tmp_path / "widened"))
    code, out, _ = _run("import", "--days", "3", "--json")
    assert code == 0
    narrow = json.loads(out)
    assert 0 < narrow["new"] < fresh_summary["new"]
    skipped = narrow["skipped"]
    assert skipped["too_old"]["requests"] > 0 and skipped["too_old"]["files"] > 0  # whole files by age, too
    code, out, err = _run("import", "--days", "365", "--json")
    assert code == 0
    wide = json.loads(out)
    assert wide["new"] == fresh_summary["new"] - narrow["new"]  # exactly what the narrow run left out
    assert wide["rewound_files"] == 3
    assert totals(tmp_path / "widened", monkeypatch) == fresh

    # the text summary says what the wider run added, and a third run reads nothing
    monkeypatch.setenv("TOKENTOP_DATA_DIR", str(tmp_path / "text"))
    assert _run("import", "--days", "3")[0] == 0
    code, _, err = _run("import", "--days", "365")
    assert code == 0
    assert f"imported {wide['new']:,} new requests" in err
    assert "re-read" in err and "wider window" in err
    code, _, err = _run("import", "--days", "365")
    assert "imported 0 new requests" in err and "re-read" not in err


def test_a_narrower_or_equal_window_never_re_reads(tmp_path: Path) -> None:
    root = tmp_path / "claude" / "projects"
    write_lines(root / "p" / "a.jsonl", [claude_line("m1", "r1", ts=NOW - 10 * 86400),
                                         claude_line("m2", "r2", ts=NOW - 3600)])
    h = Harness(tmp_path, claude=[root], backfill_days=30)
    try:
        assert h.read() == 2
        h.settings.backfill_days = 5
        h.restart()
        assert h.read() == 0 and h.sources.stats.bytes_read == 0
        h.settings.backfill_days = 30
        h.restart()
        assert h.read() == 0 and h.sources.stats.bytes_read == 0  # nothing was left out: no re-read
    finally:
        h.close()


def test_a_file_read_narrow_is_read_again_from_the_start_once_when_widened(tmp_path: Path) -> None:
    root = tmp_path / "claude" / "projects"
    write_lines(root / "p" / "a.jsonl", [claude_line("m1", "r1", ts=NOW - 10 * 86400),
                                         claude_line("m2", "r2", ts=NOW - 3600)])
    h = Harness(tmp_path, claude=[root], backfill_days=5)
    try:
        assert h.read() == 1 and h.sources.stats.too_old == 1
        h.settings.backfill_days = 30
        h.restart()
        assert h.read() == 2  # the whole file again: m2 is a duplicate the ledger keeps once
        assert h.sources.stats.counters["rewound_files"] == 1
        assert sorted(e.id for e in h.stored()) == ["claude:r1", "claude:r2"]
        h.restart()
        assert h.read() == 0 and h.sources.stats.bytes_read == 0  # covered now: never again
    finally:
        h.close()


def test_a_cursor_of_an_older_tokentop_counts_as_read_with_the_default_window(tmp_path: Path) -> None:
    """Cursors written before windows were recorded: taken as read with 30 days up to their last update,
    so the first wider window reads them again."""
    root = tmp_path / "claude" / "projects"
    write_lines(root / "p" / "a.jsonl", [claude_line("m1", "r1", ts=NOW - 100 * 86400),
                                         claude_line("m2", "r2", ts=NOW - 3600)])
    h = Harness(tmp_path, claude=[root], backfill_days=30)
    try:
        assert h.read() == 1
        h.ledger.call(lambda c: c.execute("DELETE FROM source_windows"))
        h.restart()
        assert h.read() == 0 and h.sources.stats.bytes_read == 0
        h.settings.backfill_days = 365
        h.restart()
        assert h.read() == 2 and h.sources.stats.counters["rewound_files"] == 1
        assert len(h.stored()) == 2
    finally:
        h.close()


@pytest.fixture
def troubled_home(isolated_dirs: Path) -> Path:
    """A HOME whose logs hold one of each reason to skip something."""
    home = Path(os.environ["HOME"])
    proj = home / ".claude" / "projects" / "-home-dev-proj"
    write_lines(proj / "current.jsonl", [
        claude_line("m1", "r1", ts=NOW - 40 * 86400),       # older than the window
        claude_line("m2", "r2", ts=NOW - 3600),
        '{"type": "assistant", "message": {"usage": {"output_tokens": ',  # malformed (claims usage)
    ])
    with open(proj / "current.jsonl", "a", encoding="utf-8") as fh:
        fh.write(claude_line("m3", "r3", ts=NOW - 60)[:50])  # still being written: no newline yet
    old = write_lines(proj / "old.jsonl", [claude_line("m4", "r4", ts=NOW - 50 * 86400)])
    os.utime(old, (NOW - 50 * 86400, NOW - 50 * 86400))  # last written before the window
    # quiet files: nothing is held as still streaming
    os.utime(proj / "current.jsonl", (NOW - 600, NOW - 600))
    rollouts = home / ".codex" / "sessions" / "2026" / "01" / "02"
    rollouts.mkdir(parents=True)
    (rollouts / "rollout-2026-01-02T10-00-00-0199a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b.jsonl.zst").write_bytes(
        b"\x28\xb5\x2f\xfd not zstd at all")
    return home


def test_import_says_what_it_skipped_and_why(troubled_home: Path, tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    code, _, err = _run("import")
    assert code == 0
    assert ("skipped: 1 request and 1 file last written before the window" in err
            and "1 unfinished last line" in err and "1 unreadable file" in err and "1 malformed line" in err), err
    monkeypatch.setenv("TOKENTOP_DATA_DIR", str(tmp_path / "json"))
    code, out, _ = _run("import", "--json")
    assert code == 0
    s = json.loads(out)
    assert s["new"] == 1
    sk = s["skipped"]
    assert sk["too_old"] == {"requests": 1, "files": 1}
    assert sk["pending"]["partial_lines"] == 1
    assert sk["unreadable"]["files"] == 1
    (path, reason), = sk["unreadable"]["paths"].items()
    assert path.endswith(".jsonl.zst") and "decompress" in reason
    assert sk["malformed_lines"] == 1


def test_the_feed_sources_status_says_what_was_skipped(troubled_home: Path, tmp_path: Path) -> None:
    from tests.sources.test_live import start_feed, wait_for

    runner = start_feed(tmp_path)
    try:
        wait_for(lambda: runner.snapshot().status.get("import", {}).get("state") == "done", 10)
        wait_for(lambda: "files_too_old" in runner.snapshot().status.get("sources", {}), 5)
        st = runner.snapshot().status["sources"]
        assert (st["too_old"], st["files_too_old"], st["partial_lines"], st["unreadable_files"], st["malformed"]) \
            == (1, 1, 1, 1, 1)
    finally:
        runner.stop()


def test_a_feed_with_a_larger_backfill_days_reads_the_older_part(troubled_home: Path, tmp_path: Path) -> None:
    from tests.sources.test_live import start_feed, wait_for
    from tokentop.core.ledger import Ledger

    for days, want in ((30, {"claude:r2"}), (60, {"claude:r1", "claude:r2", "claude:r4"})):
        runner = start_feed(tmp_path, backfill_days=days)
        try:
            wait_for(lambda: runner.snapshot().status.get("import", {}).get("state") == "done", 10)
        finally:
            runner.stop()
        with Ledger(tmp_path / "feed.db") as ledger:
            assert {s.event.id for s in ledger.events_since(0)} == want


def test_a_deleted_unreadable_file_leaves_the_status(troubled_home: Path, tmp_path: Path) -> None:
    from tokentop.core.ledger import Ledger
    from tokentop.core.sources.settings import SourceSettings
    from tokentop.core.sources.tailer import LogSources

    settings = SourceSettings(roots={"claude-code": (troubled_home / ".claude",), "codex": (troubled_home / ".codex",)})
    with Ledger(tmp_path / "l.db") as ledger:
        sources = LogSources(ledger, settings)
        sources.poll(lambda batch: None)
        assert len(sources.stats.unreadable) == 1
        for path in list(sources.stats.unreadable):
            os.unlink(path)
        sources.poll(lambda batch: None)
        assert sources.stats.to_json()["unreadable_files"] == 0
