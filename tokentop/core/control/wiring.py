"""Plugs the control layer into the feed: routes, publish-socket hooks, and a startup hook that
applies ``[control]`` settings and starts the budget/runaway policy task."""

from __future__ import annotations

from typing import Any

from tokentop.core.control import api
from tokentop.core.control.service import ControlSettings, control_for
from tokentop.core.feed import server
from tokentop.core.feed import runner as runner_mod


def startup(runner: Any) -> None:
    cfg = runner.config
    ctl = control_for(runner.app)
    ctl.settings = ControlSettings.from_config(cfg)
    from tokentop.core.control.policy_task import attach_policy

    attach_policy(runner, ctl)


def install() -> None:
    if api.routes not in server.ROUTE_FACTORIES:
        server.ROUTE_FACTORIES.append(api.routes)
    if api.on_publish_meta not in server.PUBLISH_META_HOOKS:
        server.PUBLISH_META_HOOKS.append(api.on_publish_meta)
    if api.on_publish_closed not in server.PUBLISH_CLOSE_HOOKS:
        server.PUBLISH_CLOSE_HOOKS.append(api.on_publish_closed)
    if startup not in runner_mod.STARTUP_HOOKS:
        runner_mod.STARTUP_HOOKS.append(startup)


install()
