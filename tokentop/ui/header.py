"""Header meters: rates with sparklines, spend today vs budget, projection, feed state, badges.

Rendered as literal :class:`rich.text.Text` (names never parsed as markup), in three lines, or one
condensed line when the pane is short or narrow. Colours come from component classes, so themes
restyle it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from rich.style import Style
from rich.text import Text
from textual.widget import Widget

from tokentop.core.snapshot import Snapshot
from tokentop.ui import format as fmt

#: below this many rows or columns the header condenses to one line
CONDENSE_BELOW_HEIGHT = 20
CONDENSE_BELOW_WIDTH = 78


@dataclass
class HeaderState:
    """Everything the header shows besides the snapshot."""

    view_title: str = "Agents"
    source_label: str = ""
    connected: bool = True
    error: str | None = None
    now: float = 0.0
    refresh_s: float = 1.0
    paused: bool = False
    filter_text: str = ""
    sort: str = "burn"
    sort_reverse: bool = False
    daily_budget_usd: float = 0.0
    readonly: bool = False
    #: sessions the feed's policy flags as over budget or runaway
    flagged: int = 0


def projected_today_usd(spent: Decimal, usd_per_hour: float, now: float) -> float:
    """Spend today plus the current burn rate carried to local midnight."""
    local = datetime.fromtimestamp(now)
    midnight = (local + timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
    hours_left = max(0.0, (midnight - local).total_seconds() / 3600.0)
    return float(spent) + usd_per_hour * hours_left


class Meters(Widget):
    COMPONENT_CLASSES = {
        "meters--title",
        "meters--label",
        "meters--value",
        "meters--dim",
        "meters--badge",
        "meters--ok",
        "meters--bad",
        "meters--burn-low",
        "meters--burn-mid",
        "meters--burn-high",
        "meters--spark",
    }

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.snapshot: Snapshot | None = None
        self.state = HeaderState()
        self._last: tuple | None = None

    def show(self, snapshot: Snapshot | None, state: HeaderState) -> None:
        """Repaint only when what the header says actually changed."""
        self.snapshot = snapshot
        self.state = state
        text = self.render()
        key = (text.plain, tuple(text.spans), self.size)
        if key == self._last:
            return
        self._last = key
        self.refresh()

    @property
    def condensed(self) -> bool:
        size = self.app.size
        return size.height < CONDENSE_BELOW_HEIGHT or size.width < CONDENSE_BELOW_WIDTH

    def on_resize(self) -> None:
        self.set_class(self.condensed, "-condensed")

    def _s(self, name: str) -> Style:
        return self.get_component_rich_style(f"meters--{name}", partial=True)

    def render(self) -> Text:
        return self.condensed_text() if self.condensed else self.full_text()

    # -- pieces ---------------------------------------------------------------------------------
    def _badges(self, text: Text) -> None:
        st = self.state
        if st.paused:
            text.append(" PAUSED ", self._s("badge"))
            text.append(" ")
        if st.filter_text:
            text.append(" FILTER ", self._s("badge"))
            text.append(f" {fmt.printable(st.filter_text)} ", self._s("value"))
        if st.sort != "burn" or st.sort_reverse:
            arrow = "▲" if ((st.sort == "name") != st.sort_reverse) else "▼"
            text.append(f" SORT {st.sort}{arrow} ", self._s("badge"))
            text.append(" ")
        if st.flagged:
            text.append(f" {st.flagged} OVER/RUNAWAY ", self._s("bad"))
            text.append(" ")
        if st.readonly:
            text.append(" READ-ONLY ", self._s("dim"))

    def _feed(self, text: Text) -> None:
        st = self.state
        if st.connected:
            text.append("● ", self._s("ok"))
            text.append(fmt.printable(st.source_label), self._s("dim"))
        else:
            text.append("● disconnected ", self._s("bad"))
            text.append(fmt.printable(st.source_label), self._s("dim"))
            if st.error:
                text.append(f" ({fmt.printable(st.error)}; retrying)", self._s("dim"))

    def _age(self) -> str:
        snap = self.snapshot
        if snap is None:
            return "no data yet"
        return f"updated {fmt.age(self.state.now - snap.generated_at)} ago"

    def _burn_style(self, usd_per_hour: float) -> Style:
        return self._s("burn-" + fmt.burn_level(usd_per_hour))

    def full_text(self) -> Text:
        st = self.state
        snap = self.snapshot
        t = snap.totals if snap is not None else None
        width = max(20, self.size.width)
        text = Text(no_wrap=True, overflow="ellipsis")
        # line 1: where / when / badges
        text.append("tokentop ", self._s("title"))
        text.append(f"{st.view_title}  ", self._s("label"))
        self._feed(text)
        text.append(f"  {self._age()} · every {st.refresh_s:g} s  ", self._s("dim"))
        self._badges(text)
        text.append("\n")
        if t is None:
            text.append("waiting for the first snapshot…", self._s("dim"))
            text.append("\n")
            return text
        # line 2: rates, each with a sparkline sized to what is left of the line
        burn_txt = f"{fmt.usd(t.usd_per_hour)}/h"
        tok_txt = fmt.rate(t.tokens_per_s)
        split_txt = f" (in {fmt.rate(t.input_tokens_per_s)} out {fmt.rate(t.output_tokens_per_s)}) "
        req_txt = fmt.rate(t.requests_per_s)
        fixed = len("burn ") + len(burn_txt) + len(" est ") + len("  tok/s ") + len(tok_txt) + len(split_txt) \
            + len("  req/s ") + len(req_txt) + 1 + 2
        spare = max(0, width - fixed)
        spark_w = min(30, spare // 3)
        text.append("burn ", self._s("label"))
        text.append(burn_txt, self._burn_style(t.usd_per_hour))
        text.append(" est ", self._s("dim"))
        if spark_w >= 4:
            text.append(fmt.sparkline(t.burn_series, spark_w), self._burn_style(t.usd_per_hour))
        text.append("  tok/s ", self._s("label"))
        text.append(tok_txt, self._s("value"))
        text.append(split_txt, self._s("dim"))
        if spark_w >= 4:
            text.append(fmt.sparkline(t.tokens_series, spark_w), self._s("spark"))
        text.append("  req/s ", self._s("label"))
        text.append(req_txt, self._s("value"))
        text.append(" ")
        if spark_w >= 4:
            text.append(fmt.sparkline(t.requests_series, spark_w), self._s("spark"))
        text.append("\n")
        # line 3: money today
        text.append("today ", self._s("label"))
        text.append(fmt.usd(t.usd_today), self._s("value"))
        text.append(" est", self._s("dim"))
        if t.usd_provided_today:
            text.append(f" (incl. {fmt.usd(t.usd_provided_today)} reported by agents)", self._s("dim"))
        if st.daily_budget_usd > 0:
            share = float(t.usd_today) / st.daily_budget_usd
            bar_w = 10
            filled = min(bar_w, int(share * bar_w + 0.5))
            style = self._s("burn-high" if share >= 1 else "burn-mid" if share >= 0.8 else "burn-low")
            text.append(f" of {fmt.usd(st.daily_budget_usd)} ", self._s("dim"))
            text.append("█" * filled + "░" * (bar_w - filled), style)
            text.append(f" {share * 100:.0f}%", style)
        projected = projected_today_usd(t.usd_today, t.usd_per_hour, st.now)
        text.append("  projected ", self._s("label"))
        over = st.daily_budget_usd > 0 and projected > st.daily_budget_usd
        text.append(fmt.usd(projected), self._s("bad") if over else self._s("value"))
        text.append("  sessions ", self._s("label"))
        text.append(f"{t.active_sessions} active", self._s("value"))
        text.append(f"  requests {fmt.count(t.requests_today)}  tokens {fmt.count(t.tokens_today)}", self._s("dim"))
        if t.unpriced_requests_today:
            text.append(f"  ⚠ {t.unpriced_requests_today} unpriced requests (not in $)", self._s("bad"))
        if t.errors_today:
            text.append(f"  {t.errors_today} errors", self._s("bad"))
        return text

    def condensed_text(self) -> Text:
        st = self.state
        snap = self.snapshot
        text = Text(no_wrap=True, overflow="ellipsis")
        if not st.connected:
            text.append("● disconnected ", self._s("bad"))
        if snap is None:
            text.append(f"tokentop {st.view_title} · no data yet", self._s("dim"))
            return text
        t = snap.totals
        text.append(f"{fmt.usd(t.usd_per_hour)}/h", self._burn_style(t.usd_per_hour))
        text.append(" ")
        text.append(fmt.sparkline(t.burn_series, 6), self._burn_style(t.usd_per_hour))
        text.append(" today ", self._s("label"))
        text.append(fmt.usd(t.usd_today), self._s("value"))
        text.append(" est", self._s("dim"))
        if t.unpriced_requests_today:
            text.append(f" ⚠{t.unpriced_requests_today} unpriced", self._s("bad"))
        text.append(f" {fmt.rate(t.tokens_per_s)} tok/s {t.active_sessions} sess ", self._s("dim"))
        text.append(f"{st.view_title} ", self._s("label"))
        if st.paused:
            text.append("PAUSED ", self._s("badge"))
        if st.flagged:
            text.append(f"⚠{st.flagged} ", self._s("bad"))
        if st.filter_text:
            text.append("FILTER ", self._s("badge"))
        if st.sort != "burn" or st.sort_reverse:
            text.append(f"SORT {st.sort} ", self._s("badge"))
        text.append(self._age().replace("updated ", ""), self._s("dim"))
        return text
