"""The log sources' part of a feed: follow the user's Claude Code and Codex logs (zero set-up).

Every host feed — ``tokentop serve`` or the one the live view embeds — has this part
(:data:`tokentop.core.feed.assemble.HOST_FEED`); a fleet feed does not (its host feeds already
publish those events). ``TOKENTOP_NO_SOURCES`` set in the environment turns it off.
"""

from __future__ import annotations

import os

from tokentop.config import Config
from tokentop.core.feed.parts import Attached, FeedBase
from tokentop.core.sources.live import LiveSources
from tokentop.core.sources.tailer import SourceSettings


def sources_off() -> bool:
    """``TOKENTOP_NO_SOURCES`` is set: this process reads no agent logs."""
    return bool(os.environ.get("TOKENTOP_NO_SOURCES"))


def reads_codex_logs(config: Config) -> bool:
    """Whether tokentop reads Codex rollout files here (the OTLP receiver then leaves Codex's OTel
    events, which carry the same requests, to the rollout reader)."""
    return not sources_off() and "codex" in config.sources.enabled


def attach(feed: FeedBase) -> Attached:
    """Follow the configured log sources in this feed (a background thread, see :class:`LiveSources`)."""
    if sources_off():
        return Attached()
    settings = SourceSettings.from_config(feed.config)
    if not settings.enabled:
        return Attached()
    live = LiveSources(feed.service, feed.ledger, settings)
    return Attached(background=(live.run,), sources=live)
