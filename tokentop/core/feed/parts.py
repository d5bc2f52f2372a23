"""The vocabulary of feed assembly: what an attachment gets (:class:`FeedBase`) and what it hands
back (:class:`Attached`).

An *attachment* is a function ``attach(feed: FeedBase) -> Attached``: it builds one part of a feed
(log sources, the OTLP receiver, the control API, provider pollers, the NATS publisher...) from the
feed's config, service and ledger, and returns the routes, background tasks and publish-socket hooks
that part needs, plus a typed handle on the part itself. :class:`~tokentop.core.feed.runner.FeedRunner`
runs a feed's attachments in order, merges what they return, and builds the
:class:`~tokentop.core.feed.server.FeedApp` from it. Which attachments a host feed and a fleet feed
have is written down in one place: :mod:`tokentop.core.feed.assemble`.

Nothing registers itself anywhere: an attachment that is not listed does not run.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Callable

from starlette.routing import BaseRoute

from tokentop.core.feed.server import BackgroundJob, FeedSettings, PublishCloseHook, PublishMetaHook, TokenGate

if TYPE_CHECKING:
    from tokentop.config import Config
    from tokentop.core.control.policy_task import PolicyRunner
    from tokentop.core.control.service import ControlService
    from tokentop.core.feed.otlp import OtlpReceiver
    from tokentop.core.feed.service import FeedService
    from tokentop.core.ledger import Ledger
    from tokentop.core.limits.attach import LimitsPart
    from tokentop.core.providers.poller import ProviderPoller
    from tokentop.core.proxy.server import ProxyPart
    from tokentop.core.sources.live import LiveSources
    from tokentop.core.team.control import ControlResponder
    from tokentop.core.team.fleet import FleetConsumer
    from tokentop.core.team.publisher import Publisher
    from tokentop.core.team.settings import NatsSettings


@dataclass(frozen=True)
class Attached:
    """What one attachment adds to a feed; also, merged, what all of them added (``runner.parts``).

    The tuples are concatenated in attachment order. Each handle is set by at most one attachment
    (two setting the same one is a wiring error, raised at start-up)."""

    routes: tuple[BaseRoute, ...] = ()
    background: tuple[BackgroundJob, ...] = ()
    publish_meta: tuple[PublishMetaHook, ...] = ()
    publish_closed: tuple[PublishCloseHook, ...] = ()
    #: run by :meth:`FeedRunner.stop` once the feed's thread has ended; each must be idempotent
    on_stop: tuple[Callable[[], None], ...] = ()
    # -- handles on the parts ----------------------------------------------------------------------
    #: Claude Code / Codex log files followed by this feed
    sources: LiveSources | None = None
    #: the OTLP/HTTP receiver (``/v1/logs``, ``/v1/metrics``, ``/v1/traces``)
    otlp: OtlpReceiver | None = None
    #: sessions -> processes, actions, audit; the control API and emitters go through it
    control: ControlService | None = None
    #: the budget / runaway policy task (``None``: no rules configured)
    policy: PolicyRunner | None = None
    #: one poller per provider with an admin key
    providers: tuple[ProviderPoller, ...] = ()
    #: team mode, host side: accepted events to NATS JetStream
    publisher: Publisher | None = None
    #: team mode, host side: answers signed control requests from other hosts
    responder: ControlResponder | None = None
    #: team mode, fleet side: every host's events from JetStream
    fleet: FleetConsumer | None = None
    #: the metering proxy served from this feed (``[proxy] enabled``)
    proxy: ProxyPart | None = None
    #: subscription windows (5-hour, weekly): ``limits.current_windows()`` (``[limits] enabled``)
    limits: LimitsPart | None = None
    #: team mode could not start (e.g. a credentials file is missing): why
    nats_error: str | None = None

    def merge(self, other: Attached) -> Attached:
        merged = {}
        for f in fields(self):
            mine, theirs = getattr(self, f.name), getattr(other, f.name)
            if isinstance(mine, tuple):
                merged[f.name] = mine + theirs
            elif theirs is None:
                merged[f.name] = mine
            elif mine is None:
                merged[f.name] = theirs
            else:
                raise ValueError(f"two attachments of one feed both provide {f.name!r}")
        return Attached(**merged)


@dataclass(frozen=True)
class FeedBase:
    """What every attachment builds on: made by the runner before the first attachment runs."""

    config: Config
    service: FeedService
    ledger: Ledger
    #: the HTTP surface's settings (``[feed]``): body limits, whether ingest needs the token
    settings: FeedSettings
    #: the local-token check for guarded routes
    gate: TokenGate
    #: team settings when the caller chose them (``serve --nats URL``, a fleet feed); ``None``: from
    #: the config's ``[nats]`` section
    nats: NatsSettings | None
    #: what the attachments before this one provided (so the policy task and the NATS control
    #: responder find the control service)
    parts: Attached


#: The role every subsystem's ``attach`` plays.
Attach = Callable[[FeedBase], Attached]
