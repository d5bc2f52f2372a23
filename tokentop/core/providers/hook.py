"""Attaching provider pollers to a feed (``runner.STARTUP_HOOKS``) when admin keys are configured.

Each enabled provider with a key gets its own background task; providers without a key are left
out quietly (listed as ``{"enabled": false, "reason": ...}``); a key that is refused (a key file
others can read) is reported in ``status["providers"]`` so the user sees why. The status entry is
republished after every poll; it never holds a key, only its masked form.
"""

from __future__ import annotations

import logging
from typing import Any

from tokentop.config import ConfigError

log = logging.getLogger("tokentop.providers")


def attach(runner: Any) -> list[Any]:
    from tokentop.core.pricing import Pricer
    from tokentop.core.providers.keys import AdminKeyError, load_admin_key
    from tokentop.core.providers.poller import ProviderPoller
    from tokentop.core.providers.settings import provider_settings
    from tokentop.core.providers.store import BilledStore

    service = runner.service
    try:
        settings = provider_settings(runner.config.providers)
    except ConfigError as exc:
        service.set_status("providers", {"error": str(exc)})
        return []
    status: dict[str, Any] = {}
    found = []
    for name, s in settings.items():
        if not s.enabled:
            status[name] = {"enabled": False, "reason": "disabled in config"}
            continue
        try:
            key = load_admin_key(s.key_env, s.key_file)
        except AdminKeyError as exc:
            status[name] = {"enabled": False, "reason": str(exc)}
            if s.key_file:
                status[name]["last_error"] = str(exc)
                log.warning("%s: %s", name, exc)
            continue
        found.append((s, key))
    if not found:
        if any("last_error" in v for v in status.values()):
            service.set_status("providers", status)
        return []
    store = BilledStore(runner.ledger)
    pollers: list[ProviderPoller] = []

    def publish() -> None:
        service.set_status("providers", {**status, **{p.name: p.status() for p in pollers}})

    for s, key in found:
        # a Pricer per poller: pricers are not thread-safe and each poller prices on its own worker thread
        pricer = Pricer(runner.config.price_overrides())
        pollers.append(ProviderPoller(s, key, store, clock=service.clock, pricer=pricer, on_change=publish))
    publish()
    for p in pollers:
        runner.app.background.append(p.run)
    runner.extras["providers"] = pollers
    return pollers


def _register() -> None:
    from tokentop.core.feed.runner import STARTUP_HOOKS

    if attach not in STARTUP_HOOKS:
        STARTUP_HOOKS.append(attach)


_register()
