"""Regenerate the README screenshot: ``python scripts/screenshot.py`` → ``docs/screenshot.svg``.

The app saves the SVG itself (Textual's ``save_screenshot``) from the demo fleet (seed 1) replayed
in-process at a fixed instant and size, so the picture only changes when the UI or the data does.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

#: 2026-11-26 15:30:00 UTC
NOW = 1_795_707_000.0


async def shoot(out: Path, width: int, height: int, theme: str, view: str) -> None:
    from tokentop.demo.replay import fleet_snapshot
    from tokentop.ui.app import TokentopApp
    from tokentop.ui.source import ManualSource

    snapshot = fleet_snapshot(seed=1, now=NOW, seconds=150)
    source = ManualSource(snapshot, label="embedded feed http://127.0.0.1:7411")
    app = TokentopApp(source, clock=lambda: NOW + 0.4, refresh_s=None, theme=theme, view=view,
                      daily_budget_usd=50.0)
    async with app.run_test(size=(width, height)) as pilot:
        await pilot.pause()
        app.refresh_now()
        await pilot.pause()
        out.parent.mkdir(parents=True, exist_ok=True)
        app.save_screenshot(filename=out.name, path=str(out.parent))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--out", default=str(ROOT / "docs" / "screenshot.svg"))
    ap.add_argument("--size", default="120x30")
    ap.add_argument("--theme", default="tokentop")
    ap.add_argument("--view", default="agents")
    args = ap.parse_args()
    os.environ["TZ"] = "UTC"
    time.tzset()
    width, height = (int(v) for v in args.size.split("x"))
    out = Path(args.out)
    asyncio.run(shoot(out, width, height, args.theme, args.view))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
