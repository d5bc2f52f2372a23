"""Reading usage from responses as they pass: one meter per protocol, streaming or not.

A meter is fed the upstream's (decoded) body chunk by chunk and returns the bytes to send to the
client; at the end it knows the model the upstream answered with, the usage it reported, whether
the response was complete (the protocol's final record arrived) and whether it carried an error.

* :class:`AnthropicStream` — Messages SSE: ``message_start`` (model, input-side usage),
  ``message_delta`` (cumulative output), ``message_stop`` (complete), ``error``.
* :class:`ChatStream` — Chat Completions / legacy Completions SSE: the model from the first
  chunk, usage from the final usage chunk, ``[DONE]``. When the proxy added
  ``stream_options.include_usage`` itself (``strip=True``), the usage chunk is removed again and
  so is the ``"usage": null`` the upstream then puts on every other chunk: the client gets exactly
  the stream it asked for.
* :class:`ResponsesStream` — Responses API SSE: ``response.completed`` / ``response.incomplete``
  / ``response.failed`` carry ``response.usage``.
* :class:`BodyMeter` — any non-streaming JSON answer (``usage`` and ``model`` at top level).

Only the few records that carry usage are JSON-parsed; content deltas are recognised by their
event name (or first bytes) and skipped.
"""

from __future__ import annotations

import json
import re
from typing import Any, Final

from tokentop.core.proxy.routes import Protocol
from tokentop.core.proxy.sse import HEAD, TAIL, SSEStream, find_json_value, parse_block, sniff_type
from tokentop.core.proxy.usage import AnthropicUsage, Usage, anthropic_usage, openai_usage

try:  # orjson is a dependency (the log sources use it); parse 2-3x faster than json
    import orjson

    _loads = orjson.loads

    def _dumps(obj: Any) -> bytes:
        return orjson.dumps(obj)
except ImportError:  # pragma: no cover - stdlib fallback
    _loads = json.loads

    def _dumps(obj: Any) -> bytes:
        return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode()


def loads(data: bytes) -> Any:
    """JSON or ``None`` (a malformed record is counted by the caller, never raised)."""
    try:
        return _loads(data)
    except ValueError:
        return None


class Meter:
    """Common result fields. Subclasses implement :meth:`feed` and :meth:`finish`."""

    def __init__(self) -> None:
        self.model: str | None = None
        self.usage: Usage | None = None
        self.complete = False
        self.error = False
        #: records that should have parsed but did not, or were too big to read whole
        self.unreadable = 0

    def feed(self, chunk: bytes) -> bytes:
        raise NotImplementedError

    def finish(self) -> bytes:
        raise NotImplementedError

    def _set_model(self, value: Any) -> None:
        if isinstance(value, str) and value:
            self.model = value


class _SSEMeter(Meter):
    def __init__(self, limit: int, strip: bool = False) -> None:
        super().__init__()
        self.stream = SSEStream(self.on_event, self.on_oversize, limit, self.rewrite if strip else None)

    def feed(self, chunk: bytes) -> bytes:
        return self.stream.feed(chunk)

    def finish(self) -> bytes:
        return self.stream.finish()

    def on_event(self, name: bytes, data: bytes) -> None:
        raise NotImplementedError

    def on_oversize(self, name: bytes, head: bytes, tail: bytes) -> None:
        self.unreadable += 1

    def rewrite(self, name: bytes, data: bytes, raw: bytes) -> bytes:
        return raw


class AnthropicStream(_SSEMeter):
    def __init__(self, limit: int) -> None:
        super().__init__(limit)
        self.acc = AnthropicUsage()

    def on_event(self, name: bytes, data: bytes) -> None:
        if not data:
            return
        if not name:
            name = sniff_type(data)
        if name == b"message_start":
            obj = loads(data)
            message = obj.get("message") if isinstance(obj, dict) else None
            if not isinstance(message, dict):
                self.unreadable += 1
                return
            self._set_model(message.get("model"))
            self.acc.update(message.get("usage"))
        elif name == b"message_delta":
            obj = loads(data)
            if not isinstance(obj, dict):
                self.unreadable += 1
                return
            self.acc.update(obj.get("usage"))
        elif name == b"message_stop":
            self.complete = True
        elif name == b"error":
            self.error = True
        else:
            return
        self.usage = self.acc.result()


_USAGE_OBJECT = re.compile(rb'"usage"\s*:\s*\{')
_USAGE_NULL = re.compile(rb',\s*"usage"\s*:\s*null(?=\s*[,}])|"usage"\s*:\s*null\s*,\s*')
_ERROR_FIRST = re.compile(rb'\s*\{\s*"error"\s*:')


class ChatStream(_SSEMeter):
    """Chat Completions and legacy Completions streams."""

    def __init__(self, limit: int, strip: bool = False) -> None:
        super().__init__(limit, strip)
        self._first = True

    def on_event(self, name: bytes, data: bytes) -> None:
        if not data:
            return
        if data == b"[DONE]":
            self.complete = True
            return
        if self._first:
            self._first = False
            obj = loads(data)
            if isinstance(obj, dict):
                self._set_model(obj.get("model"))
        if _ERROR_FIRST.match(data):
            self.error = True
            return
        if b'"usage"' in data and _USAGE_OBJECT.search(data):
            obj = loads(data)
            if not isinstance(obj, dict):
                self.unreadable += 1
                return
            usage = openai_usage(obj.get("usage"))
            if usage is not None:
                self.usage = usage
                self._set_model(obj.get("model"))

    def on_oversize(self, name: bytes, head: bytes, tail: bytes) -> None:
        if b'"usage"' in tail:  # a huge final chunk that still carries the usage at its end
            usage = openai_usage(find_json_value(tail, "usage"))
            if usage is not None:
                self.usage = usage
                return
        if self._first:
            self._first = False
            self._set_model(find_json_value(head, "model", last=False))

    def rewrite(self, name: bytes, data: bytes, raw: bytes) -> bytes:
        if b'"usage"' not in data:
            return raw
        if _USAGE_OBJECT.search(data):
            obj = loads(data)
            if not isinstance(obj, dict):
                return raw
            if not obj.get("choices"):
                return b""  # the usage chunk the client did not ask for
            obj.pop("usage", None)
            return b"data: " + _dumps(obj) + b"\n\n"
        return _USAGE_NULL.sub(b"", raw, count=1)


class ResponsesStream(_SSEMeter):
    _FINAL: Final = (b"response.completed", b"response.incomplete", b"response.failed")

    def on_event(self, name: bytes, data: bytes) -> None:
        if not data:
            return
        if not name:
            name = sniff_type(data)
        if name in self._FINAL:
            obj = loads(data)
            response = obj.get("response") if isinstance(obj, dict) else None
            if not isinstance(response, dict):
                self.unreadable += 1
                return
            self.complete = True
            self.error = self.error or name == b"response.failed"
            self._set_model(response.get("model"))
            usage = openai_usage(response.get("usage"))
            if usage is not None:
                self.usage = usage
        elif name == b"response.created" and self.model is None:
            self._set_model(find_json_value(data[:HEAD], "model", last=False))
        elif name == b"error":
            self.error = True

    def on_oversize(self, name: bytes, head: bytes, tail: bytes) -> None:
        if not name:
            name = sniff_type(parse_block(head.split(b"\n\n", 1)[0])[1])
        if name in self._FINAL:
            self.complete = True
            self.error = self.error or name == b"response.failed"
            usage = openai_usage(find_json_value(tail, "usage"))
            if usage is not None:
                self.usage = usage
            else:
                self.unreadable += 1
            self._set_model(_response_model(head, tail))
        elif name == b"response.created" and self.model is None:
            self._set_model(_response_model(head, tail))


def _response_model(head: bytes, tail: bytes) -> Any:
    """The model of an oversize Responses event: the response object names it after its
    ``instructions``, so a long system prompt pushes it out of the head; the tail, which holds the
    event's last 64 KiB, then has it (a key inside a string cannot match: its quotes are escaped)."""
    return find_json_value(head, "model", last=False) or find_json_value(tail, "model", last=False)


class BodyMeter(Meter):
    """A non-streaming answer: passed through as it comes, a copy kept (up to ``limit``) to read
    ``model`` and ``usage`` at the end. A larger body keeps only its head and tail — OpenAI and
    Anthropic both write ``usage`` last, so a 100 MB embeddings answer is still metered."""

    def __init__(self, protocol: Protocol, limit: int) -> None:
        super().__init__()
        self.protocol = protocol
        self.limit = limit
        self._parts: list[bytes] | None = []
        self._size = 0
        self._head = b""
        self._tail = bytearray()

    def feed(self, chunk: bytes) -> bytes:
        self._size += len(chunk)
        if self._parts is not None:
            self._parts.append(chunk)
            if self._size > self.limit:
                whole = b"".join(self._parts)
                self._parts = None
                self._head = whole[:HEAD]
                self._tail = bytearray(whole[-TAIL:])
        else:
            self._tail += chunk
            if len(self._tail) > 2 * TAIL:
                del self._tail[:-TAIL]
        return chunk

    def finish(self) -> bytes:
        if self._parts is not None:
            obj = loads(b"".join(self._parts)) if self._parts else None
            self._parts = None
            if not isinstance(obj, dict):
                if self._size:
                    self.unreadable += 1
                return b""
            self._set_model(obj.get("model"))
            raw_usage = obj.get("usage")
            if obj.get("type") == "error" or "error" in obj and obj.get("error"):
                self.error = True
            if self.protocol == "responses" and obj.get("status") == "failed":
                self.error = True
        else:
            tail = bytes(self._tail)
            raw_usage = find_json_value(tail, "usage")
            self._set_model(find_json_value(tail, "model") or find_json_value(self._head, "model", last=False))
        self.complete = True
        self.usage = anthropic_usage(raw_usage) if self.protocol == "messages" else openai_usage(raw_usage)
        if self.usage is None and raw_usage is None and self._size and not self.error:
            self.unreadable += 1
        return b""


def make_meter(protocol: Protocol, streaming: bool, limit: int, *, strip: bool = False) -> Meter:
    if not streaming:
        return BodyMeter(protocol, limit)
    if protocol == "messages":
        return AnthropicStream(limit)
    if protocol == "responses":
        return ResponsesStream(limit)
    return ChatStream(limit, strip)
