from __future__ import annotations

from pathlib import Path

import pytest

from tokentop import config as config_mod
from tokentop.config import ConfigError


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "config.toml"
    p.write_text(text)
    return p


def test_missing_file_means_defaults(tmp_path: Path) -> None:
    cfg = config_mod.load()
    assert cfg.feed.listen == "127.0.0.1:7411"
    assert cfg.feed_url == "http://127.0.0.1:7411"
    assert cfg.ledger_path == tmp_path / "data" / "tokentop.db"


def test_unknown_key_names_file_line_and_suggestion(tmp_path: Path) -> None:
    p = write(tmp_path, "[feed]\nlisten = '127.0.0.1:9000'\n\n[ui]\nthem = 'x'\n")
    with pytest.raises(ConfigError) as info:
        config_mod.load(p)
    assert f"{p}:5: unknown key ui.them (did you mean 'theme'?)" in str(info.value)


def test_every_problem_reported_at_once(tmp_path: Path) -> None:
    p = write(tmp_path, "[feeed]\nx=1\n[ui]\nrefresh_s = -1\nview = 'cats'\n")
    msg = str(pytest.raises(ConfigError, config_mod.load, p).value)
    assert "unknown section [feeed] (did you mean 'feed'?)" in msg
    assert "ui.refresh_s must be greater than 0" in msg
    assert "ui.view must be one of" in msg


def test_wrong_types_and_bad_toml(tmp_path: Path) -> None:
    p = write(tmp_path, "[feed]\nmax_body_bytes = 'big'\n")
    assert "feed.max_body_bytes must be a int, got str 'big'" in str(pytest.raises(ConfigError, config_mod.load, p).value)
    p = write(tmp_path, "[feed\n")
    assert "not valid TOML" in str(pytest.raises(ConfigError, config_mod.load, p).value)


def test_pricing_overrides(tmp_path: Path) -> None:
    p = write(tmp_path, '[pricing."my-model"]\ninput = 1.5\noutput = 3\n[pricing."bad"]\ninput = 1\noutpt = 2\n')
    msg = str(pytest.raises(ConfigError, config_mod.load, p).value)
    assert "unknown key pricing.bad.outpt (did you mean 'output'?)" in msg
    assert "needs 'output'" in msg
    p = write(tmp_path, '[pricing."my-model"]\ninput = 1.5\noutput = 3\n')
    overrides = config_mod.load(p).price_overrides()
    assert str(overrides["my-model"].input) == "1.5"


def test_save_choices_keeps_other_settings(tmp_path: Path) -> None:
    p = write(tmp_path, "[feed]\nlisten = '127.0.0.1:9000'\n[ui]\nrefresh_s = 2.0\n")
    config_mod.save_choices(p, {"ui": {"theme": "nord", "sort": "spend"}})
    cfg = config_mod.load(p)
    assert (cfg.feed.listen, cfg.ui.refresh_s, cfg.ui.theme, cfg.ui.sort) == ("127.0.0.1:9000", 2.0, "nord", "spend")


def test_env_overrides(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    p = write(tmp_path, "[ui]\ntheme = 'x'\n")
    monkeypatch.setenv("TOKENTOP_CONFIG", str(p))
    monkeypatch.setenv("TOKENTOP_FEED", "unix:/tmp/f.sock")
    cfg = config_mod.load()
    assert cfg.ui.theme == "x" and cfg.feed_url == "unix:/tmp/f.sock"


def test_default_file_text_is_valid_toml_and_loads(tmp_path: Path) -> None:
    p = write(tmp_path, config_mod.default_file_text())
    assert config_mod.load(p).feed.listen == "127.0.0.1:7411"


def test_default_file_text_shows_a_sub_table_under_its_section(tmp_path: Path) -> None:
    # [proxy] upstreams is a table: uncommented as written, it must land in [proxy], not at the top
    text = config_mod.default_file_text()
    assert "# [proxy.upstreams]" in text and "# [upstreams]" not in text
    block = text[text.index("# [proxy.upstreams]"):].split("\n\n", 1)[0]
    raw = "[proxy.upstreams]\n" + "\n".join(line[2:] for line in block.splitlines()[1:])
    cfg = config_mod.load(write(tmp_path, raw))
    assert cfg.proxy.upstreams["anthropic"] == "https://api.anthropic.com"
