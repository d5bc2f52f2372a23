"""Team-mode command-line glue: ``serve --nats/--fleet``, ``tokentop --nats`` and remote control.

Kept out of ``serve.py``/``top.py`` so those stay about their own jobs; they call in here only when a
``--nats``/``--fleet`` flag is given.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from tokentop.config import Config

if TYPE_CHECKING:
    from tokentop.core.control.port import Controller
    from tokentop.core.feed.runner import FeedRunner

FLEET_LISTEN = "127.0.0.1:7412"


def add_serve_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--nats", metavar="URL", help="publish every accepted event to NATS JetStream at URL (team mode)")
    p.add_argument("--fleet", action="store_true",
                   help=f"serve the fleet view instead: every host's events from NATS (default listen {FLEET_LISTEN})")


def nats_url(args: argparse.Namespace, cfg: Config) -> str:
    return getattr(args, "nats", None) or cfg.nats.url


def build_serve_runner(args: argparse.Namespace, cfg: Config) -> FeedRunner | None:
    """The runner for ``serve`` with team flags, or None when none is given (plain feed)."""
    if not getattr(args, "nats", None) and not getattr(args, "fleet", False):
        return None
    url = nats_url(args, cfg)
    if not url:
        raise ValueError("--fleet needs a NATS server: --nats nats://HOST:PORT or [nats] url")
    from tokentop.core.team.settings import NatsSettings

    settings = NatsSettings.from_config(cfg, url=url)
    settings.connect_options()  # ValueError naming a missing credential file
    if args.fleet:
        from tokentop.core.team.fleet_feed import FleetBusy, build_fleet_runner

        try:
            runner = build_fleet_runner(cfg, url=url, listen=args.listen or FLEET_LISTEN)
        except FleetBusy as exc:
            raise ValueError(str(exc)) from None
        fleet = runner.parts.fleet
        assert fleet is not None  # FLEET_FEED has the consumer
        print(f"tokentop: fleet view of NATS {settings.redacted_url()}: stream {settings.stream}, "
              f"durable consumer {fleet.consumer}", file=sys.stderr)
        return runner
    from tokentop.core.feed.runner import FeedRunner

    runner = FeedRunner(cfg, listen=args.listen, host_name=args.host_name, nats=settings)
    if runner.parts.nats_error is not None:
        runner.ledger.close()
        raise ValueError(runner.parts.nats_error)
    publisher = runner.parts.publisher
    assert publisher is not None  # a URL and usable credentials: the team part publishes
    print(f"tokentop: publishing accepted events to NATS {settings.redacted_url()} as {publisher.subject} "
          f"(stream {settings.stream}); remote control {'allowed' if settings.allow_remote_control else 'refused'}",
          file=sys.stderr)
    return runner


def run_fleet_view(args: argparse.Namespace, cfg: Config, view: Callable[..., int], *, catch_up_s: float = 10.0) -> int:
    """``tokentop --nats URL``: start an embedded fleet feed and run the live view on it:
    ``view(args, controller=...)`` with :func:`fleet_view_controller`, so the kill modal reaches
    each session's own host (``view(args)`` for ``--once``, which acts on nothing)."""
    from tokentop.commands._common import feed_url
    from tokentop.core.team.fleet_feed import build_fleet_runner

    url = args.nats
    local_feed = feed_url(args, cfg)  # this host's own feed: its sessions are acted on there

    try:
        runner = build_fleet_runner(cfg, url=args.nats, listen="127.0.0.1:0", private_if_busy=True)
    except ValueError as exc:
        print(f"tokentop: {exc}", file=sys.stderr)
        return 2
    fleet = runner.parts.fleet
    assert fleet is not None  # FLEET_FEED has the consumer
    if fleet.private:
        print("tokentop: another fleet view on this machine uses the fleet ledger; this one keeps its own "
              "in memory (it reads the stream's retention window first)", file=sys.stderr)
    runner.start_in_thread(require_listen=True)
    try:
        deadline = time.monotonic() + catch_up_s
        while not fleet.caught_up.is_set() and time.monotonic() < deadline:
            time.sleep(0.05)  # show a current fleet, not the first batch of a backlog
        if not fleet.caught_up.is_set():
            print(f"tokentop: fleet view not caught up after {catch_up_s:.0f} s "
                  f"({fleet.last_error or 'still reading'}); showing what arrived", file=sys.stderr)
        args.feed = runner.address
        args.nats = None
        if getattr(args, "once", False):
            return view(args)
        return view(args, controller=fleet_view_controller(cfg, url, local_feed))
    finally:
        runner.stop()


def fleet_view_controller(cfg: Config, url: str, local_feed_url: str) -> Controller:
    """The fleet view's controller: this host's sessions through its own feed's control API (local
    token, local rules), every other host's over NATS request/reply (:func:`remote_controller`).

    Not the fleet feed's own control: that feed only reads the stream and knows no process."""
    from tokentop.core.control.controller import build_controller

    return remote_controller(cfg, url, local=build_controller(url=local_feed_url))


# -- kill | pause | resume SESSION --nats URL ---------------------------------------------------------

def add_remote_control_arguments(p: argparse.ArgumentParser) -> None:
    """``--nats``/``--host`` on the control layer's pause/resume/kill commands."""
    p.add_argument("--nats", metavar="URL", default=None,
                   help="reach the session's host through NATS (team mode; [nats] url when set)")
    p.add_argument("--host", metavar="NAME", default=None,
                   help="with --nats: the session's host (default: looked up in the fleet view)")


def wants_remote(args: argparse.Namespace) -> bool:
    return bool(getattr(args, "nats", None) or getattr(args, "host", None))


def lookup_session(args: argparse.Namespace, cfg: Config) -> tuple[str | None, int | None]:
    """(host, pid) of a session: from ``--feed`` (a fleet feed) if given, else the local fleet ledger."""
    feed = getattr(args, "feed", None)
    if feed:
        from tokentop.core.feed.client import FeedClient

        try:
            with FeedClient(feed) as client:
                for row in client.snapshot().sessions:
                    if row.key == args.session:
                        return row.host, row.pid
        except Exception:  # noqa: BLE001 - fall back to the ledger
            pass
    from tokentop.core.team.fleet_feed import fleet_ledger_path
    from tokentop.core.team.settings import NatsSettings

    path = fleet_ledger_path(cfg, NatsSettings.from_config(cfg))
    if not Path(path).exists():
        return None, None
    from tokentop.core.ledger import Ledger

    with Ledger(path) as ledger:
        row = ledger.call(lambda c: c.execute(
            "SELECT host, pid FROM events WHERE session = ? ORDER BY ts DESC LIMIT 1", (args.session,)).fetchone())
    return (row[0], row[1]) if row else (None, None)


def run_remote_control(args: argparse.Namespace, cfg: Config, action: str, signal: str | None = None) -> int:
    import asyncio

    from tokentop.core.control.port import Target
    from tokentop.core.team.control import RemoteController
    from tokentop.core.team.settings import NatsSettings

    settings = NatsSettings.from_config(cfg, url=nats_url(args, cfg))
    if not settings.servers:
        print("tokentop: no NATS server: --nats nats://HOST:PORT or [nats] url", file=sys.stderr)
        return 2
    host, pid = args.host, args.pid
    if host is None:
        host, found_pid = lookup_session(args, cfg)
        pid = pid if pid is not None else found_pid
    if host is None:
        print(f"tokentop: cannot tell which host runs session {args.session!r}: "
              "pass --host NAME, or --feed URL of a fleet view that shows it", file=sys.stderr)
        return 2
    controller = RemoteController(settings, requester=cfg.host_name)
    outcome = asyncio.run(controller.act(Target(session=args.session, pid=pid, host=host), action, pid=pid,  # type: ignore[arg-type]
                                         signal=signal))
    print(f"{outcome.action} {outcome.session} on {host}: {'done' if outcome.ok else 'not done'}: {outcome.message}",
          file=sys.stdout if outcome.ok else sys.stderr)
    return 0 if outcome.ok else 1


def remote_controller(cfg: Config, url: str | None = None, local: Controller | None = None) -> Controller:
    """The Controller the live view's kill modal uses when watching a fleet (``tokentop --nats``):
    sessions on this host go to ``local``, every other host's sessions over NATS to their host."""
    from tokentop.core.team.control import RemoteController
    from tokentop.core.team.settings import NatsSettings

    settings = NatsSettings.from_config(cfg, url=url)
    return RemoteController(settings, local=local, local_host=cfg.host_name, requester=cfg.host_name)
