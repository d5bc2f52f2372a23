"""The feed startup hook of team mode: with ``[nats] url`` set (or ``serve --nats``), publish.

Registered in :data:`tokentop.core.feed.runner.STARTUP_HOOKS`. Without a URL it makes sure the
outbox trigger is off, so a ledger that once published does not queue events forever.
"""

from __future__ import annotations

import logging
from typing import Any

from tokentop.core.team import outbox
from tokentop.core.team.settings import NatsSettings

log = logging.getLogger("tokentop.team")


def attach(runner: Any) -> None:
    settings = NatsSettings.from_config(runner.config)
    if not settings.servers:
        outbox.uninstall(runner.ledger)
        return
    try:
        settings.connect_options()  # credential files exist: say so now, not on every reconnect
    except ValueError as exc:
        # the feed keeps working locally; `serve` turns this into an error, an embedded feed shows it
        runner.extras["nats_error"] = str(exc)
        runner.service.set_status("nats", {"role": "host", "connected": False, "last_error": str(exc)})
        log.error("team mode off: %s", exc)
        return
    from tokentop.core.team.control import ControlResponder, controller_for
    from tokentop.core.team.publisher import Publisher

    host = runner.service.host or runner.config.host_name
    publisher = Publisher(runner.service, settings, host, clock=runner.service.clock)
    runner.app.background.append(publisher.run)
    runner.extras["nats_publisher"] = publisher
    responder = ControlResponder(settings, host, controller_for(runner))
    runner.app.background.append(responder.run)
    runner.extras["nats_control"] = responder


def install() -> None:
    from tokentop.core.feed import runner as runner_mod

    if attach not in runner_mod.STARTUP_HOOKS:
        runner_mod.STARTUP_HOOKS.append(attach)


install()
