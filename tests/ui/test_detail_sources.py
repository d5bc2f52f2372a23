"""The detail screen says when a row's requests are session totals rather than calls."""

from __future__ import annotations

from rich.console import Console

from tests.ui.helpers import NOW, fleet_events, make_app, snapshot_of


def _request(source: str) -> dict:
    return {"ts": NOW - 30, "agent": "claude-code", "model": "claude-sonnet-4.6", "input_tokens": 21_583,
            "output_tokens": 1_064, "usd": 0.08, "cost_kind": "estimated", "status": "ok", "source": source}


async def _recent_text(source: str) -> str:
    from tokentop.ui.screens.detail import DetailScreen
    from tokentop.ui.source import ManualSource

    app = make_app(source=ManualSource(snapshot_of(fleet_events()), requests=[_request(source)]))
    async with app.run_test(size=(110, 34)) as pilot:
        await pilot.pause()
        await pilot.press("enter")
        await pilot.pause()
        assert isinstance(app.screen, DetailScreen)
        console = Console(width=108, record=True, file=open("/dev/null", "w"))
        console.print(app.screen._recent())
        return console.export_text()


async def test_session_totals_are_labelled_and_calls_are_not() -> None:
    assert "session totals" in await _recent_text("copilot-cli-session-total")
    assert "session totals" not in await _recent_text("copilot-cli-otel")
