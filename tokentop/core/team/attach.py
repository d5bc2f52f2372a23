"""Team mode's parts of a feed.

* :func:`attach` (a host feed): with ``[nats] url`` set (or ``serve --nats URL``, handed to the runner
  as its team settings), publish every accepted event to JetStream and answer signed control
  requests for this host's sessions. Without a URL it makes sure the outbox trigger is off, so a
  ledger that once published does not queue events forever.
* :func:`attach_fleet` (a fleet feed): read every host's events from JetStream.
"""

from __future__ import annotations

import logging

from tokentop.core.control.controller import LocalController, UnavailableController
from tokentop.core.control.port import Controller
from tokentop.core.feed.parts import Attached, FeedBase
from tokentop.core.team import outbox
from tokentop.core.team.control import ControlResponder
from tokentop.core.team.fleet import FleetConsumer, default_consumer_name
from tokentop.core.team.publisher import Publisher
from tokentop.core.team.settings import NatsSettings
from tokentop.core.team.status import NatsStatus

log = logging.getLogger("tokentop.team")


def _settings(feed: FeedBase) -> NatsSettings:
    return feed.nats if feed.nats is not None else NatsSettings.from_config(feed.config)


def attach(feed: FeedBase) -> Attached:
    settings = _settings(feed)
    if not settings.servers:
        outbox.uninstall(feed.ledger)
        return Attached()
    try:
        settings.connect_options()  # credential files exist: say so now, not on every reconnect
    except ValueError as exc:
        # the feed keeps working locally; `serve` turns this into an error, an embedded feed shows it
        feed.service.set_status(NatsStatus.KEY, NatsStatus.not_started(str(exc)).to_json())
        log.error("team mode off: %s", exc)
        return Attached(nats_error=str(exc))
    host = feed.service.host or feed.config.host_name
    publisher = Publisher(feed.service, settings, host, clock=feed.service.clock)
    control = feed.parts.control

    def controller_for(origin: str) -> Controller:
        # the responder runs on the feed's loop: the control service is called directly
        if control is None:
            return UnavailableController("this feed runs without the control layer")
        return LocalController(control, origin=origin)

    responder = ControlResponder(settings, host, controller_for)
    return Attached(background=(publisher.run, responder.run), publisher=publisher, responder=responder)


def attach_fleet(feed: FeedBase) -> Attached:
    """The fleet consumer. Raises ``ValueError`` without a NATS URL."""
    settings = _settings(feed)
    name = settings.consumer or default_consumer_name(feed.config.host_name, str(feed.ledger.path))
    fleet = FleetConsumer(feed.service, settings, consumer=name, clock=feed.service.clock)
    return Attached(background=(fleet.run,), fleet=fleet)
