"""Key ``5`` of the live view: the Providers screen (billed spend), and ``Enter`` on a provider for
its 30-day dashboard.

Billed rows live in the local ledger (written by the feed's provider pollers); the pollers' health
comes from the snapshot's ``status["providers"]`` (:class:`~tokentop.core.providers.status.ProvidersStatus`).
An embedded feed's ledger is handed in and used as is; with a remote feed the local ledger is opened
(it holds what this machine's feed fetched). The live view lists this screen in
:func:`tokentop.ui.app.default_screen_views`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable

from textual.screen import Screen

from tokentop.core.providers.panel import ProviderPanel, build_panels
from tokentop.core.providers.status import ProvidersStatus
from tokentop.ui.screens.provider_dashboard import ProviderDashboardScreen
from tokentop.ui.screens.providers import ProvidersScreen

if TYPE_CHECKING:
    from tokentop.core.ledger import Ledger
    from tokentop.ui.app import TokentopApp

#: how often the open Providers screen re-reads the ledger (the pollers fetch once a minute)
REFRESH_S = 10.0
DASHBOARD_DAYS = 30


class _Billed:
    """The ledger, billed store and pricer one Providers screen reads (closed with the screen)."""

    def __init__(self, app: TokentopApp, ledger: Ledger | None) -> None:
        from tokentop.core.ledger import Ledger
        from tokentop.core.pricing import Pricer
        from tokentop.core.providers.store import BilledStore

        self.own_ledger = ledger is None
        if ledger is None:
            from tokentop import config

            cfg = config.load(app.config_path) if app.config_path and app.config_path.exists() else config.load()
            ledger = Ledger(cfg.ledger_path)
        self.ledger = ledger
        self.store = BilledStore(ledger)
        self.pricer = Pricer()

    def close(self) -> None:
        if self.own_ledger:
            self.ledger.close()

    def panels(self, app: TokentopApp) -> tuple[list[ProviderPanel], dict[str, str]]:
        return build_panels(self.store, app.clock(), self.pricer, ProvidersStatus.of(app.shown))


class LiveProvidersScreen(ProvidersScreen):
    """The Providers screen inside the live view: refreshes itself and opens the dashboard."""

    def __init__(self, app: TokentopApp, billed: _Billed, *, simulated: bool = False) -> None:
        panels, notes = billed.panels(app)
        super().__init__(panels, notes=notes, clock=app.clock, simulated=simulated)
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
        self.owner.push_screen(ProviderDashboardScreen(report, simulated=self.simulated))


def opener(ledger: Ledger | None = None, *, simulated: bool = False) -> Callable[[TokentopApp], Screen | None]:
    """What key 5 calls: opens the Providers screen on ``ledger`` (an embedded feed's), or on this
    machine's ledger, opened while the screen is shown. ``simulated``: the ledger's billed rows are
    ``tokentop demo``'s (:mod:`tokentop.demo.billing`), and the screens say so."""

    def open_screen(app: TokentopApp) -> Screen | None:
        return LiveProvidersScreen(app, _Billed(app, ledger), simulated=simulated)

    return open_screen
