"""Helpers for UI tests: snapshots built by the real aggregator at a frozen instant, and an app
constructed with no timer (``refresh_s=None``) so tests drive every refresh themselves."""

from __future__ import annotations

import os
import time
from typing import Any

import pytest

from tokentop.core.aggregate import Aggregator
from tokentop.core.events import parse_event
from tokentop.core.pricing import Pricer
from tokentop.core.snapshot import Snapshot

#: 2026-11-26 12:00:00 UTC, a Thursday
NOW = 1_795_694_400.0

_PRICER = Pricer()


def snapshot_of(events: list[dict[str, Any]], now: float = NOW) -> Snapshot:
    """The snapshot the feed would show after ``events`` (``age`` = seconds before ``now``)."""
    agg = Aggregator()
    for i, raw in enumerate(events):
        obj = dict(raw)
        age = obj.pop("age", 1.0)
        obj.setdefault("id", f"ev-{i}")
        obj["ts"] = now - age
        event = parse_event(obj, now=now)
        agg.apply(event, _PRICER.price(event), now)
    return agg.snapshot(now)


def traffic(agent: str, session: str, model: str, *, per_request_in: int, per_request_out: int, n: int,
            every_s: float = 2.0, pid: int | None = None, project: str = "proj", provider: str = "openai",
            start_age: float = 1.0) -> list[dict[str, Any]]:
    out = []
    for k in range(n):
        e: dict[str, Any] = {
            "agent": agent, "session": session, "model": model, "provider": provider, "project": project,
            "input_tokens": per_request_in, "output_tokens": per_request_out, "age": start_age + k * every_s,
        }
        if pid is not None:
            e["pid"] = pid
        out.append(e)
    return out


def fleet_events() -> list[dict[str, Any]]:
    """Four agents with clearly different burn, tokens/s and request rates."""
    return [
        # big spender: few, huge requests on an expensive model
        *traffic("claude-code", "cc-1", "claude-sonnet-4-5", provider="anthropic", per_request_in=60_000,
                 per_request_out=2_000, n=6, every_s=8.0, pid=4242, project="billing"),
        # many small cheap requests: most requests/s
        *traffic("codex", "cx-1", "gpt-4o-mini", per_request_in=800, per_request_out=100, n=40, every_s=0.2,
                 pid=5151, project="web"),
        # medium
        *traffic("aider", "ai-1", "gpt-4o", per_request_in=9_000, per_request_out=600, n=5, every_s=3.0,
                 project="infra"),
        # unknown model: unpriced, must say so
        *traffic("homebrew", "hb-1", "my-private-model", per_request_in=3_000, per_request_out=300, n=3,
                 every_s=5.0, provider="acme", project="lab"),
    ]


class Clock:
    def __init__(self, t: float = NOW + 0.4) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def make_app(snapshot: Snapshot | None = None, **kwargs: Any):
    from tokentop.ui.app import TokentopApp
    from tokentop.ui.feeds import ManualFeed

    feed = kwargs.pop("feed", None) or ManualFeed(snapshot, label="test feed http://127.0.0.1:7411")
    kwargs.setdefault("clock", Clock())
    kwargs.setdefault("refresh_s", None)
    return TokentopApp(feed, **kwargs)


def table_lines(app) -> list[str]:
    from tokentop.ui.table import BurnTable

    return app.query_one(BurnTable).render_text()


def names_in_order(app) -> list[str]:
    from tokentop.ui.table import BurnTable

    return [r.key for r in app.query_one(BurnTable).rows]


def screen_text(app) -> list[str]:
    """The screen's text rows as a person sees them, from the app's own SVG screenshot (each glyph
    sits at x = column * 12.2 px, Rich's SVG cell width)."""
    import html
    import re

    rows: dict[int, dict[int, str]] = {}
    pattern = r'<text class="[^"]*" x="([\d.]+)" y="[\d.]+" textLength="[\d.]+" clip-path="url\(#[\w-]*line-(\d+)\)">([^<]*)</text>'
    for m in re.finditer(pattern, app.export_screenshot()):
        col, row = round(float(m.group(1)) / 12.2), int(m.group(2))
        for i, ch in enumerate(html.unescape(m.group(3)).replace("\xa0", " ")):
            rows.setdefault(row, {})[col + i] = ch
    return ["".join(r.get(i, " ") for i in range(max(r) + 1)).rstrip() if (r := rows.get(n)) else ""
            for n in range(app.size.height)]
