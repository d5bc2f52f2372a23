"""Key 5 in the live view opens the Providers screen from the feed's ledger; Enter opens the dashboard."""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal

from tests.ui.helpers import NOW, fleet_events, make_app, snapshot_of

from tokentop.core.ledger import Ledger
from tokentop.core.pricing import to_pusd
from tokentop.core.providers.records import CostRow, UsageRow
from tokentop.core.providers.store import BilledStore
from tokentop.ui.screens.provider_dashboard import ProviderDashboardScreen
from tokentop.ui.screens.providers import ProviderCard, ProvidersScreen

DAY = 86400


def embedded_app(snapshot, ledger):
    """The live view as an embedded feed runs it: a snapshot source, and the feed's ledger handed to
    the Providers screen."""
    from tokentop.ui.app import default_screen_views
    from tokentop.ui.feeds import ManualFeed

    return make_app(feed=ManualFeed(snapshot, label="feed (test)"), screen_views=default_screen_views(ledger))


def seeded_ledger(tmp_path) -> Ledger:
    ledger = Ledger(tmp_path / "l.db")
    store = BilledStore(ledger)
    today = int(NOW // DAY) * DAY
    spans = [(today - d * DAY, today - d * DAY + DAY) for d in range(30)]
    store.replace_usage("openai", "1d", today - 29 * DAY, today + DAY,
                        [UsageRow("openai", "1d", s, e, model="gpt-5", input_tokens=1000, output_tokens=100, requests=7)
                         for s, e in spans], spans, NOW)
    store.replace_costs("openai", today - 29 * DAY, today + DAY,
                        [CostRow("openai", s, e, to_pusd(Decimal("2.5")), line_item="gpt-5, input", model="gpt-5")
                         for s, e in spans], spans, NOW)
    return ledger


async def test_key_5_opens_providers_and_enter_opens_the_30_day_dashboard(tmp_path) -> None:
    ledger = seeded_ledger(tmp_path)
    snap = snapshot_of(fleet_events())
    status = dict(snap.status, providers={"openai": {"enabled": True, "key": "sk-admin-…wxyz",
                                                      "last_success_at": NOW - 30, "last_error": None}})
    app = embedded_app(replace(snap, status=status), ledger)
    try:
        async with app.run_test(size=(120, 40)) as pilot:
            app.refresh_now()
            await pilot.press("5")
            await pilot.pause()
            assert isinstance(app.screen, ProvidersScreen)
            cards = list(app.screen.query(ProviderCard))
            assert [c.panel.provider for c in cards] == ["openai"]
            await pilot.press("enter")
            await pilot.pause()
            assert isinstance(app.screen, ProviderDashboardScreen)
            report = app.screen.report
            assert report.provider == "openai"
            assert report.pusd_total == 30 * to_pusd(Decimal("2.5"))
            assert report.requests_total == 30 * 7
            await pilot.press("escape")
            await pilot.press("escape")
            await pilot.pause()
            assert not isinstance(app.screen, (ProvidersScreen, ProviderDashboardScreen))
    finally:
        ledger.close()


async def test_key_5_without_provider_keys_says_how_to_set_them(tmp_path) -> None:
    ledger = Ledger(tmp_path / "l.db")
    app = embedded_app(snapshot_of(fleet_events()), ledger)
    try:
        async with app.run_test(size=(100, 30)) as pilot:
            app.refresh_now()
            await pilot.press("5")
            await pilot.pause()
            assert isinstance(app.screen, ProvidersScreen)
            text = " ".join(str(s.render()) for s in app.screen.query("Static"))
            # what the screen is for, how to turn it on, where the docs are
            for part in ("Billed truth", "admin usage and cost APIs", "unattributed", "OPENAI_ADMIN_KEY",
                         "ANTHROPIC_ADMIN_KEY", "[providers.openai] key_file", "0600", "docs/providers.md"):
                assert part in text, part
            assert "SIMULATED" not in text
    finally:
        ledger.close()
