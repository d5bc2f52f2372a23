"""Kimi CLI (protocol 1.3) and Kimi Code (1.5) wire logs: one test per trap in docs/sources.md ("Kimi").

Lines follow ccusage's Kimi CLI loader fixtures (``StatusUpdate`` with ``token_usage``) and tokscale's
Kimi Code tests (``usage.record``, ``config.update``, ``step.end``, the ``config.toml`` model aliases).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.sources.agent_helpers import Home, jl, write
from tokentop.core.sources import kimi

T_MS = 1780942009099  # the samples' own clock (2026-06-08)


@pytest.fixture(autouse=True)
def fresh_config_cache() -> None:
    kimi._CONFIGS.clear()


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return tmp_path / "home"


def code_wire(home: Path, agent: str = "main", session: str = "session_123") -> Path:
    return home / ".kimi-code" / "sessions" / "wd_webapp_abc123" / session / "agents" / agent / "wire.jsonl"


def record(other: int = 19591, out: int = 39, read: int = 1024, write_: int = 0, t: int = T_MS,
           model: str = "openai-pro/gpt-5.5", scope: str | None = "turn") -> dict:
    r = {"type": "usage.record", "time": t, "model": model,
         "usage": {"inputOther": other, "output": out, "inputCacheRead": read, "inputCacheCreation": write_}}
    if scope is not None:
        r["usageScope"] = scope
    return r


def open_home(tmp_path: Path, home: Path) -> Home:
    return Home(tmp_path, home, ("kimi",), backfill_days=400)


def test_a_kimi_code_turn_with_its_alias_resolved_and_partitioned_input_summed(tmp_path: Path, home: Path) -> None:
    (home / ".kimi-code").mkdir(parents=True)
    (home / ".kimi-code" / "config.toml").write_text('[models."openai-pro/gpt-5.5"]\nprovider = "openai"\nmodel = "gpt-5.5"\n')
    write(code_wire(home), [{"type": "metadata", "protocol_version": "1.5"},
                            {"type": "config.update", "profileName": "agent"},
                            # the step's usage is the turn's again: only usage.record counts
                            {"type": "context.append_loop_event", "time": T_MS, "event": {"type": "step.end", "usage": {
                                "inputOther": 19591, "output": 39, "inputCacheRead": 1024, "inputCacheCreation": 0}}},
                            record()])
    h = open_home(tmp_path, home)
    try:
        h.read()
        (e,) = h.stored().values()
        assert (e.input_tokens, e.cache_read_tokens, e.cache_write_tokens, e.output_tokens) == (20615, 1024, 0, 39)
        assert (e.agent, e.session, e.project, e.provider, e.model, e.source, e.ts) == (
            "kimi", "session_123", "webapp", "openai", "gpt-5.5", "kimi-wire", T_MS / 1000)
    finally:
        h.close()


def test_subagent_profiles_and_an_unresolved_alias(tmp_path: Path, home: Path) -> None:
    write(code_wire(home, "agent-0"), [{"type": "config.update", "profileName": "explore"}, record(other=10, out=20)])
    write(code_wire(home, "agent-1"), [record(other=11, out=21)])
    h = open_home(tmp_path, home)
    try:
        h.read()
        got = {(e.agent, e.provider, e.model, e.output_tokens) for e in h.stored().values()}
        assert got == {("kimi/explore", None, "openai-pro/gpt-5.5", 20), ("kimi/subagent", None, "openai-pro/gpt-5.5", 21)}
    finally:
        h.close()


def test_a_kimi_cli_status_update_with_the_configured_model(tmp_path: Path, home: Path) -> None:
    (home / ".kimi").mkdir(parents=True)
    (home / ".kimi" / "config.json").write_text('{"default_model": "kimi-k2-0905-preview"}')
    wire = home / ".kimi" / "sessions" / "0f3a9c" / "session-a" / "wire.jsonl"
    write(wire, [{"type": "metadata", "protocol_version": "1.3"},
                 {"timestamp": 1770983426.42, "message": {"type": "TurnBegin", "payload": {"user_input": "hello"}}},
                 {"timestamp": 1770983427.123, "message": {"type": "StatusUpdate", "payload": {
                     "token_usage": {"input_other": 100, "output": 50, "input_cache_read": 10, "input_cache_creation": 20},
                     "message_id": "msg-1"}}},
                 {"timestamp": 1770983428, "message": {"type": "StatusUpdate", "payload": {"token_usage": {
                     "input_other": 0, "output": 0, "input_cache_read": 0, "input_cache_creation": 0}}}}])
    h = open_home(tmp_path, home)
    try:
        h.read()
        (e,) = h.stored().values()
        assert (e.id, e.input_tokens, e.cache_read_tokens, e.cache_write_tokens, e.output_tokens) == (
            "kimi:session-a:msg-1", 130, 10, 20, 50)
        assert (e.model, e.agent, e.session) == ("kimi-k2-0905-preview", "kimi", "session-a")
    finally:
        h.close()


def test_a_record_read_twice_counts_once_and_other_scopes_are_not_turns(tmp_path: Path, home: Path) -> None:
    path = write(code_wire(home), [record(), record(t=T_MS + 5000, out=7, scope="session")])
    h = open_home(tmp_path, home)
    try:
        assert h.read() == 1
        assert h.counters()["other_usage_scopes"] == 1
        path.write_text(path.read_text())  # rewritten as it was: read again from the start, same ids
        h.restart()
        h.read()
        assert len(h.stored()) == 1
    finally:
        h.close()


def test_malformed_lines_and_files_not_named_wire(tmp_path: Path, home: Path) -> None:
    bad = jl(record()).replace('"output":39', '"output":-39')
    write(code_wire(home), [record(out=1), bad, jl(record(out=2, t=T_MS + 1))[:-20], record(out=3, t=T_MS + 2)])
    write(code_wire(home).with_name("notes.jsonl"), [record(out=99, t=T_MS + 3)])
    h = open_home(tmp_path, home)
    try:
        h.read()
        assert sorted(e.output_tokens for e in h.stored().values()) == [1, 3]
        assert h.counters()["malformed"] == 2
    finally:
        h.close()


def test_homes_from_the_environment_then_config_then_default() -> None:
    env = {"HOME": "/h"}
    assert kimi.kimi_dirs("", env) == [Path("/h/.kimi-code"), Path("/h/.kimi")]
    assert kimi.kimi_dirs("/a, /b", env) == [Path("/a"), Path("/b")]
    assert kimi.kimi_dirs("/a", {**env, "KIMI_SHARE_DIR": "/s"}) == [Path("/h/.kimi-code"), Path("/s")]
    assert kimi.kimi_dirs("", {**env, "KIMI_CODE_HOME": "/c"}) == [Path("/c"), Path("/h/.kimi")]
