"""Amp threads: one test per trap in docs/sources.md ("Amp"), real files, the real document source.

Threads follow the shape ccusage's Amp fixtures and third-party readers show (``T-<uuid>.json``:
``id``, ``env.initial.trees``, ``messages[]`` with ``messageId`` and ``usage``; older threads with a
``usageLedger``), rewritten whole on every update.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.sources.agent_helpers import Home
from tests.sources.helpers import NOW, iso
from tokentop.core.sources import amp

TID = "T-019b9d03-62e3-772f-9780-3e637f90eaec"


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return tmp_path / "home"


def thread_path(home: Path, tid: str = TID) -> Path:
    return home / ".local" / "share" / "amp" / "threads" / f"{tid}.json"


def usage(inp: int = 10, out: int = 178, write: int = 986, read: int = 11372, *, total_in: int | None = 12368,
          model: str = "claude-haiku-4-5-20251001", ts: float | None = None) -> dict:
    u = {"model": model, "inputTokens": inp, "outputTokens": out, "cacheCreationInputTokens": write,
         "cacheReadInputTokens": read, "timestamp": iso(NOW - 600 if ts is None else ts)}
    if total_in is not None:
        u["totalInputTokens"] = total_in
    return u


def write_thread(home: Path, messages: list, tid: str = TID, **extra) -> Path:
    path = thread_path(home, tid)
    path.parent.mkdir(parents=True, exist_ok=True)
    doc = {"id": tid, "created": int((NOW - 900) * 1000), "agentMode": "smart",
           "env": {"initial": {"trees": [{"displayName": "webapp", "uri": "file:///home/dev/code/webapp"}],
                               "platform": {"os": "linux", "client": "CLI"}}},
           "messages": messages, **extra}
    tmp = path.with_name(path.name + ".tmp")  # written beside and renamed over the thread
    tmp.write_text(json.dumps(doc, indent=2))
    tmp.replace(path)
    return path


def assistant(mid: int, u: dict | None) -> dict:
    m = {"role": "assistant", "messageId": mid, "content": [{"type": "text", "text": "ok"}],
         "state": {"type": "complete", "stopReason": "end_turn"}}
    if u is not None:
        m["usage"] = u
    return m


def test_ccusages_sample_anthropic_input_excludes_the_cache(tmp_path: Path, home: Path) -> None:
    write_thread(home, [{"role": "user", "messageId": 0, "content": "hi"}, assistant(1, usage())])
    h = Home(tmp_path, home, ("amp",))
    try:
        h.read()
        (e,) = h.stored().values()
        assert (e.input_tokens, e.cache_read_tokens, e.cache_write_tokens, e.output_tokens) == (12368, 11372, 986, 178)
        assert (e.id, e.agent, e.session, e.project, e.model, e.source) == (
            f"amp:{TID}:1", "amp", TID, "webapp", "claude-haiku-4-5-20251001", "amp-thread")
    finally:
        h.close()


def test_a_record_whose_total_input_equals_its_input_already_holds_the_cache(tmp_path: Path, home: Path) -> None:
    write_thread(home, [assistant(1, usage(inp=12000, out=50, write=0, read=9000, total_in=12000, model="gpt-5"))])
    h = Home(tmp_path, home, ("amp",))
    try:
        h.read()
        (e,) = h.stored().values()
        assert (e.input_tokens, e.cache_read_tokens) == (12000, 9000)
    finally:
        h.close()


def test_the_thread_rewritten_whole_hands_new_and_growing_responses_only(tmp_path: Path, home: Path) -> None:
    path = write_thread(home, [assistant(1, usage())])
    h = Home(tmp_path, home, ("amp",))
    try:
        assert h.read() == 1
        # still streaming: the next response with partial output, then complete
        write_thread(home, [assistant(1, usage()), assistant(3, usage(out=5, ts=NOW - 300))])
        assert h.changed(path) == 1
        write_thread(home, [assistant(1, usage()), assistant(3, usage(out=500, ts=NOW - 300))])
        assert h.changed(path) == 1
        assert [(e.id, e.output_tokens) for e in h.handed] == [(f"amp:{TID}:1", 178), (f"amp:{TID}:3", 5),
                                                                (f"amp:{TID}:3", 500)]
        h.restart()
        assert h.read() == 0
    finally:
        h.close()


def test_an_older_ledger_wins_and_takes_the_cache_split_from_its_message(tmp_path: Path, home: Path) -> None:
    ledger = {"events": [{"id": "event-a", "timestamp": iso(NOW - 600), "model": "claude-sonnet-4-5",
                          "credits": 0.4, "tokens": {"input": 10, "output": 178}, "toMessageId": 1},
                         {"id": "event-b", "timestamp": iso(NOW - 500), "model": "gpt-5", "tokens": {"total": 345}}]}
    write_thread(home, [assistant(1, usage(inp=99, out=99))], usageLedger=ledger)
    h = Home(tmp_path, home, ("amp",))
    try:
        h.read()
        got = {e.id: (e.model, e.input_tokens, e.cache_read_tokens, e.output_tokens) for e in h.stored().values()}
        assert got == {f"amp:{TID}:1": ("claude-sonnet-4-5", 10 + 986 + 11372, 11372, 178),
                       f"amp:{TID}:ledger:event-b": ("gpt-5", 0, 0, 345)}
    finally:
        h.close()


def test_a_ledger_event_whose_message_input_already_holds_the_cache(tmp_path: Path, home: Path) -> None:
    # found by the generated 100k corpus: the ledger path must look at the message's totalInputTokens too
    ledger = {"events": [{"id": "e1", "timestamp": iso(NOW - 600), "model": "gpt-5",
                          "tokens": {"input": 12000, "output": 50}, "toMessageId": 1}]}
    write_thread(home, [assistant(1, usage(inp=12000, out=50, write=0, read=9000, total_in=12000, model="gpt-5"))],
                 usageLedger=ledger)
    h = Home(tmp_path, home, ("amp",))
    try:
        h.read()
        (e,) = h.stored().values()
        assert (e.input_tokens, e.cache_read_tokens) == (12000, 9000)
    finally:
        h.close()


def test_a_bad_record_is_counted_and_the_thread_still_read(tmp_path: Path, home: Path) -> None:
    bad = assistant(2, usage())
    bad["usage"]["outputTokens"] = "many"
    write_thread(home, [assistant(1, usage()), bad, assistant(3, usage(inp=0, out=0, write=0, read=0, total_in=0))])
    (thread_path(home, "T-broken")).write_text('{"id": "T-broken", "messages": [')
    other = thread_path(home).parent / "notes.json"  # not a thread file
    other.write_text("{}")
    h = Home(tmp_path, home, ("amp",))
    try:
        h.read()
        assert list(h.stored()) == [f"amp:{TID}:1"]
        assert h.counters()["malformed"] == 1
        assert h.sources.stats.files == 2
    finally:
        h.close()


def test_the_data_dir_follows_xdg_or_the_config_key(tmp_path: Path) -> None:
    assert amp.amp_dirs("", {"HOME": "/h"}) == [Path("/h/.local/share/amp")]
    assert amp.amp_dirs("", {"HOME": "/h", "XDG_DATA_HOME": "/x"}) == [Path("/x/amp")]
    assert amp.amp_dirs("/cfg/amp", {"HOME": "/h", "XDG_DATA_HOME": "/x"}) == [Path("/cfg/amp")]
