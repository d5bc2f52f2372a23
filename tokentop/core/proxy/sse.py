"""Server-sent events read as they pass, without holding the stream back.

:class:`SSEStream` is fed the upstream's body chunk by chunk and returns what to send to the
client *now*:

* plain mode (``rewrite=None``): the chunk itself, at once and unchanged; a copy is split into
  events and handed to ``on_event`` for metering;
* rewrite mode: each complete event goes through ``rewrite`` (which may keep, change or drop it);
  only the bytes of an event still arriving are held, and only until its blank line arrives —
  which is also when an SSE client could first act on it, so nothing is delayed in practice.

Events are split on blank lines after normalising CRLF / CR line ends (a CR at a chunk's end is
held back so a CRLF split across two chunks is not read as two line ends). Work per chunk is
linear in the chunk: the search for the next blank line resumes where the last one stopped.

An event larger than ``limit`` is never held whole: it is passed through as it comes and handed
to ``on_oversize`` as its first :data:`HEAD` and last :data:`TAIL` bytes (enough to find a usage
record at the end of an OpenAI ``response.completed``).
"""

from __future__ import annotations

import json
import re
from typing import Any, Callable, Final

HEAD: Final = 4096
TAIL: Final = 64 * 1024

EventHandler = Callable[[bytes, bytes], None]
OversizeHandler = Callable[[bytes, bytes, bytes], None]
#: (event name, data, raw event bytes incl. the blank line) -> bytes to send
Rewriter = Callable[[bytes, bytes, bytes], bytes]


def parse_block(block: bytes) -> tuple[bytes, bytes]:
    """One event's lines (LF-separated) to (event name, data); data lines joined by LF."""
    if block.startswith(b"data:") and b"\n" not in block:  # the common one-line event
        data = block[5:]
        return b"", data[1:] if data[:1] == b" " else data
    name = b""
    data_lines: list[bytes] = []
    for line in block.split(b"\n"):
        if line.startswith(b"data:"):
            value = line[5:]
            data_lines.append(value[1:] if value[:1] == b" " else value)
        elif line.startswith(b"event:"):
            value = line[6:]
            name = value[1:] if value[:1] == b" " else value
    return name, b"\n".join(data_lines)


class SSEStream:
    def __init__(self, on_event: EventHandler, on_oversize: OversizeHandler, limit: int,
                 rewrite: Rewriter | None = None) -> None:
        self.on_event = on_event
        self.on_oversize = on_oversize
        self.limit = limit
        self.rewrite = rewrite
        self._buf = bytearray()
        self._scan = 0
        self._cr = False
        #: inside an oversize event: its head and its tail so far
        self._big_head: bytes | None = None
        self._big_tail = bytearray()
        self._big_last = b""
        self.oversize_events = 0

    def feed(self, chunk: bytes) -> bytes:
        data = chunk
        if self._cr:
            data = b"\r" + data
            self._cr = False
        if b"\r" in data:
            if data.endswith(b"\r"):
                data = data[:-1]
                self._cr = True
            data = data.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        out = self._process(data)
        return chunk if self.rewrite is None else out

    def finish(self) -> bytes:
        """End of stream: whatever is held (an unterminated last event) goes out as it is."""
        tail = b"\n" if self._cr else b""
        self._cr = False
        if self._big_head is not None:
            self._end_oversize(tail)
            return tail if self.rewrite is not None else b""
        rest = bytes(self._buf) + tail
        self._buf.clear()
        if rest.strip():
            name, data = parse_block(rest.rstrip(b"\n"))
            self.on_event(name, data)
        return rest if self.rewrite is not None else b""

    def _process(self, data: bytes) -> bytes:
        out = bytearray()
        while data:
            if self._big_head is not None:
                # inside an oversize event: pass bytes through until its blank line
                probe = self._big_last + data
                i = probe.find(b"\n\n")
                if i < 0:
                    self._big_tail += data
                    if len(self._big_tail) > 2 * TAIL:
                        del self._big_tail[:-TAIL]
                    self._big_last = data[-1:]
                    if self.rewrite is not None:
                        out += data
                    return bytes(out)
                end = i + 2 - len(self._big_last)  # index in data just after the blank line
                part, data = data[:end], data[end:]
                if self.rewrite is not None:
                    out += part
                self._end_oversize(part)
                continue
            buf = self._buf
            buf += data
            data = b""
            start = 0
            while True:
                i = buf.find(b"\n\n", max(self._scan - 1, start))
                if i < 0:
                    break
                block = bytes(buf[start:i])
                start = i + 2
                self._scan = start
                if not block.strip(b"\n"):
                    if self.rewrite is not None:
                        out += b"\n\n"
                    continue
                name, payload = parse_block(block.lstrip(b"\n"))
                self.on_event(name, payload)
                if self.rewrite is not None:
                    out += self.rewrite(name, payload, block + b"\n\n")
            if start:
                del buf[:start]
            self._scan = len(buf)
            if len(buf) > self.limit:
                # too big to hold: from here on this event passes through as it comes
                self.oversize_events += 1
                self._big_head = bytes(buf[:HEAD])
                self._big_tail = bytearray(buf[-TAIL:])
                self._big_last = bytes(buf[-1:])
                if self.rewrite is not None:
                    out += buf
                buf.clear()
                self._scan = 0
        return bytes(out)

    def _end_oversize(self, last_part: bytes) -> None:
        self._big_tail += last_part
        head = self._big_head or b""
        name, _ = parse_block(head.split(b"\n\n", 1)[0][:HEAD])
        self.on_oversize(name, head, bytes(self._big_tail[-TAIL:]))
        self._big_head = None
        self._big_tail = bytearray()
        self._big_last = b""


_WS = b" \t\r\n"


def find_json_value(data: bytes, key: str, *, last: bool = True) -> Any:
    """The JSON value of ``"key":`` in a fragment of a JSON document (the last occurrence by
    default), or ``None``. A key can only match where it is a key: inside a JSON string its quotes
    would be escaped."""
    pattern = f'"{key}"'.encode()
    pos = data.rfind(pattern) if last else data.find(pattern)
    decoder = json.JSONDecoder()
    while pos >= 0:
        i = pos + len(pattern)
        while i < len(data) and data[i] in _WS:
            i += 1
        if i < len(data) and data[i] == 58:  # ':'
            i += 1
            while i < len(data) and data[i] in _WS:
                i += 1
            try:
                value, _ = decoder.raw_decode(data[i:].decode("utf-8", "replace"))
                return value
            except ValueError:
                pass
        pos = data.rfind(pattern, 0, pos) if last else data.find(pattern, pos + 1)
    return None


_TYPE = re.compile(rb'"type"\s*:\s*"([A-Za-z0-9_.]+)"')


def sniff_type(data: bytes) -> bytes:
    """An event's ``type`` from the start of its JSON data (for streams without ``event:`` lines)."""
    m = _TYPE.search(data, 0, 200)
    return m.group(1) if m else b""
