"""``tokentop demo [--seed N]``: the live view over a simulated fleet, in seconds, spending nothing.

A private feed (its own ledger in a temporary directory, a free loopback port) runs embedded; a
dozen child processes (:mod:`tokentop.demo.agent`) post events to it with their own pids, so the
kill flow can act on them for real. The feed also simulates provider billing
(:mod:`tokentop.demo.billing`), so the Providers screen (key 5) has figures without admin keys,
labelled as simulated. Children are stopped on exit.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tokentop.commands._common import add_config_option


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="the live view over a simulated fleet of agents (nothing real is spent)")
    add_config_option(p)
    p.add_argument("--seed", type=int, default=1, help="same seed, same fleet and traffic (default 1)")
    p.add_argument("--agents", type=int, default=12, help="how many simulated agents (default 12)")
    p.add_argument("--headless", action="store_true", help="run the fleet and feed only; print the feed URL")
    p.add_argument("--seconds", type=float, default=None, help="with --headless: stop after this long")
    p.add_argument("--readonly", action="store_true", help="hide kill/pause actions")
    p.add_argument("--theme", default=None)
    p.set_defaults(func=run)


def spawn_fleet(feed_url: str, seed: int, size: int, run_tag: str, *, backfill_s: float = 90.0) -> list[subprocess.Popen]:
    """Start one child process per simulated agent; each posts to ``feed_url`` with its own pid."""
    children = []
    env = dict(os.environ)
    root = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    for i in range(size):
        children.append(
            subprocess.Popen(
                [sys.executable, "-m", "tokentop.demo.agent", "--feed", feed_url, "--seed", str(seed),
                 "--index", str(i), "--run", run_tag, "--size", str(size), "--backfill", str(backfill_s)],
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env,
                start_new_session=True,
            )
        )
    return children


def register_fleet(feed_url: str, token: str, seed: int, size: int, run_tag: str,
                   children: list[subprocess.Popen]) -> int:
    """Record each child as the process behind its session (as ``tokentop run`` does), so every
    demo session is controllable from the start, not only once it sends its first live request.
    Returns how many were registered."""
    from urllib.parse import quote

    from tokentop.core.control.process import Refused, identify
    from tokentop.core.feed.client import FeedClient, FeedUnavailable
    from tokentop.demo.fleet import fleet, session_id

    agents = fleet(seed, size)
    done = 0
    with FeedClient(feed_url, token=token) as client:
        for agent, child in zip(agents, children):
            try:
                body = dict(identify(child.pid).to_json(), agent=agent.agent)
                r = client.post(f"/v1/sessions/{quote(session_id(agent, run_tag), safe='')}/process", body)
            except (Refused, FeedUnavailable):
                continue
            done += r.status_code == 201
    return done


def stop_fleet(children: list[subprocess.Popen]) -> None:
    for child in children:
        if child.poll() is None:
            try:
                child.send_signal(18)  # SIGCONT: a paused child must be able to exit
                child.terminate()
            except ProcessLookupError:
                pass
    deadline = time.monotonic() + 3
    for child in children:
        try:
            child.wait(max(0.05, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()


def run(args: argparse.Namespace) -> int:
    from tokentop import config as config_mod
    from tokentop.commands._common import load_config
    from tokentop.core.feed.runner import FeedRunner

    cfg = load_config(args)
    workdir = tempfile.mkdtemp(prefix="tokentop-demo-")
    # a private feed: no real agent logs, no provider polling, nothing published to a team
    raw = {k: v for k, v in cfg.raw.items() if k not in ("ledger", "feed", "sources", "providers", "nats")}
    raw["ledger"] = {"path": str(Path(workdir) / "demo.db")}
    raw["sources"] = {"enabled": []}
    raw["providers"] = {name: {"enabled": False} for name in ("openai", "anthropic")}
    # show the policy at work unless the user configured their own: the runaway gets flagged
    if not any(k == "runaway" for k in raw):
        raw["runaway"] = {"demo": {"usd_per_hour_above": 150.0, "for_s": 10, "action": "alert"}}
    if not any(k == "budget" for k in raw):
        raw["budget"] = {"demo": {"usd_per_day": 50.0, "action": "alert"}}
    try:
        demo_cfg = config_mod.from_mapping(raw)
    except config_mod.ConfigError as exc:
        shutil.rmtree(workdir, ignore_errors=True)
        print(f"tokentop: {exc}", file=sys.stderr)
        return 2
    from tokentop.core.feed.assemble import HOST_FEED
    from tokentop.demo import billing

    runner = FeedRunner(demo_cfg, listen="127.0.0.1:0", host_name="demo", token_dir=Path(workdir),
                        attachments=(*HOST_FEED, billing.attach_for(args.seed)))
    runner.start_in_thread(require_listen=True)
    run_tag = f"{args.seed}{os.getpid() % 10000:04d}"
    children = spawn_fleet(runner.address or "", args.seed, args.agents, run_tag)
    try:
        register_fleet(runner.address or "", runner.token, args.seed, args.agents, run_tag, children)
        if args.headless:
            print(f"demo feed at {runner.address} ({args.agents} agents, seed {args.seed}); Ctrl-C stops", flush=True)
            end = None if args.seconds is None else time.monotonic() + args.seconds
            while end is None or time.monotonic() < end:
                time.sleep(0.2)
            return 0
        from tokentop.commands.top import make_controller
        from tokentop.ui.app import TokentopApp, default_screen_views
        from tokentop.ui.feeds import EmbeddedFeed

        source = EmbeddedFeed(runner)
        app = TokentopApp(
            source,
            screen_views=default_screen_views(runner.ledger, simulated=True),
            refresh_s=float(cfg.ui.refresh_s),
            controller=make_controller(source),
            readonly=bool(args.readonly or cfg.ui.readonly),
            view=cfg.ui.view,
            sort=cfg.ui.sort,
            sort_reverse=cfg.ui.sort_reverse,
            theme=args.theme or cfg.ui.theme,
            daily_budget_usd=float(cfg.ui.daily_budget_usd) or 50.0,
            key_line=bool(cfg.ui.key_line),
            config_path=config_mod.config_path(getattr(args, "config", None)),
        )
        app.run()
        return 0
    finally:
        stop_fleet(children)
        runner.stop()
        shutil.rmtree(workdir, ignore_errors=True)  # the private ledger and token: nothing to keep
