"""The ``[sources]`` config section: which agent stores a feed reads, and where (docs/sources.md).

The section holds the shared keys below plus each format's own root-override keys
(``config_keys``, e.g. ``claude_roots``); each format also reads its environment overrides
(e.g. ``CLAUDE_CONFIG_DIR``), which win over the file.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, Mapping, Sequence

from tokentop.core.setting import NUM, Setting, positive
from tokentop.core.sources.formats import FORMATS
from tokentop.core.sources.protocol import Format

if TYPE_CHECKING:
    from tokentop.config import Config


def sources_off() -> bool:
    """``TOKENTOP_NO_SOURCES`` is set: this process reads no agent stores (tests, demos)."""
    return bool(os.environ.get("TOKENTOP_NO_SOURCES"))


#: keys every ``[sources]`` section has; each format adds its own (``LogFormat.config_keys``)
COMMON_KEYS: Final = ("enabled", "backfill_days", "watch", "poll_interval_s")


def _check_formats(formats: Sequence[Format]) -> None:
    names = [f.name for f in formats]
    if len(set(names)) != len(names):
        raise ValueError(f"two formats share a name: {names}")
    keys = [k for f in formats for k in f.config_keys]
    if len(set(keys)) != len(keys) or set(keys) & set(COMMON_KEYS):
        raise ValueError(f"two formats declare the same [sources] key: {keys}")


def sections(formats: Sequence[Format]) -> dict[str, dict[str, Setting]]:
    """The ``[sources]`` section for these formats: the common keys and each format's own."""
    _check_formats(formats)
    names = tuple(f.name for f in formats)

    def source_names(v: Any) -> str | None:
        bad = [x for x in v if not isinstance(x, str) or x not in names]
        return None if not bad else f"unknown source(s) {bad!r}; known: {', '.join(names)}"

    return {
        "sources": {
            "enabled": Setting(list, list(names), f"log sources to read: {', '.join(names)}", source_names),
            "backfill_days": Setting(NUM, 30, "days of history a feed imports; a larger value later reads the older part too", positive),
            **{key: setting for fmt in formats for key, setting in fmt.config_keys.items()},
            "watch": Setting(bool, True, "use a file watcher (watchfiles); false = cheap polling only"),
            "poll_interval_s": Setting(NUM, 1.0, "seconds between polls of recently active files when not watching", positive),
        },
    }


#: every store tokentop can read, by its ``sources.enabled`` name
KNOWN_SOURCES: Final = tuple(f.name for f in FORMATS)
SECTIONS: Final = sections(FORMATS)


@dataclass
class SourceSettings:
    """The section, resolved: which formats are on and each one's roots.

    ``roots`` maps a format's name to its directories; a format missing from it has none (tests
    and benchmarks name theirs; :meth:`from_config` resolves every format's from config + env).
    """

    #: names of the formats to read
    enabled: tuple[str, ...] = KNOWN_SOURCES
    backfill_days: float = 30.0
    roots: Mapping[str, tuple[Path, ...]] = field(default_factory=dict)
    watch: bool = True
    poll_interval_s: float = 1.0
    #: the formats that exist (tests add their own)
    formats: tuple[Format, ...] = FORMATS

    def __post_init__(self) -> None:
        _check_formats(self.formats)

    @classmethod
    def from_config(cls, cfg: Config, env: Mapping[str, str] | None = None,
                    formats: tuple[Format, ...] = FORMATS) -> SourceSettings:
        s = cfg.section("sources")
        env = os.environ if env is None else env
        return cls(
            enabled=tuple(s.enabled),
            backfill_days=float(s.backfill_days),
            roots={f.name: f.roots({k: getattr(s, k) for k in f.config_keys}, env) for f in formats},
            watch=bool(s.watch),
            poll_interval_s=float(s.poll_interval_s),
            formats=formats,
        )

    def active(self) -> tuple[Format, ...]:
        """The enabled formats, in list order."""
        return tuple(f for f in self.formats if f.name in self.enabled)

    def roots_of(self, fmt: Format) -> tuple[Path, ...]:
        return tuple(self.roots.get(fmt.name, ()))
