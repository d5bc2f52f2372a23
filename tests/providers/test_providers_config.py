"""``[providers.<name>]`` in config.toml: validated with clear errors, defaults filled."""

from __future__ import annotations

import pytest

from tokentop import config as config_mod
from tokentop.config import ConfigError
from tokentop.core.providers.settings import provider_settings


def test_provider_tables_load_and_fill_defaults(tmp_path):
    path = tmp_path / "config.toml"
    path.write_text('[providers.openai]\nbase_url = "http://127.0.0.1:9/v1"\npoll_interval_s = 30\n'
                    'group_by = ["project_id"]\n[providers.anthropic]\nenabled = false\n')
    cfg = config_mod.load(path)
    s = provider_settings(cfg.providers, environ={})
    assert s["openai"].base_url == "http://127.0.0.1:9/v1" and s["openai"].poll_interval_s == 30
    assert s["openai"].group_by == ("project_id",) and s["openai"].backfill_days == 31
    assert s["anthropic"].enabled is False and s["anthropic"].base_url == "https://api.anthropic.com"


def test_bad_provider_settings_are_named(tmp_path):
    path = tmp_path / "config.toml"
    path.write_text('[providers.openai]\npoll_interval = 30\n')
    with pytest.raises(ConfigError, match=r"providers\.openai\.poll_interval.*did you mean 'poll_interval_s'"):
        config_mod.load(path)
    path.write_text('[providers.openai]\nbase_url = "api.openai.com"\n')
    with pytest.raises(ConfigError, match="must start with http"):
        config_mod.load(path)
    with pytest.raises(ConfigError, match=r"unknown provider \[providers.opnai\].*did you mean 'openai'"):
        provider_settings({"opnai": {}}, environ={})
    with pytest.raises(ConfigError, match="not groupable for anthropic"):
        provider_settings({"anthropic": {"group_by": ["project_id"]}}, environ={})
