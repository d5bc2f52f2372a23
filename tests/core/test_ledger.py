"""The ledger on real SQLite files: group commit, duplicate flags, paging, schema versions and upgrades."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tokentop.commands.report import build as report
from tokentop.core import ledger as ledger_mod
from tokentop.core.events import Event, event_row
from tokentop.core.ledger import SCHEMA_VERSION, Ledger, LedgerError, Migration, Revised
from tokentop.core.pricing import Cost
from tokentop.core.revision import wins
from tokentop.core.team import outbox

FIXTURES = Path(__file__).parent / "fixtures"
OLD = FIXTURES / "ledger-0.1.0.db"
EXPECTED = json.loads((FIXTURES / "ledger-0.1.0.report.json").read_text())
TS = 1_796_000_000.0
COST = Cost(1_000_000, "estimated")


def ev(i: int | str, ts: float = TS, **kw) -> Event:
    return Event(id=f"e{i}" if isinstance(i, int) else i, ts=ts, agent="a", session="s", model="gpt-5",
                 input_tokens=100, output_tokens=10, **kw)


def columns(conn: sqlite3.Connection, table: str = "events") -> dict[str, tuple]:
    """name -> (type, not null, primary key) of each column."""
    return {r[1]: (r[2], r[3], r[5]) for r in conn.execute(f"PRAGMA table_info({table})")}


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def old_ledger(tmp_path: Path) -> Path:
    """A copy of the ledger tokentop 0.1.0 wrote (schema version 1)."""
    path = tmp_path / "data" / "tokentop.db"
    path.parent.mkdir(parents=True)
    shutil.copyfile(OLD, path)
    return path


def backups(path: Path) -> list[Path]:
    return sorted(path.parent.glob(f"{path.name}.v*-backup-*"))


# -- appends --------------------------------------------------------------------------------------

def test_concurrent_appends_are_one_commit_and_each_caller_gets_its_own_flags(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path / "l.db")
    ledger.append([(ev(f"t{i}-old"), COST) for i in range(8)])
    statements: list[str] = []
    ledger.call(lambda c: c.set_trace_callback(statements.append))
    hold, held = threading.Event(), threading.Event()

    def busy(_conn: sqlite3.Connection) -> None:
        held.set()
        hold.wait(10)

    blocker = threading.Thread(target=ledger.call, args=(busy,))  # the ledger thread is busy: appends queue up
    blocker.start()
    assert held.wait(10)
    futures = {}

    def worker(i: int) -> None:
        # thread i sends a new event, one stored before, and a new one twice
        futures[i] = ledger.submit([(ev(f"t{i}-new"), COST), (ev(f"t{i}-old"), COST), (ev(f"t{i}-x"), COST),
                                    (ev(f"t{i}-x"), COST)])

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    hold.set()
    results = {i: fut.result(10) for i, fut in futures.items()}
    blocker.join(10)
    ledger.call(lambda c: c.set_trace_callback(None))
    assert results == {i: [True, False, True, False] for i in range(8)}
    assert [s for s in statements if s in ("BEGIN IMMEDIATE", "COMMIT")] == ["BEGIN IMMEDIATE", "COMMIT"]  # one group commit
    assert ledger.count() == 8 + 8 * 2
    ledger.close()


def test_mixed_batch_flags_are_exact_and_duplicates_are_not_reinserted(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path / "l.db")
    outbox.install(ledger)  # a trigger inserting elsewhere must not make stored ids look new
    stored = {5, 40, 41, 77}
    assert ledger.append([(ev(i), COST) for i in sorted(stored)]) == [True] * 4
    queued = outbox.count(ledger)
    # 100 events over several INSERT chunks, a stored id in several chunks, one id twice in the batch;
    # fewer tokens than the stored records, so the stored ids stay as they are (no revision)
    batch = [Event(id=f"e{i}", ts=TS + i, agent="b", session="s2", input_tokens=99, output_tokens=9)
             for i in range(100)]
    batch.append(batch[60])
    flags = ledger.append([(e, COST) for e in batch])
    assert flags == [i not in stored for i in range(100)] + [False]
    assert ledger.count() == 100
    assert outbox.count(ledger) == queued + 96  # one outbox row per event stored, none per duplicate
    first = {s.event.id: s.event for s in ledger.events_since(0)}
    assert first["e40"].agent == "a" and first["e40"].input_tokens == 100  # the stored event, not the duplicate
    assert first["e1"].agent == "b"
    ledger.close()


def _sequential(stored: dict[str, Event], batch: list[Event]) -> list[object]:
    """The outcomes of offering ``batch`` one event at a time (the revision rule), applied to ``stored``."""
    out: list[object] = []
    for e in batch:
        prev = stored.get(e.id)
        if prev is None:
            out.append(True)
            stored[e.id] = e
        elif wins(e, prev):
            out.append(("revised", prev))
            stored[e.id] = e
        else:
            out.append(False)
    return out


@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_any_batch_gets_the_outcomes_of_one_event_at_a_time_across_insert_chunks(tmp_path_factory, data) -> None:
    """Ids stored before, ids repeated inside a batch and inside one INSERT statement, larger and smaller
    records, batches over several statements: every outcome and every stored record is what offering
    the events one at a time gives; with a trigger inserting elsewhere, and for rows given as rows."""
    ids = [f"k{i}" for i in range(data.draw(st.integers(1, 60)))]
    record = st.builds(lambda i, inp, out, ts: Event(id=i, ts=TS + ts, agent="a", input_tokens=inp, output_tokens=out),
                       st.sampled_from(ids), st.integers(0, 3), st.integers(0, 3), st.integers(0, 2))
    batches = data.draw(st.lists(st.lists(record, min_size=1, max_size=3 * ledger_mod.INSERT_CHUNK_ROWS + 5),
                                 min_size=1, max_size=4))
    as_rows = data.draw(st.booleans())
    ledger = Ledger(tmp_path_factory.mktemp("l") / "l.db")
    outbox.install(ledger)
    model: dict[str, Event] = {}
    try:
        for batch in batches:
            want = _sequential(model, batch)
            if as_rows:
                got = ledger.submit_rows([event_row(e, COST, TS) for e in batch]).result()
            else:
                got = ledger.append([(e, COST) for e in batch])
            assert [("revised", o.previous.event) if isinstance(o, Revised) else o for o in got] == want
        assert {s.event.id: s.event for s in ledger.events_since(0)} == model
        assert ledger.count() == len(model)
    finally:
        ledger.close()


def test_events_since_pages_through_runs_of_equal_timestamps() -> None:
    with Ledger(":memory:") as ledger:
        # 3 before, 23 at the same instant (ids out of order), 4 after: pages of 5 cut inside the run
        events = ([ev(f"a{i}", TS - 10 + i) for i in range(3)] + [ev(f"m{(i * 7) % 23:02d}", TS) for i in range(23)]
                  + [ev(f"z{i}", TS + 1 + i) for i in range(4)])
        ledger.append([(e, COST) for e in reversed(events)])
        got = [s.event.id for s in ledger.events_since(TS - 100, batch=5)]
        assert got == sorted(got, key=lambda i: (next(e.ts for e in events if e.id == i), i))
        assert len(got) == len(set(got)) == 30
        assert [s.event.id for s in ledger.events_since(TS, batch=5)] == [f"m{i:02d}" for i in range(23)] + [
            f"z{i}" for i in range(4)]
        assert [s.event.id for s in ledger.events_since(TS, until=TS + 1, batch=4)] == [f"m{i:02d}" for i in range(23)]
        assert list(ledger.events_since(TS, batch=23))[-1].event.id == "z3"  # a page that ends exactly on the run


# -- schema versions --------------------------------------------------------------------------------

def test_a_new_ledger_is_created_at_the_latest_version(tmp_path: Path) -> None:
    path = tmp_path / "new" / "tokentop.db"
    ledger = Ledger(path)
    assert ledger.upgrade is None and ledger.get_meta("schema_version") == str(SCHEMA_VERSION)
    cols = ledger.call(columns)
    ledger.close()
    assert cols["revision"] == ("INTEGER", 1, 0)
    assert backups(path) == []
    with Ledger(path) as again:  # and opened again: nothing to do
        assert again.upgrade is None


def test_the_0_1_0_ledger_upgrades_in_place_and_keeps_every_total(old_ledger: Path) -> None:
    original = digest(old_ledger)
    ledger = Ledger(old_ledger)
    try:
        up = ledger.upgrade
        assert up is not None and (up.from_version, up.to_version) == (1, SCHEMA_VERSION)
        assert ledger.get_meta("schema_version") == str(SCHEMA_VERSION)
        assert ledger.call(lambda c: c.execute("SELECT COUNT(*), SUM(revision) FROM events").fetchone()) == (985, 0)
        for by, expected in EXPECTED["reports"].items():
            assert report(ledger, days=EXPECTED["days"], by=by, utc=True, now=EXPECTED["now"]) == expected, by
        # other modules' tables are untouched
        counts = {t: ledger.call(lambda c, t=t: c.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0])
                  for t in ("source_cursors", "control_audit", "billed_usage", "billed_cost", "billed_buckets")}
        assert counts == {"source_cursors": 41, "control_audit": 1, "billed_usage": 1, "billed_cost": 1,
                          "billed_buckets": 2}
        # the NATS outbox: its queued events read back whole, and its trigger still fires
        queued = outbox.read(ledger, 10)
        assert [p.event_id for p in queued] == ["team-0", "team-1", "team-2"]
        assert queued[0].event is not None and queued[0].event.branch == "main" and queued[0].event.pid == 777
        assert ledger.append([(ev("after-upgrade"), COST), (ev("team-1"), COST)]) == [True, False]
        assert [p.event_id for p in outbox.read(ledger, 10)][-1] == "after-upgrade"
        assert outbox.count(ledger) == 4
    finally:
        ledger.close()
    # the file as it was, beside it: one consistent file, still version 1
    (backup,) = backups(old_ledger)
    assert backup.name.startswith("tokentop.db.v1-backup-")
    with sqlite3.connect(backup) as conn:
        assert conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone() == ("1",)
        assert "revision" not in columns(conn)
        assert conn.execute("SELECT COUNT(*), SUM(cost_pusd) FROM events").fetchone() == (985, 31_298_828_975_000)
    assert digest(OLD) == original  # (the committed fixture itself is never opened for writing)
    with Ledger(old_ledger) as again:
        assert again.upgrade is None
    assert len(backups(old_ledger)) == 1


def test_report_command_on_the_upgraded_ledger(old_ledger: Path) -> None:
    """The real command, as a user runs it after installing the new release."""
    env = {**os.environ, "TOKENTOP_DATA_DIR": str(old_ledger.parent)}
    out = subprocess.run([sys.executable, "-m", "tokentop", "report", "--json", "--days", "36500", "--utc"],
                         capture_output=True, text=True, env=env, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "upgraded the ledger" in out.stderr and "v1-backup-" in out.stderr
    got = json.loads(out.stdout)
    assert got["totals"] == EXPECTED["reports"]["day"]["totals"]
    assert got["by_day"] == EXPECTED["reports"]["day"]["by_day"]
    assert got["totals"]["requests"] == 985 and got["totals"]["usd"] == 31.298829


def test_an_upgraded_ledger_has_the_schema_of_a_new_one(old_ledger: Path, tmp_path: Path) -> None:
    with Ledger(old_ledger) as old, Ledger(tmp_path / "fresh.db") as fresh:
        upgraded_cols, new_cols = old.call(columns), fresh.call(columns)
        index = "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'events' ORDER BY name"
        assert old.call(lambda c: c.execute(index).fetchall()) == fresh.call(lambda c: c.execute(index).fetchall())
    assert upgraded_cols == new_cols  # a field or column added without its migration step fails here


def test_a_wal_ledger_is_backed_up_with_what_is_only_in_its_wal(old_ledger: Path) -> None:
    writer = sqlite3.connect(old_ledger, isolation_level=None)
    writer.execute("PRAGMA wal_autocheckpoint=0")
    writer.execute("INSERT INTO events (id, ts, agent, cost_kind, received_at) VALUES ('only-in-wal', ?, 'x', "
                   "'unpriced', ?)", (TS, TS))
    assert Path(f"{old_ledger}-wal").stat().st_size > 0
    try:
        with Ledger(old_ledger) as ledger:  # 0.1.0 still has the file open: its WAL is not checkpointed
            assert ledger.count() == 986
    finally:
        writer.close()
    (backup,) = backups(old_ledger)
    with sqlite3.connect(backup) as conn:
        assert conn.execute("SELECT COUNT(*) FROM events WHERE id = 'only-in-wal'").fetchone() == (1,)
    assert not Path(f"{backup}-wal").exists()


def test_the_backup_is_as_private_as_the_ledger_and_never_overwritten(old_ledger: Path) -> None:
    os.chmod(old_ledger, 0o600)
    first = ledger_mod._backup(str(old_ledger), 1, now=TS)
    second = ledger_mod._backup(str(old_ledger), 1, now=TS)
    assert first is not None and second == f"{first}-2"
    assert all(os.stat(p).st_mode & 0o777 == 0o600 for p in (first, second))


def test_a_ledger_from_a_newer_tokentop_is_refused_untouched(old_ledger: Path) -> None:
    newer = SCHEMA_VERSION + 1
    with sqlite3.connect(old_ledger) as conn:
        conn.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", (str(newer),))
    conn.close()
    before = digest(old_ledger)
    with pytest.raises(LedgerError) as info:
        Ledger(old_ledger)
    message = str(info.value)
    assert f"ledger schema version {newer}" in message and f"reads versions up to {SCHEMA_VERSION}" in message
    assert "newer tokentop" in message and "upgrade tokentop" in message and str(old_ledger) in message
    assert digest(old_ledger) == before and backups(old_ledger) == []


def test_an_unreadable_schema_version_is_an_error_not_a_guess(old_ledger: Path) -> None:
    with sqlite3.connect(old_ledger) as conn:
        conn.execute("UPDATE meta SET value = 'two' WHERE key = 'schema_version'")
    conn.close()
    with pytest.raises(LedgerError, match="unreadable schema_version 'two'"):
        Ledger(old_ledger)


def test_a_failed_step_leaves_the_ledger_as_it_was(old_ledger: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def half_done(conn: sqlite3.Connection) -> None:
        conn.execute("ALTER TABLE events ADD COLUMN revision INTEGER NOT NULL DEFAULT 0")
        conn.execute("UPDATE events SET agent = 'clobbered'")
        conn.execute("SELECT * FROM no_such_table")

    monkeypatch.setattr(ledger_mod, "MIGRATIONS", (Migration(2, "a step that fails", half_done),))
    with pytest.raises(LedgerError) as info:
        Ledger(old_ledger)
    (backup,) = backups(old_ledger)
    assert "a step that fails" in str(info.value) and "was not changed" in str(info.value)
    assert str(backup) in str(info.value)
    with sqlite3.connect(old_ledger) as conn:
        assert "revision" not in columns(conn)
        assert conn.execute("SELECT COUNT(*) FROM events WHERE agent = 'clobbered'").fetchone() == (0,)
        assert conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone() == ("1",)
    conn.close()
    monkeypatch.undo()
    with Ledger(old_ledger) as ledger:  # the real steps still apply afterwards
        assert ledger.upgrade is not None and ledger.count() == 985


def test_two_openers_of_an_old_ledger_at_once_upgrade_it_once(old_ledger: Path) -> None:
    start = threading.Barrier(2)
    opened: list[Ledger] = []
    errors: list[BaseException] = []

    def open_it() -> None:
        start.wait()
        try:
            opened.append(Ledger(old_ledger))
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=open_it) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not errors
    assert sorted(led.upgrade is None for led in opened) == [False, True]
    for led in opened:
        assert led.get_meta("schema_version") == str(SCHEMA_VERSION)
        led.close()
    assert len(backups(old_ledger)) == 1
