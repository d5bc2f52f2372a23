"""Regenerate the README screenshots:

    python scripts/screenshot.py           # docs/screenshot.svg: the live view (Agents)
    python scripts/screenshot.py --kill    # docs/screenshot-kill.svg: k on the runaway session

The app saves the SVG itself (Textual's ``save_screenshot``) from the demo fleet (seed 1) replayed
in-process at a fixed instant and size, so the main picture only changes when the UI or the data
does. The kill picture is the real flow: the runaway's session is backed by a real process (a demo
agent, started for the shot and stopped after), registered with a real control service whose plan
checks it (pid, start time, owner) exactly as in ``tokentop``; only its pid differs between runs.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

#: 2026-11-26 15:30:00 UTC
NOW = 1_795_707_000.0
SEED = 1


async def shoot(out: Path, width: int, height: int, theme: str, view: str) -> None:
    from tokentop.demo.replay import fleet_snapshot
    from tokentop.ui.app import TokentopApp
    from tokentop.ui.feeds import ManualFeed

    snapshot = fleet_snapshot(seed=SEED, now=NOW, seconds=150)
    source = ManualFeed(snapshot, label="embedded feed http://127.0.0.1:7411")
    app = TokentopApp(source, clock=lambda: NOW + 0.4, refresh_s=None, theme=theme, view=view,
                      daily_budget_usd=50.0)
    async with app.run_test(size=(width, height)) as pilot:
        await pilot.pause()
        app.refresh_now()
        await pilot.pause()
        out.parent.mkdir(parents=True, exist_ok=True)
        app.save_screenshot(filename=out.name, path=str(out.parent))


async def shoot_kill(out: Path, width: int, height: int, theme: str) -> None:
    """Sessions view, cursor on the runaway (the top row), ``k`` pressed, the plan checked."""
    from tokentop import config as config_mod
    from tokentop.commands.demo import stop_fleet
    from tokentop.core.control.controller import LocalController
    from tokentop.core.control.process import identify
    from tokentop.core.feed.runner import FeedRunner
    from tokentop.demo.fleet import fleet, session_id
    from tokentop.demo.replay import fleet_snapshot
    from tokentop.ui.app import TokentopApp
    from tokentop.ui.screens.action import ActionScreen
    from tokentop.ui.feeds import ManualFeed

    agents = fleet(SEED)
    runaway = next(a for a in agents if a.profile == "runaway")
    workdir = Path(tempfile.mkdtemp(prefix="tokentop-shot-"))
    cfg = config_mod.from_mapping({"ledger": {"path": str(workdir / "shot.db")}, "sources": {"enabled": []}})
    runner = FeedRunner(cfg, listen="127.0.0.1:0", host_name="demo", token_dir=workdir)
    runner.start_in_thread(require_listen=True)
    # the runaway as a real process: a demo agent posting to this feed. Its command line reads
    # "python3 -m tokentop.demo.agent ..." rather than this machine's venv path: the base interpreter
    # runs with argv[0] "python3" and finds this environment's packages through PYTHONPATH.
    import site

    path = os.pathsep.join([str(ROOT), *site.getsitepackages()])
    child = subprocess.Popen(
        ["python3", "-m", "tokentop.demo.agent", "--feed", runner.address or "", "--seed", str(SEED),
         "--index", str(runaway.index), "--run", "demo", "--backfill", "0"],
        executable=getattr(sys, "_base_executable", sys.executable), env=dict(os.environ, PYTHONPATH=path),
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )
    try:
        control = runner.parts.control
        assert control is not None
        session = session_id(runaway, "demo")
        time.sleep(0.3)  # let the interpreter start, so its command line is the agent's
        control.register(session, identify(child.pid), agent=runaway.agent)
        # the replayed fleet with the runaway's row carrying the real pid
        snapshot = fleet_snapshot(seed=SEED, now=NOW, seconds=150, first_pid=child.pid - runaway.index)
        source = ManualFeed(snapshot, label="embedded feed http://127.0.0.1:7411")
        app = TokentopApp(source, clock=lambda: NOW + 0.4, refresh_s=None, theme=theme, view="sessions",
                          daily_budget_usd=50.0, controller=LocalController(control, runner=runner))
        async with app.run_test(size=(width, height)) as pilot:
            await pilot.pause()
            app.refresh_now()
            await pilot.pause()
            await pilot.press("k")
            await app.workers.wait_for_complete()
            await pilot.pause()
            screen = app.screen
            assert isinstance(screen, ActionScreen) and screen.actionable(), f"the kill modal cannot act: {screen.plans}"
            out.parent.mkdir(parents=True, exist_ok=True)
            app.save_screenshot(filename=out.name, path=str(out.parent))
    finally:
        stop_fleet([child])
        runner.stop()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=None, help="default docs/screenshot.svg (--kill: docs/screenshot-kill.svg)")
    ap.add_argument("--size", default=None, help="default 120x20 (--kill: 120x30)")
    ap.add_argument("--theme", default="tokentop")
    ap.add_argument("--view", default="agents")
    ap.add_argument("--kill", action="store_true", help="the kill modal on the runaway session")
    args = ap.parse_args()
    os.environ["TZ"] = "UTC"
    time.tzset()
    width, height = (int(v) for v in (args.size or ("120x30" if args.kill else "120x20")).split("x"))
    out = Path(args.out or ROOT / "docs" / ("screenshot-kill.svg" if args.kill else "screenshot.svg"))
    if args.kill:
        asyncio.run(shoot_kill(out, width, height, args.theme))
    else:
        asyncio.run(shoot(out, width, height, args.theme, args.view))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
