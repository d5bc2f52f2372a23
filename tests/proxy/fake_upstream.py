"""A fake OpenAI + Anthropic API: a real uvicorn server on 127.0.0.1 speaking both protocols as
documented (Chat Completions, legacy Completions, Responses, Embeddings, Messages, count_tokens,
models), streaming (SSE with the providers' event sequences and usage records) and not.

Behaviour per request, from headers the test sends (the proxy forwards them):

* ``x-fake: error-400|error-401|error-429|error-500|error-529`` — a provider-shaped error;
* ``x-fake: drop`` — a stream that breaks off (connection closed) after ``x-fake-drop-after`` events;
* ``x-fake: gzip`` — a gzip-compressed answer whatever the client accepts;
* ``x-fake: hang`` — sleep ``x-fake-delay`` seconds before answering at all;
* ``x-fake: big`` — a non-streaming answer padded to ``x-fake-size`` bytes (usage at the end);
* ``x-fake-first-delay`` / ``x-fake-chunk-delay`` — seconds before the first event / between events.

Every request is recorded (:class:`Seen`: method, path, query, headers, body); a stream records
whether it finished or its client (the proxy) went away.

Run alone (for the bench): ``python tests/proxy/fake_upstream.py [--port N]`` prints its URL.
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import json
import socket
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import uvicorn

TEXT = "Hello from the fake upstream: streamed text must arrive intact, word by word, ünïcödé included."
WORDS = [w + " " for w in TEXT.split(" ")[:-1]] + [TEXT.split(" ")[-1]]

#: Usage the fake reports (tests compare events with these).
OPENAI_USAGE = {
    "prompt_tokens": 1200, "completion_tokens": 300, "total_tokens": 1500,
    "prompt_tokens_details": {"cached_tokens": 1000, "audio_tokens": 0},
    "completion_tokens_details": {"reasoning_tokens": 120, "audio_tokens": 0,
                                  "accepted_prediction_tokens": 0, "rejected_prediction_tokens": 0},
}
RESPONSES_USAGE = {
    "input_tokens": 2200, "input_tokens_details": {"cached_tokens": 2000},
    "output_tokens": 410, "output_tokens_details": {"reasoning_tokens": 256}, "total_tokens": 2610,
}
EMBEDDINGS_USAGE = {"prompt_tokens": 8, "total_tokens": 8}
ANTHROPIC_START_USAGE = {
    "input_tokens": 3, "cache_creation_input_tokens": 2849, "cache_read_input_tokens": 9493,
    "cache_creation": {"ephemeral_5m_input_tokens": 0, "ephemeral_1h_input_tokens": 2849},
    "output_tokens": 1, "service_tier": "standard",
}
ANTHROPIC_FINAL_OUTPUT = 527
OPENAI_MODEL = "gpt-5-2025-08-07"
ANTHROPIC_MODEL = "claude-sonnet-4-5-20250929"
EMBEDDING_MODEL = "text-embedding-3-small"


@dataclass
class Seen:
    method: str
    path: str
    query: str
    headers: dict[str, str]
    raw_headers: list[tuple[bytes, bytes]]
    body: bytes
    stream_state: str | None = None  # "finished" | "client-gone" | "dropped"
    first_sent_at: float | None = None
    finished_at: float | None = None

    def json(self) -> Any:
        return json.loads(self.body) if self.body else None


@dataclass
class FakeUpstream:
    seen: list[Seen] = field(default_factory=list)

    def last(self, path: str | None = None) -> Seen:
        for s in reversed(self.seen):
            if path is None or s.path == path:
                return s
        raise AssertionError(f"the fake upstream saw no request for {path}")

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while True:
                msg = await receive()
                if msg["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                else:
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        if scope["type"] != "http":
            return
        body = b""
        while True:
            msg = await receive()
            if msg["type"] == "http.disconnect":
                return
            body += msg.get("body", b"")
            if not msg.get("more_body"):
                break
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        seen = Seen(scope["method"], scope["path"], scope["query_string"].decode(), headers, list(scope["headers"]), body)
        self.seen.append(seen)
        await Handler(self, seen, receive, send).run()


class Handler:
    def __init__(self, api: FakeUpstream, seen: Seen, receive: Any, send: Any) -> None:
        self.api = api
        self.seen = seen
        self.receive = receive
        self.send = send
        h = seen.headers
        self.mode = h.get("x-fake", "")
        self.first_delay = float(h.get("x-fake-first-delay", "0"))
        self.chunk_delay = float(h.get("x-fake-chunk-delay", "0"))
        self.drop_after = int(h.get("x-fake-drop-after", "3"))
        self.anthropic = seen.path.startswith("/v1/messages")
        self.request_id = ("req_011C" if self.anthropic else "req_") + uuid.uuid4().hex[:24]

    async def run(self) -> None:
        s = self.seen
        if self.mode == "hang":
            await asyncio.sleep(float(s.headers.get("x-fake-delay", "5")))
        if self.mode.startswith("error-"):
            await self.error(int(self.mode[6:]))
            return
        try:
            req = s.json() if s.body else {}
        except ValueError:
            await self.error(400, "We could not parse the JSON body of your request.")
            return
        path = s.path.rstrip("/")
        if s.method == "GET" and path.endswith("/v1/models"):
            await self.json_answer({"object": "list", "data": [{"id": OPENAI_MODEL, "object": "model", "owned_by": "openai"}]})
        elif path.endswith("/chat/completions"):
            await (self.chat_stream(req) if req.get("stream") else self.json_answer(self.chat(req)))
        elif path.endswith("/v1/completions"):
            await (self.completion_stream(req) if req.get("stream") else self.json_answer(self.completion(req)))
        elif path.endswith("/responses"):
            await (self.responses_stream(req) if req.get("stream") else self.json_answer(self.response(req, "completed")))
        elif path.endswith("/embeddings"):
            await self.json_answer(self.embeddings(req))
        elif path.endswith("/messages/count_tokens"):
            await self.json_answer({"input_tokens": 42})
        elif path.endswith("/messages"):
            await (self.messages_stream(req) if req.get("stream") else self.json_answer(self.message(req)))
        else:
            await self.error(404, f"Unknown request URL: {s.method} {s.path}")

    # -- plumbing -------------------------------------------------------------------------------
    def base_headers(self, ctype: bytes) -> list[tuple[bytes, bytes]]:
        rid = b"request-id" if self.anthropic else b"x-request-id"
        return [(b"content-type", ctype), (rid, self.request_id.encode()), (b"x-fake-upstream", b"1"),
                (b"keep-alive", b"timeout=30")]

    async def json_answer(self, obj: dict, status: int = 200) -> None:
        raw = json.dumps(obj).encode()
        if self.mode == "big":
            size = int(self.seen.headers.get("x-fake-size", "0"))
            # pad before "usage" (as a real answer's data list would be)
            obj = {"object": obj.get("object"), "padding": "x" * max(0, size - len(raw)), **{k: v for k, v in obj.items() if k != "object"}}
            raw = json.dumps(obj).encode()
        headers = self.base_headers(b"application/json")
        if self.mode == "gzip":
            raw = gzip.compress(raw)
            headers.append((b"content-encoding", b"gzip"))
        headers.append((b"content-length", str(len(raw)).encode()))
        await self.send({"type": "http.response.start", "status": status, "headers": headers})
        if len(raw) <= 64 * 1024:  # a small answer comes in one piece, as from a real API
            await self.send({"type": "http.response.body", "body": raw, "more_body": False})
            return
        # a large one in a few pieces, as a network would deliver it
        step = len(raw) // 3
        for i in range(0, len(raw), step):
            await self.send({"type": "http.response.body", "body": raw[i:i + step], "more_body": True})
        await self.send({"type": "http.response.body", "body": b"", "more_body": False})

    async def error(self, status: int, message: str | None = None) -> None:
        if self.anthropic:
            kinds = {400: "invalid_request_error", 401: "authentication_error", 404: "not_found_error",
                     429: "rate_limit_error", 500: "api_error", 529: "overloaded_error"}
            text = message or {401: "invalid x-api-key", 429: "Number of request tokens has exceeded your per-minute rate limit",
                               529: "Overloaded"}.get(status, f"fake error {status}")
            body = {"type": "error", "error": {"type": kinds.get(status, "api_error"), "message": text},
                    "request_id": self.request_id}
        else:
            kinds2 = {400: ("invalid_request_error", None), 401: ("invalid_request_error", "invalid_api_key"),
                      404: ("invalid_request_error", None), 429: ("requests", "rate_limit_exceeded"),
                      500: ("server_error", None)}
            kind, code = kinds2.get(status, ("server_error", None))
            text = message or {401: "Incorrect API key provided.", 429: "Rate limit reached for requests",
                               500: "The server had an error while processing your request."}.get(status, f"fake error {status}")
            body = {"error": {"message": text, "type": kind, "param": None, "code": code}}
        await self.json_answer(body, status)

    async def sse(self, events: list[tuple[str | None, Any]]) -> None:
        """Send ``events`` ((event name or None, data object or raw string)), honouring delays,
        drop and client-gone."""
        headers = self.base_headers(b"text/event-stream; charset=utf-8") + [(b"cache-control", b"no-cache")]
        if self.mode == "gzip":
            headers.append((b"content-encoding", b"gzip"))
        await self.send({"type": "http.response.start", "status": 200, "headers": headers})
        gone = asyncio.Event()

        async def watch() -> None:
            while (await self.receive())["type"] != "http.disconnect":
                pass
            gone.set()

        watcher = asyncio.get_running_loop().create_task(watch())
        compressor = None
        if self.mode == "gzip":
            import zlib
            compressor = zlib.compressobj(wbits=16 + zlib.MAX_WBITS)
        try:
            for i, (name, data) in enumerate(events):
                delay = self.first_delay if i == 0 else self.chunk_delay
                if delay:
                    try:
                        await asyncio.wait_for(gone.wait(), delay)
                    except asyncio.TimeoutError:
                        pass
                if gone.is_set():
                    self.seen.stream_state = "client-gone"
                    return
                if self.mode == "drop" and i == self.drop_after:
                    self.seen.stream_state = "dropped"
                    raise ConnectionAbortedError("fake upstream breaks off the stream")
                text = data if isinstance(data, str) else json.dumps(data, separators=(",", ":"))
                chunk = (f"event: {name}\n" if name else "") + f"data: {text}\n\n"
                raw = chunk.encode()
                if compressor is not None:
                    raw = compressor.compress(raw) + compressor.flush(2)  # Z_SYNC_FLUSH: each event readable
                await self.send({"type": "http.response.body", "body": raw, "more_body": True})
                if self.seen.first_sent_at is None:
                    self.seen.first_sent_at = time.monotonic()
            tail = compressor.flush() if compressor is not None else b""
            await self.send({"type": "http.response.body", "body": tail, "more_body": False})
            self.seen.stream_state = "finished"
            self.seen.finished_at = time.monotonic()
        finally:
            watcher.cancel()

    # -- OpenAI ---------------------------------------------------------------------------------
    def chat(self, req: dict) -> dict:
        return {
            "id": "chatcmpl-" + uuid.uuid4().hex[:20], "object": "chat.completion", "created": int(time.time()),
            "model": OPENAI_MODEL, "system_fingerprint": "fp_fake",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": TEXT, "refusal": None, "annotations": []},
                         "logprobs": None, "finish_reason": "stop"}],
            "usage": OPENAI_USAGE, "service_tier": "default",
        }

    async def chat_stream(self, req: dict) -> None:
        include = bool((req.get("stream_options") or {}).get("include_usage"))
        cid, created = "chatcmpl-" + uuid.uuid4().hex[:20], int(time.time())

        def chunk(delta: dict, finish: str | None = None) -> dict:
            c = {"id": cid, "object": "chat.completion.chunk", "created": created, "model": OPENAI_MODEL,
                 "service_tier": "default", "system_fingerprint": "fp_fake",
                 "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]}
            if include:
                c["usage"] = None
            return c

        events: list[tuple[str | None, Any]] = [(None, chunk({"role": "assistant", "content": "", "refusal": None}))]
        events += [(None, chunk({"content": w})) for w in WORDS]
        events.append((None, chunk({}, "stop")))
        if include:
            events.append((None, {"id": cid, "object": "chat.completion.chunk", "created": created, "model": OPENAI_MODEL,
                                  "service_tier": "default", "system_fingerprint": "fp_fake", "choices": [], "usage": OPENAI_USAGE}))
        events.append((None, "[DONE]"))
        await self.sse(events)

    def completion(self, req: dict) -> dict:
        return {"id": "cmpl-" + uuid.uuid4().hex[:20], "object": "text_completion", "created": int(time.time()),
                "model": "gpt-3.5-turbo-instruct", "choices": [{"text": TEXT, "index": 0, "logprobs": None, "finish_reason": "stop"}],
                "usage": {"prompt_tokens": 5, "completion_tokens": 7, "total_tokens": 12}}

    async def completion_stream(self, req: dict) -> None:
        include = bool((req.get("stream_options") or {}).get("include_usage"))
        base = {"id": "cmpl-x", "object": "text_completion", "created": int(time.time()), "model": "gpt-3.5-turbo-instruct"}
        events: list[tuple[str | None, Any]] = [
            (None, {**base, "choices": [{"text": w, "index": 0, "logprobs": None, "finish_reason": None}], **({"usage": None} if include else {})})
            for w in WORDS
        ]
        if include:
            events.append((None, {**base, "choices": [], "usage": {"prompt_tokens": 5, "completion_tokens": 7, "total_tokens": 12}}))
        events.append((None, "[DONE]"))
        await self.sse(events)

    def response(self, req: dict, status: str, usage: bool = True) -> dict:
        return {
            "id": "resp_" + uuid.uuid4().hex, "object": "response", "created_at": int(time.time()), "status": status,
            "background": False, "error": None, "incomplete_details": None, "instructions": req.get("instructions"),
            "max_output_tokens": None, "model": OPENAI_MODEL,
            "output": [] if status != "completed" else [{
                "id": "msg_" + uuid.uuid4().hex, "type": "message", "status": "completed", "role": "assistant",
                "content": [{"type": "output_text", "text": TEXT, "annotations": [], "logprobs": []}]}],
            "parallel_tool_calls": True, "previous_response_id": None, "reasoning": {"effort": "medium", "summary": None},
            "store": True, "temperature": 1.0, "text": {"format": {"type": "text"}, "verbosity": "medium"},
            "tool_choice": "auto", "tools": [], "top_p": 1.0, "truncation": "disabled",
            "usage": RESPONSES_USAGE if usage else None, "user": None, "metadata": {},
        }

    async def responses_stream(self, req: dict) -> None:
        seq = iter(range(10_000))
        created = self.response(req, "in_progress", usage=False)
        item_id = "msg_" + uuid.uuid4().hex
        events: list[tuple[str | None, Any]] = [
            ("response.created", {"type": "response.created", "sequence_number": next(seq), "response": created}),
            ("response.in_progress", {"type": "response.in_progress", "sequence_number": next(seq), "response": created}),
            ("response.output_item.added", {"type": "response.output_item.added", "sequence_number": next(seq), "output_index": 0,
                                            "item": {"id": item_id, "type": "message", "status": "in_progress", "role": "assistant", "content": []}}),
            ("response.content_part.added", {"type": "response.content_part.added", "sequence_number": next(seq), "item_id": item_id,
                                             "output_index": 0, "content_index": 0,
                                             "part": {"type": "output_text", "text": "", "annotations": [], "logprobs": []}}),
        ]
        events += [("response.output_text.delta", {"type": "response.output_text.delta", "sequence_number": next(seq), "item_id": item_id,
                                                   "output_index": 0, "content_index": 0, "delta": w, "logprobs": []}) for w in WORDS]
        done = self.response(req, "completed")
        done["id"] = created["id"]
        done["output"][0]["id"] = item_id
        part = {"type": "output_text", "text": TEXT, "annotations": [], "logprobs": []}
        events += [
            ("response.output_text.done", {"type": "response.output_text.done", "sequence_number": next(seq), "item_id": item_id,
                                           "output_index": 0, "content_index": 0, "text": TEXT, "logprobs": []}),
            ("response.content_part.done", {"type": "response.content_part.done", "sequence_number": next(seq), "item_id": item_id,
                                            "output_index": 0, "content_index": 0, "part": part}),
            ("response.output_item.done", {"type": "response.output_item.done", "sequence_number": next(seq), "output_index": 0,
                                           "item": done["output"][0]}),
            ("response.completed", {"type": "response.completed", "sequence_number": next(seq), "response": done}),
        ]
        await self.sse(events)

    def embeddings(self, req: dict) -> dict:
        inputs = req.get("input")
        n = len(inputs) if isinstance(inputs, list) else 1
        return {"object": "list", "data": [{"object": "embedding", "index": i, "embedding": [0.0023, -0.0093, 0.0157]} for i in range(n)],
                "model": EMBEDDING_MODEL, "usage": EMBEDDINGS_USAGE}

    # -- Anthropic ------------------------------------------------------------------------------
    def message(self, req: dict) -> dict:
        return {"id": "msg_01" + uuid.uuid4().hex[:22], "type": "message", "role": "assistant", "model": ANTHROPIC_MODEL,
                "content": [{"type": "text", "text": TEXT}], "stop_reason": "end_turn", "stop_sequence": None,
                "usage": {**ANTHROPIC_START_USAGE, "output_tokens": ANTHROPIC_FINAL_OUTPUT}}

    async def messages_stream(self, req: dict) -> None:
        msg = self.message(req)
        start = {**msg, "content": [], "stop_reason": None, "usage": ANTHROPIC_START_USAGE}
        events: list[tuple[str | None, Any]] = [
            ("message_start", {"type": "message_start", "message": start}),
            ("content_block_start", {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
            ("ping", {"type": "ping"}),
        ]
        events += [("content_block_delta", {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": w}})
                   for w in WORDS]
        events += [
            ("content_block_stop", {"type": "content_block_stop", "index": 0}),
            ("message_delta", {"type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                               "usage": {"output_tokens": ANTHROPIC_FINAL_OUTPUT}}),
            ("message_stop", {"type": "message_stop"}),
        ]
        await self.sse(events)


class FakeServer:
    """Runs a :class:`FakeUpstream` with uvicorn on a free 127.0.0.1 port in a thread."""

    def __init__(self, api: FakeUpstream | None = None, port: int = 0) -> None:
        self.api = api or FakeUpstream()
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock.bind(("127.0.0.1", port))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        config = uvicorn.Config(self.api, log_level="critical", access_log=False, lifespan="off",
                                timeout_graceful_shutdown=1, log_config=None, timeout_keep_alive=60)
        self.server = uvicorn.Server(config)
        self.server.install_signal_handlers = lambda: None  # type: ignore[method-assign]
        self.thread = threading.Thread(target=lambda: asyncio.run(self.server.serve(sockets=[self.sock])), daemon=True)

    def start(self) -> FakeServer:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if time.monotonic() > deadline:
                raise TimeoutError("fake upstream did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)
        self.sock.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    server = FakeServer(port=args.port)
    print(server.url, flush=True)
    asyncio.run(server.server.serve(sockets=[server.sock]))


if __name__ == "__main__":
    main()
