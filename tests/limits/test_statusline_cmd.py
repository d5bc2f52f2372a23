"""``tokentop statusline`` as Claude Code runs it (a real process, JSON on stdin), and
``tokentop setup claude-statusline`` writing Claude Code's settings.json (and undoing it)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tokentop.cli import main as cli_main
from tokentop.core.feed.runner import FeedRunner
from tokentop.core.limits.install import InstallError, install, undo
from tokentop.core.limits.windows import Observation

FIXTURES = Path(__file__).parent / "fixtures"
SCRIPT = Path(sys.executable).with_name("tokentop")


def command() -> list[str]:
    return [str(SCRIPT)] if SCRIPT.exists() else [sys.executable, "-m", "tokentop"]


def payload(used5: float = 62, used7: float = 41) -> bytes:
    data = json.loads((FIXTURES / "statusline_2.1.x_rate_limits_filled_COMPOSED.json").read_text())
    now = int(time.time())
    data["rate_limits"] = {"five_hour": {"used_percentage": used5, "resets_at": now + 72 * 60 + 30},
                           "seven_day": {"used_percentage": used7, "resets_at": now + 3 * 86400}}
    return json.dumps(data).encode()


def run(stdin: bytes, *args: str, feed: str = "http://127.0.0.1:1", **env: str) -> subprocess.CompletedProcess[bytes]:
    full_env = dict(os.environ, NO_COLOR="1", TOKENTOP_FEED=feed, **env)
    return subprocess.run([*command(), "statusline", *args], input=stdin, capture_output=True, env=full_env,
                          timeout=30)


def test_one_line_out_and_the_feed_got_it(feed: FeedRunner) -> None:
    done = run(payload(), feed=str(feed.address))
    assert done.returncode == 0 and done.stderr == b""
    lines = done.stdout.decode().splitlines()
    assert lines == ["Opus 4.7 (1M context) · 5h 62% ↻1h12m · 7d 41% · $3.42"]
    got = {w.window: w for w in feed.snapshot().limits}
    assert got["5h"].used_percent == 62.0 and got["5h"].source == "claude-statusline"
    assert got["5h"].account == "~/.claude"
    status = feed.parts.limits  # type: ignore[union-attr]
    assert status.statusline_received == 1 and status.statusline_refused == 0


def test_without_a_feed_it_prints_the_line_and_exits_0(tmp_path: Path) -> None:
    t0 = time.monotonic()
    done = run(payload(80, 95))
    elapsed = time.monotonic() - t0
    assert done.returncode == 0 and done.stderr == b""
    assert done.stdout.decode() == "Opus 4.7 (1M context) · 5h 80% ↻1h12m · 7d 95% · $3.42\n"
    assert elapsed < 10  # no waiting on a feed that is not there (bench/statusline_bench.py has the figures)


def test_no_quota_figures_from_claude_code_the_feeds_window_is_shown(feed: FeedRunner) -> None:
    now = time.time()
    feed.parts.limits.store.observe(Observation(  # type: ignore[union-attr]
        "claude-code", "~/.claude", "5h", 33.0, now + 3600 + 30, 300, "claude-oauth", now))
    done = run((FIXTURES / "statusline_2.1.141_rate_limits_null.json").read_bytes(), feed=str(feed.address))
    assert done.stdout.decode().splitlines() == ["Opus 4.7 · 5h 33% ↻1h00m"]
    # 1.0.88: no rate_limits, no feed: model and the session's dollars only
    old = run((FIXTURES / "statusline_1.0.88.json").read_bytes())
    assert old.stdout.decode() == "Sonnet 4 · $0.06\n"


def test_garbage_on_stdin_still_prints_a_line() -> None:
    for stdin in (b"", b"{not json", b"[1,2,3]", b"\xff\xfe"):
        done = run(stdin)
        assert done.returncode == 0 and done.stdout == b"tokentop\n"


def test_a_chained_statusline_gets_the_same_input_and_prints_after_ours(feed: FeedRunner) -> None:
    theirs = f"{sys.executable} -c 'import json,sys; d=json.load(sys.stdin); print(\"theirs:\", d[\"model\"][\"id\"])'"
    done = run(payload(), "--chain", theirs, feed=str(feed.address))
    assert done.returncode == 0
    assert done.stdout.decode().splitlines() == ["Opus 4.7 (1M context) · 5h 62% ↻1h12m · 7d 41% · $3.42",
                                                 "theirs: claude-opus-4-7[1m]"]
    failing = run(payload(), "--chain", "exit 3")
    assert failing.returncode == 0 and len(failing.stdout.decode().splitlines()) == 1


@pytest.mark.parametrize("name", sorted(p.name for p in FIXTURES.glob("*.json")))
def test_the_json_reader_without_re_reads_like_json(name: str) -> None:
    from tokentop.commands.statusline import loads

    text = (FIXTURES / name).read_text()
    assert loads(text) == json.loads(text)


@pytest.mark.parametrize("text", ['  {"a": [1, 2.5, -3e2, "\\u00e9", null, true]}  ', '{"x": NaN, "y": -Infinity}', "[]",
                                  '"s"', "{} {}", "{not json", "", "{\"a\": 1"])
def test_the_json_reader_agrees_with_json_on_edge_cases(text: str) -> None:
    from tokentop.commands.statusline import loads

    try:
        expected = json.loads(text)
    except ValueError:
        with pytest.raises(ValueError):
            loads(text)
        return
    got = loads(text)
    assert json.dumps(got) == json.dumps(expected)  # NaN == NaN through its JSON


def test_the_statusline_path_imports_neither_json_nor_re_nor_argparse(feed: FeedRunner) -> None:
    """The launcher settings.json runs: start-up plus almost nothing (docs/limits.md, "Speed")."""
    from tokentop.commands.statusline import LAUNCHER

    # what Python's start-up already loaded here (an editable install's import hook loads re) is
    # not the command's doing: only what the command itself adds counts
    probe = LAUNCHER.replace("import sys; ", "import sys; before = set(sys.modules); ").replace(
        "sys.exit(main(sys.argv[1:]))",
        "code = main(sys.argv[1:]); "
        "bad = sorted({'re', 'json', 'argparse', 'typing', 'tomllib', 'platformdirs', 'httpx', 'enum'} "
        "& (set(sys.modules) - before)); sys.stderr.write(repr(bad)); sys.exit(code)")
    done = subprocess.run([sys.executable, "-P", "-c", probe], input=payload(), capture_output=True, timeout=30,
                          env=dict(os.environ, NO_COLOR="1", TOKENTOP_FEED=str(feed.address)))
    assert done.returncode == 0 and done.stdout.decode().startswith("Opus 4.7")
    assert done.stderr.decode() == "[]"
    assert feed.parts.limits.statusline_received == 1  # type: ignore[union-attr]


def test_help_goes_through_the_parser(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        cli_main(["statusline", "--help"])
    assert exc.value.code == 0
    assert "--chain" in capsys.readouterr().out


# -- settings.json ---------------------------------------------------------------------------------------

EXISTING = b'''{
  "model": "opus",
  "permissions": {"allow": ["Bash(npm test)"]},
  "statusLine": {"type": "command", "command": "printf 'theirs\\\\n'; cat >/dev/null", "padding": 1}
}
'''


@pytest.fixture
def claude(tmp_path: Path) -> Path:
    d = tmp_path / "home" / ".claude"
    d.mkdir(parents=True, exist_ok=True)
    return d


def test_install_keeps_and_chains_an_existing_statusline_and_undo_restores_it_byte_for_byte(
        claude: Path, tmp_path: Path) -> None:
    settings = claude / "settings.json"
    settings.write_bytes(EXISTING)
    os.chmod(settings, 0o644)
    state = tmp_path / "state"
    done = install(claude, state, command="/opt/tokentop/bin/tokentop statusline", now=1_795_694_400.0)
    data = json.loads(settings.read_bytes())  # valid JSON
    assert list(data) == ["model", "permissions", "statusLine"]  # the rest kept, in order
    assert data["permissions"] == {"allow": ["Bash(npm test)"]}
    assert data["statusLine"] == {"type": "command", "padding": 1, "command":
                                  "/opt/tokentop/bin/tokentop statusline --chain 'printf '\"'\"'theirs\\n'\"'\"'; cat >/dev/null'"}
    assert done.chained == "printf 'theirs\\n'; cat >/dev/null"
    assert done.backup is not None and done.backup.read_bytes() == EXISTING
    assert done.backup.name == "settings.json.tokentop-backup-20261126T120000Z"
    assert settings.stat().st_mode & 0o777 == 0o644
    assert not list(claude.glob(".settings.json.*.tmp"))
    # twice: nothing more
    assert install(claude, state, command="/opt/tokentop/bin/tokentop statusline").already
    undone = undo(claude, state)
    assert undone.how == "exact" and settings.read_bytes() == EXISTING
    assert list(state.iterdir()) == []
    with pytest.raises(InstallError, match="nothing to undo"):
        undo(claude, state)


def test_the_installed_command_runs_with_a_feed_and_chains(claude: Path, tmp_path: Path, feed: FeedRunner) -> None:
    from tokentop.commands.setup import tokentop_command

    (claude / "settings.json").write_bytes(EXISTING)
    install(claude, tmp_path / "state", command=tokentop_command())
    cmd = json.loads((claude / "settings.json").read_bytes())["statusLine"]["command"]
    assert cmd.startswith(f"{sys.executable} -P -c 'import sys; from tokentop.commands.statusline import main;")
    done = subprocess.run(["/bin/sh", "-c", cmd], input=payload(), capture_output=True, timeout=30,
                          env=dict(os.environ, NO_COLOR="1", TOKENTOP_FEED=str(feed.address)))
    assert done.stdout.decode().splitlines() == ["Opus 4.7 (1M context) · 5h 62% ↻1h12m · 7d 41% · $3.42", "theirs"]
    assert {w.window for w in feed.snapshot().limits} == {"5h", "7d"}


def test_no_settings_file_yet(claude: Path, tmp_path: Path) -> None:
    done = install(claude, tmp_path / "state", command="tokentop statusline")
    settings = claude / "settings.json"
    assert json.loads(settings.read_bytes()) == {"statusLine": {"type": "command", "command": "tokentop statusline",
                                                                "padding": 0}}
    assert done.backup is None and done.chained is None
    assert settings.stat().st_mode & 0o777 == 0o600
    assert undo(claude, tmp_path / "state").how == "removed"
    assert not settings.exists()


def test_undo_after_the_user_edited_settings_puts_back_only_the_statusline(claude: Path, tmp_path: Path) -> None:
    settings = claude / "settings.json"
    settings.write_bytes(EXISTING)
    install(claude, tmp_path / "state", command="tokentop statusline")
    edited = json.loads(settings.read_bytes())
    edited["theme"] = "dark"
    settings.write_text(json.dumps(edited, indent=2))
    assert undo(claude, tmp_path / "state").how == "entry"
    back = json.loads(settings.read_bytes())
    assert back["theme"] == "dark"
    assert back["statusLine"] == json.loads(EXISTING)["statusLine"]


def test_an_invalid_settings_file_is_refused_untouched(claude: Path, tmp_path: Path) -> None:
    settings = claude / "settings.json"
    settings.write_bytes(b'{"model": "opus",}')
    with pytest.raises(InstallError, match="not valid JSON"):
        install(claude, tmp_path / "state", command="tokentop statusline")
    assert settings.read_bytes() == b'{"model": "opus",}'
    assert list(claude.iterdir()) == [settings]
    settings.write_bytes(b'{"statusLine": "echo hi"}')
    with pytest.raises(InstallError, match="cannot chain"):
        install(claude, tmp_path / "state", command="tokentop statusline")


def test_setup_command_honours_claude_config_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    other = tmp_path / "claude-work"
    other.mkdir()
    (other / "settings.json").write_bytes(EXISTING)
    monkeypatch.setenv("CLAUDE_CONFIG_DIR", str(other))
    assert cli_main(["setup", "claude-statusline", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["settings"] == str(other / "settings.json") and out["chained"]
    command = json.loads((other / "settings.json").read_bytes())["statusLine"]["command"]
    assert "tokentop.commands.statusline" in command and " --chain " in command
    assert cli_main(["setup", "claude-statusline", "--undo"]) == 0
    assert "exactly as it was" in capsys.readouterr().out
    assert (other / "settings.json").read_bytes() == EXISTING
