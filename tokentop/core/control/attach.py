"""The control layer's parts of a feed.

* :func:`attach`: the feed's :class:`ControlService` (with the ``[control]`` settings), the control
  API routes (blocks at the API included), the blocks' housekeeping job, and the publish-socket
  hooks through which in-process emitters receive control messages.
* :func:`attach_policy`: the budget / runaway policy task, when rules are configured. It acts
  through the control service, so a feed lists it after :func:`attach`.
"""

from __future__ import annotations

import logging

from tokentop.core.control import api
from tokentop.core.control.policy import PolicyError
from tokentop.core.control.policy_task import PolicyStatus, build_policy_runner
from tokentop.core.control.service import ControlService, ControlSettings
from tokentop.core.feed.parts import Attached, FeedBase

log = logging.getLogger("tokentop.control")


def attach(feed: FeedBase) -> Attached:
    ctl = ControlService(feed.service, ControlSettings.from_config(feed.config))
    hooks = api.PublishHooks(ctl)
    return Attached(routes=tuple(api.routes(ctl, feed.gate)), background=(ctl.run_blocks,),
                    publish_meta=(hooks.on_meta,), publish_closed=(hooks.on_closed,), control=ctl)


def attach_policy(feed: FeedBase) -> Attached:
    """Start the policy task with the feed when rules are configured; a rule that cannot work (no
    limit, a bad scope) is reported in ``status.policy.error`` and the feed runs without a policy."""
    ctl = feed.parts.control
    if ctl is None:
        raise ValueError("the policy task acts through the control service: list control's attach before it")
    try:
        policy = build_policy_runner(feed.config, ctl, feed.service.clock)
    except PolicyError as exc:
        feed.service.set_status(PolicyStatus.KEY, PolicyStatus.failed(str(exc)).to_json())
        log.error("%s", exc)
        return Attached()
    if policy is None:
        return Attached()
    return Attached(background=(policy.run,), policy=policy)
