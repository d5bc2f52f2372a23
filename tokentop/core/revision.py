"""The revision rule: of two records with the same ``id``, which one is kept (``docs/events.md``).

Every record of a request is compared under one total order, and the stored record is the
*largest* record ever offered for its id. So the result does not depend on the order records
arrive in, and offering a record twice changes nothing: an import during a live session equals a
later quiet import, OTLP-then-transcript equals transcript-then-OTLP, and a fleet that receives a
host's revisions in any order, or more than once, ends with the host's record.

The order, most significant first (:func:`order_key`):

1. **tokens**: all input (cache included) plus all output. A revision never lowers it.
2. **output tokens**: at the same total, more output wins (a streamed response's final count).
3. **revision**: the emitter's version of the record. Built-in sources give the agent's own record
   of a request 1 and a copy or summary of it 0 (OTLP, a subagent response seen inside its
   parent's progress line, a forked Codex thread's replay of its parent), so at equal counts the
   own record, with its 5-minute/1-hour cache split and its attribution, replaces the summary.
4. **earlier ``ts``**: among records equal so far, the earliest. Claude Code 2.1.97+ writes the
   same final usage on every block line of a response: the first line is kept and the others are
   no-ops, not revisions.
5. **every other stored field**, compared as text and numbers: an arbitrary but fixed choice, the
   same in every process, between records that differ only in attribution.

A record replaces the stored one whole (never field by field: a model fallback in the middle of a
stream changes the model and the cache figures together, and mixing fields of two lines would
count cache tokens that were never billed). ``cost_usd`` belongs to the record that carried it.
"""

from __future__ import annotations

from typing import Any, Final

from tokentop.core.events import Event

#: Bits of the packed memory key (:func:`memory_key`) below the order prefix: a 64-bit digest.
_DIGEST_BITS: Final = 64
_DIGEST_MASK: Final = (1 << _DIGEST_BITS) - 1
#: Microseconds since the epoch fit in 52 bits until the year 2112.
_US_BITS: Final = 52
_US_MAX: Final = (1 << _US_BITS) - 1
_REVISION_BITS: Final = 32
_OUTPUT_BITS: Final = 40  # MAX_TOKENS (10**12) < 2**40


def order_key(e: Event) -> tuple[Any, ...]:
    """The record's place in the total order (larger is kept). Deterministic across processes."""
    return (e.input_tokens + e.output_tokens, e.output_tokens, e.revision, -e.ts, _tail(e))


def _tail(e: Event) -> tuple[Any, ...]:
    # None sorts below every value: strings are never empty (parse_event makes "" None) and numbers
    # are never negative
    return (
        e.agent, e.session or "", e.project or "", e.host or "", -1 if e.pid is None else e.pid, e.provider or "",
        e.model or "", e.input_tokens, e.cache_read_tokens, e.cache_write_tokens, e.cache_write_1h_tokens,
        e.reasoning_tokens, -1.0 if e.cost_usd is None else e.cost_usd, -1.0 if e.latency_ms is None else e.latency_ms,
        e.status, e.source or "", e.branch or "", e.speed or "", e.web_searches,
    )


def wins(new: Event, stored: Event) -> bool:
    """True when ``new`` replaces ``stored`` (strictly larger; an equal record changes nothing)."""
    a = new.input_tokens + new.output_tokens
    b = stored.input_tokens + stored.output_tokens
    if a != b:
        return a > b
    if new.output_tokens != stored.output_tokens:
        return new.output_tokens > stored.output_tokens
    return order_key(new) > order_key(stored)


def memory_key(e: Event) -> int:
    """A compact stand-in for :func:`order_key` kept in memory per recently seen id (one int of
    ~30 bytes instead of a tuple of ~170): the order's first four parts packed so that integer
    order is their order (``ts`` to the microsecond), above a 64-bit digest of the whole record.

    Valid in this process only (the digest uses Python's salted string hashes): it answers "is this
    record no larger than one already stored" without SQLite, and the ledger decides the rest."""
    us = int(e.ts * 1_000_000)
    if not 0 <= us <= _US_MAX:
        us = 0 if us < 0 else _US_MAX
    prefix = (((e.input_tokens + e.output_tokens) << _OUTPUT_BITS | e.output_tokens) << _REVISION_BITS
              | e.revision) << _US_BITS | (_US_MAX - us)
    return prefix << _DIGEST_BITS | (hash(e) & _DIGEST_MASK)


def known_no_larger(new_key: int, stored_key: int) -> bool:
    """From two :func:`memory_key` values: True when the new record is certainly not larger than
    the stored one (smaller in the packed order, or the very same record). False means "ask the
    ledger": equal prefixes with different digests, or a larger record."""
    a = new_key >> _DIGEST_BITS
    b = stored_key >> _DIGEST_BITS
    return a < b or new_key == stored_key


def memory_ts(key: int) -> float:
    """The ``ts`` packed in a :func:`memory_key` (to the microsecond)."""
    return (_US_MAX - ((key >> _DIGEST_BITS) & _US_MAX)) / 1_000_000
