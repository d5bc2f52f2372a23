"""pi sessions: one test per trap in docs/sources.md ("pi"), real files, real sources.

Entries follow pi's ``SessionManager`` (``packages/coding-agent/src/core/session-manager.ts``: header,
``{type, id, parentId, timestamp}`` entries, forks that copy entries verbatim, v1 files without
entry ids) and pi-ai's ``AssistantMessage`` (``usage {input, output, cacheRead, cacheWrite,
totalTokens, cost}``, ``timestamp`` in ms).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.sources.agent_helpers import Home, jl, write
from tests.sources.helpers import NOW, iso
from tokentop.core.pricing import Pricer
from tokentop.core.sources import pi

SID = "2dd46188-a1a0-4393-912d-a5445bfd6ec1"
CWD = "/home/dev/code/webapp"


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return tmp_path / "home"


def sessions(home: Path, cwd: str = CWD) -> Path:
    return home / ".pi" / "agent" / "sessions" / ("--" + cwd.lstrip("/").replace("/", "-") + "--")


def header(sid: str = SID, cwd: str = CWD, **extra) -> dict:
    return {"type": "session", "version": 3, "id": sid, "timestamp": iso(NOW - 900), "cwd": cwd, **extra}


def assistant(eid: str | None, parent: str | None, *, inp: int = 7, out: int = 231, read: int = 1684, write_: int = 9518,
              total: int | None = None, provider: str = "anthropic", model: str = "claude-sonnet-4-5",
              api: str = "anthropic-messages", stop: str = "toolUse", t: float | None = None) -> dict:
    t = NOW - 600 if t is None else t
    usage = {"input": inp, "output": out, "cacheRead": read, "cacheWrite": write_,
             "totalTokens": inp + out + read + write_ if total is None else total,
             "cost": {"input": 2.1e-05, "output": 0.003465, "cacheRead": 0.0005052, "cacheWrite": 0.0356925,
                      "total": 0.0396837}}
    entry = {"type": "message", "timestamp": iso(t), "message": {
        "role": "assistant", "content": [{"type": "text", "text": "ok"}], "api": api, "provider": provider,
        "model": model, "usage": usage, "stopReason": stop, "timestamp": int(t * 1000)}}
    if eid is not None:
        entry["id"], entry["parentId"] = eid, parent
    return entry


def user(eid: str | None, parent: str | None) -> dict:
    entry = {"type": "message", "timestamp": iso(NOW - 700),
             "message": {"role": "user", "content": [{"type": "text", "text": "hi"}], "timestamp": int((NOW - 700) * 1000)}}
    if eid is not None:
        entry["id"], entry["parentId"] = eid, parent
    return entry


def file_name(sid: str, t: float = NOW - 900) -> str:
    return iso(t).replace(":", "-").replace(".", "-") + f"_{sid}.jsonl"


def read(tmp_path: Path, home: Path) -> Home:
    h = Home(tmp_path, home, ("pi",))
    h.read()
    return h


def test_input_excludes_the_cache_the_event_adds_it_back(tmp_path: Path, home: Path) -> None:
    write(sessions(home) / file_name(SID), [header(), user("a1b2c3d4", None), assistant("e5f6a7b8", "a1b2c3d4")])
    h = read(tmp_path, home)
    try:
        (e,) = h.stored().values()
        assert (e.input_tokens, e.cache_read_tokens, e.cache_write_tokens, e.output_tokens) == (7 + 1684 + 9518, 1684,
                                                                                                9518, 231)
        assert (e.agent, e.session, e.project, e.provider, e.model, e.source) == (
            "pi", SID, "webapp", "anthropic", "claude-sonnet-4-5", "pi-log")
        # pi's own usage.cost is its bundled-table estimate: tokentop prices the tokens itself
        assert e.cost_usd is None and Pricer().price(e).kind == "estimated"
    finally:
        h.close()


def test_tokscales_sample_without_entry_ids(tmp_path: Path, home: Path) -> None:
    write(sessions(home) / "pi_ses_001.jsonl", [
        {"type": "session", "id": "pi_ses_001", "timestamp": "2026-01-01T00:00:00.000Z", "cwd": "/tmp"},
        {"type": "message", "id": "msg_001", "parentId": None, "timestamp": "2026-01-01T00:00:01.000Z",
         "message": {"role": "assistant", "model": "claude-sonnet-4.6", "provider": "anthropic",
                     "usage": {"input": 100, "output": 50, "cacheRead": 10, "cacheWrite": 5, "totalTokens": 165}}}])
    h = Home(tmp_path, home, ("pi",), backfill_days=400)
    try:
        h.read()
        (e,) = h.stored().values()
        assert (e.input_tokens, e.cache_read_tokens, e.cache_write_tokens, e.output_tokens, e.session, e.project) == (
            115, 10, 5, 50, "pi_ses_001", "tmp")
    finally:
        h.close()


def test_forks_copy_entries_verbatim_and_each_request_counts_once(tmp_path: Path, home: Path) -> None:
    first = [user("a1b2c3d4", None), assistant("e5f6a7b8", "a1b2c3d4", out=100),
             user("c0c0c0c0", "e5f6a7b8"), assistant("d1d1d1d1", "c0c0c0c0", out=200, t=NOW - 500)]
    write(sessions(home) / file_name(SID), [header(), *first])
    # /branch: the path up to a point in a new file of the same project; then it goes on
    b = "7e7e7e7e-0000-4000-8000-000000000003"
    write(sessions(home) / file_name(b, NOW - 400), [header(b, parentSession="x.jsonl"), *first[:2],
                                                     assistant("f2f2f2f2", "e5f6a7b8", out=300, t=NOW - 300)])
    # forkFrom: the whole session copied under another cwd
    f = "8f8f8f8f-0000-4000-8000-000000000004"
    write(sessions(home, "/home/dev/code/other") / file_name(f, NOW - 200), [header(f, "/home/dev/code/other"), *first])
    h = read(tmp_path, home)
    try:
        assert sorted(e.output_tokens for e in h.stored().values()) == [100, 200, 300]
        assert len(h.handed) == 2 + 2 + 2  # every copy read, each request stored once
    finally:
        h.close()


def test_a_v1_file_without_entry_ids_then_rewritten_as_v3_with_new_ids_counts_once(tmp_path: Path, home: Path) -> None:
    # the v1 shape (pi-mono's own large-session fixture): no version, no id/parentId on entries
    path = sessions(home) / file_name(SID)
    v1 = [{"type": "session", "id": SID, "timestamp": iso(NOW - 900), "cwd": CWD, "provider": "anthropic",
           "modelId": "claude-sonnet-4-5", "thinkingLevel": "off"},
          user(None, None), assistant(None, None, out=191)]
    write(path, v1)
    h = Home(tmp_path, home, ("pi",))
    try:
        assert h.read() == 1
        # pi opens it again: migrates to v3 in place, giving every entry a new id
        write(path, [header(), user("0a0a0a0a", None), assistant("0b0b0b0b", "0a0a0a0a", out=191),
                     assistant("0c0c0c0c", "0b0b0b0b", out=55, t=NOW - 100)])
        h.read()
        assert sorted(e.output_tokens for e in h.stored().values()) == [55, 191]
    finally:
        h.close()


def test_an_older_google_record_whose_input_includes_the_cache(tmp_path: Path, home: Path) -> None:
    write(sessions(home) / file_name(SID), [
        header(),
        # older pi: Google's promptTokenCount kept as input; totalTokens = input + output shows it
        assistant("g1g1g1g1", None, inp=20000, out=500, read=15000, write_=0, total=20500, provider="google",
                  model="gemini-2.5-pro", api="google-generative-ai"),
        # current pi: input without the cache, totalTokens = input + output + cacheRead
        assistant("g2g2g2g2", None, inp=5000, out=500, read=15000, write_=0, provider="google",
                  model="gemini-2.5-pro", api="google-generative-ai", t=NOW - 500),
    ])
    h = read(tmp_path, home)
    try:
        assert sorted((e.input_tokens, e.cache_read_tokens) for e in h.stored().values()) == [(20000, 15000)] * 2
    finally:
        h.close()


def test_an_error_with_tokens_counts_as_an_error_and_an_abort_without_tokens_is_no_request(tmp_path: Path, home: Path) -> None:
    write(sessions(home) / file_name(SID), [
        header(),
        assistant("e1e1e1e1", None, stop="error"),
        assistant("a0a0a0a0", None, inp=0, out=0, read=0, write_=0, stop="aborted", t=NOW - 500),
        {"type": "compaction", "id": "c9c9c9c9", "parentId": "e1e1e1e1", "timestamp": iso(NOW - 400), "summary": "s",
         "firstKeptEntryId": "e1e1e1e1", "tokensBefore": 120000},
        {"type": "model_change", "id": "m9m9m9m9", "parentId": "c9c9c9c9", "timestamp": iso(NOW - 400),
         "provider": "openai", "modelId": "gpt-5"},
    ])
    h = read(tmp_path, home)
    try:
        (e,) = h.stored().values()
        assert e.status == "error" and e.output_tokens == 231
    finally:
        h.close()


def test_a_malformed_entry_is_counted_and_its_neighbours_kept(tmp_path: Path, home: Path) -> None:
    bad = jl(assistant("b1b1b1b1", None)).replace('"output":231', '"output":2.5')
    write(sessions(home) / file_name(SID), [header(), assistant("a1a1a1a1", None, out=1), bad,
                                            jl(assistant("c1c1c1c1", None))[:-40], assistant("d1d1d1d1", None, out=2,
                                                                                             t=NOW - 500)])
    h = read(tmp_path, home)
    try:
        assert sorted(e.output_tokens for e in h.stored().values()) == [1, 2]
        assert h.counters()["malformed"] == 2
    finally:
        h.close()


def test_the_agent_dir_from_pi_coding_agent_dir_then_config_then_default(tmp_path: Path, home: Path) -> None:
    env = {"HOME": "/h"}
    assert pi.pi_dirs("", env) == [Path("/h/.pi/agent")]
    assert pi.pi_dirs("/cfg", env) == [Path("/cfg")]
    assert pi.pi_dirs("/cfg", {**env, "PI_CODING_AGENT_DIR": "~/agents/pi"}) == [Path("/h/agents/pi")]
    other = tmp_path / "pi-agent"
    write(other / "sessions" / "--x--" / file_name(SID), [header(), assistant("a1a1a1a1", None)])
    h = Home(tmp_path, home, ("pi",), env={"PI_CODING_AGENT_DIR": str(other)})
    try:
        assert h.read() == 1
    finally:
        h.close()
    assert not os.path.exists(home / ".pi")
