"""What events look like on the stream: the contract v1 object plus the cost it was accepted at.

The fleet aggregates the host's own cost (``cost_pusd``/``cost_kind``) rather than re-pricing, so
the fleet's totals equal the sum of the hosts' totals to the pico-dollar even when hosts carry price
overrides the fleet does not know.

A message holds one event (``{"v": 1, "event": ..., "cost_pusd", "cost_kind", "accepted_at"}``,
what every tokentop reads) or, when a host is configured with ``[nats] events_per_message`` > 1,
several: ``{"v": 1, "events": [<the same object without "v">, ...]}``. One message per event
costs the host a JetStream publish and its ack per event, which capped a host at ~4-7k events/s
to the fleet; batches of 100 cut that cost a hundredfold, and the fleet keeps up with the host's
own ingest (``bench/team_throughput.py --events-per-message 100``). A fleet
older than batches skips a batch as a bad message, hence opt-in (docs/team.md).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any, Final, Sequence

import orjson

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


def batch_msg_id(ids: Sequence[str]) -> str:
    """The ``Nats-Msg-Id`` of a batch: a hash of its events' message ids, so the same batch sent
    again (a lost ack) is a JetStream duplicate; a batch cut differently on a retry is not, and the
    fleet's ledger drops the events it already has (one record per id)."""
    digest = hashlib.sha256("\n".join(ids).encode("utf-8", "surrogatepass")).hexdigest()
    return f"batch:{len(ids)}:{digest}"


def _item(event: Event, cost: Cost, accepted_at: float) -> dict[str, Any]:
    return {"event": event.to_dict(), "cost_pusd": cost.pusd, "cost_kind": cost.kind, "accepted_at": accepted_at}


def _dumps(obj: dict[str, Any]) -> bytes:
    try:
        return orjson.dumps(obj)
    except TypeError:  # what orjson refuses (a lone surrogate in a string, an int beyond 64 bits)
        return json.dumps(obj, separators=(",", ":")).encode()


def encode(event: Event, cost: Cost, accepted_at: float) -> bytes:
    """One event: the message every tokentop fleet reads."""
    return _dumps({"v": WIRE_VERSION, **_item(event, cost, accepted_at)})


def encode_batch(items: Sequence[tuple[Event, Cost, float]]) -> bytes:
    """Several events in one message (``[nats] events_per_message``)."""
    return _dumps({"v": WIRE_VERSION, "events": [_item(e, c, at) for e, c, at in items]})


@dataclass(frozen=True, slots=True)
class Received:
    event: Event
    cost: Cost
    accepted_at: float


class WireError(ValueError):
    """A stream message that is not a tokentop event (named reason; the message is skipped and counted)."""


def _loads(data: bytes) -> Any:
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        pass  # e.g. an escaped lone surrogate, which orjson refuses and json reads
    try:
        return json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise WireError(f"not JSON: {exc}") from None


def decode(data: bytes, now: float) -> Received:
    """A message of one event (a batch is :func:`decode_message`'s)."""
    obj = _loads(data)
    if not isinstance(obj, dict) or obj.get("v") != WIRE_VERSION:
        raise WireError(f"not a tokentop v{WIRE_VERSION} message")
    return _received(obj, now)


def decode_message(data: bytes, now: float) -> tuple[list[Received], list[str]]:
    """Every event of a message, one or a batch, and the reason for each entry of a batch that is
    not a valid event (skipped; the others are kept). A message that is not a tokentop message at
    all raises :class:`WireError`."""
    obj = _loads(data)
    if not isinstance(obj, dict) or obj.get("v") != WIRE_VERSION:
        raise WireError(f"not a tokentop v{WIRE_VERSION} message")
    items = obj.get("events")
    if items is None:
        return [_received(obj, now)], []
    if not isinstance(items, list):
        raise WireError("events: not a list")
    got: list[Received] = []
    bad: list[str] = []
    for n, item in enumerate(items):
        if not isinstance(item, dict):
            bad.append(f"events[{n}]: not an object")
            continue
        try:
            got.append(_received(item, now))
        except WireError as exc:
            bad.append(f"events[{n}]: {exc}")
    return got, bad


def _received(obj: dict[str, Any], now: float) -> Received:
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

