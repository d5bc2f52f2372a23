"""The metering proxy's part of a host feed (``[proxy] enabled = true``): it serves on its own
listen address from the feed's event loop, hands every metered request straight to the feed's
service, and enforces the feed's blocks at the API (the budget stop: its gate reads the control
part's :class:`~tokentop.core.control.blocks.BlockBook`, so control's attach comes first; see
docs/proxy.md). ``tokentop proxy`` runs the same proxy on its own instead."""

from __future__ import annotations

import logging

from tokentop.core.feed.parts import Attached, FeedBase
from tokentop.core.proxy.server import ListenError, proxy_part
from tokentop.core.proxy.settings import ProxySettings

log = logging.getLogger("tokentop.proxy")


def attach(feed: FeedBase) -> Attached:
    settings = ProxySettings.from_config(feed.config)
    if not settings.enabled:
        return Attached()
    part = proxy_part(feed.service, settings, token=feed.gate.token, clock=feed.service.clock)
    control = feed.parts.control
    book = control.blocks if control is not None else None
    if book is not None:
        part.gates.add(book)  # after the proxy's own block list (`tokentop proxy block`)

    async def run() -> None:
        # the socket is bound when the feed starts serving, not when it is built: a feed built only
        # to act offline (`tokentop kill` with no feed running) must not take the proxy's port
        try:
            url = part.bind()
        except ListenError as exc:
            log.error("metering proxy not started: %s", exc)
            feed.service.set_status("proxy", {"state": "failed", "error": str(exc)})
            return
        if book is not None:
            book.add_enforcer(url)
        try:
            await part.run()
        finally:
            if book is not None:
                book.remove_enforcer(url)

    return Attached(background=(run,), proxy=part)
