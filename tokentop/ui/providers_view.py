"""Key ``5`` of the live view: the Providers screen (billed spend), and ``Enter`` on a provider for
its 30-day dashboard.

Billed rows live in the local ledger (written by the feed's provider pollers); the pollers' health
comes from the snapshot's ``status["providers"]``. An embedded feed's ledger is used as is; with a
remote feed the local ledger is opened (it holds what this machine's feed fetched).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from textual.screen import Screen

from tokentop.ui.app import register_screen_view
from tokentop.ui.screens.provider_dashboard import ProviderDashboardScreen
from tokentop.ui.screens.providers import ProvidersScreen

if TYPE_CHECKING:
    from tokentop.ui.app import TokentopApp

#: how often the open Providers screen re-reads the ledger (the pollers fetch once a minute)
REFRESH_S = 10.0
DASHBOARD_DAYS = 30


class _Billed:
    """The ledger, billed store and pricer one Providers screen reads (closed with the screen)."""

    def __init__(self, app: TokentopApp) -> None:
        from tokentop.core.ledger import Ledger
        from tokentop.core.pricing import Pricer
        from tokentop.core.providers.store import BilledStore

        runner = getattr(app.source, "runner", None)
        self.own_ledger = runner is None
        if runner is not None:
            ledger = runner.ledger
        else:
            from tokentop import config

            cfg = config.load(app.config_path) if app.config_path and app.config_path.exists() else config.load()
            ledger = Ledger(cfg.ledger_path)
        self.ledger = ledger
        self.store = BilledStore(ledger)
        self.pricer = Pricer()

    def close(self) -> None:
        if self.own_ledger:
            self.ledger.close()

    def panels(self, app: TokentopApp) -> tuple[list[Any], dict[str, str]]:
        from tokentop.core.providers.panel import build_panels

        snap = app.shown
        status = dict(snap.status.get("providers") or {}) if snap is not None else {}
        return build_panels(self.store, app.clock(), self.pricer, status)


class LiveProvidersScreen(ProvidersScreen):
    """The Providers screen inside the live view: refreshes itself and opens the dashboard."""

    def __init__(self, app: TokentopApp, billed: _Billed) -> None:
        panels, notes = billed.panels(app)
        super().__init__(panels, notes=notes, clock=app.clock)
        self.billed = billed
        self.owner = app

    def on_mount(self) -> None:
        super().on_mount()
        if self.owner.timer_enabled:  # tests drive refreshes themselves
            self.set_interval(REFRESH_S, self.reload, name="providers-refresh")

    def on_unmount(self) -> None:
        self.billed.close()

    async def reload(self) -> None:
        panels, notes = self.billed.panels(self.owner)
        await self.update(panels, notes=notes)

    def on_providers_screen_open_dashboard(self, message: ProvidersScreen.OpenDashboard) -> None:
        from tokentop.core.providers.report import build_report

        message.stop()
        report = build_report(self.billed.store, message.provider, DASHBOARD_DAYS, self.owner.clock())
        self.owner.push_screen(ProviderDashboardScreen(report))


def providers_screen(app: TokentopApp) -> Screen | None:
    return LiveProvidersScreen(app, _Billed(app))


register_screen_view("5", "Providers (billed)", providers_screen)
