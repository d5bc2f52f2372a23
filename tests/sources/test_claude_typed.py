"""Claude Code lines: msgspec's typed decoding and the general JSON path give the same answer for
every line (the same candidate, nothing, or the same "malformed"), whatever the values' types."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tokentop.core import fastjson
from tokentop.core.sources.claude_code import Malformed, parse_line

#: values of every JSON type, and the edges the rules care about
ANY = st.one_of(
    st.none(), st.booleans(), st.integers(-5, 5), st.sampled_from([10**12, 10**12 + 1, 2**63, -(2**63)]),
    st.sampled_from([0.0, 12.0, 12.5, -1.0, 1e300]), st.sampled_from(["", " x", "claude-sonnet-4-5", "<synthetic>",
                                                                     "é", "12", "2026-11-26T10:00:00.000Z"]),
    st.just([]), st.just({}), st.just([1, 2]),
)
#: mostly a plain count, sometimes any value
COUNT = st.integers(0, 4).flatmap(lambda k: ANY if k == 0 else st.integers(0, 100_000))


def _maybe(d: dict, key: str, value: st.SearchStrategy, draw) -> None:  # noqa: ANN001
    choice = draw(st.sampled_from(("value",) * 8 + ("any", "absent")))
    if choice == "absent":
        return
    d[key] = draw(ANY) if choice == "any" else draw(value)


def _fields(draw) -> dict:  # noqa: ANN001
    line: dict = {}
    _maybe(line, "requestId", st.sampled_from(["req_1", "req_2", ""]), draw)
    _maybe(line, "timestamp", st.sampled_from(["2026-11-26T10:00:00.000Z"] * 4 + ["2026-11-26", "not a time at all!!"]),
           draw)
    _maybe(line, "uuid", st.sampled_from(["u-1", "u-2"]), draw)
    side = draw(st.sampled_from(["absent", True, False, None, 1, "true"]))
    if side != "absent":  # absent: an embedded line takes its parent's
        line["isSidechain"] = side
    _maybe(line, "sessionId", st.sampled_from(["sess-1", "s" * 300]), draw)
    _maybe(line, "cwd", st.sampled_from(["/home/u/proj", "relative"]), draw)
    _maybe(line, "gitBranch", st.sampled_from(["main", ""]), draw)
    return line


@st.composite
def lines(draw, embedded: bool) -> bytes:  # noqa: ANN001
    usage: dict = {}
    for name in ("input_tokens", "output_tokens", "cache_read_input_tokens", "cache_creation_input_tokens"):
        _maybe(usage, name, COUNT, draw)
    _maybe(usage, "cache_creation", st.fixed_dictionaries({}, optional={
        "ephemeral_5m_input_tokens": COUNT, "ephemeral_1h_input_tokens": COUNT}), draw)
    _maybe(usage, "speed", st.sampled_from(["fast", "standard", "FAST", " fast "]), draw)
    _maybe(usage, "server_tool_use", st.fixed_dictionaries({}, optional={"web_search_requests": COUNT}), draw)
    message: dict = {"content": [{"type": "text", "text": "hi"}]}
    _maybe(message, "id", st.sampled_from(["msg_01", "msg_01" * 40, "m x"]), draw)
    _maybe(message, "model", st.sampled_from(["claude-sonnet-4-5"] * 3 + ["claude-opus-4-1", "<synthetic>"]), draw)
    message["usage"] = usage if draw(st.integers(0, 9)) else draw(ANY)
    line = _fields(draw)
    if embedded:  # a subagent's line embedded in its parent's progress line
        inner = dict(_fields(draw), type=draw(st.sampled_from(["assistant"] * 3 + ["user", None])), message=message)
        data: dict = {"type": draw(st.sampled_from(["agent_progress"] * 3 + ["bash_progress"])), "message": inner}
        _maybe(data, "agentId", st.sampled_from(["a1b2c3d", "../../x", ""]), draw)
        # the outer line's own fields: its session, cwd and branch count, and its isSidechain when the
        # embedded line has none
        line["type"] = "progress"
        line["data"] = data if draw(st.integers(0, 9)) else draw(ANY)
    else:
        line["type"] = draw(st.sampled_from(["assistant"] * 4 + ["user", None]))
        line["message"] = message
    raw = json.dumps(line, ensure_ascii=draw(st.booleans())).encode()
    trick = draw(st.integers(0, 9))
    if trick == 0:  # a lone surrogate escape (only the standard library reads it)
        raw = raw.replace(b'"hi"', b'"\\ud83d"')
    elif trick == 1:  # bytes that are not UTF-8 (a torn write)
        raw = raw.replace(b'"hi"', b'"\xe2\x82"')
    elif trick == 2:  # a duplicated key: the last one counts for both parsers
        raw = raw[:-1] + b', "type": "assistant"}'
    return raw


def _outcome(raw: bytes, typed: bool) -> object:
    fastjson.ENABLED = typed
    try:
        return parse_line(raw)
    except Malformed:
        return "malformed"


@pytest.fixture(autouse=True)
def _restore():
    was = fastjson.ENABLED
    yield
    fastjson.ENABLED = was


@settings(max_examples=1000, deadline=None)
@given(raw=lines(embedded=False))
def test_typed_and_general_paths_agree_on_every_line(raw: bytes) -> None:
    assert _outcome(raw, True) == _outcome(raw, False)


@settings(max_examples=1000, deadline=None)
@given(raw=lines(embedded=True))
def test_typed_and_general_paths_agree_on_every_embedded_subagent_line(raw: bytes) -> None:
    assert _outcome(raw, True) == _outcome(raw, False)


@pytest.mark.parametrize("raw", [
    b'{"type":"assistant","timestamp":"2026-11-26T10:00:00.000Z","requestId":"r","message":{"id":"m","model":'
    b'"claude-sonnet-4-5","usage":{"input_tokens":3,"output_tokens":1},"content":"\\udc00"}}',
    b'{"type":"assistant","timestamp":"2026-11-26T10:00:00.000Z","requestId":"r","message":{"id":"m","model":'
    b'"claude-sonnet-4-5","usage":{"input_tokens":3.0,"output_tokens":1}}}',
    b'[' * 5000 + b']' * 5000,
    b'{"type":"assistant","message":' * 3000 + b'1' + b'}' * 3000,
])
def test_lines_the_typed_decoder_refuses_are_read_by_the_general_path(raw: bytes) -> None:
    assert _outcome(raw, True) == _outcome(raw, False)
