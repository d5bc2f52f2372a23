"""Provider ``usage`` objects to the event contract's token semantics (``docs/events.md``).

* Anthropic reports ``input_tokens`` **without** the cache: the event's input is
  ``input_tokens + cache_read_input_tokens + cache_creation_input_tokens``; the 1-hour part of the
  cache writes is ``cache_creation.ephemeral_1h_input_tokens``.
* OpenAI reports input **with** the cache: ``prompt_tokens`` (Chat Completions, embeddings) or
  ``input_tokens`` (Responses) is the event's input as is, ``*_tokens_details.cached_tokens`` the
  cache reads, ``*_tokens_details.reasoning_tokens`` the reasoning part of the output.

Every function takes whatever JSON the upstream sent and never raises: a field that is missing,
null, negative or not an integer counts as 0 (an upstream's odd record must not lose the request).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping


@dataclass(slots=True)
class Usage:
    """Token counts of one request in the contract's semantics (see module docstring)."""

    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    cache_write_1h_tokens: int = 0
    reasoning_tokens: int = 0

    def fields(self) -> dict[str, int]:
        # Clamp the parts to their wholes: the contract rejects an event whose cache parts exceed
        # its input, and one odd upstream record must not lose the whole request.
        inp = self.input_tokens
        read = min(self.cache_read_tokens, inp)
        write = min(self.cache_write_tokens, inp - read)
        return {
            "input_tokens": inp,
            "output_tokens": self.output_tokens,
            "cache_read_tokens": read,
            "cache_write_tokens": write,
            "cache_write_1h_tokens": min(self.cache_write_1h_tokens, write),
            "reasoning_tokens": min(self.reasoning_tokens, self.output_tokens),
        }


def _int(obj: Any, key: str) -> int:
    if not isinstance(obj, Mapping):
        return 0
    value = obj.get(key)
    if type(value) is int and value >= 0:
        return value
    if isinstance(value, float) and value.is_integer() and value >= 0:
        return int(value)
    return 0


class AnthropicUsage:
    """Anthropic's usage, accumulated over a stream: ``message_start`` carries the input side and
    an initial output count; every ``message_delta`` carries the *cumulative* output count (and,
    in newer API versions, the input-side counts again). Later values replace earlier ones."""

    __slots__ = ("uncached", "cache_read", "cache_write", "cache_write_1h", "output", "seen")

    def __init__(self) -> None:
        self.uncached = self.cache_read = self.cache_write = self.cache_write_1h = self.output = 0
        self.seen = False

    def update(self, usage: Any) -> None:
        if not isinstance(usage, Mapping):
            return
        self.seen = True
        if "input_tokens" in usage:
            self.uncached = _int(usage, "input_tokens")
        if "cache_read_input_tokens" in usage:
            self.cache_read = _int(usage, "cache_read_input_tokens")
        creation = usage.get("cache_creation")
        if "cache_creation_input_tokens" in usage:
            self.cache_write = _int(usage, "cache_creation_input_tokens")
        elif isinstance(creation, Mapping):
            self.cache_write = _int(creation, "ephemeral_5m_input_tokens") + _int(creation, "ephemeral_1h_input_tokens")
        if isinstance(creation, Mapping):
            self.cache_write_1h = _int(creation, "ephemeral_1h_input_tokens")
        if "output_tokens" in usage:
            self.output = _int(usage, "output_tokens")

    def result(self) -> Usage | None:
        if not self.seen:
            return None
        return Usage(
            input_tokens=self.uncached + self.cache_read + self.cache_write,
            output_tokens=self.output,
            cache_read_tokens=self.cache_read,
            cache_write_tokens=self.cache_write,
            cache_write_1h_tokens=self.cache_write_1h,
        )


def anthropic_usage(usage: Any) -> Usage | None:
    acc = AnthropicUsage()
    acc.update(usage)
    return acc.result()


def openai_usage(usage: Any) -> Usage | None:
    """Chat Completions, legacy Completions and embeddings (``prompt_tokens``/``completion_tokens``)
    as well as the Responses API (``input_tokens``/``output_tokens``)."""
    if not isinstance(usage, Mapping):
        return None
    if "input_tokens" in usage or "output_tokens" in usage:
        inp, out = _int(usage, "input_tokens"), _int(usage, "output_tokens")
        in_details, out_details = usage.get("input_tokens_details"), usage.get("output_tokens_details")
    else:
        inp, out = _int(usage, "prompt_tokens"), _int(usage, "completion_tokens")
        in_details, out_details = usage.get("prompt_tokens_details"), usage.get("completion_tokens_details")
    return Usage(
        input_tokens=inp,
        output_tokens=out,
        cache_read_tokens=_int(in_details, "cached_tokens"),
        # OpenAI's prompt caching has no separately billed write; some compatible upstreams report one
        cache_write_tokens=_int(in_details, "cache_write_tokens") or _int(in_details, "cache_creation_tokens"),
        reasoning_tokens=_int(out_details, "reasoning_tokens"),
    )
