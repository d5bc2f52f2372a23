"""The providers view and the 30-day dashboard, mounted in a tiny test App and driven with Pilot."""

from __future__ import annotations

import time
from decimal import Decimal

from textual.app import App
from textual.widgets import DataTable, Sparkline, Static

from tokentop.core.ledger import Ledger
from tokentop.core.pricing import Pricer, to_pusd
from tokentop.core.providers.panel import build_panel
from tokentop.core.providers.status import ProvidersStatus, ProviderStatus
from tokentop.core.providers.records import CostRow, UsageRow
from tokentop.core.providers.report import build_report
from tokentop.core.providers.store import BilledStore
from tokentop.ui.screens.provider_dashboard import ChartView, ProviderDashboardScreen
from tokentop.ui.screens.providers import ProviderCard, ProvidersScreen

NOW = 1795696496.0  # 2026-11-26T12:34:56Z
DAY = 86400
TODAY = int(NOW // DAY) * DAY
MINUTE = int(NOW // 60) * 60


class Host(App):
    def __init__(self, screen) -> None:
        super().__init__()
        self.first = screen
        self.opened: list[str] = []

    def on_mount(self) -> None:
        self.push_screen(self.first)

    def on_providers_screen_open_dashboard(self, message: ProvidersScreen.OpenDashboard) -> None:
        self.opened.append(message.provider)


def _store(tmp_path):
    led = Ledger(tmp_path / "ui.db")
    store = BilledStore(led)
    minutes = [UsageRow("openai", "1m", MINUTE - 60 * i, MINUTE - 60 * i + 60, model="gpt-4o", input_tokens=100 * i,
                        output_tokens=10, requests=i) for i in range(1, 6)]
    store.replace_usage("openai", "1m", MINUTE - 3540, MINUTE + 60, minutes, [], NOW)
    days = [UsageRow("openai", "1d", TODAY - d * DAY, TODAY - d * DAY + DAY, model=m, input_tokens=1000 * (d + 1),
                     output_tokens=100, requests=5) for d in range(30) for m in ("gpt-4o", "gpt-4o-mini")]
    store.replace_usage("openai", "1d", TODAY - 29 * DAY, TODAY + DAY, days,
                        [(TODAY - d * DAY, TODAY - d * DAY + DAY) for d in range(30)], NOW)
    costs = [CostRow("openai", TODAY - d * DAY, TODAY - d * DAY + DAY, to_pusd(Decimal("1.5")), line_item="gpt-4o, input",
                     model="gpt-4o") for d in range(30)]
    costs += [CostRow("openai", TODAY - d * DAY, TODAY - d * DAY + DAY, to_pusd(Decimal("0.5")), line_item="gpt-4o-mini, input",
                      model="gpt-4o-mini") for d in range(30)]
    store.replace_costs("openai", TODAY - 29 * DAY, TODAY + DAY, costs,
                        [(TODAY - d * DAY, TODAY - d * DAY + DAY) for d in range(30)], NOW)
    an = [UsageRow("anthropic", "1m", MINUTE - 120, MINUTE - 60, model="claude-x", input_tokens=50, output_tokens=5)]
    store.replace_usage("anthropic", "1m", MINUTE - 3540, MINUTE + 60, an, [], NOW)
    return led, store


async def test_providers_view_shows_spend_sparklines_health_and_unattributed(tmp_path):
    led, store = _store(tmp_path)
    try:
        status = {"last_success_at": NOW - 42, "key": "sk-admin-…cdef", "key_source": "OPENAI_ADMIN_KEY", "last_error": None}
        panels = [build_panel(store, "openai", NOW, Pricer(), ProviderStatus.from_json(status)),
                  build_panel(store, "anthropic", NOW, Pricer(), ProviderStatus.from_json({"last_success_at": None, "last_error": "anthropic rejected the admin key from ANTHROPIC_ADMIN_KEY (sk-ant-a…wxyz): HTTP 401"}))]
    finally:
        led.close()
    app = Host(ProvidersScreen(panels, now=NOW))
    async with app.run_test(size=(120, 50)) as pilot:
        screen = app.screen
        assert isinstance(screen, ProvidersScreen)
        openai = screen.query_one("#provider-openai", ProviderCard)
        texts = [str(s.content) for s in openai.query(Static)]
        joined = "\n".join(texts)
        assert "today $2.00 · this month $52.00" in joined  # Nov 1..26 = 26 days × $2
        assert "updated 42s ago" in joined and "sk-admin-…cdef" in joined
        assert "unattributed:" in joined and "matches no local agent" in joined
        sparks = list(openai.query(Sparkline))
        assert len(sparks) == 2 and list(sparks[0].data)[-2] == 110 and max(sparks[1].data) == 5
        anthropic = screen.query_one("#provider-anthropic", ProviderCard)
        a_text = "\n".join(str(s.content) for s in anthropic.query(Static))
        assert "never fetched" in a_text and "last error: anthropic rejected" in a_text
        assert "unattributed: unpriced — 55 billed tokens of unpriced models" in a_text  # never $0
        assert "today ? · this month ? (costs not fetched yet)" in a_text
        assert "n/a (not reported)" in "\n".join(str(lbl.content) for lbl in anthropic.query("Label"))
        assert screen.focused is openai
        await pilot.press("down")
        assert screen.focused is anthropic
        await pilot.press("up", "enter")
        await pilot.pause()
        assert app.opened == ["openai"]
        await screen.update(panels[:1], now=NOW + 60)
        await pilot.pause()
        assert len(screen.query(ProviderCard)) == 1 and screen.focused is screen.query_one("#provider-openai")
        assert "updated 1m ago" in "\n".join(str(s.content) for s in screen.query(Static))


async def test_dashboard_charts_top_models_and_totals(tmp_path):
    led, store = _store(tmp_path)
    try:
        report = build_report(store, "openai", 30, NOW)
    finally:
        led.close()
    app = Host(ProviderDashboardScreen(report))
    async with app.run_test(size=(120, 60)) as pilot:
        await pilot.pause()
        screen = app.screen
        totals = str(screen.query_one("#dashboard-totals", Static).content)
        assert "total $60.00" in totals and "requests 300" in totals and "INCOMPLETE" not in totals
        spend = screen.query_one("#chart-spend", ChartView).chart_text
        assert "daily spend (USD, billed)" in spend and "█" in spend and "10-28" in spend  # the first day of the 30
        assert "█" in screen.query_one("#chart-requests", ChartView).chart_text
        table = screen.query_one("#dashboard-models", DataTable)
        assert table.row_count == 2
        assert table.get_row("gpt-4o")[:3] == ["gpt-4o", "$45.00", "75.0%"]
        assert table.get_row("gpt-4o-mini")[2] == "25.0%"
        await pilot.press("escape")
        await pilot.pause()
        assert not isinstance(app.screen, ProviderDashboardScreen)


async def test_dashboard_says_requests_are_not_reported_for_anthropic(tmp_path):
    led = Ledger(tmp_path / "a.db")
    store = BilledStore(led)
    store.replace_usage("anthropic", "1d", TODAY, TODAY + DAY,
                        [UsageRow("anthropic", "1d", TODAY, TODAY + DAY, model="claude-x", input_tokens=10, output_tokens=1)],
                        [(TODAY, TODAY + DAY)], NOW)
    report = build_report(store, "anthropic", 7, NOW)
    led.close()
    app = Host(ProviderDashboardScreen(report))
    async with app.run_test(size=(100, 50)) as pilot:
        await pilot.pause()
        assert "not reported" in app.screen.query_one("#chart-requests", ChartView).chart_text
        totals = str(app.screen.query_one("#dashboard-totals", Static).content)
        assert "INCOMPLETE" in totals and "requests n/a" in totals
        assert app.screen.query_one("#dashboard-models", DataTable).get_row("claude-x")[3] == "n/a"


async def test_panels_from_snapshot_status_and_notes_for_unpolled_providers(tmp_path):
    from tokentop.core.providers.panel import build_panels

    led, store = _store(tmp_path)
    status = {"openai": {"enabled": True, "key": "sk-admin-…cdef", "last_success_at": NOW - 5, "last_error": None},
              "anthropic": {"enabled": False, "reason": "no admin key: set ANTHROPIC_ADMIN_KEY or key_file in the config"}}
    try:
        panels, notes = build_panels(store, NOW, Pricer(), ProvidersStatus.from_json(status))
    finally:
        led.close()
    assert [p.provider for p in panels] == ["openai"] and "ANTHROPIC_ADMIN_KEY" in notes["anthropic"]
    app = Host(ProvidersScreen(panels, now=NOW, notes=notes))
    async with app.run_test(size=(120, 40)):
        notes_text = [str(s.content) for s in app.screen.query(".pv-note")]
        assert notes_text == ["anthropic: no admin key: set ANTHROPIC_ADMIN_KEY or key_file in the config"]
