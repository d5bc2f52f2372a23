"""The log sources' part of a feed: follow the enabled agents' stores (zero set-up).

Every host feed — ``tokentop serve`` or the one the live view embeds — has this part
(:data:`tokentop.core.feed.assemble.HOST_FEED`); a fleet feed does not (its host feeds already
publish those events). ``TOKENTOP_NO_SOURCES`` set in the environment turns it off.
"""

from __future__ import annotations

from tokentop.core.feed.parts import Attached, FeedBase
from tokentop.core.sources.live import LiveSources
from tokentop.core.sources.settings import SourceSettings, sources_off


def attach(feed: FeedBase) -> Attached:
    """Follow the configured log sources in this feed (a background thread, see :class:`LiveSources`)."""
    if sources_off():
        return Attached()
    settings = SourceSettings.from_config(feed.config)
    if not settings.enabled:
        return Attached()
    live = LiveSources(feed.service, feed.ledger, settings)
    return Attached(background=(live.run,), sources=live)
