"""What one event looks like on the stream: the contract v1 object plus the cost it was accepted at.

The fleet aggregates the host's own cost (``cost_pusd``/``cost_kind``) rather than re-pricing, so
the fleet's totals equal the sum of the hosts' totals to the pico-dollar even when hosts carry price
overrides the fleet does not know.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Final

from tokentop.core.events import Event, EventError, parse_event
from tokentop.core.pricing import Cost

WIRE_VERSION: Final = 1
MSG_ID_HEADER: Final = "Nats-Msg-Id"
COST_KINDS: Final = frozenset({"estimated", "provided", "billed", "unpriced"})
_NO_BOUND: Final = float("inf")


def msg_id(event_id: str, revisions: int = 0) -> str:
    """The ``Nats-Msg-Id`` for an event: its id (``<id>#<n>`` for its n-th revision, which JetStream
    must not drop as a copy of the first record), or a stable hash when that is unsafe in a header."""
    name = event_id if not revisions else f"{event_id}#{revisions}"
    if name.isascii() and name.isprintable() and len(name) <= 128:
        return name
    return "sha256:" + hashlib.sha256(name.encode("utf-8", "surrogatepass")).hexdigest()


def encode(event: Event, cost: Cost, accepted_at: float) -> bytes:
    return json.dumps(
        {"v": WIRE_VERSION, "event": event.to_dict(), "cost_pusd": cost.pusd, "cost_kind": cost.kind,
         "accepted_at": accepted_at},
        separators=(",", ":"),
    ).encode()


@dataclass(frozen=True, slots=True)
class Received:
    event: Event
    cost: Cost
    accepted_at: float


class WireError(ValueError):
    """A stream message that is not a tokentop event (named reason; the message is skipped and counted)."""


def decode(data: bytes, now: float) -> Received:
    try:
        obj = json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise WireError(f"not JSON: {exc}") from None
    if not isinstance(obj, dict) or obj.get("v") != WIRE_VERSION:
        raise WireError(f"not a tokentop v{WIRE_VERSION} message")
    try:
        # the contract as is, except the clock bounds: the host already judged ts by its own clock,
        # and what a host accepted the fleet must count (a skewed fleet clock must not drop it)
        event = parse_event(obj.get("event"), now=now, max_future_s=_NO_BOUND, max_age_s=_NO_BOUND)
    except EventError as exc:
        raise WireError(f"bad event: {exc}") from None
    pusd = obj.get("cost_pusd")
    kind = obj.get("cost_kind")
    if kind not in COST_KINDS or not (pusd is None or (isinstance(pusd, int) and not isinstance(pusd, bool))):
        raise WireError(f"bad cost: {pusd!r} {kind!r}")
    accepted_at = obj.get("accepted_at")
    if not isinstance(accepted_at, (int, float)) or isinstance(accepted_at, bool):
        raise WireError("bad accepted_at")
    return Received(event, Cost(pusd, kind), float(accepted_at))

