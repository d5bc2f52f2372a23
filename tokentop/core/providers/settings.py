"""``[providers.openai]`` / ``[providers.anthropic]`` settings, a named config table pulled by config.py.

The config validator knows flat sections and named tables; ``providers`` is a named table whose
names must be known providers — :func:`provider_settings` checks the names, fills defaults and
applies the environment (``TOKENTOP_<NAME>_BASE_URL`` wins over ``base_url``).
"""

from __future__ import annotations

import difflib
import os
from dataclasses import dataclass
from typing import Any, Final, Mapping

from tokentop.core.setting import NUM, ConfigError, Setting, between, http_url, positive

#: name → (admin key env var, default base URL as the official SDK means it, base URL env var)
PROVIDERS: Final = {
    "openai": ("OPENAI_ADMIN_KEY", "https://api.openai.com/v1", "TOKENTOP_OPENAI_BASE_URL"),
    "anthropic": ("ANTHROPIC_ADMIN_KEY", "https://api.anthropic.com", "TOKENTOP_ANTHROPIC_BASE_URL"),
}
_GROUPABLE: Final = {
    "openai": ("project_id", "api_key_id", "user_id", "batch", "service_tier"),
    "anthropic": ("workspace_id", "api_key_id", "service_tier", "context_window", "inference_geo"),
}


def _dims(v: Any) -> str | None:
    if not all(isinstance(x, str) for x in v):
        return "must be a list of dimension names"
    known = set().union(*_GROUPABLE.values())
    bad = [x for x in v if x not in known]
    return f"unknown dimension(s) {bad}; known: {sorted(known)}" if bad else None


SETTINGS: Final = {
    "enabled": Setting(bool, True, "poll this provider when an admin key is available"),
    "base_url": Setting(str, "", "API base as the official SDK means it (OpenAI includes /v1); env TOKENTOP_<NAME>_BASE_URL wins", http_url),
    "key_file": Setting(str, "", "file holding the admin key (mode 600); the env var OPENAI_ADMIN_KEY / ANTHROPIC_ADMIN_KEY wins"),
    "poll_interval_s": Setting(NUM, 60, "seconds between polls of the last hour at 1-minute buckets", positive),
    "daily_interval_s": Setting(NUM, 900, "seconds between refreshes of today's 1-day usage and cost buckets", positive),
    "backfill_days": Setting(int, 31, "days of daily usage and cost fetched when the ledger lacks them", between(1, 366)),
    "timeout_s": Setting(NUM, 30, "timeout of one HTTP request", positive),
    "max_attempts": Setting(int, 5, "tries per request on 429/5xx/timeouts (exponential backoff with jitter)", between(1, 20)),
    "backoff_base_s": Setting(NUM, 1.0, "first retry waits up to this long; doubles per try (full jitter), Retry-After is a floor", positive),
    "group_by": Setting(list, [], "extra usage dimensions besides model (openai: project_id, api_key_id...; anthropic: workspace_id...)", _dims),
}

NAMED_TABLES: Final = {"providers": SETTINGS}


@dataclass(frozen=True)
class ProviderSettings:
    name: str
    enabled: bool
    base_url: str
    key_env: str
    key_file: str
    poll_interval_s: float
    daily_interval_s: float
    backfill_days: int
    timeout_s: float
    max_attempts: int
    backoff_base_s: float
    group_by: tuple[str, ...]


def provider_settings(table: Mapping[str, Mapping[str, Any]] | None, environ: Mapping[str, str] | None = None) -> dict[str, ProviderSettings]:
    """Settings for every known provider (defaults where the config says nothing)."""
    env = os.environ if environ is None else environ
    table = table or {}
    problems = []
    for name in table:
        if name not in PROVIDERS:
            close = difflib.get_close_matches(name, list(PROVIDERS), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else f" (known: {', '.join(PROVIDERS)})"
            problems.append(f"unknown provider [providers.{name}]{hint}")
    out: dict[str, ProviderSettings] = {}
    for name, (key_env, default_base, base_env) in PROVIDERS.items():
        values = {k: s.default for k, s in SETTINGS.items()}
        values.update({k: v for k, v in (table.get(name) or {}).items() if v is not None})
        bad = [d for d in values["group_by"] if d not in _GROUPABLE[name]]
        if bad:
            problems.append(f"providers.{name}.group_by: {bad} not groupable for {name}; use {list(_GROUPABLE[name])}")
        base = (env.get(base_env) or values["base_url"] or default_base).rstrip("/")
        out[name] = ProviderSettings(
            name=name, enabled=bool(values["enabled"]), base_url=base, key_env=key_env, key_file=values["key_file"],
            poll_interval_s=float(values["poll_interval_s"]), daily_interval_s=float(values["daily_interval_s"]),
            backfill_days=int(values["backfill_days"]), timeout_s=float(values["timeout_s"]),
            max_attempts=int(values["max_attempts"]),
            backoff_base_s=float(values["backoff_base_s"]), group_by=tuple(values["group_by"]),
        )
    if problems:
        raise ConfigError("invalid configuration:\n  " + "\n  ".join(problems))
    return out
