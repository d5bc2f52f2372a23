"""Gemini CLI chat recordings: one test per trap in docs/sources.md ("Gemini CLI"), real files, real sources.

The lines follow Gemini CLI's own writer (``packages/core/src/services/chatRecordingService.ts`` and
``chatRecordingTypes.ts``): a metadata line, message records re-appended on every update,
``$set`` / ``$rewindTo`` control lines, and the older whole-JSON session documents.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path

import pytest

from tests.sources.agent_helpers import Home, jl, touch_old, write
from tests.sources.helpers import NOW, iso
from tokentop.core.pricing import Pricer
from tokentop.core.sources import documents, gemini_cli

SID = "5b1d7c2e-8f0a-4c3d-9e6f-1a2b3c4d5e6f"
SUB = "9c8b7a6f-5e4d-4c3b-8a19-0f1e2d3c4b5a"


@pytest.fixture(autouse=True)
def fresh_project_cache() -> None:
    gemini_cli._PROJECTS.clear()


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return tmp_path / "home"


def project(home: Path, slug: str = "webapp", root: str | None = "/home/dev/code/webapp") -> Path:
    d = home / ".gemini" / "tmp" / slug
    (d / "chats").mkdir(parents=True, exist_ok=True)
    if root is not None:
        (d / ".project_root").write_text(root)
    return d


def meta(sid: str = SID, kind: str | None = None, **extra) -> dict:
    m = {"sessionId": sid, "projectHash": "ab" * 32, "startTime": iso(NOW - 900), "lastUpdated": iso(NOW - 900)}
    if kind:
        m["kind"] = kind
    m.update(extra)
    return m


def gemini(mid: str, *, inp: int = 15327, out: int = 23, cached: int = 11526, thoughts: int = 919, tool: int = 7,
           model: str | None = "gemini-2.5-pro", ts: float | None = None, tokens: bool = True, **extra) -> dict:
    msg = {"id": mid, "timestamp": iso(NOW - 600 if ts is None else ts), "type": "gemini", "content": "Done.",
           "thoughts": [], "tokens": {"input": inp, "output": out, "cached": cached, "thoughts": thoughts, "tool": tool,
                                      "total": inp + out + thoughts + tool} if tokens else None}
    if model is not None:
        msg["model"] = model
    msg.update(extra)
    return msg


def user(mid: str = "u1") -> dict:
    return {"id": mid, "timestamp": iso(NOW - 700), "type": "user", "content": [{"text": "fix the tests"}]}


def session_file(pdir: Path, sid: str = SID) -> Path:
    return pdir / "chats" / f"session-2026-05-17T11-07-{sid[:8]}.jsonl"


def open_home(tmp_path: Path, home: Path, **kw) -> Home:
    return Home(tmp_path, home, ("gemini-cli",), **kw)


# -- token semantics -------------------------------------------------------------------------------------

def test_cached_is_inside_input_and_thoughts_and_tool_are_beside_it(tmp_path: Path, home: Path) -> None:
    # ccusage's loader fixture: input 15,327 of which 11,526 cached; 919 thoughts and 7 tool-use prompt tokens
    write(session_file(project(home)), [meta(), user(), gemini("msg-a")])
    h = open_home(tmp_path, home)
    try:
        assert h.read() == 1
        e = h.stored()["gemini:msg-a"]
        assert (e.input_tokens, e.cache_read_tokens, e.output_tokens, e.reasoning_tokens) == (15334, 11526, 942, 919)
        assert e.input_tokens + e.output_tokens == 16276  # Gemini's own total, nothing added on top
        assert (e.agent, e.session, e.project, e.provider, e.model, e.source) == (
            "gemini-cli", SID, "webapp", "google", "gemini-2.5-pro", "gemini-cli-log")
        # tokscale #439: cached counted twice (input + cached) would price 26,860 input tokens
        cost = Pricer().price(e)
        assert cost.kind == "estimated" and cost.pusd is not None
    finally:
        h.close()


def test_a_message_re_appended_on_every_update_counts_once_and_again_only_when_it_grows(tmp_path: Path, home: Path) -> None:
    path = write(session_file(project(home)), [
        meta(), user(),
        gemini("m1", tokens=False),                        # recorded before its usage arrived
        gemini("m1"),                                      # tokens attached: re-appended
        {"$set": {"lastUpdated": iso(NOW - 500)}},
        gemini("m1", toolCalls=[{"id": "c1", "name": "read_file", "args": {}, "status": "scheduled"}]),
        gemini("m1", toolCalls=[{"id": "c1", "name": "read_file", "args": {}, "status": "success"}]),
    ])
    h = open_home(tmp_path, home)
    try:
        assert h.read() == 1
        assert h.counters()["reappended"] == 2
        # a later copy with more tokens is handed again under the same id (a revision for the feed)
        write(path, [gemini("m1", out=500)], mode="a")
        assert h.read() == 1
        assert [e.output_tokens for e in h.handed] == [942, 1419]
        assert {e.id for e in h.handed} == {"gemini:m1"}
    finally:
        h.close()


def test_checkpoints_restating_the_conversation_and_rewinds_change_no_count(tmp_path: Path, home: Path) -> None:
    m1, m2 = gemini("m1", out=10), gemini("m2", out=20)
    write(session_file(project(home)), [
        meta(), user(), m1, user("u2"), m2,
        {"$set": {"messages": [user(), m1, user("u2"), m2], "lastUpdated": iso(NOW - 400)}},  # a checkpoint
        {"$rewindTo": "u2"},  # m2 leaves the conversation; it was billed all the same
        gemini("m3", out=30),
    ])
    h = open_home(tmp_path, home)
    try:
        h.read()
        assert sorted(h.stored()) == ["gemini:m1", "gemini:m2", "gemini:m3"]
        assert sum(e.output_tokens for e in h.stored().values()) == (10 + 919) + (20 + 919) + (30 + 919)
    finally:
        h.close()


def test_a_message_without_a_model_takes_the_files_previous_one(tmp_path: Path, home: Path) -> None:
    write(session_file(project(home)), [meta(), gemini("m1", model="gemini-3-flash-preview"), gemini("m2", model=None)])
    h = open_home(tmp_path, home)
    try:
        h.read()
        assert h.stored()["gemini:m2"].model == "gemini-3-flash-preview"
    finally:
        h.close()


def test_non_responses_are_not_requests(tmp_path: Path, home: Path) -> None:
    write(session_file(project(home)), [
        meta(), user(),
        {"id": "i1", "timestamp": iso(NOW - 500), "type": "info", "content": "Switched model"},
        {"id": "e1", "timestamp": iso(NOW - 500), "type": "error", "content": "Quota exceeded"},
        gemini("z", inp=0, out=0, cached=0, thoughts=0, tool=0),  # an empty usage record
    ])
    h = open_home(tmp_path, home)
    try:
        assert h.read() == 0 and h.counters() == {}
    finally:
        h.close()


# -- copies of the same messages -----------------------------------------------------------------------

def test_an_imported_copy_of_a_session_counts_each_message_once(tmp_path: Path, home: Path) -> None:
    pdir = project(home)
    write(session_file(pdir), [meta(), user(), gemini("m1"), gemini("m2")])
    other = "0f0e0d0c-0000-4000-8000-000000000001"
    write(session_file(pdir, other), [meta(other), user(), gemini("m1"), gemini("m2"),
                                      {"id": "i9", "timestamp": iso(NOW), "type": "info", "content": "Imported session"}])
    h = open_home(tmp_path, home)
    try:
        assert h.read() == 4
        assert sorted(h.stored()) == ["gemini:m1", "gemini:m2"]
    finally:
        h.close()


def test_a_legacy_json_session_and_its_resumed_jsonl_twin_count_once(tmp_path: Path, home: Path) -> None:
    pdir = project(home)
    doc = dict(meta(), messages=[user(), gemini("m1", model="gemini-2.5-flash"), gemini("m2")])
    legacy = pdir / "chats" / f"session-2026-03-01T10-00-{SID[:8]}.json"
    legacy.write_text(json.dumps(doc, indent=2))
    # resumed by a JSONL release: `<file>.json` + `l` holds the metadata, every old message, then new ones
    write(legacy.with_suffix(".jsonl"), [meta(), user(), gemini("m1", model="gemini-2.5-flash"), gemini("m2"),
                                         {"$set": {"sessionId": SID}}, gemini("m3")])
    h = open_home(tmp_path, home)
    try:
        h.read()
        stored = h.stored()
        assert sorted(stored) == ["gemini:m1", "gemini:m2", "gemini:m3"]
        assert stored["gemini:m1"].model == "gemini-2.5-flash"
        assert {e.source for e in h.handed} == {"gemini-cli-log", "gemini-cli-json"}
        assert h.sources.stats.files == 2
    finally:
        h.close()


def test_a_legacy_document_rewritten_in_place_hands_new_and_grown_messages_only(tmp_path: Path, home: Path) -> None:
    pdir = project(home)
    path = pdir / "chats" / f"session-2026-03-01T10-00-{SID[:8]}.json"
    msgs = [user(), gemini("m1", out=10)]
    path.write_text(json.dumps(dict(meta(), messages=msgs), indent=2))
    h = open_home(tmp_path, home)
    try:
        assert h.read() == 1
        assert h.read() == 0  # unchanged: not even opened
        # the older writer rewrote the whole file: a new message, and tokens attached to the last one
        msgs = [user(), gemini("m1", out=10), gemini("m2", tokens=False)]
        path.write_text(json.dumps(dict(meta(), messages=msgs), indent=2))
        assert h.changed(path) == 0
        msgs[-1] = gemini("m2", out=40)
        path.write_text(json.dumps(dict(meta(), messages=msgs, lastUpdated=iso(NOW)), indent=2))
        assert h.changed(path) == 1
        msgs[-1] = gemini("m2", out=90)  # grew again: a revision under the same id
        path.write_text(json.dumps(dict(meta(), messages=msgs, lastUpdated=iso(NOW + 1)), indent=2))
        assert h.changed(path) == 1
        assert [(e.id, e.output_tokens) for e in h.handed] == [("gemini:m1", 929), ("gemini:m2", 959), ("gemini:m2", 1009)]
        h.restart()
        assert h.read() == 0  # the cursor in the ledger: an unchanged document is not read again
    finally:
        h.close()


def test_a_legacy_document_caught_mid_rewrite_is_read_again_not_counted(tmp_path: Path, home: Path) -> None:
    path = project(home) / "chats" / f"session-2026-03-01T10-00-{SID[:8]}.json"
    full = json.dumps(dict(meta(), messages=[user(), gemini("m1")]), indent=2)
    path.write_text(full[: len(full) // 2])  # truncated and half written
    h = open_home(tmp_path, home)
    try:
        assert h.read() == 0
        assert "unreadable_documents" not in h.counters()
        assert h.sources.poll_tick(h.sink) == 0  # still half written: kept for the next tick
        path.write_text(full)
        assert h.sources.poll_tick(h.sink) == 1  # the next tick reads it, with no change event needed
        assert h.sources.poll_tick(h.sink) == 0  # and then forgets it
        # a document that stays broken once its writer is done is counted, once
        broken = path.with_name("session-2026-03-02T10-00-deadbeef.json")
        broken.write_text('{"sessionId": "x", "messages": [')
        touch_old(broken, documents.SETTLE_S + 5)
        h.read()
        h.read()
        assert h.counters()["unreadable_documents"] == 1
    finally:
        h.close()


# -- files that are not sessions --------------------------------------------------------------------------

def test_activity_logs_and_temp_or_backup_files_are_not_read(tmp_path: Path, home: Path) -> None:
    pdir = project(home)
    path = write(session_file(pdir), [meta(), gemini("m1")])
    lines = path.read_text()
    (pdir / "logs").mkdir()
    (pdir / "logs" / f"session-{SID}.jsonl").write_text(jl({"tokens": {"input": 9, "output": 9}, "id": "x",
                                                            "type": "gemini", "timestamp": iso(NOW)}) + "\n")
    (pdir / "chats" / f"{path.name}.tmp-4242").write_text(lines.replace("m1", "m-tmp"))
    (pdir / "chats" / f"{path.name}.unreadable-1760000000000").write_text(lines.replace("m1", "m-bak"))
    (pdir / "logs.json").write_text(json.dumps([{"sessionId": SID, "messages": [gemini("m-log")]}]))
    h = open_home(tmp_path, home)
    try:
        h.read()
        assert list(h.stored()) == ["gemini:m1"]
        # nor when a watcher reports them
        assert h.changed(pdir / "logs" / f"session-{SID}.jsonl") == 0
    finally:
        h.close()


def test_a_malformed_line_is_counted_and_its_neighbours_kept(tmp_path: Path, home: Path) -> None:
    good = jl(gemini("m2"))
    write(session_file(project(home)), [meta(), gemini("m1"), good[:-12],  # cut after its tokens
                                        jl(gemini("m3")).replace('"output":23', '"output":"23x"'), gemini("m4")])
    h = open_home(tmp_path, home)
    try:
        h.read()
        assert sorted(h.stored()) == ["gemini:m1", "gemini:m4"]
        assert h.counters()["malformed"] == 2
    finally:
        h.close()


# -- where, who, which project ----------------------------------------------------------------------------

def test_subagent_recordings_count_under_the_parent_session(tmp_path: Path, home: Path) -> None:
    pdir = project(home)
    write(session_file(pdir), [meta(), gemini("m1")])
    write(pdir / "chats" / SID / f"{SUB}.jsonl", [meta(SUB, kind="subagent", directories=["/home/dev/code/webapp"]),
                                                  gemini("s1")])
    h = open_home(tmp_path, home)
    try:
        h.read()
        s = h.stored()["gemini:s1"]
        assert (s.agent, s.session, s.project) == ("gemini-cli/subagent", SID, "webapp")
        assert h.stored()["gemini:m1"].agent == "gemini-cli"
    finally:
        h.close()


def test_the_project_comes_from_the_marker_then_the_registry_then_the_slug(tmp_path: Path, home: Path) -> None:
    marked = project(home, "webapp-1", "/home/dev/work/webapp")
    hashed = project(home, hashlib.sha256(b"/home/dev/code/api").hexdigest(), None)
    bare = project(home, "infra", None)
    (home / ".gemini" / "projects.json").write_text(json.dumps({"projects": {"/home/dev/code/api": "api"}}))
    write(session_file(marked), [meta(), gemini("a")])
    write(session_file(hashed), [meta(), gemini("b")])
    write(session_file(bare), [meta(), gemini("c")])
    h = open_home(tmp_path, home)
    try:
        h.read()
        assert {i: e.project for i, e in h.stored().items()} == {"gemini:a": "webapp", "gemini:b": "api", "gemini:c": "infra"}
    finally:
        h.close()


def test_gemini_cli_home_wins_over_the_config_key_which_wins_over_home(tmp_path: Path, home: Path) -> None:
    assert gemini_cli.gemini_dirs("", {"HOME": "/h"}) == [Path("/h/.gemini")]
    assert gemini_cli.gemini_dirs("/srv/me", {"HOME": "/h"}) == [Path("/srv/me/.gemini")]
    assert gemini_cli.gemini_dirs("/srv/me/.gemini", {"HOME": "/h"}) == [Path("/srv/me/.gemini")]
    assert gemini_cli.gemini_dirs("/srv/me", {"HOME": "/h", "GEMINI_CLI_HOME": "/g"}) == [Path("/g/.gemini")]
    other = tmp_path / "elsewhere"
    write(session_file(project(other)), [meta(), gemini("m1")])
    h = open_home(tmp_path, home, env={"GEMINI_CLI_HOME": str(other)})
    try:
        assert h.read() == 1
    finally:
        h.close()


def test_the_backfill_window_applies_to_recordings_and_documents(tmp_path: Path, home: Path) -> None:
    pdir = project(home)
    old = NOW - 40 * 86400
    path = write(session_file(pdir), [meta(), gemini("old", ts=old), gemini("new")])
    doc = pdir / "chats" / "session-2026-01-01T00-00-0ld0ld00.json"
    doc.write_text(json.dumps(dict(meta("0ld0ld00"), messages=[gemini("doc-old", ts=old)])))
    touch_old(doc, 40 * 86400)
    h = open_home(tmp_path, home)
    try:
        h.read()
        assert list(h.stored()) == ["gemini:new"]
        assert h.sources.stats.too_old == 1
    finally:
        h.close()
    assert path.exists()


def test_a_live_append_is_read_from_where_reading_stopped(tmp_path: Path, home: Path) -> None:
    path = write(session_file(project(home)), [meta(), gemini("m1")])
    h = open_home(tmp_path, home)
    try:
        h.read()
        size = os.path.getsize(path)
        write(path, [gemini("m2", ts=time.time()), {"$set": {"lastUpdated": iso(time.time())}}], mode="a")
        assert h.changed(path) == 1
        assert h.sources.stats.bytes_read == os.path.getsize(path)  # nothing read twice
        assert size < os.path.getsize(path)
    finally:
        h.close()
