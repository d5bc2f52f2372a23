"""Configuration: paths (XDG via platformdirs), the TOML file, validation with clear errors, saving.

The file is ``config.toml`` in the user config dir (``tokentop config path`` prints it);
``--config PATH`` or ``TOKENTOP_CONFIG`` point elsewhere. Every key is declared in :data:`SCHEMA`
(flat sections) or :data:`NAMED_TABLES`, by the module that reads it, with its type and default; an unknown key is an error naming the file, the line and the closest
known key ("did you mean"). Choices made in the app are written back with :func:`save_choices`,
which keeps every other setting the user wrote.
"""

from __future__ import annotations

import difflib
import os
import re
import tomllib
from decimal import Decimal
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Final, Mapping

import platformdirs
import tomli_w

from tokentop.core.control import settings as control_settings
from tokentop.core.limits import settings as limits_settings
from tokentop.core.providers import settings as providers_settings
from tokentop.core.proxy import settings as proxy_settings
from tokentop.core.setting import NUM, ConfigError, Setting, between, non_negative, one_of, positive, string_list
from tokentop.core.sources import settings as sources_settings
from tokentop.core.team import settings as team_settings

APP: Final = "tokentop"
DEFAULT_PORT: Final = 7411
DEFAULT_LISTEN: Final = f"127.0.0.1:{DEFAULT_PORT}"


# -- paths ------------------------------------------------------------------------------------------

def config_dir() -> Path:
    return Path(os.environ.get("TOKENTOP_CONFIG_DIR") or platformdirs.user_config_dir(APP))


def data_dir() -> Path:
    return Path(os.environ.get("TOKENTOP_DATA_DIR") or platformdirs.user_data_dir(APP))


def state_dir() -> Path:
    return Path(os.environ.get("TOKENTOP_STATE_DIR") or platformdirs.user_state_dir(APP))


def config_path(explicit: str | os.PathLike[str] | None = None) -> Path:
    if explicit:
        return Path(explicit)
    env = os.environ.get("TOKENTOP_CONFIG")
    if env:
        return Path(env)
    return config_dir() / "config.toml"


# -- schema -----------------------------------------------------------------------------------------
# Sections of the feed, the aggregator, the ledger and the live view are declared here; every other
# owner declares its own as data (``SECTIONS`` / ``NAMED_TABLES``) and is listed in SCHEMA below.

CORE_SECTIONS: Final[dict[str, dict[str, Setting]]] = {
    "feed": {
        "listen": Setting(str, DEFAULT_LISTEN, "where `tokentop serve` listens: HOST:PORT or unix:/path"),
        "url": Setting(str, "", "feed the viewer connects to (default: http://<listen>)"),
        "embedded": Setting(bool, True, "run a feed in-process when none answers at `url`"),
        "max_body_bytes": Setting(int, 1024 * 1024, "largest accepted request body", positive),
        "ingest_requires_token": Setting(bool, False, "POST /v1/events and WS /v1/publish need the local token"),
        "max_future_s": Setting(NUM, 300, "events stamped further in the future are rejected", non_negative),
        "stream_interval_s": Setting(NUM, 1.0, "seconds between snapshots on WS /v1/stream", positive),
        "max_stream_rows": Setting(int, 2000, "rows per view in streamed/served snapshots", positive),
        "host_name": Setting(str, "", "this host's name in events (default: the machine's hostname)"),
        "allowed_hosts": Setting(list, [], "Host names answered besides localhost and IP addresses (DNS-rebinding guard; \"*.example.com\", \"*\": any)", string_list),
    },
    "aggregate": {
        "rate_window_s": Setting(int, 10, "sliding window for requests/s and tokens/s", between(1, 120, "seconds")),
        "burn_window_s": Setting(int, 60, "window for $/h", between(1, 120, "seconds")),
        "idle_after_s": Setting(NUM, 120, "a session is idle after this many quiet seconds", positive),
        "session_ttl_s": Setting(NUM, 1800, "quiet session rows are dropped from memory after this", positive),
    },
    "ledger": {
        "path": Setting(str, "", "SQLite file (default: tokentop.db in the user data dir)"),
        "retention_days": Setting(NUM, 0, "days of events the ledger keeps (0: everything, the default); a feed deletes older ones at start", non_negative),
    },
    "ui": {
        "theme": Setting(str, "tokentop", "theme name (shipped, user or Textual built-in)"),
        "refresh_s": Setting(NUM, 1.0, "seconds between redraws", positive),
        "view": Setting(str, "agents", "view at start", one_of("agents", "sessions", "models", "projects", "providers", "hosts")),
        "sort": Setting(str, "burn", "sort at start", one_of("burn", "tokens", "requests", "spend", "name", "window")),
        "sort_reverse": Setting(bool, False, "invert the sort"),
        "readonly": Setting(bool, False, "hide kill/pause actions"),
        "daily_budget_usd": Setting(NUM, 0, "daily budget shown in the header meter (0: none)", non_negative),
        "key_line": Setting(bool, True, "show the main keys on the bottom line (hidden anyway below 16 rows)"),
    },
}

#: Every flat section a config file may hold, by owner.
SCHEMA: Final[dict[str, Mapping[str, Setting]]] = {
    **CORE_SECTIONS,
    **sources_settings.SECTIONS,
    **control_settings.SECTIONS,
    **team_settings.SECTIONS,
    **proxy_settings.SECTIONS,
    **limits_settings.SECTIONS,
}

#: Flat sections that also hold tables the user names, each with a fixed set of settings: a
#: ``[limits.claude-5h]`` rule sits beside ``[limits]``'s own keys (``cfg.limits`` then has both; an
#: entry is a dict attribute under its name).
SECTION_ENTRIES: Final[dict[str, Mapping[str, Setting]]] = {
    **limits_settings.ENTRIES,
}

#: Tables whose keys are names chosen by the user, each holding a fixed set of settings.
NAMED_TABLES: Final[dict[str, Mapping[str, Setting]]] = {
    "pricing": {
        "input": Setting(NUM, None, "USD per million input tokens", non_negative),
        "output": Setting(NUM, None, "USD per million output tokens", non_negative),
        "cache_read": Setting(NUM, None, "USD per million cache-read tokens", non_negative),
        "cache_write": Setting(NUM, None, "USD per million cache-write tokens (5 min)", non_negative),
        "cache_write_1h": Setting(NUM, None, "USD per million 1-hour cache-write tokens", non_negative),
    },
    **control_settings.NAMED_TABLES,
    **providers_settings.NAMED_TABLES,
}
#: keys every entry of a named table must set
_REQUIRED_NAMED: Final = {"pricing": ("input", "output")}


# -- loading ----------------------------------------------------------------------------------------

class Config:
    """Validated settings. Sections are attributes: ``cfg.feed.listen``; named tables are dicts."""

    def __init__(self, data: Mapping[str, Any], path: Path | None, raw: Mapping[str, Any] | None = None) -> None:
        self.path = path
        self.raw = dict(raw or {})
        self._data = data
        for section, values in data.items():
            if section in NAMED_TABLES:
                setattr(self, section, values)
            else:
                setattr(self, section, SimpleNamespace(**values))

    def as_dict(self) -> dict[str, Any]:
        return {k: dict(v) for k, v in self._data.items()}

    def section(self, name: str) -> SimpleNamespace:
        return getattr(self, name)

    # convenient derived values
    @property
    def ledger_path(self) -> Path:
        p = self._data["ledger"]["path"]
        return Path(p).expanduser() if p else data_dir() / "tokentop.db"

    @property
    def feed_url(self) -> str:
        url = os.environ.get("TOKENTOP_FEED") or self._data["feed"]["url"]
        if url:
            return url
        listen = self._data["feed"]["listen"]
        return listen if listen.startswith("unix:") else f"http://{listen}"

    @property
    def host_name(self) -> str:
        import socket

        return self._data["feed"]["host_name"] or socket.gethostname()

    def price_overrides(self) -> dict[str, Any]:
        from tokentop.core.pricing import PriceOverride

        out = {}
        for model, rates in self._data.get("pricing", {}).items():
            out[model] = PriceOverride(**{k: Decimal(str(v)) for k, v in rates.items() if v is not None})
        return out


def defaults() -> dict[str, Any]:
    data: dict[str, Any] = {s: {k: v.default for k, v in keys.items()} for s, keys in SCHEMA.items()}
    for name in NAMED_TABLES:
        data[name] = {}
    return data


def _line_of(text: str, section: str | None, key: str) -> int | None:
    """Best-effort line number of ``key`` (inside ``[section]`` when given)."""
    lines = text.splitlines()
    in_section = section is None
    header = re.compile(r"^\s*\[+\s*([^\]]+?)\s*\]+\s*(#.*)?$")
    key_re = re.compile(r'^\s*["\']?' + re.escape(key) + r'["\']?\s*=')
    for i, line in enumerate(lines, 1):
        m = header.match(line)
        if m:
            name = m.group(1).replace('"', "").replace("'", "")
            if section is not None and (name == section or name.startswith(section + ".")):
                in_section = True
                if key_re.match(line) is None and name.split(".")[-1] == key:
                    return i
            else:
                in_section = section is None
            continue
        if in_section and key_re.match(line):
            return i
    return None


def _where(path: Path | None, text: str, section: str | None, key: str) -> str:
    where = str(path) if path else "config"
    line = _line_of(text, section, key)
    return f"{where}:{line}" if line else where


def _suggest(word: str, choices: list[str]) -> str:
    close = difflib.get_close_matches(word, choices, n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else f" (known: {', '.join(sorted(choices))})"


def _check_value(setting: Setting, value: Any) -> str | None:
    kind = setting.kind
    ok = isinstance(value, kind) and not (isinstance(value, bool) and kind is not bool and bool not in (kind if isinstance(kind, tuple) else (kind,)))
    if not ok:
        names = "/".join(k.__name__ for k in (kind if isinstance(kind, tuple) else (kind,)))
        names = names.replace("int/float", "number")
        return f"must be a {names}, got {type(value).__name__} {value!r}"
    if setting.check is not None:
        return setting.check(value)
    return None


def validate(raw: Mapping[str, Any], path: Path | None = None, text: str = "") -> dict[str, Any]:
    """Merge ``raw`` over the defaults; raise :class:`ConfigError` listing every problem."""
    data = defaults()
    problems: list[str] = []
    for section, values in raw.items():
        if section in NAMED_TABLES:
            if not isinstance(values, dict):
                problems.append(f"{_where(path, text, None, section)}: [{section}] must be a table")
                continue
            spec = NAMED_TABLES[section]
            for name, table in values.items():
                if not isinstance(table, dict):
                    problems.append(f"{_where(path, text, section, name)}: [{section}.{name!r}] must be a table")
                    continue
                entry: dict[str, Any] = {}
                for key, value in table.items():
                    if key not in spec:
                        problems.append(f"{_where(path, text, section, key)}: unknown key {section}.{name}.{key}{_suggest(key, list(spec))}")
                        continue
                    err = _check_value(spec[key], value)
                    if err:
                        problems.append(f"{_where(path, text, section, key)}: {section}.{name}.{key} {err}")
                    else:
                        entry[key] = value
                for req in _REQUIRED_NAMED.get(section, ()):
                    if req not in table:
                        problems.append(f"{_where(path, text, section, name)}: [{section}.{name!r}] needs {req!r}")
                data[section][name] = entry
            continue
        if section not in SCHEMA:
            problems.append(f"{_where(path, text, None, section)}: unknown section [{section}]{_suggest(section, list(SCHEMA) + list(NAMED_TABLES))}")
            continue
        if not isinstance(values, dict):
            problems.append(f"{_where(path, text, None, section)}: [{section}] must be a table")
            continue
        spec = SCHEMA[section]
        for key, value in values.items():
            if key not in spec and section in SECTION_ENTRIES and isinstance(value, dict):
                data[section][key] = _entry(SECTION_ENTRIES[section], section, key, value, problems, path, text)
                continue
            if key not in spec:
                problems.append(f"{_where(path, text, section, key)}: unknown key {section}.{key}{_suggest(key, list(spec))}")
                continue
            err = _check_value(spec[key], value)
            if err:
                problems.append(f"{_where(path, text, section, key)}: {section}.{key} {err}")
            else:
                data[section][key] = value
    if problems:
        raise ConfigError("invalid configuration:\n  " + "\n  ".join(problems))
    return data


def _entry(spec: Mapping[str, Setting], section: str, name: str, table: Mapping[str, Any], problems: list[str],
           path: Path | None, text: str) -> dict[str, Any]:
    """One ``[section.NAME]`` entry of a flat section, checked against ``spec`` (only the keys given
    are kept: the reader applies the defaults, and ``config show`` prints what the user wrote)."""
    entry: dict[str, Any] = {}
    for key, value in table.items():
        if key not in spec:
            problems.append(f"{_where(path, text, section, key)}: unknown key {section}.{name}.{key}{_suggest(key, list(spec))}")
            continue
        err = _check_value(spec[key], value)
        if err:
            problems.append(f"{_where(path, text, section, key)}: {section}.{name}.{key} {err}")
        else:
            entry[key] = value
    return entry


def load(explicit: str | os.PathLike[str] | None = None) -> Config:
    """Load and validate the config file (a missing file means all defaults)."""
    path = config_path(explicit)
    text = ""
    raw: dict[str, Any] = {}
    if path.exists():
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"{path}: cannot read: {exc.strerror or exc}") from exc
        try:
            raw = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path}: not valid TOML: {exc}") from exc
    elif explicit is not None:
        raise ConfigError(f"{path}: no such config file")
    return Config(validate(raw, path, text), path, raw)


def from_mapping(raw: Mapping[str, Any]) -> Config:
    """A validated config from a dict (tests, embedding)."""
    return Config(validate(raw), None, raw)


def save_choices(path: Path, choices: Mapping[str, Mapping[str, Any]]) -> None:
    """Write ``choices`` (section -> key -> value) into the file, keeping every other setting."""
    raw: dict[str, Any] = {}
    if path.exists():
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    for section, values in choices.items():
        raw.setdefault(section, {}).update(values)
    validate(raw, path)
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)  # created private (core/private.py)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(tomli_w.dumps(raw), encoding="utf-8")
    os.replace(tmp, path)


def default_file_text() -> str:
    """A commented config with every setting at its default (``tokentop config init``)."""
    out = ["# tokentop configuration. Every key is optional; shown with its default.", ""]
    for section, keys in SCHEMA.items():
        out.append(f"[{section}]")
        tables = []
        for key, setting in keys.items():
            if isinstance(setting.default, dict):  # a sub-table: after the plain keys, under its own header
                tables.append((key, setting))
                continue
            value = tomli_w.dumps({key: setting.default}).strip() if setting.default is not None else f"{key} = "
            out.append(f"# {setting.doc}")
            out.extend(f"# {line}" for line in value.splitlines())  # arrays dump over several lines
        for key, setting in tables:
            out.append(f"# {setting.doc}")
            out.append(f"# [{section}.{key}]")
            out.extend(f"# {line}" for line in tomli_w.dumps(setting.default).strip().splitlines())
        if section in SECTION_ENTRIES:
            out.append(f"# Rules you name, e.g. [{section}.my-rule]:")
            out.append(f"# [{section}.my-rule]")
            for key, setting in SECTION_ENTRIES[section].items():
                value = tomli_w.dumps({key: setting.default}).strip() if setting.default is not None else f"{key} = "
                out.append(f"# {value}    # {setting.doc}")
        out.append("")
    out.append('# Per-model price overrides, USD per million tokens; they win over genai-prices.')
    out.append('# [pricing."my-finetune"]')
    out.append("# input = 3.0")
    out.append("# output = 15.0")
    out.append("# cache_read = 0.3")
    out.append("# cache_write = 3.75")
    return "\n".join(out) + "\n"
