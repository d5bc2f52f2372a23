"""Header meters: rates with sparklines, spend today vs budget, projection, feed state, badges.

Rendered as literal :class:`rich.text.Text` (names never parsed as markup), in three lines, or one
condensed line when the pane is short or narrow. Colours come from component classes, so themes
restyle it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence
from datetime import datetime, timedelta
from decimal import Decimal

from rich.style import Style
from rich.text import Text
from textual.geometry import Size
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
    feed_label: str = ""
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
    #: blocks at the API in force (status.blocks)
    blocked: int = 0


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
        #: the text :meth:`show` composed, and the size it was composed for: the repaint that
        #: follows takes it rather than composing it a second time
        self._shown: tuple[Text, Size, Size] | None = None

    def show(self, snapshot: Snapshot | None, state: HeaderState) -> None:
        """Repaint only when what the header says actually changed."""
        self.snapshot = snapshot
        self.state = state
        self.set_class(fleet_line(snapshot) is not None, "-fleet")
        self._shown = None
        text = self.render()
        key = (text.plain, tuple(text.spans), self.size)
        if key == self._last:
            return
        self._last = key
        self._shown = (text, self.size, self.app.size)
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
        shown = self._shown
        if shown is not None and shown[1] == self.size and shown[2] == self.app.size:
            return shown[0]
        return self.condensed_text() if self.condensed else self.full_text()

    def notify_style_update(self) -> None:
        super().notify_style_update()
        self._shown = None  # composed with the previous theme's styles

    # -- pieces ---------------------------------------------------------------------------------
    def _t(self, *parts: tuple[str, str]) -> Text:
        """A Text from (text, component style name) pairs; style ``""`` is unstyled."""
        text = Text(no_wrap=True)
        for chunk, name in parts:
            text.append(chunk, self._s(name) if name else Style())
        return text

    def _badge_pieces(self, *, condensed: bool = False) -> list[Piece]:
        st = self.state
        out: list[Piece] = []
        if st.paused:
            out.append(Piece(P_PAUSED, self._t(("PAUSED" if condensed else " PAUSED ", "badge"))))
        if st.flagged:
            if condensed:
                out.append(Piece(P_FLAGGED, self._t((f"⚠{st.flagged}", "bad"))))
            else:
                out.append(Piece(P_FLAGGED, self._t((f" {st.flagged} OVER/RUNAWAY ", "bad")),
                                 self._t((f" ⚠{st.flagged} ", "bad"))))
        if st.blocked:
            if condensed:
                out.append(Piece(P_BLOCKED, self._t((f"⊘{st.blocked}", "bad"))))
            else:
                out.append(Piece(P_BLOCKED, self._t((f" {st.blocked} BLOCKED at the API ", "bad")),
                                 self._t((f" {st.blocked} BLOCKED ", "bad")), self._t((f" ⊘{st.blocked} ", "bad"))))
        if st.filter_text:
            needle = fmt.printable(st.filter_text)
            if condensed:
                out.append(Piece(P_FILTER, self._t(("FILTER", "badge"))))
            else:
                out.append(Piece(P_FILTER, self._t((" FILTER ", "badge"), (f" {needle}", "value")),
                                 self._t((" FILTER ", "badge"))))
        if st.sort != "burn" or st.sort_reverse:
            arrow = "▲" if ((st.sort == "name") != st.sort_reverse) else "▼"
            out.append(Piece(P_SORT, self._t((f"SORT {st.sort}" if condensed else f" SORT {st.sort}{arrow} ", "badge"))))
        if st.readonly and not condensed:
            out.append(Piece(P_READONLY, self._t((" READ-ONLY ", "dim"))))
        return out

    def _feed_piece(self) -> Piece:
        st = self.state
        label = fmt.printable(st.feed_label)
        if st.connected:
            return Piece(P_FEED, self._t(("● ", "ok"), (label, "dim")), self._t(("●", "ok")))
        forms = [self._t(("● disconnected ", "bad"), (label, "dim"))]
        if st.error:
            forms.insert(0, self._t(("● disconnected ", "bad"), (label, "dim"),
                                    (f" ({fmt.printable(st.error)}; retrying)", "dim")))
        forms.append(self._t(("● disconnected", "bad")))
        return Piece(P_DISCONNECTED, *forms)

    def _age(self) -> str:
        snap = self.snapshot
        if snap is None:
            return "no data yet"
        return f"updated {fmt.age(self.state.now - snap.generated_at)} ago"

    def _burn_style(self, usd_per_hour: float) -> Style:
        return self._s("burn-" + fmt.burn_level(usd_per_hour))

    def _line1(self) -> list[Piece]:
        st = self.state
        every = f"every {st.refresh_s:g} s"
        return [
            Piece(P_TITLE, self._t(("tokentop ", "title"), (st.view_title, "label")), self._t((st.view_title, "label"))),
            self._feed_piece(),
            Piece(P_AGE, self._t((f"{self._age()} · {every}", "dim")), self._t((self._age(), "dim"))),
            *self._badge_pieces(),
        ]

    def _line2(self, snap: Snapshot) -> list[Piece]:
        t = snap.totals
        burn = self._burn_style(t.usd_per_hour)
        split = f" (in {fmt.rate(t.input_tokens_per_s)} out {fmt.rate(t.output_tokens_per_s)})"
        tok = fmt.rate(t.tokens_per_s)
        return [
            Piece(P_BURN, self._t(("burn ", "label"), (f"{fmt.usd(t.usd_per_hour)}/h", ""), (" est", "dim")),
                  spark=(t.burn_series, burn)),
            Piece(P_TOK, self._t(("tok/s ", "label"), (tok, "value"), (split, "dim")),
                  self._t(("tok/s ", "label"), (tok, "value")), spark=(t.tokens_series, self._s("spark"))),
            Piece(P_REQ, self._t(("req/s ", "label"), (fmt.rate(t.requests_per_s), "value")),
                  spark=(t.requests_series, self._s("spark"))),
        ]

    def _line3(self, snap: Snapshot) -> list[Piece]:
        st = self.state
        t = snap.totals
        today = self._t(("today ", "label"), (fmt.usd(t.usd_today), "value"), (" est", "dim"))
        forms = [today]
        if st.daily_budget_usd > 0:
            share = float(t.usd_today) / st.daily_budget_usd
            bar_w = 10
            filled = min(bar_w, int(share * bar_w + 0.5))
            level = "burn-high" if share >= 1 else "burn-mid" if share >= 0.8 else "burn-low"
            bar = today.copy()
            bar.append(f" of {fmt.usd(st.daily_budget_usd)} ", self._s("dim"))
            bar.append("█" * filled + "░" * (bar_w - filled), self._s(level))
            percent = f"{share * 100:.0f}%" if share < 10 else ">999%"
            bar.append(f" {percent}", self._s(level))
            short = today.copy()
            short.append(f" {percent} of budget", self._s(level))
            forms = [bar, short, today]
        out = [Piece(P_TODAY, *forms)]
        if t.usd_provided_today:
            out.append(Piece(P_PROVIDED, self._t((f"(incl. {fmt.usd(t.usd_provided_today)} reported by agents)", "dim"))))
        projected = projected_today_usd(t.usd_today, t.usd_per_hour, st.now)
        over = st.daily_budget_usd > 0 and projected > st.daily_budget_usd
        out.append(Piece(P_PROJECTED, self._t(("projected ", "label"), (fmt.usd(projected), "bad" if over else "value"))))
        out.append(Piece(P_SESSIONS, self._t(("sessions ", "label"), (f"{fmt.count(t.active_sessions)} active", "value"))))
        out.append(Piece(P_REQUESTS, self._t((f"requests {fmt.count(t.requests_today)}", "dim"))))
        out.append(Piece(P_TOKENS, self._t((f"tokens {fmt.count(t.tokens_today)}", "dim"))))
        if t.unpriced_requests_today:
            n = fmt.count(t.unpriced_requests_today)
            out.append(Piece(P_UNPRICED, self._t((f"⚠ {n} unpriced requests (not in $)", "bad")),
                             self._t((f"⚠ {n} unpriced", "bad"))))
        if t.errors_today:
            word = "error" if t.errors_today == 1 else "errors"
            out.append(Piece(P_ERRORS, self._t((f"{fmt.count(t.errors_today)} {word}", "bad"))))
        return out

    def full_text(self) -> Text:
        snap = self.snapshot
        width = max(20, self.size.width)
        text = fit_line(self._line1(), width)
        text.append("\n")
        if snap is None:
            text.append("waiting for the first snapshot…", self._s("dim"))
            text.append("\n")
            return text
        text.append_text(fit_line(self._line2(snap), width, spark_cap=30))
        text.append("\n")
        text.append_text(fit_line(self._line3(snap), width))
        fleet = fleet_line(snap)
        if fleet is not None:
            text.append("\n")
            text.append_text(fit_line(self._fleet_full(fleet), width))
        text.no_wrap = True
        text.overflow = "ellipsis"
        return text

    def _fleet_full(self, fleet: FleetLine) -> list[Piece]:
        """Line 4 of a fleet feed: hosts that reported in the window, and each host's lag (as many
        hosts as fit, worst first, then ``+N more``)."""
        silent = fleet.hosts_total - fleet.hosts_reporting
        out = [
            Piece(P_TITLE, self._t(("fleet ", "label"), (fleet.hosts_text(), "bad" if silent else "value"),
                                   (f" reported in the last {fleet.window_s:g} s", "dim")),
                  self._t(("fleet ", "label"), (fleet.hosts_text(), "bad" if silent else "value"))),
        ]
        if not fleet.connected:
            forms = [self._t(("NATS disconnected", "bad"))]
            if fleet.error:
                forms.insert(0, self._t(("NATS disconnected", "bad"), (f" ({fmt.printable(fleet.error)})", "dim")))
            out.append(Piece(P_DISCONNECTED, *forms))
        if fleet.pending:
            out.append(Piece(P_REQUESTS, self._t((f"catching up: {fleet.pending} to read", "dim"))))
        if fleet.hosts:
            lag_forms = []
            for shown in range(len(fleet.hosts), 0, -1):
                lag = self._t(("lag ", "label"))
                for n, (name, lag_s, reporting, ago_s) in enumerate(fleet.hosts[:shown]):
                    if n:
                        lag.append(", ", self._s("dim"))
                    lag.append(fmt.printable(name) + " ", self._s("value"))
                    if not reporting:
                        lag.append("silent" + (f" {fmt.age(ago_s)}" if ago_s is not None else ""), self._s("bad"))
                    elif lag_s is None:
                        lag.append("-", self._s("dim"))
                    else:
                        lag.append(fmt.age(lag_s), self._s("bad") if lag_s > LAG_WARN_S else self._s("dim"))
                if shown < len(fleet.hosts):
                    lag.append(f" +{len(fleet.hosts) - shown} more", self._s("dim"))
                lag_forms.append(lag)
            out.append(Piece(P_LAG, *lag_forms))
        return out

    def _fleet_condensed(self, fleet: FleetLine) -> Piece:
        """``fleet 3 hosts, max lag 0.4 s`` (``3/4`` when a host went silent)."""
        silent = fleet.hosts_total != fleet.hosts_reporting
        bad = silent or not fleet.connected
        short = self._t(("fleet ", "label"), (fleet.hosts_text(), "bad" if bad else "value"))
        if not fleet.connected:
            short.append(" NATS down", self._s("bad"))
        lag = fleet.max_lag_s
        if lag is None:
            return Piece(P_C_FLEET, short)
        full = short.copy()
        full.append(f", max lag {fmt.age(lag)}", self._s("bad") if lag > LAG_WARN_S else self._s("dim"))
        return Piece(P_C_FLEET, full, short)

    def condensed_text(self) -> Text:
        st = self.state
        snap = self.snapshot
        width = max(20, self.size.width)
        pieces: list[Piece] = []
        if not st.connected:
            pieces.append(Piece(P_DISCONNECTED, self._t(("● disconnected", "bad"))))
        if snap is None:
            pieces.append(Piece(P_TITLE, self._t((f"tokentop {st.view_title} · no data yet", "dim"))))
            return fit_line(pieces, width, sep=" ")
        t = snap.totals
        fleet = fleet_line(snap)
        burn = self._burn_style(t.usd_per_hour)
        pieces.append(Piece(P_BURN, Text(f"{fmt.usd(t.usd_per_hour)}/h", burn, no_wrap=True), spark=(t.burn_series, burn)))
        today = fmt.usd(t.usd_today)
        pieces.append(Piece(P_TODAY, self._t(("today ", "label"), (today, "value"), (" est", "dim")),
                            self._t(("today ", "label"), (today, "value"))))
        if t.unpriced_requests_today:
            n = fmt.count(t.unpriced_requests_today)
            pieces.append(Piece(P_UNPRICED, self._t((f"⚠{n} unpriced", "bad")), self._t((f"⚠{n}", "bad"))))
        if fleet is not None:
            pieces.append(self._fleet_condensed(fleet))
        pieces.append(Piece(P_C_TOK, self._t((f"{fmt.rate(t.tokens_per_s)} tok/s", "dim"))))
        pieces.append(Piece(P_C_SESS, self._t((f"{fmt.count(t.active_sessions)} sess", "dim"))))
        pieces.append(Piece(P_C_VIEW, self._t((st.view_title, "label"))))
        pieces.extend(self._badge_pieces(condensed=True))
        pieces.append(Piece(P_C_AGE, self._t((self._age().replace("updated ", ""), "dim"))))
        # a fleet's hosts matter more than the burn sparkline: it only gets room left over
        return fit_line(pieces, width, sep=" ", spark_cap=6, spark_min=6)


# -- fitting a line: whole fields, most important kept -------------------------------------------
# Order of importance (higher stays longer; docs/ui.md "Small panes"). A field that does not fit
# first takes its shorter form, if it has one, then is dropped whole, least important first.
P_TITLE = 100        # "tokentop Agents" (short: "Agents"); the fleet line's host count
P_BURN = 100         # burn $/h
P_TODAY = 99         # spend today (with the budget bar; short: "37% of budget", then none)
P_DISCONNECTED = 98  # the feed (or NATS) is down: more important than any figure
P_PAUSED = 97        # the display is frozen
P_FILTER = 96        # rows are hidden (short: without the filter text)
P_BLOCKED = 95       # blocks at the API in force (short: "⊘2")
P_FLAGGED = 94       # sessions over budget / runaway
P_SORT = 90          # a sort other than burn
P_UNPRICED = 85      # requests not in the $ figures (short: "⚠ 3 unpriced")
P_TOK = 80           # tokens/s (short: without the in/out split)
P_C_FLEET = 75       # condensed line: fleet hosts and the largest lag
P_AGE = 70           # data age (short: without the refresh interval)
P_REQ = 70           # requests/s
P_C_VIEW = 65        # condensed line: the view's name
P_PROJECTED = 62     # projected spend today at the current burn
P_READONLY = 60      # READ-ONLY badge
P_SESSIONS = 58      # active sessions
P_ERRORS = 55        # errors today
P_FEED = 50          # which feed ("● embedded feed http://...", short: "●")
P_LAG = 50           # the fleet line's per-host lag (short: fewer hosts, "+N more")
P_C_TOK = 50         # condensed line: tokens/s
P_C_SESS = 45        # condensed line: active sessions
P_C_AGE = 40         # condensed line: data age
P_PROVIDED = 35      # "(incl. $X reported by agents)"
P_REQUESTS = 30      # requests today; the fleet line's "catching up"
P_TOKENS = 25        # tokens today


class Piece:
    """One field of a header line: its forms, longest first, and how important it is. ``spark``
    (series, style): a sparkline drawn after the field in whatever room is left."""

    __slots__ = ("priority", "forms", "spark")

    def __init__(self, priority: int, *forms: Text, spark: tuple[Sequence[float], Style] | None = None) -> None:
        self.priority = priority
        self.forms = forms
        self.spark = spark


def fit_line(pieces: Sequence[Piece], width: int, *, sep: str = "  ", spark_cap: int = 0,
             spark_min: int = 4) -> Text:
    """The pieces that fit in ``width`` cells, in their order, joined by ``sep``.

    While the line is too wide, the least important piece still shown (the rightmost of equals)
    takes its next shorter form, or is dropped once it has none: a field is shown whole or not at
    all. A piece of the top priority is never dropped (the line's own overflow is the last resort).
    Sparklines then share what room is left, up to ``spark_cap`` cells each (none below
    ``spark_min``).
    """
    choice = {i: 0 for i in range(len(pieces))}

    def used() -> int:
        return sum(pieces[i].forms[f].cell_len for i, f in choice.items()) + len(sep) * max(0, len(choice) - 1)

    top = max((p.priority for p in pieces), default=0)
    while choice and used() > width:
        i = min(choice, key=lambda n: (pieces[n].priority, -n))
        if choice[i] + 1 < len(pieces[i].forms):
            choice[i] += 1
        elif pieces[i].priority < top:
            del choice[i]
        else:
            break
    sparks = [i for i in choice if pieces[i].spark is not None]
    spark_w = 0
    if sparks and spark_cap:
        spark_w = min(spark_cap, (width - used()) // len(sparks) - 1)
        if spark_w < spark_min:
            spark_w = 0
    text = Text(no_wrap=True, overflow="ellipsis")
    for n, i in enumerate(sorted(choice)):
        if n:
            text.append(sep)
        text.append_text(pieces[i].forms[choice[i]])
        spark = pieces[i].spark
        if spark is not None and spark_w:
            text.append(" ")
            text.append(fmt.sparkline(spark[0], spark_w), spark[1])
    return text
