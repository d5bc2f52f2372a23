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
from tokentop.core.team.status import FleetStatus
from tokentop.ui import format as fmt
from tokentop.ui.views import LAG_WARN_S

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


@dataclass(frozen=True)
class FleetLine:
    """What the header says about a fleet feed (``status["fleet"]``, docs/team.md)."""

    hosts_reporting: int
    hosts_total: int
    window_s: float
    #: (host, lag_s or None, reporting, last_report_s_ago or None), worst first: silent hosts, then
    #: by lag, largest first
    hosts: tuple[tuple[str, float | None, bool, float | None], ...]
    connected: bool
    pending: int
    error: str | None

    @property
    def max_lag_s(self) -> float | None:
        lags = [lag for _, lag, reporting, _ in self.hosts if reporting and lag is not None]
        return max(lags) if lags else None

    def hosts_text(self) -> str:
        n = self.hosts_reporting
        count = f"{n}/{self.hosts_total}" if self.hosts_total != n else str(n)
        return f"{count} host{'s' if self.hosts_total != 1 else ''}"


def fleet_line(snap: Snapshot | None) -> FleetLine | None:
    """The fleet part of the header, or ``None`` when the snapshot is not from a fleet feed."""
    fleet = FleetStatus.of(snap)
    if fleet is None:
        return None
    hosts = sorted(((name, h.lag_s, h.reporting, h.last_report_s_ago) for name, h in fleet.hosts.items()),
                   key=lambda h: (h[2], -(h[1] or 0.0), h[0]))
    return FleetLine(
        hosts_reporting=fleet.hosts_reporting if fleet.hosts_reporting is not None else sum(1 for h in hosts if h[2]),
        hosts_total=len(hosts),
        window_s=fleet.reporting_window_s or 60.0,
        hosts=tuple(hosts),
        connected=fleet.connected,
        pending=fleet.pending or 0,
        error=fleet.last_error,
    )


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
        self.set_class(fleet_line(snapshot) is not None, "-fleet")
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
        fleet = fleet_line(snap)
        if fleet is not None:
            text.append("\n")
            self._fleet_full(text, fleet)
        return text

    def _fleet_full(self, text: Text, fleet: FleetLine) -> None:
        """Line 4 of a fleet feed: hosts that reported in the window, and each host's lag."""
        text.append("fleet ", self._s("label"))
        silent = fleet.hosts_total - fleet.hosts_reporting
        text.append(fleet.hosts_text(), self._s("bad") if silent else self._s("value"))
        text.append(f" reported in the last {fleet.window_s:g} s", self._s("dim"))
        if not fleet.connected:
            text.append("  NATS disconnected", self._s("bad"))
            if fleet.error:
                text.append(f" ({fmt.printable(fleet.error)})", self._s("dim"))
        if fleet.pending:
            text.append(f"  catching up: {fleet.pending} to read", self._s("dim"))
        if fleet.hosts:
            text.append("  lag ", self._s("label"))
        for n, (name, lag_s, reporting, ago_s) in enumerate(fleet.hosts):
            if n:
                text.append(", ", self._s("dim"))
            text.append(fmt.printable(name) + " ", self._s("value"))
            if not reporting:
                text.append("silent" + (f" {fmt.age(ago_s)}" if ago_s is not None else ""), self._s("bad"))
            elif lag_s is None:
                text.append("-", self._s("dim"))
            else:
                text.append(fmt.age(lag_s), self._s("bad") if lag_s > LAG_WARN_S else self._s("dim"))

    def _fleet_condensed(self, text: Text, fleet: FleetLine) -> None:
        """``fleet 3 hosts, max lag 0.4 s`` (``3/4`` when a host went silent)."""
        silent = fleet.hosts_total != fleet.hosts_reporting
        bad = silent or not fleet.connected
        text.append(" fleet ", self._s("label"))
        text.append(fleet.hosts_text(), self._s("bad") if bad else self._s("value"))
        if not fleet.connected:
            text.append(" NATS down", self._s("bad"))
        lag = fleet.max_lag_s
        if lag is not None:
            text.append(f", max lag {fmt.age(lag)}", self._s("bad") if lag > LAG_WARN_S else self._s("dim"))

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
        fleet = fleet_line(snap)
        text.append(f"{fmt.usd(t.usd_per_hour)}/h", self._burn_style(t.usd_per_hour))
        if fleet is None or self.size.width >= 72:  # a fleet's hosts matter more than the sparkline
            text.append(" ")
            text.append(fmt.sparkline(t.burn_series, 6), self._burn_style(t.usd_per_hour))
        text.append(" today ", self._s("label"))
        text.append(fmt.usd(t.usd_today), self._s("value"))
        text.append(" est", self._s("dim"))
        if t.unpriced_requests_today:
            text.append(f" ⚠{t.unpriced_requests_today} unpriced", self._s("bad"))
        if fleet is not None:
            self._fleet_condensed(text, fleet)
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
