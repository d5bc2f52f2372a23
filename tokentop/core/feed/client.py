"""Talking to a feed over HTTP/WebSocket: health, snapshots, posting events, the snapshot stream.

URLs are ``http://HOST:PORT`` or ``unix:/path`` (a Unix socket, mode 0600).
"""

from __future__ import annotations

import asyncio
import json
from typing import Any, AsyncIterator, Iterable

import httpx
import orjson

from tokentop.core.feed.stream import DeltaReader, StreamShape
from tokentop.core.snapshot import Snapshot


class FeedUnavailable(ConnectionError):
    """No feed answers at the URL."""


def _client_args(url: str) -> tuple[str, dict[str, Any]]:
    if url.startswith("unix:"):
        return "http://tokentop", {"transport": httpx.HTTPTransport(uds=url[5:])}
    if not url.startswith(("http://", "https://")):
        raise ValueError(f"feed URL must start with http://, https:// or unix:, got {url!r}")
    return url.rstrip("/"), {}


def _async_client_args(url: str) -> tuple[str, dict[str, Any]]:
    if url.startswith("unix:"):
        return "http://tokentop", {"transport": httpx.AsyncHTTPTransport(uds=url[5:])}
    return _client_args(url)


def ws_url(url: str, path: str) -> tuple[str, dict[str, Any]]:
    """WebSocket URL (and ``websockets.connect`` kwargs) for a feed path."""
    if url.startswith("unix:"):
        return f"ws://tokentop{path}", {"unix": True, "path": url[5:]}
    base = url.rstrip("/")
    return ("wss://" + base[8:] if base.startswith("https://") else "ws://" + base[7:]) + path, {}


class FeedClient:
    """Synchronous client (CLI commands)."""

    def __init__(self, url: str, *, token: str | None = None, timeout: float = 5.0) -> None:
        self.url = url
        base, kwargs = _client_args(url)
        headers = {"authorization": f"Bearer {token}"} if token else {}
        self._http = httpx.Client(base_url=base, timeout=timeout, headers=headers, **kwargs)

    def healthy(self) -> bool:
        try:
            r = self._http.get("/healthz", timeout=1.0)
            return r.status_code == 200 and r.json().get("service") == "tokentop"
        except (httpx.HTTPError, ValueError):
            return False

    def snapshot(self) -> Snapshot:
        return Snapshot.from_json(self._get_json("/v1/snapshot"))

    def snapshot_json(self) -> dict[str, Any]:
        return self._get_json("/v1/snapshot")

    def _get_json(self, path: str, **params: Any) -> Any:
        try:
            r = self._http.get(path, params=params or None)
        except httpx.HTTPError as exc:
            raise FeedUnavailable(f"no feed at {self.url}: {exc}") from exc
        r.raise_for_status()
        return r.json()

    def post_events(self, events: Iterable[dict[str, Any]]) -> dict[str, Any]:
        body = "\n".join(json.dumps(e, separators=(",", ":")) for e in events)
        try:
            r = self._http.post("/v1/events", content=body, headers={"content-type": "application/x-ndjson"})
        except httpx.HTTPError as exc:
            raise FeedUnavailable(f"no feed at {self.url}: {exc}") from exc
        try:
            data = r.json()
        except ValueError:
            data = {"error": r.text}
        data["status_code"] = r.status_code
        return data

    def post(self, path: str, payload: dict[str, Any] | None = None) -> httpx.Response:
        try:
            return self._http.post(path, json=payload or {})
        except httpx.HTTPError as exc:
            raise FeedUnavailable(f"no feed at {self.url}: {exc}") from exc

    def get(self, path: str, **params: Any) -> httpx.Response:
        try:
            return self._http.get(path, params=params or None)
        except httpx.HTTPError as exc:
            raise FeedUnavailable(f"no feed at {self.url}: {exc}") from exc

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> FeedClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


async def stream_snapshots(url: str, *, retry_s: float = 1.0,
                           shape: StreamShape | None = None) -> AsyncIterator[Snapshot | Exception]:
    """Snapshots from ``WS /v1/stream`` forever, reconnecting when the feed goes away.

    ``shape`` narrows the stream (only some views, compact series, delta frames; ``docs/api.md``); a
    feed too old to know the query sends the full snapshot, which decodes the same. Yields the exception
    (without raising) each time the connection fails, so a viewer can show "disconnected" and keep
    going; backs off up to 10 s between attempts.
    """
    import websockets

    target, kwargs = ws_url(url, "/v1/stream")
    query = shape.query() if shape is not None else ""
    if query:
        target += "?" + query
    delay = retry_s
    while True:
        try:
            async with websockets.connect(target, max_size=64 * 1024 * 1024, open_timeout=5, **kwargs) as ws:
                delay = retry_s
                reader = DeltaReader()  # reads v1 frames too (rows unchanged since the last frame are kept)
                async for message in ws:
                    data = orjson.loads(message)
                    if not isinstance(data, dict):
                        raise ValueError(f"a snapshot is a JSON object, got {type(data).__name__}")
                    yield reader.read(data)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # connection refused, reset, bad frame: report and retry
            yield exc
        await asyncio.sleep(delay)
        delay = min(delay * 2, 10.0)
