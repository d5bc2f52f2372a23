"""Every command that talks to a feed takes ``--feed`` and ``--config`` after its name; ``tokentop log``
reads a feed's audit log over HTTP; the audit names an action as the user asked for it."""

from __future__ import annotations

import json
import subprocess
import sys

import httpx
import pytest

from tokentop.cli import build_parser
from tokentop.core.control.audit import AuditRecord, requested_action

URL = "http://127.0.0.1:7499"

#: command -> the other arguments it needs to parse
TALKS_TO_A_FEED = {
    "log": [], "check": [], "emit": [], "run": ["--", "true"],
    "pause": ["s1"], "resume": ["s1"], "kill": ["s1"], "proxy": [], "doctor": [], "statusline": [],
}
#: commands that read the config or the ledger only (or are a feed themselves): --config, no --feed
CONFIG_ONLY = {"serve": [], "report": [], "import": [], "demo": [], "config": ["path"], "setup": ["claude-statusline"]}


def subcommands() -> set[str]:
    import argparse

    parser = build_parser()
    for action in parser._subparsers._group_actions:  # noqa: SLF001 - argparse has no public listing
        if isinstance(action, argparse._SubParsersAction):
            return set(action.choices)
    return set()


def test_every_command_is_classified() -> None:
    """A new command must say whether it talks to a feed (then it takes --feed after its name)."""
    assert subcommands() == set(TALKS_TO_A_FEED) | set(CONFIG_ONLY)


@pytest.mark.parametrize("command", sorted(TALKS_TO_A_FEED))
def test_feed_and_config_parse_after_the_command(command: str) -> None:
    rest = TALKS_TO_A_FEED[command]
    parser = build_parser()
    args = parser.parse_args([command, "--feed", URL, "--config", "/tmp/x.toml", *rest])
    assert args.feed == URL and args.config == "/tmp/x.toml"
    args = parser.parse_args(["--feed", URL, "--config", "/tmp/y.toml", command, *rest])
    assert args.feed == URL and args.config == "/tmp/y.toml"  # before the command as well


@pytest.mark.parametrize("command", sorted(CONFIG_ONLY))
def test_config_only_commands_refuse_a_feed_they_would_ignore(command: str, capsys) -> None:  # noqa: ANN001
    rest = CONFIG_ONLY[command]
    parser = build_parser()
    args = parser.parse_args([command, "--config", "/tmp/x.toml", *rest])
    assert args.config == "/tmp/x.toml"
    with pytest.raises(SystemExit):
        parser.parse_args([command, *rest, "--feed", URL])
    assert "--feed" in capsys.readouterr().err


def test_requested_action_names_what_the_user_asked_for() -> None:
    assert requested_action("terminate", "TERM") == "kill (TERM)"
    assert requested_action("terminate", "INT") == "kill (INT)"
    assert requested_action("kill", "KILL") == "kill (KILL)"
    assert requested_action("kill", None) == "kill (KILL)"
    assert requested_action("terminate", None) == "kill (TERM)"
    assert requested_action("pause", "STOP") == "pause" and requested_action("resume", "CONT") == "resume"
    rec = AuditRecord(1.0, "s", "terminate", "ui", 42, "TERM", True, None, "sent")
    data = rec.to_json()
    assert data["action"] == "terminate" and data["requested"] == "kill (TERM)"  # a field added, none changed
    assert AuditRecord.from_json(data) == rec


def tokentop(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "tokentop", *args], capture_output=True, text=True, timeout=60,
                          stdin=subprocess.DEVNULL, env=env)


def test_log_with_feed_reads_that_feeds_audit_and_names_kills_as_asked(feed) -> None:  # noqa: ANN001
    headers = {"authorization": f"Bearer {feed.token}"}
    with httpx.Client(base_url=feed.address, headers=headers, timeout=10) as http:
        for action, body in (("kill", {"signal": "TERM"}), ("kill", {"signal": "KILL"}), ("pause", {})):
            r = http.post(f"/v1/sessions/ghost-1/{action}", json=body)
            assert r.status_code == 409  # no process: refused, and audited
    # the CLI reads the local token from the state dir (where this feed wrote it), as `kill --feed` does
    r = tokentop("log", "--feed", feed.address)
    assert r.returncode == 0, r.stderr
    lines = [line for line in r.stdout.splitlines() if "ghost-1" in line]
    assert len(lines) == 3
    assert "kill (TERM)" in lines[0] and "kill (KILL)" in lines[1] and "pause" in lines[2]
    assert all("REFUSED" in line for line in lines) and not any("terminate" in line for line in lines)
    r = tokentop("log", "--feed", feed.address, "--json", "--session", "ghost-1", "--limit", "2")
    assert r.returncode == 0, r.stderr
    recs = [json.loads(line) for line in r.stdout.splitlines()]
    assert [x["requested"] for x in recs] == ["kill (KILL)", "pause"]
    assert [x["action"] for x in recs] == ["kill", "pause"]


def test_log_with_feed_but_no_token_says_where_the_token_should_be(feed, tmp_path) -> None:  # noqa: ANN001
    import os

    env = dict(os.environ, TOKENTOP_STATE_DIR=str(tmp_path / "elsewhere"))  # not the feed's state dir
    r = tokentop("log", "--feed", feed.address, env=env)
    assert r.returncode == 2
    assert "no local token" in r.stderr and feed.address in r.stderr


def test_log_with_a_feed_that_does_not_answer_fails_clearly(feed) -> None:  # noqa: ANN001
    # a local token exists (this feed wrote it), but nothing answers at the address given
    r = tokentop("log", "--feed", "http://127.0.0.1:9")
    assert r.returncode == 2 and "127.0.0.1:9" in r.stderr
