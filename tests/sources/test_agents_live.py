"""Gemini CLI, Qwen Code, pi, Amp and Kimi inside a running feed: zero set-up backfill, and a record a
running agent writes is in the snapshot within 1 s (file watcher and polling both)."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from tests.sources.agent_helpers import write
from tests.sources.helpers import iso
from tests.sources.test_live import requests, start_feed, wait_for
from tests.sources.test_gemini_cli import gemini, meta, project, session_file
from tests.sources.test_pi import assistant as pi_assistant
from tests.sources.test_pi import file_name, header, sessions
from tests.sources.test_qwen_code import assistant as qwen_assistant
from tests.sources.test_qwen_code import SID as QWEN_SID, chats
from tests.sources.test_amp import assistant as amp_assistant
from tests.sources.test_amp import usage as amp_usage
from tests.sources.test_amp import write_thread
from tests.sources.test_kimi import code_wire


def kimi_record(t: float, out: int) -> dict:
    return {"type": "usage.record", "time": int(t * 1000), "model": "kimi-for-coding", "usageScope": "turn",
            "usage": {"inputOther": 500, "output": out, "inputCacheRead": 100, "inputCacheCreation": 0}}


@pytest.fixture
def stores(isolated_dirs: Path) -> dict[str, Path]:
    home = Path(os.environ["HOME"])
    pdir = project(home)
    legacy = pdir / "chats" / "session-2026-03-01T10-00-0a0a0a0a.json"
    legacy.write_text(json.dumps(dict(meta("0a0a0a0a"), messages=[gemini("old-1", out=1)]), indent=2))
    usage = {"promptTokenCount": 1000, "candidatesTokenCount": 10, "totalTokenCount": 1010}
    return {
        "amp": write_thread(home, [amp_assistant(1, amp_usage(out=4))]),
        "kimi": write(code_wire(home), [{"type": "metadata", "protocol_version": "1.5"}, kimi_record(time.time() - 60, 6)]),
        "gemini": write(session_file(pdir), [meta(), gemini("g1", out=2)]),
        "legacy": legacy,
        "qwen": write(chats(home) / f"{QWEN_SID}.jsonl", [qwen_assistant("q1", usage)]),
        "pi": write(sessions(home) / file_name("5e55a0a0-0000-4000-8000-000000000005"),
                    [header("5e55a0a0-0000-4000-8000-000000000005"), pi_assistant("p1p1p1p1", None, out=3)]),
    }


@pytest.mark.parametrize("watch", [True, False], ids=["watchfiles", "polling"])
def test_each_agents_new_record_reaches_the_snapshot_within_one_second(tmp_path: Path, stores: dict[str, Path],
                                                                       watch: bool) -> None:
    home = Path(os.environ["HOME"])
    runner = start_feed(tmp_path, watch=watch, poll_interval_s=0.25)
    try:
        wait_for(lambda: requests(runner) == 6, 10)
        wait_for(lambda: runner.snapshot().status.get("sources", {}).get("state") in ("watching", "polling"), 5)
        assert {r.key for r in runner.snapshot().agents} == {"gemini-cli", "qwen-code", "pi", "amp", "kimi"}
        if watch:
            time.sleep(0.5)  # the mode is set just before watchfiles sets its watches up
        now = time.time()
        usage = {"promptTokenCount": 2000, "candidatesTokenCount": 20, "totalTokenCount": 2020}
        appends = [
            lambda: write(stores["gemini"], [gemini("g2", out=5, ts=now, tokens=False), gemini("g2", out=5, ts=now),
                                             {"$set": {"lastUpdated": iso(now)}}], mode="a"),
            lambda: write(stores["qwen"], [dict(qwen_assistant("q2", usage), timestamp=iso(now))], mode="a"),
            lambda: write(stores["pi"], [pi_assistant("p2p2p2p2", "p1p1p1p1", out=7, t=now)], mode="a"),
            # an older Gemini CLI rewrites its whole session document
            lambda: stores["legacy"].write_text(json.dumps(dict(meta("0a0a0a0a"), messages=[
                gemini("old-1", out=1), gemini("old-2", out=9, ts=now)]), indent=2)),
            # Amp rewrites the thread (to a temp file renamed over it)
            lambda: write_thread(home, [amp_assistant(1, amp_usage(out=4)), amp_assistant(3, amp_usage(out=8, ts=now))]),
            lambda: write(stores["kimi"], [kimi_record(now, 11)], mode="a"),
        ]
        for n, append in enumerate(appends, start=7):
            append()
            elapsed = wait_for(lambda n=n: requests(runner) == n, 1.0)
            assert elapsed < 1.0
        assert {r.key: r.requests_today for r in runner.snapshot().agents} == {
            "gemini-cli": 4, "qwen-code": 2, "pi": 2, "amp": 2, "kimi": 2}
    finally:
        runner.stop()
