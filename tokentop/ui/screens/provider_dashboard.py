"""The 30-day dashboard for one provider (``Enter`` on a provider in the providers view).

plotext bar charts of daily billed spend, tokens and requests, the top models with their share of
spend, and totals — from a :class:`tokentop.core.providers.report.ProviderReport` (the same object
``report --billed`` prints). Charts are drawn colourless to the widget's width on every resize.
"""

from __future__ import annotations

from typing import Sequence

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import Screen
from textual.widgets import DataTable, Static

from tokentop.core.pricing import usd
from tokentop.core.providers.report import ProviderReport
from tokentop.ui.screens.providers import money

TOP_MODELS = 10


def bar_chart(labels: Sequence[str], values: Sequence[float], *, width: int, height: int, title: str) -> str:
    """A plotext bar chart as plain text, on a private figure (plotext's default one is global)."""
    import plotext

    fig = plotext.terminal.__class__()._master
    fig._set_size(max(20, width), max(6, height))
    if values:
        fig.draw(fig.bar(list(labels), [float(v) for v in values], width=0.6))
    fig.title(title)
    return fig.build().string(colorless=True)


def _short_dates(dates: Sequence[str]) -> list[str]:
    return [d[5:] for d in dates]  # MM-DD


class ChartView(Static):
    """A chart that redraws itself to its width."""

    DEFAULT_CSS = "ChartView { height: 14; }"

    def __init__(self, title: str, labels: Sequence[str], values: Sequence[float], *, note: str = "", id: str | None = None) -> None:
        super().__init__(id=id, markup=False)
        self.chart_title = title
        self.labels = list(labels)
        self.values = list(values)
        self.note = note
        self.chart_text = ""

    def draw(self, width: int) -> None:
        if self.note:
            self.chart_text = f"{self.chart_title}\n{self.note}"
        else:
            self.chart_text = bar_chart(self.labels, self.values, width=width, height=13, title=self.chart_title)
        self.update(self.chart_text)

    def on_mount(self) -> None:
        self.draw(self.size.width or 80)

    def on_resize(self) -> None:
        self.draw(self.size.width or 80)


class ProviderDashboardScreen(Screen):
    BINDINGS = [Binding("escape", "app.pop_screen", "back")]

    def __init__(self, report: ProviderReport, *, simulated: bool = False) -> None:
        super().__init__()
        self.report = report
        #: ``tokentop demo``'s simulated billing: every "billed" says "simulated" instead
        self.simulated = simulated

    def compose(self) -> ComposeResult:
        r = self.report
        dates = _short_dates([d.date for d in r.by_day])
        req = "n/a (not reported by this provider)" if r.requests_total is None else f"{r.requests_total:,}"
        state = "" if r.complete else "  INCOMPLETE: some days were never fetched"
        kind = "SIMULATED billing (tokentop demo)" if self.simulated else "billed"
        yield Static(
            f"{r.provider} — last {r.days} days, {kind}{state}\n"
            f"total {money(r.pusd_total)} · requests {req} · input tokens {r.input_tokens_total:,} · "
            f"output tokens {r.output_tokens_total:,}" + (f"\nlast fetch failed: {r.error}" if r.error else ""),
            id="dashboard-totals", markup=False,
        )
        with VerticalScroll():
            yield ChartView(f"daily spend (USD, {'simulated' if self.simulated else 'billed'})", dates, [float(usd(d.pusd)) for d in r.by_day], id="chart-spend")
            yield ChartView("daily tokens (input + output)", dates, [d.input_tokens + d.output_tokens for d in r.by_day],
                            id="chart-tokens")
            if r.requests_total is None:
                yield ChartView("daily requests", dates, [], note="requests: not reported by this provider's usage API",
                                id="chart-requests")
            else:
                yield ChartView("daily requests", dates, [d.requests or 0 for d in r.by_day], id="chart-requests")
            yield DataTable(id="dashboard-models", cursor_type="row")

    def on_mount(self) -> None:
        table = self.query_one("#dashboard-models", DataTable)
        table.add_columns("model", "spend", "share", "requests", "input tokens", "output tokens")
        for m in self.report.by_model[:TOP_MODELS]:
            share = f"{m.share * 100:.1f}%" if m.share is not None else "–"
            table.add_row(m.model, money(m.pusd), share, "n/a" if m.requests is None else f"{m.requests:,}",
                          f"{m.input_tokens:,}", f"{m.output_tokens:,}", key=m.model)
