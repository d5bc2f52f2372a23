"""Configuration: paths (XDG via platformdirs), the TOML file, validation with clear errors, saving.

The file is ``config.toml`` in the user config dir (``tokentop config path`` prints it);
``--config PATH`` or ``TOKENTOP_CONFIG`` point elsewhere. Every key is declared in :data:`SCHEMA`
with its type and default; an unknown key is an error naming the file, the line and the closest
known key ("did you mean"). Choices made in the app are written back with :func:`save_choices`,
which keeps every other setting the user wrote.
"""

from __future__ import annotations

import difflib
import os
import re
import tomllib
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Callable, Final, Mapping

import platformdirs
import tomli_w

APP: Final = "tokentop"
DEFAULT_PORT: Final = 7411
DEFAULT_LISTEN: Final = f"127.0.0.1:{DEFAULT_PORT}"


class ConfigError(ValueError):
    """The configuration is invalid. The message names the file, line and key."""


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

@dataclass(frozen=True)
class Setting:
    kind: type | tuple[type, ...]
    default: Any
    doc: str
    check: Callable[[Any], str | None] | None = None


def _positive(v: Any) -> str | None:
    return None if v > 0 else "must be greater than 0"


def _non_negative(v: Any) -> str | None:
    return None if v >= 0 else "must be 0 or more"


def _one_of(*choices: str) -> Callable[[Any], str | None]:
    def check(v: Any) -> str | None:
        return None if v in choices else f"must be one of {', '.join(repr(c) for c in choices)}"

    return check


def _window(v: Any) -> str | None:
    return None if 1 <= v <= 120 else "must be between 1 and 120 seconds"


NUM = (int, float)

SCHEMA: dict[str, dict[str, Setting]] = {
    "feed": {
        "listen": Setting(str, DEFAULT_LISTEN, "where `tokentop serve` listens: HOST:PORT or unix:/path"),
        "url": Setting(str, "", "feed the viewer connects to (default: http://<listen>)"),
        "embedded": Setting(bool, True, "run a feed in-process when none answers at `url`"),
        "max_body_bytes": Setting(int, 1024 * 1024, "largest accepted request body", _positive),
        "ingest_requires_token": Setting(bool, False, "POST /v1/events and WS /v1/publish need the local token"),
        "max_future_s": Setting(NUM, 300, "events stamped further in the future are rejected", _non_negative),
        "stream_interval_s": Setting(NUM, 1.0, "seconds between snapshots on WS /v1/stream", _positive),
        "max_stream_rows": Setting(int, 2000, "rows per view in streamed/served snapshots", _positive),
        "host_name": Setting(str, "", "this host's name in events (default: the machine's hostname)"),
    },
    "aggregate": {
        "rate_window_s": Setting(int, 10, "sliding window for requests/s and tokens/s", _window),
        "burn_window_s": Setting(int, 60, "window for $/h", _window),
        "idle_after_s": Setting(NUM, 120, "a session is idle after this many quiet seconds", _positive),
        "session_ttl_s": Setting(NUM, 1800, "quiet session rows are dropped from memory after this", _positive),
    },
    "ledger": {
        "path": Setting(str, "", "SQLite file (default: tokentop.db in the user data dir)"),
        "retention_days": Setting(NUM, 90, "events older than this are deleted", _positive),
    },
    "ui": {
        "theme": Setting(str, "tokentop", "theme name (shipped, user or Textual built-in)"),
        "refresh_s": Setting(NUM, 1.0, "seconds between redraws", _positive),
        "view": Setting(str, "agents", "view at start", _one_of("agents", "sessions", "models", "projects", "providers", "hosts")),
        "sort": Setting(str, "burn", "sort at start", _one_of("burn", "tokens", "requests", "spend", "name")),
        "sort_reverse": Setting(bool, False, "invert the sort"),
        "readonly": Setting(bool, False, "hide kill/pause actions"),
        "daily_budget_usd": Setting(NUM, 0, "daily budget shown in the header meter (0: none)", _non_negative),
    },
}


def _source_names(v: Any) -> str | None:
    known = ("claude-code", "codex")
    bad = [x for x in v if not isinstance(x, str) or x not in known]
    return None if not bad else f"unknown source(s) {bad!r}; known: {', '.join(known)}"


def _string_list(v: Any) -> str | None:
    return None if all(isinstance(x, str) for x in v) else "must be a list of path strings"


# Local agent logs (tokentop/core/sources/; docs/sources.md). Env CLAUDE_CONFIG_DIR / CODEX_HOME win.
SCHEMA["sources"] = {
    "enabled": Setting(list, ["claude-code", "codex"], "log sources to read: claude-code, codex", _source_names),
    "backfill_days": Setting(NUM, 30, "first run imports this many days of history; older lines are ignored", _positive),
    "claude_roots": Setting(list, [], "Claude config dirs (each holding projects/); default ~/.claude and ~/.config/claude", _string_list),
    "codex_home": Setting(str, "", "Codex home (holding sessions/); default ~/.codex"),
    "watch": Setting(bool, True, "use a file watcher (watchfiles); false = cheap polling only"),
    "poll_interval_s": Setting(NUM, 1.0, "seconds between polls of recently active files when not watching", _positive),
}

#: Tables whose keys are names chosen by the user, each holding a fixed set of settings.
NAMED_TABLES: dict[str, dict[str, Setting]] = {
    "pricing": {
        "input": Setting(NUM, None, "USD per million input tokens", _non_negative),
        "output": Setting(NUM, None, "USD per million output tokens", _non_negative),
        "cache_read": Setting(NUM, None, "USD per million cache-read tokens", _non_negative),
        "cache_write": Setting(NUM, None, "USD per million cache-write tokens (5 min)", _non_negative),
        "cache_write_1h": Setting(NUM, None, "USD per million 1-hour cache-write tokens", _non_negative),
    },
}
_REQUIRED_NAMED: Final = {"pricing": ("input", "output")}


def register_section(name: str, settings: Mapping[str, Setting]) -> None:
    """Declare a config section owned by another module (sources, providers, budgets, nats...)."""
    SCHEMA.setdefault(name, {}).update(settings)


def register_named_table(name: str, settings: Mapping[str, Setting], required: tuple[str, ...] = ()) -> None:
    NAMED_TABLES[name] = dict(settings)
    if required:
        _REQUIRED_NAMED[name] = required  # type: ignore[index]


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
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(tomli_w.dumps(raw), encoding="utf-8")
    os.replace(tmp, path)


def default_file_text() -> str:
    """A commented config with every setting at its default (``tokentop config init``)."""
    out = ["# tokentop configuration. Every key is optional; shown with its default.", ""]
    for section, keys in SCHEMA.items():
        out.append(f"[{section}]")
        for key, setting in keys.items():
            value = tomli_w.dumps({key: setting.default}).strip() if setting.default is not None else f"{key} = "
            out.append(f"# {setting.doc}")
            out.extend(f"# {line}" for line in value.splitlines())  # arrays dump over several lines
        out.append("")
    out.append('# Per-model price overrides, USD per million tokens; they win over genai-prices.')
    out.append('# [pricing."my-finetune"]')
    out.append("# input = 3.0")
    out.append("# output = 15.0")
    out.append("# cache_read = 0.3")
    out.append("# cache_write = 3.75")
    return "\n".join(out) + "\n"


def parse_decimal(value: Any) -> Decimal:
    try:
        return Decimal(str(value))
    except InvalidOperation as exc:
        raise ConfigError(f"not a number: {value!r}") from exc


# Sections and tables owned by other modules register themselves on import (kept last: they
# import this module's names).
import tokentop.core.providers.settings  # noqa: E402,F401  -- [providers.openai] / [providers.anthropic]
from tokentop.core.control import settings as _control_settings  # noqa: E402,F401  -- [control] [budget.*] [runaway.*]
from tokentop.core.team import settings as _nats_settings  # noqa: E402,F401  -- [nats]
