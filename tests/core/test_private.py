"""tokentop's files are private: the ledger and its companions 0600, its directories 0700, and
existing files of tokentop's with wider modes are tightened (and said so)."""

from __future__ import annotations

import logging
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from tokentop import config as config_mod
from tokentop.core.events import Event
from tokentop.core.feed.auth import TokenError, load_or_create_token
from tokentop.core.ledger import Ledger
from tokentop.core.pricing import Cost

OLD_LEDGER = Path(__file__).parent / "fixtures" / "ledger-0.1.0.db"


def mode(path: Path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.fixture(autouse=True)
def usual_umask():
    old = os.umask(0o022)  # what most shells have: new files 0644, new dirs 0755 unless asked otherwise
    yield
    os.umask(old)


def write_some(ledger: Ledger) -> None:
    ledger.append([(Event(id=f"e{i}", ts=1_796_000_000.0 + i, agent="a", input_tokens=1), Cost(1, "estimated"))
                   for i in range(10)])


def test_a_new_ledger_and_its_companions_are_private(isolated_dirs: Path) -> None:
    path = config_mod.from_mapping({}).ledger_path
    assert not path.parent.exists()
    with Ledger(path) as ledger:
        write_some(ledger)
        assert Path(f"{path}-wal").exists() and Path(f"{path}-shm").exists()
        assert {p.name: mode(p) for p in path.parent.iterdir()} == {
            "tokentop.db": 0o600, "tokentop.db-wal": 0o600, "tokentop.db-shm": 0o600}
    assert mode(path.parent) == 0o700 and mode(path) == 0o600


def test_existing_wider_modes_of_tokentops_files_are_tightened(isolated_dirs: Path, caplog) -> None:
    path = config_mod.from_mapping({}).ledger_path
    with Ledger(path) as ledger:
        write_some(ledger)
    for p, m in ((path.parent, 0o755), (path, 0o644)):
        os.chmod(p, m)
    Path(f"{path}-wal").write_bytes(b"")
    os.chmod(f"{path}-wal", 0o666)
    with caplog.at_level(logging.WARNING, logger="tokentop"):
        with Ledger(path) as ledger:
            assert ledger.count() == 10
    assert mode(path.parent) == 0o700 and mode(path) == 0o600
    assert all(mode(p) == 0o600 for p in path.parent.iterdir())
    assert f"made {path} private: mode 644 -> 600" in caplog.text


def test_a_ledger_in_a_directory_that_is_not_tokentops_leaves_the_directory_alone(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir(mode=0o755)
    (shared / "mine.db").write_bytes(b"")
    os.chmod(shared / "mine.db", 0o644)
    with Ledger(shared / "mine.db") as ledger:
        write_some(ledger)
    assert mode(shared) == 0o755  # e.g. a ledger configured into ~: never chmod the user's dirs
    assert mode(shared / "mine.db") == 0o600
    with Ledger(tmp_path / "new" / "deeper" / "l.db"):
        pass
    assert mode(tmp_path / "new" / "deeper") == 0o700  # created by tokentop: private


def test_the_upgrade_backup_of_a_world_readable_ledger_is_private(isolated_dirs: Path) -> None:
    path = config_mod.from_mapping({}).ledger_path
    path.parent.mkdir(parents=True)
    shutil.copyfile(OLD_LEDGER, path)
    os.chmod(path, 0o644)
    with Ledger(path) as ledger:
        assert ledger.upgrade is not None and ledger.upgrade.backup is not None
        backup = Path(ledger.upgrade.backup)
    assert mode(backup) == 0o600 and mode(path) == 0o600


def test_state_dir_token_and_config_dir_are_private(isolated_dirs: Path) -> None:
    state = isolated_dirs / "state"
    state.mkdir(mode=0o755)
    token = load_or_create_token(state)
    assert token and mode(state) == 0o700 and mode(state / "token") == 0o600
    # a token others could read is refused, not quietly hidden again: it must be replaced
    os.chmod(state / "token", 0o644)
    with pytest.raises(TokenError, match="chmod 600"):
        load_or_create_token(state)
    cfg = isolated_dirs / "cfg"
    r = subprocess.run([sys.executable, "-m", "tokentop", "config", "init"], capture_output=True, text=True,
                       env=os.environ.copy())
    assert r.returncode == 0, r.stderr
    assert mode(cfg) == 0o700
    config_mod.save_choices(isolated_dirs / "other-cfg" / "config.toml", {"ui": {"theme": "tokentop"}})
    assert mode(isolated_dirs / "other-cfg") == 0o700


def test_tokentop_import_leaves_only_private_files(isolated_dirs: Path) -> None:
    from tests.sources.helpers import claude_line, write_lines

    home = Path(os.environ["HOME"])
    write_lines(home / ".claude" / "projects" / "-p" / "s.jsonl", [claude_line("m1", "r1"), claude_line("m2", "r2")])
    r = subprocess.run([sys.executable, "-m", "tokentop", "import"], capture_output=True, text=True,
                       env=os.environ.copy())
    assert r.returncode == 0 and "imported 2 new requests" in r.stderr, r.stderr
    data = isolated_dirs / "data"
    assert mode(data) == 0o700
    assert {p.name: mode(p) for p in data.iterdir()} == {n: 0o600 for n in (p.name for p in data.iterdir())}
    assert (data / "tokentop.db").exists()
