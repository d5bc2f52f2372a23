"""Where a feed is put together: the parts a host feed has, and the parts a fleet feed has.

A part is an attachment, ``attach(feed: FeedBase) -> Attached`` (see :mod:`tokentop.core.feed.parts`).
:class:`~tokentop.core.feed.runner.FeedRunner` runs the attachments it is given, in order, and builds
the feed's HTTP app from what they return: routes, background tasks, publish-socket hooks, and a
typed handle on each part (``runner.parts.control``, ``runner.parts.fleet``, ...). The feed's own
core — ingest (``POST /v1/events``, ``WS /v1/publish``), snapshots, ``WS /v1/stream``, the ledger —
is in every feed and not listed here.

Order matters where one part uses another: the policy task and the NATS control responder act
through the control service, so control's ``attach`` comes before them.

To add a part: write its ``attach`` (in the subsystem's ``attach.py``) and add it to the tuples
below of the feeds that should have it. Nothing registers itself; a part not listed does not run.
"""

from __future__ import annotations

from typing import Final

from tokentop.core.control import attach as control
from tokentop.core.feed import otlp
from tokentop.core.feed.parts import Attach
from tokentop.core.limits import attach as limits
from tokentop.core.providers import attach as providers
from tokentop.core.proxy import attach as proxy
from tokentop.core.sources import attach as sources
from tokentop.core.team import attach as team

#: ``tokentop serve`` and the feed the live view embeds.
HOST_FEED: Final[tuple[Attach, ...]] = (
    otlp.attach,  # POST /v1/logs, /v1/metrics, /v1/traces
    control.attach,  # control service, its API (/v1/sessions/..., /v1/control/audit), emitter hello/acks
    sources.attach,  # Claude Code / Codex log files, backfilled then followed
    limits.attach,  # subscription windows: Codex rate_limits (from sources), statusline, OAuth, estimate
    providers.attach,  # provider usage pollers, for providers with an admin key
    control.attach_policy,  # budgets and runaway rules, when configured
    team.attach,  # NATS publisher and remote-control responder, when [nats] url is set
    proxy.attach,  # the metering proxy, when [proxy] enabled
)

#: ``serve --fleet`` and ``tokentop --nats``: every host's events from NATS JetStream, and nothing
#: else. No log sources or OTLP receiver (the hosts' own feeds take those events and publish them:
#: taking them here too would count them twice), no provider pollers, no policy, no control API (a
#: session is acted on at its own host, over NATS), and it never republishes what it reads.
FLEET_FEED: Final[tuple[Attach, ...]] = (team.attach_fleet,)
