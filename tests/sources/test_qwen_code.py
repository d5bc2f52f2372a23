"""Qwen Code chat recordings: one test per trap in docs/sources.md ("Qwen Code"), real files, real sources.

Records follow Qwen Code's ``ChatRecord`` (``packages/core/src/services/chatRecordingService.ts``) and
the usage its converters write (``openaiContentGenerator/converter.ts``: prompt_tokens → promptTokenCount,
completion_tokens → candidatesTokenCount, reasoning_tokens → thoughtsTokenCount, cached_tokens →
cachedContentTokenCount; ``anthropicContentGenerator/usage.ts``: the prompt sums input and cache).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.sources.agent_helpers import Home, jl, write
from tests.sources.helpers import NOW, iso
from tokentop.core.sources import qwen_code

SID = "d96bf338-1c2d-4e5f-8a9b-0c1d2e3f4a5b"
CWD = "/home/dev/code/webapp"


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return tmp_path / "home"


def chats(home: Path, cwd: str = CWD) -> Path:
    return home / ".qwen" / "projects" / "".join(c if c.isalnum() else "-" for c in cwd) / "chats"


def rec(typ: str, uuid: str, sid: str = SID, **extra) -> dict:
    r = {"uuid": uuid, "parentUuid": None, "sessionId": sid, "timestamp": iso(NOW - 600), "type": typ, "cwd": CWD,
         "version": "0.14.2", "gitBranch": "main"}
    r.update(extra)
    return r


def assistant(uuid: str, usage: dict, model: str = "qwen3-coder-plus", **extra) -> dict:
    return rec("assistant", uuid, model=model, message={"role": "model", "parts": [{"text": "ok"}]},
               usageMetadata=usage, **extra)


def read_one(tmp_path: Path, home: Path, lines: list) -> dict:
    write(chats(home) / f"{SID}.jsonl", lines)
    h = Home(tmp_path, home, ("qwen-code",))
    try:
        h.read()
        return h.stored()
    finally:
        h.close()


def test_tokscales_sample_prompt_includes_cache_and_thoughts_are_part_of_candidates(tmp_path: Path, home: Path) -> None:
    # tokscale's qwen test record (no totalTokenCount): the OpenAI-compatible path, reasoning inside the candidates
    line = {"type": "assistant", "model": "qwen3.5-plus", "timestamp": "2026-02-23T14:24:56.857Z", "sessionId": "d96bf338",
            "usageMetadata": {"promptTokenCount": 12414, "candidatesTokenCount": 76, "thoughtsTokenCount": 39,
                              "cachedContentTokenCount": 0}}
    write(chats(home) / "d96bf338.jsonl", [line])
    h = Home(tmp_path, home, ("qwen-code",), backfill_days=400)
    try:
        h.read()
        (e,) = h.stored().values()
        assert (e.input_tokens, e.cache_read_tokens, e.output_tokens, e.reasoning_tokens) == (12414, 0, 76, 39)
        assert (e.agent, e.session, e.model, e.source) == ("qwen-code", "d96bf338", "qwen3.5-plus", "qwen-code-log")
    finally:
        h.close()


def test_cached_tokens_are_never_added_on_top_of_the_prompt(tmp_path: Path, home: Path) -> None:
    # both big peers store promptTokenCount as input AND cachedContentTokenCount as cache read: 18,000 input
    stored = read_one(tmp_path, home, [assistant("a1", {"promptTokenCount": 10000, "candidatesTokenCount": 300,
                                                        "thoughtsTokenCount": 0, "totalTokenCount": 10300,
                                                        "cachedContentTokenCount": 8000})])
    e = stored["qwen:a1"]
    assert (e.input_tokens, e.cache_read_tokens, e.uncached_input_tokens) == (10000, 8000, 2000)
    assert (e.project, e.branch) == ("webapp", "main")


def test_the_total_tells_the_native_gemini_shape_thoughts_beside_the_candidates(tmp_path: Path, home: Path) -> None:
    stored = read_one(tmp_path, home, [
        assistant("openai", {"promptTokenCount": 5000, "candidatesTokenCount": 800, "thoughtsTokenCount": 500,
                             "totalTokenCount": 5800, "cachedContentTokenCount": 1000}),
        assistant("native", {"promptTokenCount": 5000, "candidatesTokenCount": 300, "thoughtsTokenCount": 500,
                             "totalTokenCount": 5800, "cachedContentTokenCount": 1000}, model="gemini-2.5-pro"),
        assistant("no-total", {"promptTokenCount": 5000, "candidatesTokenCount": 100, "thoughtsTokenCount": 500,
                               "cachedContentTokenCount": 0}),  # thoughts above the candidates: they cannot be part
    ])
    assert (stored["qwen:openai"].output_tokens, stored["qwen:openai"].reasoning_tokens) == (800, 500)
    assert (stored["qwen:native"].output_tokens, stored["qwen:native"].reasoning_tokens) == (800, 500)
    assert (stored["qwen:no-total"].output_tokens, stored["qwen:no-total"].reasoning_tokens) == (600, 500)


def test_the_anthropic_path_keeps_cache_writes_inside_the_prompt(tmp_path: Path, home: Path) -> None:
    # usage.ts: prompt = input 3 + cache read 45,000 + cache write 1,200; only the read is kept apart
    stored = read_one(tmp_path, home, [assistant("c1", {"promptTokenCount": 46203, "candidatesTokenCount": 850,
                                                        "totalTokenCount": 47053, "cachedContentTokenCount": 45000},
                                                 model="claude-sonnet-4-5")])
    e = stored["qwen:c1"]
    assert (e.input_tokens, e.cache_read_tokens, e.cache_write_tokens, e.output_tokens) == (46203, 45000, 0, 850)


def test_ui_telemetry_repeating_the_usage_and_other_system_records_are_not_requests(tmp_path: Path, home: Path) -> None:
    usage = {"promptTokenCount": 9000, "candidatesTokenCount": 100, "totalTokenCount": 9100, "cachedContentTokenCount": 0}
    stored = read_one(tmp_path, home, [
        rec("user", "u1", message={"role": "user", "parts": [{"text": "hi"}]}),
        assistant("a1", usage),
        rec("system", "t1", subtype="ui_telemetry", systemPayload={"uiEvent": {
            "event.name": "qwen-code.api_response", "input_token_count": 9000, "output_token_count": 100,
            "usageMetadata": usage}}),
        rec("system", "k1", subtype="chat_compression", systemPayload={"info": {}, "compressedHistory": []}),
        rec("tool_result", "r1", message={"role": "user", "parts": []}),
    ])
    assert list(stored) == ["qwen:a1"]


def test_a_branch_copy_keeps_the_uuids_and_counts_once(tmp_path: Path, home: Path) -> None:
    usage = {"promptTokenCount": 9000, "candidatesTokenCount": 100, "totalTokenCount": 9100, "cachedContentTokenCount": 0}
    write(chats(home) / f"{SID}.jsonl", [rec("user", "u1"), assistant("a1", usage), assistant("a2", usage)])
    new = "0b0b0b0b-0000-4000-8000-000000000002"
    write(chats(home) / f"{new}.jsonl", [
        dict(rec("user", "u1", new), forkedFrom={"sessionId": SID, "messageUuid": "u1"}),
        dict(assistant("a1", usage), sessionId=new, forkedFrom={"sessionId": SID, "messageUuid": "a1"}),
        dict(assistant("a3", usage), sessionId=new),
    ])
    h = Home(tmp_path, home, ("qwen-code",))
    try:
        assert h.read() == 4
        assert sorted(h.stored()) == ["qwen:a1", "qwen:a2", "qwen:a3"]
    finally:
        h.close()


def test_provider_from_the_session_model_and_subagent_records(tmp_path: Path, home: Path) -> None:
    usage = {"promptTokenCount": 100, "candidatesTokenCount": 10, "totalTokenCount": 110}
    stored = read_one(tmp_path, home, [
        assistant("a0", usage),
        rec("system", "s1", subtype="session_model", systemPayload={"modelId": "gemini-2.5-pro", "authType": "gemini"}),
        assistant("a1", usage, model="gemini-2.5-pro"),
        assistant("a2", usage, agentId="explore-7f3c", agentName="Explore", isSidechain=True),
        rec("system", "s2", subtype="session_model", systemPayload={"modelId": "qwen3-coder-plus", "authType": "openai"}),
        assistant("a3", usage),
    ])
    assert [stored[f"qwen:a{i}"].provider for i in range(4)] == [None, "google", "google", None]
    assert stored["qwen:a2"].agent == "qwen-code/Explore"


def test_a_malformed_record_is_counted_and_files_outside_chats_are_not_read(tmp_path: Path, home: Path) -> None:
    usage = {"promptTokenCount": 100, "candidatesTokenCount": 10, "totalTokenCount": 110}
    bad = jl(assistant("bad", usage)).replace('"candidatesTokenCount":10', '"candidatesTokenCount":-10')
    write(chats(home) / f"{SID}.jsonl", [assistant("a1", usage), bad, jl(assistant("cut", usage))[:-30],
                                         assistant("a2", usage)])
    write(chats(home).parent / "other.jsonl", [assistant("x", usage)])
    h = Home(tmp_path, home, ("qwen-code",))
    try:
        h.read()
        assert sorted(h.stored()) == ["qwen:a1", "qwen:a2"]
        assert h.counters()["malformed"] == 2
    finally:
        h.close()


def test_runtime_dir_then_qwen_home_then_config_then_default(tmp_path: Path, home: Path) -> None:
    env = {"HOME": "/h"}
    assert qwen_code.qwen_dirs("", env) == [Path("/h/.qwen")]
    assert qwen_code.qwen_dirs("/cfg", env) == [Path("/cfg")]
    assert qwen_code.qwen_dirs("/cfg", {**env, "QWEN_HOME": "/qh"}) == [Path("/qh")]
    assert qwen_code.qwen_dirs("/cfg", {**env, "QWEN_HOME": "/qh", "QWEN_RUNTIME_DIR": "/rt"}) == [Path("/rt")]
    runtime = tmp_path / "rt"
    write(runtime / "projects" / "-x" / "chats" / f"{SID}.jsonl",
          [assistant("a1", {"promptTokenCount": 1, "candidatesTokenCount": 1})])
    h = Home(tmp_path, home, ("qwen-code",), env={"QWEN_RUNTIME_DIR": str(runtime)})
    try:
        assert h.read() == 1
    finally:
        h.close()
