"""The provider pollers' part of a feed: one background task per provider with an admin key.

Providers without a key are left out quietly (listed as ``{"enabled": false, "reason": ...}``); a
key that is refused (a key file others can read) is reported in ``status["providers"]`` so the user
sees why. The status entry (:class:`~tokentop.core.providers.status.ProvidersStatus`) is
republished after every poll; it never holds a key, only its masked form.
"""

from __future__ import annotations

import logging

from tokentop.config import ConfigError
from tokentop.core.feed.parts import Attached, FeedBase
from tokentop.core.pricing import Pricer
from tokentop.core.providers.keys import AdminKey, AdminKeyError, load_admin_key
from tokentop.core.providers.poller import ProviderPoller
from tokentop.core.providers.settings import ProviderSettings, provider_settings
from tokentop.core.providers.status import ProvidersStatus, ProviderStatus
from tokentop.core.providers.store import BilledStore

log = logging.getLogger("tokentop.providers")


def attach(feed: FeedBase) -> Attached:
    service = feed.service
    try:
        settings = provider_settings(feed.config.providers)
    except ConfigError as exc:
        service.set_status(ProvidersStatus.KEY, ProvidersStatus(error=str(exc)).to_json())
        return Attached()
    left_out: dict[str, ProviderStatus] = {}
    found: list[tuple[ProviderSettings, AdminKey]] = []
    for name, s in settings.items():
        if not s.enabled:
            left_out[name] = ProviderStatus.left_out("disabled in config")
            continue
        try:
            key = load_admin_key(s.key_env, s.key_file)
        except AdminKeyError as exc:
            # a key file that exists but is refused is an error the user must see; a key that is
            # simply not set is not
            left_out[name] = ProviderStatus.left_out(str(exc), last_error=str(exc) if s.key_file else None)
            if s.key_file:
                log.warning("%s: %s", name, exc)
            continue
        found.append((s, key))
    if not found:
        status = ProvidersStatus(left_out)
        if status.any_error:
            service.set_status(ProvidersStatus.KEY, status.to_json())
        return Attached()
    store = BilledStore(feed.ledger)
    pollers: list[ProviderPoller] = []

    def publish() -> None:
        status = ProvidersStatus({**left_out, **{p.name: p.status() for p in pollers}})
        service.set_status(ProvidersStatus.KEY, status.to_json())

    for s, key in found:
        # a Pricer per poller: pricers are not thread-safe and each poller prices on its own worker thread
        pricer = Pricer(feed.config.price_overrides())
        pollers.append(ProviderPoller(s, key, store, clock=service.clock, pricer=pricer, on_change=publish))
    publish()
    return Attached(background=tuple(p.run for p in pollers), providers=tuple(pollers))
