"""The JetStream stream tokentop publishes to: created when missing, validated when present."""

from __future__ import annotations

import logging
from typing import Any

from nats.js import JetStreamContext
from nats.js.api import DiscardPolicy, RetentionPolicy, StorageType, StreamConfig
from nats.js.errors import NotFoundError

from tokentop.core.team.settings import EVENTS_PREFIX, NatsSettings

log = logging.getLogger("tokentop.team")


class StreamMismatch(RuntimeError):
    """The named stream exists but cannot hold tokentop's events as configured (reason in the message)."""


def desired_config(s: NatsSettings) -> StreamConfig:
    return StreamConfig(
        name=s.stream,
        description="tokentop: accepted token-usage events of every host",
        subjects=[f"{EVENTS_PREFIX}.>"],
        retention=RetentionPolicy.LIMITS,
        discard=DiscardPolicy.OLD,
        max_age=float(s.max_age_days) * 86400.0,
        max_bytes=s.max_bytes,
        max_msgs=s.max_msgs,
        duplicate_window=float(s.duplicate_window_s),
        storage=StorageType.FILE if s.storage == "file" else StorageType.MEMORY,
        num_replicas=s.replicas,
    )


async def ensure_stream(js: JetStreamContext, s: NatsSettings) -> dict[str, Any]:
    """Create the stream, or check the existing one. Returns a status dict; raises :class:`StreamMismatch`.

    An existing stream is never silently reconfigured by a host (many hosts share it and would fight
    over it): limits that differ from this host's config are reported as ``differs`` in the status;
    only a stream that cannot work (wrong subjects, work-queue retention, no dedupe) is refused.
    """
    want = desired_config(s)
    try:
        info = await js.stream_info(s.stream)
    except NotFoundError:
        await js.add_stream(want)
        log.info("created JetStream stream %s", s.stream)
        return {"stream": s.stream, "created": True, "differs": {}}
    have = info.config
    subjects = have.subjects or []
    if f"{EVENTS_PREFIX}.>" not in subjects:
        raise StreamMismatch(
            f"stream {s.stream} exists with subjects {subjects}, not {EVENTS_PREFIX}.>; "
            "point [nats] stream at another name or fix the stream")
    if have.retention not in (None, RetentionPolicy.LIMITS):
        raise StreamMismatch(
            f"stream {s.stream} has {have.retention} retention; tokentop needs 'limits' so every fleet view sees every event")
    if not have.duplicate_window:
        raise StreamMismatch(f"stream {s.stream} has no duplicate window; retried publishes would be stored twice")
    differs = {}
    for name in ("max_age", "max_bytes", "max_msgs", "duplicate_window", "num_replicas"):
        a, b = getattr(have, name), getattr(want, name)
        if a is not None and b is not None and float(a) != float(b):
            differs[name] = {"stream": a, "config": b}
    if differs:
        log.warning("stream %s limits differ from config (kept as they are): %s", s.stream, differs)
    return {"stream": s.stream, "created": False, "differs": differs}
