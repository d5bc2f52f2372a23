"""Incremental tailing: cursors across restarts, rotation, deletion, recreation, streaming lines revised."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.sources.helpers import NOW, Harness, claude_line, write_lines

# every test on both JSON paths (typed decoding and its fallback): the same events either way
pytestmark = pytest.mark.usefixtures("json_path")


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return tmp_path / "claude" / "projects"


@pytest.fixture
def h(tmp_path: Path, root: Path):
    harness = Harness(tmp_path, claude=[root])
    yield harness
    harness.close()


def test_restart_resumes_from_the_persisted_cursor_and_reads_nothing_twice(h: Harness, root: Path) -> None:
    path = write_lines(root / "p" / "a.jsonl", [claude_line("m1", "r1"), claude_line("m2", "r2")])
    h.read()
    h.restart()
    assert h.read() == 0
    assert h.sources.stats.bytes_read == 0  # unchanged file: not even opened
    write_lines(path, [claude_line("m3", "r3")], mode="a")
    h.read()
    assert h.sources.stats.bytes_read == len(claude_line("m3", "r3")) + 1  # only the new line
    assert sorted(e.id for e in h.stored()) == ["claude:r1", "claude:r2", "claude:r3"]


def test_appends_are_read_incrementally_without_rescanning(h: Harness, root: Path) -> None:
    path = write_lines(root / "p" / "a.jsonl", [claude_line("m1", "r1")])
    h.read()
    first = h.sources.stats.bytes_read
    write_lines(path, [claude_line("m2", "r2")], mode="a")
    h.read()
    assert h.sources.stats.bytes_read - first == len(claude_line("m2", "r2")) + 1
    assert len(h.handed) == 2


def test_truncated_and_rewritten_file_is_read_again_from_the_start(h: Harness, root: Path) -> None:
    path = write_lines(root / "p" / "a.jsonl", [claude_line("m1", "r1"), claude_line("m2", "r2")])
    h.read()
    write_lines(path, [claude_line("m9", "r9")])  # rotated in place: shorter, other content
    h.read()
    assert sorted(e.id for e in h.stored()) == ["claude:r1", "claude:r2", "claude:r9"]


def test_deleted_then_recreated_file_is_read_from_the_start(h: Harness, root: Path) -> None:
    path = write_lines(root / "p" / "a.jsonl", [claude_line("m1", "r1")])
    h.read()
    path.unlink()
    h.read()
    assert str(path) not in {str(p) for p in h.sources.cursors}
    write_lines(path, [claude_line("m1", "r1"), claude_line("m5", "r5", out=1, inp=1, read=0, write=0)])
    h.read()
    assert sorted(e.id for e in h.stored()) == ["claude:r1", "claude:r5"]  # r1 re-read, still counted once


def test_streaming_response_is_counted_at_first_sight_and_revised_across_a_restart(h: Harness, root: Path) -> None:
    path = write_lines(root / "p" / "a.jsonl", [claude_line("m1", "r1", out=5, stop=None)])
    h.read()
    assert [(e.id, e.output_tokens) for e in h.stored()] == [("claude:r1", 5)]  # on screen at once
    h.restart()  # nothing is held: the cursor is past the line, and the ledger has its record
    write_lines(path, [claude_line("m1", "r1", out=600, stop=None)], mode="a")  # 2.x: no stop_reason
    h.read()
    assert [(e.id, e.output_tokens) for e in h.stored()] == [("claude:r1", 600)]  # revised, one record
    assert h.sources.stats.bytes_read == len(claude_line("m1", "r1", out=600, stop=None)) + 1  # nothing re-read
    stored = h.ledger.get("claude:r1")
    assert stored is not None and stored.revisions == 1


def test_quiet_file_with_an_unfinished_response_is_counted_at_its_best_line(h: Harness, root: Path) -> None:
    path = write_lines(root / "p" / "a.jsonl", [claude_line("m1", "r1", out=5, stop=None), claude_line("m1", "r1", out=9, stop=None)])
    old = NOW - 3600
    os.utime(path, (old, old))
    h.read()
    assert [(e.id, e.output_tokens) for e in h.stored()] == [("claude:r1", 9)]


@pytest.mark.parametrize("chunk", [1, 7, 300, 4 * 1024 * 1024])
def test_lines_cut_by_read_chunks_anywhere_read_the_same(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                         chunk: int) -> None:
    """The byte scan hands over whole lines wherever a read chunk ends: inside a line, inside the
    filter word, on a newline; the same events, line count and malformed count as one big read."""
    from tokentop.core.sources import tailer

    root = tmp_path / "claude" / "projects"
    text = "\n".join([
        claude_line("m1", "r1", out=10, stop=None),
        json.dumps({"type": "user", "message": {"role": "user", "content": "x" * 500}}),
        claude_line("m1", "r1", out=700),
        "",  # a blank line
        json.dumps({"type": "user", "message": {"content": 'the word "usage" in a prompt'}}),
        '{"type":"assistant","message":{"usage":{"input_tokens":"lots"}},"timestamp":"bad"}',  # malformed
        claude_line("m2", "r2", out=40),
    ]) + "\n" + claude_line("m3", "r3", out=5)  # the last line is still being written: no newline
    write_lines(root / "p" / "a.jsonl", [])
    (root / "p" / "a.jsonl").write_text(text)
    monkeypatch.setattr(tailer, "READ_CHUNK", chunk)
    h = Harness(tmp_path, claude=[root])
    try:
        h.read()
        got = sorted((e.id, e.output_tokens) for e in h.stored())
        stats = h.sources.stats
        assert got == [("claude:r1", 700), ("claude:r2", 40)]
        assert stats.lines == 7
        assert stats.counters.get("malformed") == 1
    finally:
        h.close()
