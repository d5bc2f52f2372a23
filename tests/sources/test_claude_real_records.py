"""Claude Code transcripts as real builds write them (``tests/fixtures/real``), and the known
miscounts of docs/sources.md, each with its own test, through real files and the real tailer."""

from __future__ import annotations

import json
import shutil
from decimal import Decimal
from pathlib import Path

import pytest

from tests.sources.helpers import NOW, Harness, claude_line, iso, write_lines
from tokentop.core.pricing import Pricer

# every test on both JSON paths (typed decoding and its fallback): the same events either way
pytestmark = pytest.mark.usefixtures("json_path")

REAL = Path(__file__).resolve().parents[1] / "fixtures" / "real"


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return tmp_path / "claude" / "projects"


@pytest.fixture
def h(tmp_path: Path, root: Path):
    harness = Harness(tmp_path, claude=[root], backfill_days=400)  # the real records are months old
    yield harness
    harness.close()


def real_lines(name: str) -> list[str]:
    return (REAL / name).read_text().splitlines()


def outputs(h: Harness) -> dict[str, int]:
    return {e.id: e.output_tokens for e in h.stored()}


# -- real records ---------------------------------------------------------------------------------

def test_2_1_39_five_block_lines_count_once_at_the_final_line_and_a_live_read_revises_the_first_sight(
        h: Harness, root: Path) -> None:
    lines = real_lines("v2.1.39_one_response_5_block_lines_with_final_usage_line.jsonl")
    path = root / "p" / "4d5611e5.jsonl"
    write_lines(path, lines[:4])  # read while the response streams: two block lines (output 10) so far
    h.read()
    assert outputs(h) == {"claude:req_011CY4TdRR4Sr7x9h9V6zayA": 10}
    write_lines(path, lines[4:], mode="a")
    h.read()
    (e,) = h.stored()
    assert (e.output_tokens, e.input_tokens, e.cache_write_tokens, e.model) == (299, 1 + 29509 + 5601, 5601,
                                                                                 "claude-opus-4-6")
    assert e.ts == pytest.approx(1770912315.558)  # the first line with the final count (the fifth)
    assert h.ledger.get(e.id).revisions == 1


def test_2_1_39_long_gap_without_a_final_line_counts_the_response_once_at_its_first_line(h: Harness, root: Path) -> None:
    write_lines(root / "p" / "s.jsonl", real_lines("v2.1.39_long_gap_no_final_usage_line.jsonl"))
    h.read()
    (e,) = h.stored()
    assert (e.id, e.output_tokens, e.cache_write_1h_tokens) == ("claude:req_011CY2vzat3fnHvLNjpshn4D", 2, 7793)
    assert e.ts == pytest.approx(1770842573.626)  # 71.8 s before the second, identical line


def test_2_0_76_each_response_counts_once_with_the_largest_count_it_ever_shows(h: Harness, root: Path) -> None:
    write_lines(root / "p" / "s.jsonl", real_lines("v2.0.76_final_count_never_written.jsonl"))
    h.read()
    assert outputs(h) == {"claude:req_011CWj6D8KFP8hnwYdrq7S4C": 8, "claude:req_011CWj6DLWUSQuGF94tpDGHs": 1,
                          "claude:req_011CWj6EzMpif45Vc45GbJtp": 231, "claude:req_011CWj6FFQha3VJ3EPHwcxWF": 1}
    assert h.sources.stats.counters["streaming_duplicates"] == 4


def test_2_1_263_final_usage_on_every_line_ignores_iterations_and_keeps_the_1h_split(h: Harness, root: Path) -> None:
    write_lines(root / "p" / "s.jsonl", real_lines("v2.1.263_final_usage_on_block_lines_apiBlockIndex.jsonl"))
    h.read()
    got = {e.id: (e.output_tokens, e.cache_read_tokens, e.cache_write_tokens, e.cache_write_1h_tokens)
           for e in h.stored()}
    # top-level usage, not iterations[] (which says cache read 0 and a 5-minute split on the second)
    assert got == {"claude:req_011CerSPfVP8MYSnfLQABzQz": (1008, 0, 35997, 35997),
                   "claude:req_011CerSQkBgmugDqLmrNtanB": (787, 35997, 3732, 3732)}


def copy_tree(root: Path, with_subagents: bool) -> None:
    src = REAL / "v2.1.39_subagent_tree"
    dst = root / "-home-user-project"
    dst.mkdir(parents=True)
    shutil.copy(src / "4d5611e5-241a-462a-8d15-5122611a9569.jsonl", dst)
    if with_subagents:
        shutil.copytree(src / "4d5611e5-241a-462a-8d15-5122611a9569", dst / "4d5611e5-241a-462a-8d15-5122611a9569")


SUBAGENT_REQUEST = "claude:req_011CY4TSxK7aKeeVwvVX81aP"


def test_agent_progress_embeds_count_when_the_subagent_transcript_is_absent(h: Harness, root: Path) -> None:
    """Known miscount: a subagent's messages embedded in its parent's agent_progress lines are its
    only record when its own transcript is gone; they count, once."""
    copy_tree(root, with_subagents=False)
    h.read()
    (e,) = h.stored()
    assert (e.id, e.agent, e.revision, e.output_tokens, e.cache_write_tokens) == \
        (SUBAGENT_REQUEST, "claude-code/subagent", 0, 3, 13522)
    assert e.session == "4d5611e5-241a-462a-8d15-5122611a9569" and e.ts == pytest.approx(1770912171.467)
    assert h.sources.stats.counters["agent_progress"] == 4


@pytest.mark.parametrize("subagent_first", [False, True])
def test_agent_progress_embeds_and_the_subagent_transcript_count_once(tmp_path: Path, subagent_first: bool) -> None:
    """Known miscount: with both the embeds and the subagent's own transcript, the request counts once,
    as the subagent's own line (same id; revision 1 beats the embed's 0), in either reading order."""
    root = tmp_path / "claude" / "projects"
    copy_tree(root, with_subagents=True)
    h = Harness(tmp_path, claude=[root], backfill_days=400)
    try:
        if subagent_first:  # e.g. the main file read by another process, or written later
            main = root / "-home-user-project" / "4d5611e5-241a-462a-8d15-5122611a9569.jsonl"
            held = main.read_bytes()
            main.write_bytes(b"")
            h.read()
            main.write_bytes(held)
        h.read()
        got = {e.id: (e.agent, e.revision, e.output_tokens) for e in h.stored()}
        assert got == {SUBAGENT_REQUEST: ("claude-code/subagent", 1, 3),
                       "claude:req_011CY4okeNwhQs1MrQfrJFKH": ("claude-code/subagent", 1, 8)}  # + the compaction call
        assert h.ledger.get(SUBAGENT_REQUEST).event.ts == pytest.approx(1770912170.956)  # the subagent's first line
    finally:
        h.close()


# -- known miscounts --------------------------------------------------------------------------------

def test_fast_mode_is_priced_at_the_fast_rate_and_named_in_the_provenance(h: Harness, root: Path) -> None:
    line = json.loads(claude_line("m1", "r1", model="claude-opus-5", inp=3, read=10_000, write=2000, write_1h=0,
                                  out=1000))
    line["message"]["usage"]["speed"] = "fast"
    write_lines(root / "p" / "s.jsonl", [json.dumps(line), claude_line("m2", "r2", model="claude-opus-5", inp=3,
                                                                       read=10_000, write=2000, write_1h=0, out=1000)])
    h.read()
    fast, standard = sorted(h.stored(), key=lambda e: e.id)
    assert (fast.speed, fast.model, standard.speed) == ("fast", "claude-opus-5", None)
    pf, ps = Pricer().price(fast), Pricer().price(standard)
    # Opus 5 fast: $10 in / $50 out / $1 read / $12.50 5m write (2x the standard $5 / $25 / $0.50 / $6.25)
    assert pf.usd == Decimal("0.08503") and ps.usd == Decimal("0.042515")
    assert pf.priced_as == "claude-opus-5 (fast)" and ps.priced_as == "claude-opus-5"


def test_web_search_requests_are_billed_per_search(h: Harness, root: Path) -> None:
    line = json.loads(claude_line("m1", "r1", model="claude-sonnet-4-5", inp=3, read=0, write=0, out=100))
    line["message"]["usage"]["server_tool_use"] = {"web_search_requests": 3, "web_fetch_requests": 1}
    write_lines(root / "p" / "s.jsonl", [json.dumps(line)])
    h.read()
    (e,) = h.stored()
    assert e.web_searches == 3
    # $3/M in, $15/M out, and $10 per 1000 searches: 0.000009 + 0.0015 + 0.03
    assert Pricer().price(e).usd == Decimal("0.031509")


def test_a_line_only_the_standard_library_reads_still_counts_and_its_text_is_stored_clean(
        h: Harness, root: Path) -> None:
    """Known miscount: Claude Code cuts text inside an emoji and writes a lone surrogate escape;
    orjson refuses the line, the standard library reads it, and text kept from it is valid UTF-8."""
    line = json.loads(claude_line("m1", "r1", out=42, cwd="/home/dev/caf\u00e9"))
    line["message"]["content"] = [{"type": "text", "text": "cut here: X"}]
    line["gitBranch"] = "feat-Y"
    raw = json.dumps(line).replace("cut here: X", "cut here: \\ud83d").replace("feat-Y", "feat-\\ud83d")
    write_lines(root / "p" / "s.jsonl", [raw, claude_line("m2", "r2", out=7)])
    h.read()
    got = {e.id: e for e in h.stored()}  # stored in SQLite, read back
    assert {k: e.output_tokens for k, e in got.items()} == {"claude:r1": 42, "claude:r2": 7}
    assert got["claude:r1"].branch == "feat-\ufffd" and got["claude:r1"].project == "caf\u00e9"
    assert h.sources.stats.counters.get("malformed", 0) == 0


def test_a_line_nested_50k_deep_is_malformed_and_its_neighbours_count(h: Harness, root: Path) -> None:
    deep = '{"type":"assistant","message":{"usage":' + "[" * 50_000 + "]" * 50_000 + "}}"
    write_lines(root / "p" / "s.jsonl", [claude_line("m1", "r1", out=11), deep, claude_line("m2", "r2", out=22)])
    h.read()
    assert sorted(outputs(h).values()) == [11, 22]
    assert h.sources.stats.counters["malformed"] == 1


def test_a_short_cache_split_books_the_rest_as_5_minute_writes(h: Harness, root: Path) -> None:
    """Known miscount: web-search turns report cache_creation_input_tokens 12229 with a 0/0 split;
    taking the split as the total would drop 12,229 written tokens."""
    line = json.loads(claude_line("m1", "r1", model="claude-sonnet-4-5", inp=3, read=0, write=12229, out=10))
    line["message"]["usage"]["cache_creation"] = {"ephemeral_5m_input_tokens": 0, "ephemeral_1h_input_tokens": 0}
    part = json.loads(claude_line("m2", "r2", model="claude-sonnet-4-5", inp=3, read=0, write=1000, out=10))
    part["message"]["usage"]["cache_creation"] = {"ephemeral_5m_input_tokens": 0, "ephemeral_1h_input_tokens": 600}
    write_lines(root / "p" / "s.jsonl", [json.dumps(line), json.dumps(part)])
    h.read()
    got = {e.id: (e.cache_write_tokens, e.cache_write_1h_tokens) for e in h.stored()}
    assert got == {"claude:r1": (12229, 0), "claude:r2": (1000, 600)}
    assert h.sources.stats.counters["cache_split_short"] == 2


def test_requestless_responses_of_two_sessions_that_reuse_a_message_id_both_count(h: Harness, root: Path) -> None:
    write_lines(root / "p" / "a.jsonl", [claude_line("msg_gw_1", None, out=5, session="A", ts=NOW - 50)])
    write_lines(root / "p" / "b.jsonl", [claude_line("msg_gw_1", None, out=6, session="B", ts=NOW - 40)])
    h.read()
    assert outputs(h) == {"claude:msg:A:msg_gw_1": 5, "claude:msg:B:msg_gw_1": 6}


def test_within_one_read_only_the_largest_line_of_a_response_is_handed_over(h: Harness, root: Path) -> None:
    lines = [claude_line("m1", "r1", out=o, stop=None, ts=NOW - 30 + i, uuid=f"u{i}") for i, o in enumerate((3, 3, 900, 3))]
    write_lines(root / "p" / "s.jsonl", lines)
    h.read()
    assert [(e.id, e.output_tokens, iso(e.ts)) for e in h.handed] == [("claude:r1", 900, iso(NOW - 28))]
