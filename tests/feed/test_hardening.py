"""Hostile input at the feed's doors, over real HTTP/WebSocket: deeply nested JSON and DNS rebinding."""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest
import websockets

DEEP = 50_000


def deep_arrays(n: int = DEEP) -> str:
    return "[" * n + "]" * n


def deep_objects(n: int = DEEP) -> str:
    return '{"a":' * n + "1" + "}" * n


def event(i: str) -> str:
    return json.dumps({"id": i, "agent": "x", "model": "gpt-5", "input_tokens": 100})


@pytest.mark.parametrize("deep", [deep_arrays, deep_objects], ids=["arrays", "objects"])
def test_deeply_nested_event_body_is_a_400_naming_the_problem(feed, deep) -> None:
    r = httpx.post(f"{feed.address}/v1/events", content=deep())
    assert r.status_code == 400
    (error,) = r.json()["errors"]
    assert "nested too deeply" in error["error"]
    assert httpx.get(f"{feed.address}/healthz").status_code == 200


@pytest.mark.parametrize("deep", [deep_arrays, deep_objects], ids=["arrays", "objects"])
def test_a_deeply_nested_ndjson_line_keeps_its_neighbours(feed, deep) -> None:
    body = "\n".join([event("n1"), deep(), event("n2"), event("n3")])
    r = httpx.post(f"{feed.address}/v1/events", content=body)
    assert r.status_code == 202
    data = r.json()
    assert (data["accepted"], data["rejected"]) == (3, 1)
    assert data["errors"][0]["line"] == 2 and "nested too deeply" in data["errors"][0]["error"]
    assert feed.snapshot().totals.requests_today == 3


@pytest.mark.parametrize("depth", [900, 1020, 5000])
@pytest.mark.parametrize("field", ["model", "input_tokens", "cost_usd", "unknown_field"])
def test_a_deeply_nested_value_inside_an_event_is_rejected_not_a_crash(feed, field, depth) -> None:
    """Parsers accept some depth; the value must still be refused cleanly (its error message must
    not try to print it whole) and the other events of the body kept."""
    body = '{"id": "v1", "agent": "x", "%s": %s}' % (field, deep_arrays(depth))
    r = httpx.post(f"{feed.address}/v1/events", content="\n".join([event("v0"), body, event("v2")]))
    assert r.status_code == 202, r.text
    data = r.json()
    assert data["accepted"] + data["rejected"] == 3 and data["accepted"] >= 2
    if data["rejected"]:
        assert data["errors"][0]["line"] == 2 and len(data["errors"][0]["error"]) < 300


async def test_deeply_nested_frames_on_the_publish_socket_are_answered(feed) -> None:
    url = feed.address.replace("http://", "ws://") + "/v1/publish"
    async with websockets.connect(url, max_size=None) as ws:
        for frame in (deep_arrays(), deep_objects(), '{"type": "hello", "x": ' + deep_arrays() + "}"):
            await ws.send(frame)
            answer = json.loads(await asyncio.wait_for(ws.recv(), 10))
            assert answer["type"] in ("ack", "error")
            assert "nested too deeply" in json.dumps(answer)
        await ws.send("\n".join([event("w1"), deep_arrays(), event("w2")]))
        ack = json.loads(await asyncio.wait_for(ws.recv(), 10))
        assert (ack["accepted"], ack["rejected"]) == (2, 1)


@pytest.mark.parametrize("signal", ["logs", "metrics", "traces"])
@pytest.mark.parametrize("deep", [deep_arrays, deep_objects], ids=["arrays", "objects"])
def test_deeply_nested_otlp_json_is_a_400(feed, signal, deep) -> None:
    r = httpx.post(f"{feed.address}/v1/{signal}", content=deep(), headers={"content-type": "application/json"})
    assert r.status_code == 400
    assert "nested too deeply" in r.json()["message"]
    # inside an otherwise valid export: an attribute value nested past the limit
    body = ('{"resourceLogs": [{"resource": {"attributes": [{"key": "k", "value": {"arrayValue": {"values": '
            + deep_arrays() + "}}}]}}]}")
    r = httpx.post(f"{feed.address}/v1/{signal}", content=body, headers={"content-type": "application/json"})
    assert r.status_code == 400


def test_deeply_nested_control_body_is_a_400(feed) -> None:
    headers = {"authorization": f"Bearer {feed.token}"}
    r = httpx.post(f"{feed.address}/v1/sessions/s1/process", content=deep_arrays(2000), headers=headers)
    assert r.status_code == 400 and "nested too deeply" in r.json()["error"]


# -- DNS rebinding: the Host header ---------------------------------------------------------------

def port_of(feed) -> int:
    return int(feed.address.rsplit(":", 1)[1])


def start(tmp_path, listen: str = "127.0.0.1:0", **feed_section):
    from tokentop import config as config_mod
    from tokentop.core.feed.runner import FeedRunner

    cfg = config_mod.from_mapping({"ledger": {"path": str(tmp_path / "l.db")}, "feed": feed_section})
    return FeedRunner(cfg, listen=listen, host_name="h").start_in_thread(require_listen=True)


@pytest.mark.parametrize("method,path", [("GET", "/v1/snapshot"), ("GET", "/v1/requests"), ("GET", "/healthz"),
                                         ("POST", "/v1/events"), ("POST", "/v1/logs"), ("GET", "/nowhere")])
def test_a_foreign_host_is_refused_before_routing(feed, method, path) -> None:
    """A page at evil.example that rebinds its name to 127.0.0.1 sends Host: evil.example:PORT."""
    r = httpx.request(method, f"{feed.address}{path}", headers={"host": f"evil.example:{port_of(feed)}"},
                      content=event("e1") if method == "POST" else None)
    assert r.status_code == 403
    error = r.json()["error"]
    assert "evil.example" in error and "allowed_hosts" in error
    assert feed.snapshot().totals.requests_today == 0


def test_a_rebound_page_cannot_read_the_snapshot(feed) -> None:
    httpx.post(f"{feed.address}/v1/events", content=json.dumps({"id": "s1", "agent": "secret-agent", "project": "p"}))
    r = httpx.get(f"{feed.address}/v1/snapshot", headers={"host": "attacker.test"})
    assert r.status_code == 403 and "secret-agent" not in r.text


@pytest.mark.parametrize("path", ["/v1/stream", "/v1/publish"])
async def test_a_foreign_host_websocket_is_refused(feed, path) -> None:
    port = port_of(feed)
    # the URL's name goes in the Host header; the connection itself goes to 127.0.0.1 (a rebound name)
    with pytest.raises(websockets.exceptions.InvalidStatus) as info:
        async with websockets.connect(f"ws://evil.example:{port}{path}", host="127.0.0.1", port=port):
            pass
    assert info.value.response.status_code == 403
    assert b"allowed_hosts" in info.value.response.body


@pytest.mark.parametrize("host", ["localhost:{port}", "LOCALHOST.:{port}", "127.0.0.1:{port}", "127.0.0.1",
                                  "[::1]:{port}", "192.0.2.7:{port}", "[2001:db8::1]:{port}"])
def test_loopback_names_and_ip_addresses_are_answered(feed, host) -> None:
    r = httpx.get(f"{feed.address}/v1/snapshot", headers={"host": host.format(port=port_of(feed))})
    assert r.status_code == 200


def test_configured_names_are_answered_and_only_they(tmp_path) -> None:
    runner = start(tmp_path, allowed_hosts=["tokentop.lan", "*.corp.example"])
    try:
        url = f"{runner.address}/healthz"
        for host, code in (("tokentop.lan:7411", 200), ("TOKENTOP.LAN", 200), ("box-1.corp.example:7411", 200),
                           ("corp.example", 403), ("tokentop.lan.evil.example", 403), ("evil.example", 403)):
            assert httpx.get(url, headers={"host": host}).status_code == code, host
    finally:
        runner.stop()
    runner = start(tmp_path, allowed_hosts=["*"])
    try:
        assert httpx.get(f"{runner.address}/healthz", headers={"host": "anything.example"}).status_code == 200
    finally:
        runner.stop()


def test_allowed_hosts_must_be_a_list_of_names() -> None:
    from tokentop import config as config_mod
    from tokentop.config import ConfigError

    with pytest.raises(ConfigError, match="feed.allowed_hosts"):
        config_mod.from_mapping({"feed": {"allowed_hosts": "tokentop.lan"}})


def _lan_address() -> str | None:
    import socket

    import psutil

    for addrs in psutil.net_if_addrs().values():
        for a in addrs:
            if a.family == socket.AF_INET and not a.address.startswith("127."):
                return a.address
    return None


def test_a_feed_listening_on_the_network_answers_its_address_and_names(tmp_path) -> None:
    lan = _lan_address()
    if lan is None:
        pytest.skip("no non-loopback IPv4 address on this machine")
    runner = start(tmp_path, listen="0.0.0.0:0", allowed_hosts=["tokentop.lan"])
    try:
        port = port_of(runner)
        base = f"http://{lan}:{port}"
        assert httpx.get(f"{base}/healthz").status_code == 200  # Host: <its address>:<port>
        assert httpx.get(f"{base}/healthz", headers={"host": f"tokentop.lan:{port}"}).status_code == 200
        assert httpx.get(f"{base}/v1/snapshot", headers={"host": f"evil.example:{port}"}).status_code == 403
    finally:
        runner.stop()


def test_a_feed_listening_on_a_name_answers_that_name(tmp_path) -> None:
    from tokentop.core.feed.runner import listen_name_allowed
    from tokentop.core.feed.server import FeedSettings

    assert listen_name_allowed(FeedSettings(), "tokentop.lan:7411").allowed_hosts == ("tokentop.lan",)
    assert listen_name_allowed(FeedSettings(), "0.0.0.0:7411").allowed_hosts == ()
    assert listen_name_allowed(FeedSettings(), "unix:/tmp/x.sock").allowed_hosts == ()
    runner = start(tmp_path, listen="localhost:0")
    try:
        assert httpx.get(f"http://localhost:{port_of(runner)}/healthz").status_code == 200
    finally:
        runner.stop()


def test_unix_socket_requests_are_not_checked(tmp_path) -> None:
    from tokentop.core.feed.client import FeedClient

    sock = tmp_path / "feed.sock"
    runner = start(tmp_path, listen=f"unix:{sock}")
    try:
        with httpx.Client(transport=httpx.HTTPTransport(uds=str(sock))) as http:
            assert http.get("http://evil.example/healthz").status_code == 200
        with FeedClient(f"unix:{sock}") as client:
            assert client.post_events([{"id": "u1", "agent": "a"}])["accepted"] == 1
            assert client.snapshot().totals.requests_today == 1
    finally:
        runner.stop()


def test_tokentops_own_clients_still_work(tmp_path) -> None:
    """The feed client, the emitter, the stream and `tokentop --feed` over http://127.0.0.1, an
    ssh-tunnel-like http://localhost:PORT, and a unix socket."""
    import os
    import subprocess
    import sys

    from tokentop.client import Emitter
    from tokentop.core.feed.client import FeedClient, stream_snapshots

    tcp = start(tmp_path)
    sock = tmp_path / "feed.sock"
    (tmp_path / "u").mkdir()
    unix = start(tmp_path / "u", listen=f"unix:{sock}")
    try:
        port = port_of(tcp)
        for i, url in enumerate((tcp.address, f"http://localhost:{port}", f"unix:{sock}")):
            with FeedClient(url) as client:
                assert client.healthy(), url
                assert client.post_events([{"id": f"c{i}", "agent": "client"}])["accepted"] == 1
            with Emitter(agent="emitter", session=f"s{i}", feed=url) as em:
                assert em.emit(model="gpt-5", input_tokens=10)
                assert em.flush(5), url
            assert em.sent == 1 and em.dropped == 0

            async def first_snapshot(url: str = url):
                async for item in stream_snapshots(url):
                    return item

            snap = asyncio.run(asyncio.wait_for(first_snapshot(), 10))
            assert not isinstance(snap, Exception), (url, snap)
            r = subprocess.run([sys.executable, "-m", "tokentop", "--feed", url, "--once", "--json"],
                               capture_output=True, text=True, timeout=30, env=os.environ.copy())
            assert r.returncode == 0, r.stderr
            assert json.loads(r.stdout)["totals"]["requests_today"] >= 2, url
    finally:
        tcp.stop()
        unix.stop()
