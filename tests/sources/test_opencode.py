"""OpenCode (and Kilo) stores → events: real-shaped fixtures per trap, read by the real source from
real SQLite files (WAL) and JSON trees; the peers' known miscounts as regression tests."""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path
from typing import Any

import pytest

from tests.sources.opencode_store import NOW_MS, STEP_A, STEP_B, STEP_CLAUDE, STEP_OLD, Store, json_message
from tokentop.core.events import Event
from tokentop.core.ledger import Ledger
from tokentop.core.pricing import Pricer
from tokentop.core.sources import kilo, opencode
from tokentop.core.sources.opencode import OPENCODE, App, OpenCodeSource, Tokens, app_roots
from tokentop.core.sources.protocol import SourceContext


class Reader:
    """The source over one data dir, as a feed drives it; ``events`` = what the ledger would keep."""

    def __init__(self, home: Path, ledger: Ledger | None = None, *, app: App = OPENCODE, days: float = 30.0,
                 extra: tuple[Path, ...] = ()) -> None:
        self.home, self.ledger, self.app, self.days, self.extra = home, ledger, app, days, extra
        self.handed: list[Event] = []
        self.open()

    def open(self) -> None:
        self.src = OpenCodeSource(SourceContext(self.ledger, (self.home, *self.extra), self.days, "test-host",
                                                time.time, 5000), self.app)

    def poll(self) -> list[Event]:
        got: list[Event] = []
        self.src.poll(got.extend)
        self.handed += got
        return got

    def tick(self) -> list[Event]:
        got: list[Event] = []
        self.src.poll_tick(got.extend)
        self.handed += got
        return got

    @property
    def events(self) -> dict[str, Event]:
        out: dict[str, Event] = {}
        for e in self.handed:
            out.setdefault(e.id, e)
        return out


def totals(events: Any) -> tuple[int, int, int, int, int]:
    ev = list(events)
    return (sum(e.input_tokens for e in ev), sum(e.output_tokens for e in ev), sum(e.cache_read_tokens for e in ev),
            sum(e.cache_write_tokens for e in ev), sum(e.reasoning_tokens for e in ev))


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return tmp_path / "share" / "opencode"


# -- token semantics ------------------------------------------------------------------------------

def test_each_step_finish_part_is_one_call_and_the_message_tokens_are_not_added(home: Path) -> None:
    # OpenCode overwrites the message's tokens with each step's: reading messages counts the last
    # call only (peers' under-count). Three calls, three events, exact sums.
    s = Store(home)
    created = NOW_MS - 120_000
    mid = s.message(s.message_data(created=created))
    for t in (STEP_A, STEP_B, STEP_CLAUDE):
        s.step(mid, t, at=created + 1000)
    s.update_message(mid, s.message_data(created=created, tokens=STEP_CLAUDE, completed=created + 9000))
    r = Reader(home)
    got = r.poll()
    assert len(got) == 3
    # input = input + cache read + cache write; output = output + reasoning (reasoning is separate here:
    # the stored total is the sum of all five counts)
    assert totals(got) == (15169 + 18 + 15232 + 3 + 45000 + 3107, 47 + 17 + 2 + 22 + 850, 15232 + 45000, 3107, 17 + 22)
    assert {(e.agent, e.session, e.project, e.provider, e.model, e.source) for e in got} == {
        ("opencode", "ses_main", "proj", "anthropic", "claude-sonnet-4-5", "opencode-db")}
    assert r.src.stats.counters.get("message_level_usage") is None


def test_reasoning_separate_or_included_by_build() -> None:
    # current builds store output without reasoning and a total of all five counts
    a = Tokens.of(STEP_A)
    assert a is not None and a.reasoning_separate("openai", v2=False)
    # older builds (no total): OpenAI's output already holds its reasoning; Google's did not
    old = Tokens.of(STEP_OLD)
    assert old is not None and not old.reasoning_separate("openai", v2=False)
    assert old.reasoning_separate("google", v2=False)
    # reasoning above the output can only be separate
    assert Tokens.of({"input": 1, "output": 2, "reasoning": 22}).reasoning_separate("openai", v2=False)  # type: ignore[union-attr]


def test_old_build_step_without_total(home: Path) -> None:
    s = Store(home)
    s.call(STEP_OLD, provider="openai", model="gpt-5")
    (e,) = Reader(home).poll()
    assert (e.input_tokens, e.output_tokens, e.reasoning_tokens, e.cache_read_tokens) == (20923 + 467, 154, 92, 467)


def test_a_message_without_step_finish_parts_counts_its_own_tokens(home: Path) -> None:
    # builds before step-finish parts (and history migrated from them): the message holds the call
    s = Store(home)
    t = {"input": 1200, "output": 300, "reasoning": 0, "cache": {"read": 5000, "write": 0}}
    s.message(s.message_data(created=NOW_MS - 60_000, tokens=t, completed=NOW_MS - 55_000))
    r = Reader(home)
    (e,) = r.poll()
    assert (e.input_tokens, e.output_tokens) == (6200, 300)
    assert r.src.stats.counters["message_level_usage"] == 1


# -- duplicates -------------------------------------------------------------------------------------

def test_a_fork_copy_counts_once(home: Path) -> None:
    # tokscale #446: forks copy history rows with new ids but identical data; counting them inflated
    # a day's spend 8x. The fingerprint id makes the copy the same event.
    s = Store(home)
    created = NOW_MS - 300_000
    mid = s.call(STEP_CLAUDE, created=created, cost=0.21)
    row = s.start().execute("SELECT data FROM message WHERE id = ?", (mid,)).fetchone()[0]
    step = s.start().execute("SELECT data FROM part WHERE message_id = ?", (mid,)).fetchone()[0]
    s.session("ses_fork")
    copy = s.next_id("msg")
    s.start().execute("INSERT INTO message VALUES (?, 'ses_fork', ?, ?, ?)", (copy, NOW_MS, NOW_MS, row))
    s.step(copy, {}, sid="ses_fork", raw=step)
    r = Reader(home)
    got = r.poll()
    assert len(r.events) == 1 and len(got) == 1
    assert next(iter(r.events.values())).session == "ses_main"  # the original is read first (rowid order)
    assert r.src.stats.counters["duplicates_skipped"] == 1
    # the copy read by a later process (another id space in memory) still gets the same id
    again = Reader(home).poll()
    assert [e.id for e in again] == [e.id for e in got]


def test_the_database_row_wins_over_its_legacy_json_copy(home: Path) -> None:
    # ccusage prefers_database_messages_over_duplicate_json_files: same message id in both stores
    s = Store(home)
    mid = s.call(STEP_A, provider="openai", model="gpt-5")
    data = json.loads(s.start().execute("SELECT data FROM message WHERE id = ?", (mid,)).fetchone()[0])
    json_message(home / "storage", "ses_main", mid, data, [{"type": "step-finish", "tokens": STEP_A, "cost": 0}])
    # and a message only the JSON tree has (an install from before the database)
    only = s.message_data(created=NOW_MS - 90_000, provider="openai", model="gpt-5", tokens=STEP_B,
                          completed=NOW_MS - 80_000)
    json_message(home / "storage", "ses_old", "msg_jsononly0000000000000001", only,
                 [{"type": "step-start"}, {"type": "step-finish", "tokens": STEP_B, "cost": 0}])
    r = Reader(home)
    r.poll()
    assert sorted((e.source, e.input_tokens) for e in r.events.values()) == [
        ("opencode-db", 15169), ("opencode-json", 18 + 15232)]
    assert r.src.stats.counters["json_in_database"] == 1


def test_a_2x_session_is_read_from_session_message_with_its_own_field_names(home: Path) -> None:
    # t3code #8918 / tokscale #920: 2.x rows parsed with 1.x names give zero usage. And a 2.x store
    # still holding stale 1.x copies of the same calls counts them once.
    s = Store(home)
    s.session("ses_v2")
    data = {"agent": "build", "model": {"id": "gpt-5", "providerID": "openai"}, "content": [],
            "cost": 0.01, "tokens": {"input": 100, "output": 40, "reasoning": 10, "cache": {"read": 900, "write": 0}},
            "time": {"created": NOW_MS - 30_000, "completed": NOW_MS - 25_000}, "finish": "stop"}
    s.v2(data)
    s.call({"input": 100, "output": 50, "reasoning": 10, "cache": {"read": 900, "write": 0}}, sid="ses_v2",
           provider="openai", model="gpt-5")  # the stale 1.x copy
    (e,) = Reader(home).poll()
    assert (e.session, e.model, e.provider, e.input_tokens, e.output_tokens, e.reasoning_tokens) == (
        "ses_v2", "gpt-5", "openai", 1000, 50, 10)
    assert e.project == "proj"  # from the session's directory


def test_a_2x_call_is_emitted_when_its_row_gets_its_tokens(home: Path) -> None:
    s = Store(home)
    s.session("ses_v2")
    running = {"agent": "build", "model": {"id": "claude-sonnet-4-5", "providerID": "anthropic"}, "content": [],
               "time": {"created": NOW_MS - 5000}}
    rid = s.v2(running)
    r = Reader(home)
    assert r.poll() == []  # inserted at the call's start: nothing to count yet
    assert r.tick() == []
    done = dict(running, tokens={"input": 3, "output": 850, "reasoning": 0, "cache": {"read": 45000, "write": 1200}},
                cost=0.2, time={"created": NOW_MS - 5000, "completed": NOW_MS - 100})
    s.update_v2(rid, done)  # updated in place: the same rowid
    (e,) = r.tick()
    assert (e.input_tokens, e.output_tokens) == (46203, 850)
    assert r.tick() == [] and r.poll() == []  # seen once


def test_text_that_mentions_step_finish_in_a_tool_output_is_not_a_call(home: Path) -> None:
    s = Store(home)
    mid = s.call(STEP_CLAUDE)
    s.other_part(mid, {"type": "tool", "tool": "read", "state": {"status": "completed",
                                                                  "output": 'grep: "step-finish" "tokens": 999999'}})
    assert len(Reader(home).poll()) == 1


def test_a_malformed_part_is_counted_and_its_neighbours_kept(home: Path) -> None:
    s = Store(home)
    mid = s.call(STEP_A)
    s.step(mid, {}, raw='{"type":"step-finish","tokens":{"input":')
    s.step(mid, {"input": 1, "output": "lots"})
    s.step(mid, STEP_B)
    r = Reader(home)
    assert len(r.poll()) == 2
    assert r.src.stats.counters["malformed"] == 2


# -- cost -----------------------------------------------------------------------------------------------

def test_cost_is_priced_by_tokentop_and_the_stored_cost_kept_only_for_unknown_models(home: Path) -> None:
    s = Store(home)
    s.call(STEP_CLAUDE, provider="github-copilot", model="claude-sonnet-4.6", cost=0.0)  # subscription: 0
    s.call(STEP_CLAUDE, provider="anthropic", model="claude-sonnet-4-5", cost=0.2095)   # OpenCode's estimate
    s.call(STEP_A, provider="opencode", model="zen-coder-x1", cost=0.0137)              # unknown to genai-prices
    s.call(STEP_B, provider="opencode", model="big-pickle", cost=0.0)                   # unknown and free
    pricer = Pricer()
    kinds = {e.model: (e.provider, e.cost_usd, pricer.price(e).kind) for e in Reader(home).poll()}
    assert kinds == {
        "claude-sonnet-4.6": ("github-copilot", None, "estimated"),  # recomputed: cost 0 is not the price
        "claude-sonnet-4-5": ("anthropic", None, "estimated"),
        "zen-coder-x1": ("opencode", 0.0137, "provided"),
        "big-pickle": ("opencode", None, "unpriced"),  # shown as unpriced, never $0
    }


# -- reading without disturbing the agent ------------------------------------------------------------

def test_reading_after_the_agent_exited_creates_no_file_beside_the_database(home: Path) -> None:
    # CodexBar #2544: a read-only open of a WAL database without -wal/-shm fails, or creates them
    s = Store(home)
    s.call(STEP_A)
    s.exit()
    before = s.files()
    assert before == ["opencode.db"]
    r = Reader(home)
    assert len(r.poll()) == 1
    assert s.files() == before
    s.start()  # the agent starts again: its writes land in the WAL, which is read from then on
    s.call(STEP_B)
    assert len(r.tick()) == 1
    s.exit()
    assert s.files() == ["opencode.db"]  # our read held nothing open: the agent's exit removed its files


def test_reading_while_the_agent_runs_sees_its_uncheckpointed_writes(home: Path) -> None:
    s = Store(home)
    s.start().execute("PRAGMA wal_autocheckpoint=0")
    s.call(STEP_A)
    assert "opencode.db-wal" in s.files()
    r = Reader(home)
    assert len(r.poll()) == 1
    s.call(STEP_B)
    assert len(r.tick()) == 1
    assert r.tick() == []  # nothing changed: not even opened


def test_a_busy_database_is_retried_not_fatal(home: Path) -> None:
    s = Store(home)
    s.call(STEP_A)
    s.exit()
    # a connection that switches to exclusive locking mid-way and writes (a migration, a VACUUM):
    # WAL readers get "database is locked" until it lets go
    locker = sqlite3.connect(s.path, isolation_level=None)
    locker.execute("SELECT count(*) FROM message").fetchone()
    locker.execute("PRAGMA locking_mode=EXCLUSIVE")
    locker.execute("BEGIN EXCLUSIVE")
    locker.execute("INSERT INTO event_sequence VALUES ('agg', 1, NULL)")
    try:
        r = Reader(home)
        assert r.poll() == []
        assert r.src.stats.counters["busy_retries"] >= 1
    finally:
        locker.execute("COMMIT")
        locker.close()  # the exclusive lock is held until the connection closes
    for _ in range(100):  # the backoff's first delay is a quarter second
        if r.tick():
            break
        time.sleep(0.02)
    assert len(r.events) == 1


# -- cursors, window, restarts ----------------------------------------------------------------------------

def test_cursors_survive_a_restart_and_only_new_rows_are_read(home: Path, tmp_path: Path) -> None:
    s = Store(home)
    s.call(STEP_A)
    ledger = Ledger(tmp_path / "ledger.db")
    try:
        r = Reader(home, ledger)
        assert len(r.poll()) == 1
        s.call(STEP_B)
        r2 = Reader(home, ledger)  # a restart: the cursor is in the ledger's store_cursors
        got = r2.poll()
        assert len(got) == 1 and got[0].input_tokens == 18 + 15232
        assert r2.src.stats.lines == 2  # the new message and its part: nothing older was scanned
        state = ledger.call(lambda c: c.execute("SELECT store, state FROM store_cursors").fetchall())
        assert [st for st, _ in state] == [str(s.path)] and json.loads(state[0][1])["part"] >= 2
    finally:
        ledger.close()


def test_rows_deleted_at_the_top_do_not_hide_later_inserts(home: Path) -> None:
    s = Store(home)
    s.call(STEP_A)
    mid = s.call(STEP_B)
    r = Reader(home)
    assert len(r.poll()) == 2
    s.start().execute("DELETE FROM part WHERE message_id = ?", (mid,))  # the newest session deleted
    s.start().execute("DELETE FROM message WHERE id = ?", (mid,))
    assert r.tick() == []
    s.call(STEP_CLAUDE)  # reuses the freed rowids
    assert len(r.tick()) == 1
    assert r.src.stats.counters["rowid_resets"] >= 1


def test_rows_older_than_the_backfill_window_are_not_read(home: Path) -> None:
    s = Store(home)
    s.call(STEP_A, created=NOW_MS - 40 * 86_400_000)
    s.call(STEP_B)
    got = Reader(home, days=30).poll()
    assert [e.input_tokens for e in got] == [18 + 15232]


def test_a_replaced_database_is_read_from_the_start(home: Path) -> None:
    s = Store(home)
    s.call(STEP_A)
    r = Reader(home)
    assert len(r.poll()) == 1
    s.exit()
    s.path.rename(home / "old.db")
    s2 = Store(home)
    s2.call(STEP_CLAUDE)
    s2.exit()
    assert len(r.poll()) == 1 and r.src.stats.counters["stores_restarted"] == 1


# -- where ------------------------------------------------------------------------------------------------

def test_roots_xdg_channels_and_opencode_db(tmp_path: Path) -> None:
    env = {"HOME": str(tmp_path)}
    assert app_roots(OPENCODE, {"opencode_dir": ""}, env) == (tmp_path / ".local" / "share" / "opencode",)
    env["XDG_DATA_HOME"] = str(tmp_path / "xdg")
    assert app_roots(OPENCODE, {"opencode_dir": ""}, env) == (tmp_path / "xdg" / "opencode",)
    assert app_roots(OPENCODE, {"opencode_dir": str(tmp_path / "cfg")}, env)[0] == tmp_path / "cfg"
    env["OPENCODE_DB"] = "custom/my.db"  # relative to the data dir
    assert app_roots(OPENCODE, {"opencode_dir": ""}, env)[1] == tmp_path / "xdg" / "opencode" / "custom" / "my.db"
    env["OPENCODE_DB"] = ":memory:"
    assert len(app_roots(OPENCODE, {"opencode_dir": ""}, env)) == 1
    assert kilo.FORMAT.roots({"kilo_dir": ""}, {"HOME": str(tmp_path)}) == (tmp_path / ".local" / "share" / "kilo",)


def test_channel_databases_and_a_named_database_are_all_read(home: Path, tmp_path: Path) -> None:
    Store(home).call(STEP_A)
    Store(home, "opencode-beta.db").call(STEP_B)
    Store(home, "opencode.db-backup").call(STEP_CLAUDE)  # not a database name OpenCode uses
    other = Store(tmp_path / "elsewhere", "mine.db")
    other.call(STEP_OLD, provider="openai", model="gpt-5")
    r = Reader(home, extra=(other.path,))
    r.poll()
    assert sorted(e.input_tokens for e in r.events.values()) == sorted([15169, 18 + 15232, 20923 + 467])
    assert r.src.stats.files == 3


def test_kilo_reads_its_own_database_as_agent_kilo(tmp_path: Path) -> None:
    home = tmp_path / "share" / "kilo"
    Store(home, "kilo.db").call(STEP_A)
    Store(home, "opencode.db").call(STEP_B)  # not Kilo's
    (e,) = Reader(home, app=kilo.KILO).poll()
    assert (e.agent, e.source, e.input_tokens) == ("kilo", "kilo-db", 15169)
    assert e.id.startswith("kilo:")


def test_the_format_is_declared_once_and_on_by_default() -> None:
    from tokentop.core.sources.settings import KNOWN_SOURCES, SourceSettings

    assert {"opencode", "kilo"} <= set(KNOWN_SOURCES) and set(KNOWN_SOURCES) <= set(SourceSettings().enabled)
    assert opencode.FORMAT.config_keys.keys() == {"opencode_dir"}


def test_a_real_1_18_database_dump_reads_to_its_session_totals(home: Path) -> None:
    # Rows as OpenCode 1.18.33 wrote them (a public test fixture's dump, times moved to now): each call
    # is its own assistant message with one step-finish part; the session row keeps running totals.
    s = Store(home)
    base = NOW_MS - 600_000
    s.session("ses_f0de500f8ffeXvsiYJDOg5JtrU", directory="/work/proj")
    w = s.start()
    msgs = [("msg_0f21b0104001XDVLEwtN0JiIZk", 0, 533, "tool-calls", {"total": 128, "input": 120, "output": 8, "reasoning": 0,
                                                                     "cache": {"write": 0, "read": 0}}),
            ("msg_0f21b031b0014ZxYbhc4DxjZrb", 535, 569, "stop", {"total": 156, "input": 50, "output": 6, "reasoning": 0,
                                                                 "cache": {"write": 0, "read": 100}})]
    for mid, start, end, finish, tokens in msgs:
        data = {"parentID": "msg_0f21aff2e001y84CAhBLtC5Dm9", "role": "assistant", "mode": "build", "agent": "build",
                "path": {"cwd": "/work/proj", "root": "/"}, "cost": 0, "tokens": tokens, "modelID": "fake-model",
                "providerID": "fake", "time": {"created": base + start, "completed": base + end}, "finish": finish}
        w.execute("INSERT INTO message VALUES (?, 'ses_f0de500f8ffeXvsiYJDOg5JtrU', ?, ?, ?)",
                  (mid, base + start, base + end, json.dumps(data)))
        w.execute("INSERT INTO part VALUES (?, ?, 'ses_f0de500f8ffeXvsiYJDOg5JtrU', ?, ?, ?)",
                  (f"prt_{mid[4:]}s", mid, base + start + 1, base + start + 1, '{"type":"step-start"}'))
        w.execute("INSERT INTO part VALUES (?, ?, 'ses_f0de500f8ffeXvsiYJDOg5JtrU', ?, ?, ?)",
                  (f"prt_{mid[4:]}f", mid, base + end - 3, base + end - 2,
                   json.dumps({"reason": finish, "type": "step-finish", "tokens": tokens, "cost": 0})))
    got = sorted(Reader(home).poll(), key=lambda e: e.ts)
    assert [(e.input_tokens, e.cache_read_tokens, e.output_tokens) for e in got] == [(120, 0, 8), (150, 100, 6)]
    assert {(e.session, e.project, e.provider, e.model) for e in got} == {
        ("ses_f0de500f8ffeXvsiYJDOg5JtrU", "proj", "fake", "fake-model")}  # root "/" is not a project
    # the session row's totals (tokens_input 170, tokens_output 14, tokens_cache_read 100) are the calls' sums
    assert (sum(e.uncached_input_tokens for e in got), sum(e.output_tokens for e in got),
            sum(e.cache_read_tokens for e in got)) == (170, 14, 100)
    assert Pricer().price(got[0]).kind == "unpriced"
