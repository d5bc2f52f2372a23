"""Kilo CLI's stores → events: Kilo CLI is an OpenCode fork that kept OpenCode's stores, so it is
read by ``opencode.py`` with Kilo's names (``~/.local/share/kilo/kilo.db``, ``kilo-<channel>.db``,
the legacy ``storage/`` tree). docs/sources.md ("OpenCode and Kilo")."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Final, Mapping

from tokentop.core.setting import Setting
from tokentop.core.sources.opencode import App, OpenCodeSource, app_roots
from tokentop.core.sources.protocol import SourceContext, StoreFormat

KILO: Final = App(agent="kilo", name="kilo", config_key="kilo_dir")


def _roots(values: Mapping[str, Any], env: Mapping[str, str]) -> tuple[Path, ...]:
    return app_roots(KILO, values, env)


def _source(ctx: SourceContext) -> OpenCodeSource:
    return OpenCodeSource(ctx, KILO)


FORMAT: Final = StoreFormat(
    name=KILO.agent,
    roots=_roots,
    source=_source,
    config_keys={KILO.config_key: Setting(str, "", "Kilo CLI data dir (holding kilo.db); default "
                                                   "$XDG_DATA_HOME/kilo or ~/.local/share/kilo")},
)
