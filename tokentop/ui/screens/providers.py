"""The providers view (key ``5`` in the live view): billed truth per provider.

Per provider: billed spend today and this month (cost endpoints), the last hour's tokens and
requests per minute by model (sparklines from 1-minute usage buckets), unattributed spend with its
one-line explanation, and the poller's health (last success age, last error; key masked).
Driven entirely by :class:`tokentop.core.providers.panel.ProviderPanel` objects: the screen never
polls or reads the ledger itself. ``Enter`` on a provider posts :class:`ProvidersScreen.OpenDashboard`
(the app pushes the 30-day dashboard); ``Esc`` goes back.
"""

from __future__ import annotations

import time
from decimal import Decimal
from typing import Callable, Sequence

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.message import Message
from textual.screen import Screen
from textual.widgets import Label, Sparkline, Static

from tokentop.core.pricing import usd
from tokentop.core.providers.panel import ProviderPanel, usd_short

MAX_MODELS = 6

#: What the screen shows when no provider is polled: what it is for, how to turn it on, where the
#: docs are (the live view's empty state does the same for local usage).
NO_KEYS_TEXT = """\
No provider admin key is set: no billed spend to show yet.

  What this is  Billed truth: what OpenAI and Anthropic charged, from
                their admin usage and cost APIs. Today and this month,
                the last hour per minute by model, a 30-day dashboard
                (Enter), and the unattributed spend that no agent
                tokentop watches explains (a key used elsewhere, an
                agent it cannot read). The live view shows estimates
                from local usage; this screen shows the bill.

  Set a key     OPENAI_ADMIN_KEY=sk-admin-...
                ANTHROPIC_ADMIN_KEY=sk-ant-admin01-...
                in the environment of the feed (`tokentop serve`, or
                the one this view runs itself)
  or key files  [providers.openai] key_file = "/path/openai.key"
                [providers.anthropic] key_file = "/path/anthropic.key"
                mode 0600, else refused (`tokentop config path`)
  then          restart the feed: it polls each provider every minute

  Docs          docs/providers.md   (and `tokentop report --billed`)

Esc goes back.
"""


def money(pusd: int) -> str:
    value = usd(pusd)
    if 0 < value < Decimal("0.01"):
        return "<$0.01"
    return f"${value:,.2f}"


def age(seconds: float) -> str:
    seconds = max(0, int(seconds))
    if seconds < 90:
        return f"{seconds}s ago"
    if seconds < 5400:
        return f"{seconds // 60}m ago"
    return f"{seconds // 3600}h ago"


def health_line(panel: ProviderPanel, now: float) -> str:
    s = panel.status
    parts = []
    ok = s.last_success_at
    parts.append(f"updated {age(now - ok)}" if ok else "never fetched")
    if s.key:
        parts.append(f"key {s.key} ({s.key_source or '?'})")
    line = " · ".join(parts)
    if s.last_error:
        line += f"\nlast error: {s.last_error}"
    return line


class ProviderCard(Vertical, can_focus=True):
    """One provider's panel. Up/Down move between providers, Enter opens its dashboard."""

    BINDINGS = [
        Binding("down,j", "app.focus_next", "next provider", show=False),
        Binding("up,k", "app.focus_previous", "previous provider", show=False),
        Binding("enter", "open_dashboard", "30-day dashboard"),
    ]

    DEFAULT_CSS = """
    ProviderCard { height: auto; border: round $panel; padding: 0 1; margin-bottom: 1; }
    ProviderCard:focus { border: round $accent; }
    ProviderCard .pv-title { text-style: bold; }
    ProviderCard .pv-error { color: $error; }
    ProviderCard .pv-unattributed { color: $warning; }
    ProviderCard .pv-model-row { height: 1; }
    ProviderCard .pv-model { width: 30; }
    ProviderCard Sparkline { width: 1fr; height: 1; margin-right: 2; }
    ProviderCard .pv-na { width: 1fr; color: $text-muted; }
    """

    def __init__(self, panel: ProviderPanel, now: float, *, simulated: bool = False) -> None:
        super().__init__(id=f"provider-{panel.provider}")
        self.panel = panel
        self.now = now
        self.simulated = simulated

    def compose(self) -> ComposeResult:
        p = self.panel
        title = "SIMULATED billing (tokentop demo, no provider API)" if self.simulated else "billed (provider API)"
        yield Static(f"{p.provider} — {title}", classes="pv-title", markup=False)
        yield Static(health_line(p, self.now), classes="pv-health" + (" pv-error" if p.last_error else ""), markup=False)
        if p.costs_fetched_today:
            spend = f"today {money(p.pusd_today)} · this month {money(p.pusd_month)}"
        else:
            spend = "today ? · this month ? (costs not fetched yet)"
        yield Static(spend, classes="pv-spend", markup=False)
        if p.by_model:
            with Horizontal(classes="pv-model-row"):
                yield Label("last 60 min, per minute", classes="pv-model")
                yield Label("tokens", classes="pv-na")
                yield Label("requests", classes="pv-na")
        else:
            yield Static("no billed usage in the last 60 min", classes="pv-empty", markup=False)
        for m in p.by_model[:MAX_MODELS]:
            with Horizontal(classes="pv-model-row"):
                yield Label(f"{m.model[:18]:<18} {m.tokens:>9,}", classes="pv-model", markup=False)
                yield Sparkline(list(m.tokens_per_minute), summary_function=max, classes="pv-tokens")
                if m.requests_per_minute is None:
                    yield Label("n/a (not reported)", classes="pv-na")
                else:
                    yield Sparkline(list(m.requests_per_minute), summary_function=max, classes="pv-requests")
        if len(p.by_model) > MAX_MODELS:
            yield Static(f"… and {len(p.by_model) - MAX_MODELS} more models", classes="pv-more")
        u = p.unattributed
        amount = "unpriced" if u.billed_pusd == 0 and u.unpriced_tokens else usd_short(u.unattributed_pusd)
        explanation = u.explanation.replace("billed", "simulated") if self.simulated else u.explanation
        yield Static(f"unattributed: {amount} — {explanation}", classes="pv-unattributed", markup=False)

    def action_open_dashboard(self) -> None:
        self.post_message(ProvidersScreen.OpenDashboard(self.panel.provider))


class ProvidersScreen(Screen):
    """All providers. ``update(panels, now)`` re-renders from fresh data objects."""

    BINDINGS = [
        Binding("escape", "app.pop_screen", "back"),
    ]

    class OpenDashboard(Message):
        def __init__(self, provider: str) -> None:
            super().__init__()
            self.provider = provider

    def __init__(self, panels: Sequence[ProviderPanel], *, now: float | None = None,
                 notes: dict[str, str] | None = None, clock: Callable[[], float] = time.time,
                 simulated: bool = False) -> None:
        super().__init__()
        #: the figures come from ``tokentop demo``'s simulated billing: said on every card and chart
        self.simulated = simulated
        self.panels = list(panels)
        self.notes = dict(notes or {})
        self.clock = clock
        self.now = clock() if now is None else now

    def compose(self) -> ComposeResult:
        what = "SIMULATED billing (tokentop demo)" if self.simulated else "billed (provider admin APIs)"
        yield Static(f"Providers — {what}   Enter 30-day dashboard · Esc back", id="providers-header", markup=False)
        with VerticalScroll(id="providers-body", can_focus=False):
            yield from self._cards()

    def _cards(self) -> list:
        out: list = [ProviderCard(p, self.now, simulated=self.simulated) for p in self.panels]
        for name, note in sorted(self.notes.items()):
            out.append(Static(f"{name}: {note}", classes="pv-note", markup=False))
        if not self.panels:
            out.append(Static(NO_KEYS_TEXT, id="providers-empty", markup=False))
        return out

    def on_mount(self) -> None:
        cards = self.query(ProviderCard)
        if cards:
            cards.first().focus()

    async def update(self, panels: Sequence[ProviderPanel], now: float | None = None,
                     notes: dict[str, str] | None = None) -> None:
        focused = self.focused.panel.provider if isinstance(self.focused, ProviderCard) else None
        self.panels = list(panels)
        self.now = self.clock() if now is None else now
        if notes is not None:
            self.notes = dict(notes)
        body = self.query_one("#providers-body", VerticalScroll)
        await body.remove_children()
        await body.mount_all(self._cards())
        for card in self.query(ProviderCard):
            if card.panel.provider == focused:
                card.focus()
