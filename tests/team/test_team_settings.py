"""[nats] config and subject naming."""

from __future__ import annotations

from pathlib import Path

import pytest

from tokentop import config as config_mod
from tokentop.core.team.settings import NatsSettings, events_subject, subject_token


def test_nats_section_is_validated_with_the_line_and_a_suggestion(tmp_path: Path) -> None:
    p = tmp_path / "c.toml"
    p.write_text('[nats]\nurl = "nats://10.0.0.5:4222"\nmax_age_day = 3\nreplicas = 9\n')
    with pytest.raises(config_mod.ConfigError) as err:
        config_mod.load(p)
    text = str(err.value)
    assert "c.toml:3: unknown key nats.max_age_day (did you mean 'max_age_days'?)" in text
    assert "c.toml:4: nats.replicas must be between 1 and 5" in text


def test_settings_from_config_and_credentials_from_files(tmp_path: Path) -> None:
    token = tmp_path / "token"
    token.write_text("s3cr3t-token\n")
    cfg = config_mod.from_mapping({"nats": {"url": "nats://u:pw@a:4222, nats://b:4222", "token_file": str(token)}})
    s = NatsSettings.from_config(cfg, url=None)
    opts = s.connect_options()
    assert opts["servers"] == ["nats://u:pw@a:4222", "nats://b:4222"] and opts["token"] == "s3cr3t-token"
    assert "pw" not in s.redacted_url()
    missing = NatsSettings(url="nats://a:4222", creds_file=str(tmp_path / "nope.creds"))
    with pytest.raises(ValueError, match="nats.creds_file: no such file"):
        missing.connect_options()


def test_host_names_become_distinct_single_subject_tokens() -> None:
    assert events_subject("box-1") == "tokentop.events.box-1"
    a, b = subject_token("build.example.com"), subject_token("build_example_com")
    assert "." not in a and a != b and b == "build_example_com"
    assert "*" not in subject_token("a*b>c d") and " " not in subject_token("a*b>c d")


def test_what_a_host_accepted_decodes_at_the_fleet_whatever_the_fleets_clock() -> None:
    import time

    from tokentop.core.events import Event
    from tokentop.core.pricing import Cost
    from tokentop.core.team.wire import WireError, decode, encode

    now = time.time()
    e = Event(id="e1", ts=now + 3 * 3600, agent="a", host="h", model="m", input_tokens=5)
    got = decode(encode(e, Cost(123, "estimated"), now), now)  # the host's clock is 3 h ahead
    assert got.event == e and got.cost == Cost(123, "estimated")
    with pytest.raises(WireError, match="bad cost"):
        decode(b'{"v":1,"event":{"id":"x","ts":1e9},"cost_pusd":"1","cost_kind":"estimated","accepted_at":1}', now)
    with pytest.raises(WireError, match="bad event: input_tokens"):
        decode(b'{"v":1,"event":{"id":"x","ts":1e9,"input_tokens":-1},"cost_pusd":1,"cost_kind":"estimated","accepted_at":1}', now)


def test_a_down_nats_server_is_one_log_line_not_a_traceback_per_retry(capfd: pytest.CaptureFixture[str],
                                                                       caplog: pytest.LogCaptureFixture) -> None:
    """nats-py prints a traceback to stderr on every failed (re)connect unless given an error
    callback: with the server down that was two tracebacks a second in `tokentop serve --nats`."""
    import asyncio
    import logging
    import socket

    import nats

    from tokentop.core.team import settings as team_settings

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens here once closed
    team_settings._last_nats_error.clear()
    opts = NatsSettings(url=f"nats://127.0.0.1:{port}").connect_options()
    opts.update(max_reconnect_attempts=3, reconnect_time_wait=0.01, connect_timeout=0.5)

    async def main() -> None:
        with pytest.raises(Exception):
            await nats.connect(**opts)

    with caplog.at_level(logging.WARNING, logger="tokentop.team"):
        asyncio.run(main())
    err = capfd.readouterr().err
    assert "Traceback" not in err and "encountered error" not in err
    lines = [r.getMessage() for r in caplog.records if r.name == "tokentop.team"]
    assert len(lines) == 1 and "ConnectionRefusedError" in lines[0] and "once a minute" in lines[0]
