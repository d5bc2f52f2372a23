"""Claude Code transcripts: one test per trap in docs/sources.md ("Claude Code"), through real files and the real tailer."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import pytest

from tests.sources.helpers import NOW, Harness, claude_line, write_lines
from tokentop.core.pricing import Pricer
from tokentop.core.sources.claude_code import claude_roots

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


def test_streaming_duplicates_keep_the_largest_usage_in_any_order(h: Harness, root: Path) -> None:
    write_lines(root / "p" / "a.jsonl", [
        claude_line("m1", "r1", out=8, stop=None),
        claude_line("m1", "r1", out=527, stop="tool_use"),
        claude_line("m1", "r1", out=12, stop=None),  # a late partial line must not win
        claude_line("m2", "r2", out=40, stop="end_turn"),
        claude_line("m2", "r2", out=3, stop=None),
    ])
    h.read()
    got = {e.id: e.output_tokens for e in h.stored()}
    assert got == {"claude:r1": 527, "claude:r2": 40}


def test_tokens_convert_to_contract_semantics_with_1h_cache_split(h: Harness, root: Path) -> None:
    write_lines(root / "p" / "a.jsonl", [claude_line("m1", "r1", inp=3, read=9493, write=2849, write_1h=2849, out=527)])
    h.read()
    (e,) = h.stored()
    assert (e.input_tokens, e.cache_read_tokens, e.cache_write_tokens, e.cache_write_1h_tokens, e.output_tokens) == \
        (3 + 9493 + 2849, 9493, 2849, 2849, 527)
    assert (e.agent, e.session, e.project, e.branch, e.provider) == ("claude-code", "sess-1", "proj", "main", "anthropic")
    # Sonnet 4.5 at $3 in / $15 out / $6 1h write / $0.30 read: 3 + 2849 (1h) + 9493 (read) + 527 out = $0.0278559
    assert Pricer().price(e).usd == Decimal("0.0278559")


def test_sidechain_replay_of_a_parent_message_counts_once_for_the_parent(h: Harness, root: Path) -> None:
    write_lines(root / "p" / "s1.jsonl", [claude_line("m1", "r1", out=300)])
    write_lines(root / "p" / "s1" / "subagents" / "agent-x.jsonl", [
        claude_line("m1", "r-side", out=300, sidechain=True),  # replay: same message.id, other requestId
        claude_line("m9", "r9", out=50, sidechain=True),  # a real subagent response still counts
    ])
    h.read()
    got = {e.id: e.agent for e in h.stored()}
    assert got == {"claude:r1": "claude-code", "claude:r9": "claude-code/subagent"}
    assert h.sources.stats.counters["sidechain_replays"] == 1


def test_subagent_type_comes_from_the_meta_json_sidecar(h: Harness, root: Path) -> None:
    sub = root / "p" / "s1" / "subagents"
    write_lines(sub / "agent-ab.jsonl", [claude_line("m1", "r1", sidechain=True)])
    (sub / "agent-ab.meta.json").write_text(json.dumps({"agentType": "Explore", "spawnDepth": 1}))
    h.read()
    assert [e.agent for e in h.stored()] == ["claude-code/Explore"]


def test_resumed_copy_in_another_file_and_another_root_counts_once(tmp_path: Path) -> None:
    a = tmp_path / "a" / "projects"
    b = tmp_path / "b" / "projects"
    lines = [claude_line("m1", "r1", out=5, stop=None), claude_line("m1", "r1", out=400)]
    write_lines(a / "p" / "s1.jsonl", lines)
    write_lines(a / "p" / "s2.jsonl", lines + [claude_line("m2", "r2", out=7)])  # resume replays s1
    write_lines(b / "p" / "s1.jsonl", lines)  # same transcript under a second config dir
    h = Harness(tmp_path, claude=[a, b])
    try:
        h.read()
        assert sorted((e.id, e.output_tokens) for e in h.stored()) == [("claude:r1", 400), ("claude:r2", 7)]
    finally:
        h.close()


def test_requestless_lines_dedupe_on_message_id_within_their_session(h: Harness, root: Path) -> None:
    """Known miscount: gateways without request ids reuse message ids across sessions, so a
    requestless response is keyed by (session, message.id): the same response re-logged in the
    session's other file counts once, the same message id in another session counts on its own."""
    write_lines(root / "p" / "a.jsonl", [claude_line("m1", None, out=4, stop=None), claude_line("m1", None, out=90)])
    write_lines(root / "p" / "b.jsonl", [claude_line("m1", None, out=90)])  # resumed copy, same session
    write_lines(root / "p" / "c.jsonl", [claude_line("m1", None, out=33, session="sess-2")])  # a gateway's reused id
    h.read()
    assert sorted((e.id, e.output_tokens) for e in h.stored()) == [("claude:msg:sess-1:m1", 90),
                                                                  ("claude:msg:sess-2:m1", 33)]


def test_lines_without_message_id_count_as_they_are(h: Harness, root: Path) -> None:
    write_lines(root / "p" / "a.jsonl", [claude_line(None, None, out=10, uuid="u1"), claude_line(None, None, out=20, uuid="u2")])
    h.read()
    assert sorted(e.output_tokens for e in h.stored()) == [10, 20]


def test_null_fields_are_treated_as_missing(h: Harness, root: Path) -> None:
    line = json.loads(claude_line("m1", "r1", out=77))
    line["message"]["usage"]["cache_read_input_tokens"] = None
    line["cwd"] = None
    line["costUSD"] = None
    line["version"] = None
    write_lines(root / "p" / "a.jsonl", [json.dumps(line)])
    h.read()
    (e,) = h.stored()
    assert (e.output_tokens, e.cache_read_tokens, e.project) == (77, 0, None)


def test_synthetic_model_lines_are_not_usage(h: Harness, root: Path) -> None:
    write_lines(root / "p" / "a.jsonl", [claude_line("m1", "r1", model="<synthetic>", out=0, inp=0, read=0, write=0),
                                        claude_line("m2", "r2", model="<synthetic>", out=5)])
    h.read()
    assert h.stored() == []


def test_1m_context_suffix_is_priced_as_the_base_model(h: Harness, root: Path) -> None:
    write_lines(root / "p" / "a.jsonl", [claude_line("m1", "r1", model="claude-sonnet-4-5-20250929[1m]", out=100)])
    h.read()
    (e,) = h.stored()
    cost = Pricer().price(e)
    assert e.model == "claude-sonnet-4-5-20250929[1m]"
    assert cost.kind == "estimated" and cost.pusd and cost.pusd > 0


def test_malformed_lines_are_counted_and_skipped_without_losing_neighbours(h: Harness, root: Path) -> None:
    good1 = claude_line("m1", "r1", out=11)
    good2 = claude_line("m2", "r2", out=22)
    write_lines(root / "p" / "a.jsonl", [
        good1,
        good2[:70],  # truncated write in the middle of the file
        '{"type":"assistant","message":{"usage":{"input_tokens":"NaN"}},"timestamp":"bad"}',
        "\x00\x00garbage \"usage\"",
        good2,
    ])
    h.read()
    assert sorted(e.output_tokens for e in h.stored()) == [11, 22]
    assert h.sources.stats.counters["malformed"] == 2  # the lines that claimed usage; the rest never parsed


def test_truncated_last_line_is_retried_once_completed(h: Harness, root: Path) -> None:
    path = root / "p" / "a.jsonl"
    full = claude_line("m1", "r1", out=123)
    path.parent.mkdir(parents=True)
    path.write_text(claude_line("m0", "r0", out=1) + "\n" + full[:50])
    h.read()
    assert [e.id for e in h.stored()] == ["claude:r0"]
    with open(path, "a") as fh:
        fh.write(full[50:] + "\n")
    h.read()
    assert sorted(e.id for e in h.stored()) == ["claude:r0", "claude:r1"]
    assert h.sources.stats.counters.get("malformed", 0) == 0


def test_events_older_than_the_backfill_window_go_nowhere(h: Harness, root: Path) -> None:
    write_lines(root / "p" / "a.jsonl", [claude_line("m1", "r1", ts=NOW - 40 * 86400), claude_line("m2", "r2")])
    h.read()
    assert [e.id for e in h.stored()] == ["claude:r2"]
    assert h.sources.stats.too_old == 1


def test_roots_from_claude_config_dir_comma_list_and_defaults(tmp_path: Path) -> None:
    env = {"CLAUDE_CONFIG_DIR": f"{tmp_path}/one, {tmp_path}/two/projects", "HOME": str(tmp_path)}
    assert claude_roots([], env) == [tmp_path / "one" / "projects", tmp_path / "two" / "projects"]
    env = {"HOME": str(tmp_path)}
    assert claude_roots([], env) == [tmp_path / ".claude" / "projects", tmp_path / ".config" / "claude" / "projects"]
