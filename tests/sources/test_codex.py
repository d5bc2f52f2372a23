"""Codex rollouts: one test per trap in docs/sources.md ("Codex"), through real files and the real tailer."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import pytest
import zstandard

from tests.sources.helpers import NOW, Harness, iso, write_lines
from tokentop.core.pricing import Pricer

SID = "019e1a2b-3c4d-7e5f-8a9b-0c1d2e3f4a5b"
CHILD = "019e1a2b-3c4d-7e5f-8a9b-00000000c41d"


def meta(sid: str = SID, t: float = NOW - 600, **extra) -> str:
    payload = {"id": sid, "timestamp": iso(t), "cwd": "/home/dev/proj", "originator": "codex_cli_rs",
               "cli_version": "0.130.0", "source": "cli", "model_provider": "openai", "git": {"branch": "main"}}
    payload.update(extra)
    return json.dumps({"timestamp": iso(t), "type": "session_meta", "payload": payload})


def turn(model: str, t: float = NOW - 590) -> str:
    return json.dumps({"timestamp": iso(t), "type": "turn_context", "payload": {"cwd": "/home/dev/proj", "model": model}})


def usage(i: int, c: int, o: int, r: int) -> dict:
    return {"input_tokens": i, "cached_input_tokens": c, "output_tokens": o, "reasoning_output_tokens": r,
            "total_tokens": i + o}


def tc(total: tuple[int, int, int, int] | None, last: tuple[int, int, int, int] | None = None, t: float = NOW - 500) -> str:
    info = None if total is None else {"total_token_usage": usage(*total),
                                       "last_token_usage": usage(*(last or total)), "model_context_window": 272000}
    return json.dumps({"timestamp": iso(t), "type": "event_msg",
                       "payload": {"type": "token_count", "info": info, "rate_limits": None}})


def rollout(home: Path, sid: str = SID, sub: str = "sessions") -> Path:
    return home / sub / "2026" / "11" / "26" / f"rollout-2026-11-26T10-00-00-{sid}.jsonl"


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return tmp_path / "codex"


@pytest.fixture
def h(tmp_path: Path, home: Path):
    harness = Harness(tmp_path, codex=[home])
    yield harness
    harness.close()


FIXTURE = [  # a session with a rate-limit-only update, a re-emit and a second request
    meta(), turn("gpt-5-codex"), tc(None),
    tc((12000, 9000, 800, 500), t=NOW - 400),
    tc((12000, 9000, 800, 500), t=NOW - 399),  # re-emit: unchanged total
    tc((26000, 21500, 1400, 700), (14000, 12500, 600, 200), t=NOW - 300),
]


def test_reemitted_token_count_adds_nothing(h: Harness, home: Path) -> None:
    write_lines(rollout(home), FIXTURE)
    h.read()
    events = h.stored()
    assert sum(e.input_tokens for e in events) == 26000
    assert sum(e.cache_read_tokens for e in events) == 21500
    assert sum(e.output_tokens for e in events) == 1400
    assert sum(e.reasoning_tokens for e in events) == 700
    assert len(events) == 2
    assert h.sources.stats.counters["reemits"] == 1
    # gpt-5-codex priced as gpt-5 ($1.25 in, $0.125 cached, $10 out): 4500 + 21500 cached + 1400 out = $0.0223125
    assert sum(Pricer().price(e).usd for e in events) == Decimal("0.0223125")


def test_info_null_is_tolerated(h: Harness, home: Path) -> None:
    write_lines(rollout(home), [meta(), turn("gpt-5-codex"), tc(None), tc(None)])
    h.read()
    assert h.stored() == [] and h.sources.stats.counters["info_null"] == 2


def test_model_comes_from_the_latest_turn_context(h: Harness, home: Path) -> None:
    write_lines(rollout(home), [meta(), turn("gpt-5-codex"), tc((100, 0, 10, 0), t=NOW - 400),
                                turn("gpt-5.2-codex", t=NOW - 350), tc((300, 50, 30, 0), t=NOW - 300)])
    h.read()
    assert [(e.model, e.input_tokens) for e in sorted(h.stored(), key=lambda e: e.ts)] == \
        [("gpt-5-codex", 100), ("gpt-5.2-codex", 200)]
    assert {(e.agent, e.session, e.project, e.branch) for e in h.stored()} == {("codex", SID, "proj", "main")}


def test_forked_session_does_not_recount_the_parent_history(h: Harness, home: Path) -> None:
    write_lines(rollout(home), FIXTURE)
    spawn = float(int(NOW - 200))  # Codex stamps the replayed lines with the spawn second
    write_lines(rollout(home, CHILD), [
        meta(CHILD, t=spawn, forked_from_id=SID),
        meta(SID),  # the parent's session_meta, then its token_count history stamped with the spawn second
        tc((12000, 9000, 800, 500), t=spawn), tc((26000, 21500, 1400, 700), t=spawn + 0.3),
        turn("gpt-5-codex", t=spawn + 5),
        tc((30000, 25000, 1500, 700), (4000, 3500, 100, 0), t=spawn + 20),  # the child's own request
    ])
    h.read()
    child = [e for e in h.stored() if e.session == CHILD]
    assert [(e.input_tokens, e.cache_read_tokens, e.output_tokens) for e in child] == [(4000, 3500, 100)]
    assert sum(e.input_tokens for e in h.stored()) == 30000


def test_decreasing_total_starts_a_new_baseline(h: Harness, home: Path) -> None:
    write_lines(rollout(home), [meta(), turn("gpt-5-codex"), tc((5000, 0, 100, 0), t=NOW - 400),
                                tc((700, 0, 70, 0), (700, 0, 70, 0), t=NOW - 300)])
    h.read()
    assert sorted(e.input_tokens for e in h.stored()) == [700, 5000]


def test_zstd_compressed_rollout_is_read(h: Harness, home: Path) -> None:
    path = rollout(home, sub="archived_sessions")
    path.parent.mkdir(parents=True)
    data = ("\n".join(FIXTURE) + "\n").encode()
    Path(str(path) + ".zst").write_bytes(zstandard.ZstdCompressor().compress(data))
    h.read()
    assert sum(e.input_tokens for e in h.stored()) == 26000


def test_plain_sibling_wins_over_zst_and_sessions_over_archived(h: Harness, home: Path) -> None:
    write_lines(rollout(home), FIXTURE)
    arch = rollout(home, sub="archived_sessions")
    write_lines(arch, FIXTURE + [tc((99999, 0, 1, 0), t=NOW - 100)])  # a stale archived copy must not be read
    Path(str(rollout(home)) + ".zst").write_bytes(zstandard.ZstdCompressor().compress(b"garbage"))
    h.read()
    assert sum(e.input_tokens for e in h.stored()) == 26000
    assert h.sources.stats.unreadable == {}  # the garbage .zst was never opened


def test_malformed_codex_line_is_counted_and_skipped(h: Harness, home: Path) -> None:
    bad = tc((1, 0, 1, 0))[:40] + '"token_count"'
    write_lines(rollout(home), FIXTURE[:4] + [bad] + FIXTURE[4:])
    h.read()
    assert sum(e.input_tokens for e in h.stored()) == 26000
    assert h.sources.stats.counters["malformed"] == 1


def test_unchanged_zst_rollout_is_not_decompressed_again(h: Harness, home: Path) -> None:
    path = Path(str(rollout(home)) + ".zst")
    path.parent.mkdir(parents=True)
    path.write_bytes(zstandard.ZstdCompressor().compress(("\n".join(FIXTURE) + "\n").encode()))
    h.read()
    assert h.sources.stats.files_read == 1
    h.read()  # same process: nothing new, the file is not even opened
    assert h.sources.stats.files_read == 1
    h.restart()
    h.read()  # after a restart: nothing new either
    assert h.sources.stats.files_read == 0 and sum(e.input_tokens for e in h.stored()) == 26000


# -- forks: the parent's history counts once, in the parent, decided by content --------------------

PARENT_LINES = [meta(), turn("gpt-5-codex", t=NOW - 590),
                tc((12000, 9000, 800, 500), t=NOW - 400), tc((12000, 9000, 800, 500), t=NOW - 399),
                tc((26000, 21500, 1400, 700), (14000, 12500, 600, 200), t=NOW - 300)]
PARENT_INPUT = 26000


def child_lines(replay_times: list[float], own_t: float) -> list[str]:
    """A forked rollout: its own session_meta, the parent's, the parent's history (the given stamps),
    then the child's own first request."""
    return [
        meta(CHILD, t=replay_times[0], forked_from_id=SID),
        meta(SID, t=replay_times[0]),
        turn("gpt-5-codex", t=replay_times[0]),
        tc((12000, 9000, 800, 500), t=replay_times[0]), tc((12000, 9000, 800, 500), t=replay_times[1]),
        tc((26000, 21500, 1400, 700), (14000, 12500, 600, 200), t=replay_times[2]),
        turn("gpt-5-codex", t=own_t),
        tc((30000, 25000, 1500, 700), (4000, 3500, 100, 0), t=own_t),
    ]


def by_session(h: Harness) -> dict[str, int]:
    out: dict[str, int] = {}
    for e in h.stored():
        out[e.session] = out.get(e.session, 0) + e.input_tokens
    return out


def test_a_verbatim_replay_with_the_parents_timestamps_counts_once_in_the_parent(h: Harness, home: Path) -> None:
    """Known miscount: a fork that copies its parent's token_count lines with their original
    timestamps, over many seconds, is not recognised by "the same second"; by content it is."""
    write_lines(rollout(home), PARENT_LINES)
    write_lines(rollout(home, CHILD), child_lines([NOW - 400, NOW - 399, NOW - 300], own_t=NOW - 100))
    h.read()
    assert by_session(h) == {SID: PARENT_INPUT, CHILD: 4000}
    assert h.sources.stats.counters["fork_replays"] == 3


def test_the_childs_own_first_response_counts_even_in_the_second_of_the_replayed_burst(h: Harness, home: Path) -> None:
    spawn = float(int(NOW - 200))  # Codex Desktop re-stamps the replay to the fork's second ...
    write_lines(rollout(home), PARENT_LINES)
    write_lines(rollout(home, CHILD), child_lines([spawn, spawn + 0.1, spawn + 0.2], own_t=spawn + 0.7))  # ... and so is this
    h.read()
    assert by_session(h) == {SID: PARENT_INPUT, CHILD: 4000}


def test_after_a_restart_the_childs_reader_learns_the_parents_totals_from_the_parents_file(
        tmp_path: Path, home: Path) -> None:
    write_lines(rollout(home), PARENT_LINES)
    h = Harness(tmp_path, codex=[home])
    try:
        h.read()
        h.restart()  # this process never read the parent (its cursor is at the end)
        write_lines(rollout(home, CHILD), child_lines([NOW - 400, NOW - 399, NOW - 300], own_t=NOW - 100))
        h.read()
        assert by_session(h) == {SID: PARENT_INPUT, CHILD: 4000}
        assert h.sources.stats.counters["fork_replays"] == 3
    finally:
        h.close()


def test_without_the_parents_file_or_turn_ids_the_history_still_counts_once_under_the_parent(
        tmp_path: Path, home: Path) -> None:
    """The last resort: nothing tells the replay from the child's own turns, so the child's lines are
    kept as the parent's events (its ids): when the parent's file turns up, they merge with it. The
    money is exact; the child's own requests are shown under the parent (docs/sources.md, known limits)."""
    write_lines(rollout(home, CHILD), child_lines([NOW - 400, NOW - 399, NOW - 300], own_t=NOW - 100))
    h = Harness(tmp_path, codex=[home])
    try:
        h.read()
        assert by_session(h) == {SID: PARENT_INPUT + 4000}
        assert {e.revision for e in h.stored()} == {0}
        h.restart()
        write_lines(rollout(home), PARENT_LINES)  # the parent's own file appears later
        h.read()
        assert sum(e.input_tokens for e in h.stored()) == PARENT_INPUT + 4000  # counted once
        assert {e.revision for e in h.stored() if e.input_tokens != 4000} == {1}  # the parent's own records won
    finally:
        h.close()


def test_turn_ids_tell_the_childs_own_turn_when_the_parent_was_never_read(h: Harness, home: Path) -> None:
    """On a real 0.135 fork head (the child's session_meta, then the parent's), with UUIDv7 turn ids:
    the parent's turns were created before the child, the child's own after it."""
    head = (Path(__file__).resolve().parents[1] / "fixtures" / "real" /
            "v0.135.0_forked_rollout_head_two_session_meta.jsonl").read_text().splitlines()
    child, parent = json.loads(head[0])["payload"]["id"], json.loads(head[1])["payload"]["id"]

    def turn_with(turn_id: str, t: float) -> str:
        obj = json.loads(turn("gpt-5.2-codex", t=t))
        obj["payload"]["turn_id"] = turn_id
        return json.dumps(obj)

    parent_turn = "019e646a-9000-7000-8000-000000000001"  # created after the parent, before the child
    own_turn = "019e79fa-b200-7000-8000-000000000002"  # created after the child
    write_lines(rollout(home, child), head + [
        turn_with(parent_turn, NOW - 60), tc((1000, 0, 100, 0), t=NOW - 60), tc((3000, 0, 300, 0), t=NOW - 60),
        turn_with(own_turn, NOW - 60), tc((3500, 0, 350, 0), t=NOW - 60),  # the same second: time cannot tell
    ])
    h.read()
    got: dict[tuple[str | None, int], int] = {}
    for e in h.stored():
        got[(e.session, e.revision)] = got.get((e.session, e.revision), 0) + e.input_tokens
    assert got == {(parent, 0): 1000 + 2000, (child, 1): 500}


def test_repeated_identical_totals_of_a_real_desktop_turn_add_nothing(h: Harness, home: Path) -> None:
    lines = (Path(__file__).resolve().parents[1] / "fixtures" / "real" /
             "v0.104.0-alpha.1_desktop_one_turn_token_count_pairs.jsonl").read_text().splitlines()
    sid = json.loads(lines[0])["payload"]["id"]
    write_lines(rollout(home, sid), lines)
    h = Harness(home.parent, codex=[home], backfill_days=400, ledger_path=home.parent / "l2.db")
    try:
        h.read()
        totals = [json.loads(ln)["payload"]["info"]["total_token_usage"] for ln in lines
                  if '"token_count"' in ln and json.loads(ln)["payload"]["info"]]
        assert len(totals) > len({json.dumps(t, sort_keys=True) for t in totals})  # re-emits are in the file
        assert sum(e.input_tokens for e in h.stored()) == totals[-1]["input_tokens"]
        assert sum(e.output_tokens for e in h.stored()) == totals[-1]["output_tokens"]
        assert h.sources.stats.counters["reemits"] == len(totals) - len({json.dumps(t, sort_keys=True) for t in totals})
    finally:
        h.close()

