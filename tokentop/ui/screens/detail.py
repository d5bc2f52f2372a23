"""Detail of one row (``Enter``): a plotext chart of $/h and tokens/s, the model breakdown, and the
most recent requests. Shows the row as it was when opened; ``r`` reloads it."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable

from rich.console import Console, ConsoleOptions, RenderResult
from rich.measure import Measurement
from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import Screen
from textual.widgets import Static

from tokentop.core.snapshot import Row
from tokentop.ui import format as fmt
from tokentop.ui.views import ViewSpec

if TYPE_CHECKING:
    from tokentop.ui.source import SnapshotSource

#: seconds per chart point for tokens/s (recent requests are binned)
TOKEN_BIN_S = 5


def burn_per_hour_series(row: Row, step_s: int = 5) -> list[float]:
    """The row's last two minutes of spend as $/h, averaged over ``step_s``-second steps."""
    s = list(row.burn_series)
    out = []
    for i in range(0, len(s), step_s):
        chunk = s[i : i + step_s]
        out.append(sum(chunk) / max(1, len(chunk)) * 3600.0)
    return out


def tokens_per_s_series(requests: list[dict[str, Any]], now: float, span_s: int = 120, step_s: int = TOKEN_BIN_S) -> list[float]:
    bins = [0.0] * (span_s // step_s)
    for r in requests:
        age = now - float(r.get("ts", 0))
        if 0 <= age < span_s:
            i = len(bins) - 1 - int(age // step_s)
            bins[i] += (r.get("input_tokens", 0) + r.get("output_tokens", 0)) / step_s
    return bins


def chart_text(burn: list[float], tokens: list[float], width: int, height: int) -> str:
    """Two stacked plotext (6.x) line charts as plain text; colour comes from the theme (#chart)."""
    import plotext as plt

    fig = plt.figure
    fig.clear()
    fig.subplots(2, 1)
    fig.plot_size(max(30, width), max(8, height))
    fig.theme("colorless")
    top = fig.subplot(1, 1)
    xs = [float(-5 * (len(burn) - 1 - i)) for i in range(len(burn))] or [0.0]
    top.draw(top.signal(xs, burn or [0.0], marker="braille").lines())
    top.title("$/h (estimated), last 2 min")
    bottom = fig.subplot(2, 1)
    xt = [float(-TOKEN_BIN_S * (len(tokens) - 1 - i)) for i in range(len(tokens))] or [0.0]
    bottom.draw(bottom.signal(xt, tokens or [0.0], marker="braille").lines())
    bottom.title("tokens/s, last 2 min (from recent requests)")
    return fig.build().string(colorless=True)


class ProcessLine:
    """``pid 4242  cmd python -m agent --feed … --size 12``: always one line, at any width. A long
    command loses its middle (its program and its last arguments say the most), never wraps."""

    def __init__(self, pid: int | None, cmd: str | None) -> None:
        self.pid = pid
        self.cmd = fmt.printable(cmd or "")

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        text = Text(no_wrap=True, overflow="crop")
        text.append("pid ", "bold")
        text.append(str(self.pid) if self.pid is not None else "unknown")
        if self.cmd:
            text.append("  cmd ", "bold")
            text.append(fmt.ellipsize_middle(self.cmd, max(1, options.max_width - text.cell_len)))
        yield text

    def __rich_measure__(self, console: Console, options: ConsoleOptions) -> Measurement:
        return Measurement(1, options.max_width)


class DetailScreen(Screen[None]):
    BINDINGS = [
        Binding("escape,q,backspace", "close", "Back"),
        Binding("r", "reload", "Reload"),
    ]

    def __init__(self, spec: ViewSpec, row: Row, source: SnapshotSource, clock: Callable[[], float]) -> None:
        super().__init__()
        self.spec = spec
        self.row = row
        self.source = source
        self.clock = clock
        self.requests: list[dict[str, Any]] = []

    def compose(self) -> ComposeResult:
        title = Text(f"{self.spec.title[:-1] if self.spec.title.endswith('s') else self.spec.title}: ")
        title.append(fmt.printable(self.row.key))
        title.append("   Esc back · r reload", "dim")
        yield Static(title, id="detail-title", markup=False)
        with VerticalScroll(id="detail-body"):
            yield Static("", id="chart", markup=False)
            yield Static(self._breakdown(), id="breakdown", markup=False)
            yield Static("loading recent requests…", id="recent", markup=False)

    async def on_mount(self) -> None:
        await self.action_reload()

    async def action_reload(self) -> None:
        snap_row = None
        latest = self.source.latest() if hasattr(self.source, "latest") else None
        if latest is not None:
            snap_row = latest.find(self.spec.dim, self.row.key)
        if snap_row is not None:
            self.row = snap_row
            self.query_one("#breakdown", Static).update(self._breakdown())
        try:
            self.requests = await self.source.recent_requests(self.spec.dim, self.row.key, 200)
        except Exception as exc:
            self.requests = []
            self.query_one("#recent", Static).update(Text(f"recent requests unavailable: {exc}"))
        else:
            self.query_one("#recent", Static).update(self._recent())
        self._draw_chart()

    def on_resize(self) -> None:
        self._draw_chart()

    def _draw_chart(self) -> None:
        chart = self.query_one("#chart", Static)
        width = max(30, self.size.width - 4)
        height = max(12, min(24, self.size.height - 10))
        chart.styles.height = height
        text = chart_text(burn_per_hour_series(self.row), tokens_per_s_series(self.requests, self.clock()), width, height)
        chart.update(Text(text, no_wrap=True))

    def _breakdown(self) -> Table:
        r = self.row
        table = Table.grid()
        table.add_column()
        today = Text(f"burn {fmt.usd(r.usd_per_hour)}/h est", style="bold")
        today.append(f"  today {fmt.usd(r.usd_today)} est", style="")
        if r.usd_provided_today:
            today.append(f" (agents reported {fmt.usd(r.usd_provided_today)})")
        table.add_row(today)
        counts = Text(f"{fmt.count(r.tokens_today)} tokens · {fmt.count(r.requests_today)} requests · "
                      f"{fmt.count(r.errors_today)} errors")
        if r.unpriced_requests_today:
            counts.append(f"  ⚠ {r.unpriced_requests_today} unpriced requests (not in $)", style="bold")
        table.add_row(counts)
        if r.agent or r.pid or r.cmd:
            table.add_row(Text(f"agent {fmt.printable(r.agent or '?')}  project {fmt.printable(r.project or '-')}  "
                               f"branch {fmt.printable(r.branch or '-')}"))
            table.add_row(ProcessLine(r.pid, r.cmd))
        models = Table(title="by model (today)", title_justify="left", box=None, padding=(0, 2), show_edge=False)
        for name, just in (("model", "left"), ("requests", "right"), ("tokens", "right"), ("spend est", "right")):
            models.add_column(name, justify=just)  # type: ignore[arg-type]
        for m in r.models[:8]:
            spend = "unpriced" if (m.unpriced_requests and not m.usd) else fmt.usd(m.usd) + ("+?" if m.unpriced_requests else "")
            models.add_row(Text(fmt.printable(m.model)), str(m.requests), fmt.count(m.tokens), spend)
        outer = Table.grid()
        outer.add_row(table)
        if r.models:
            outer.add_row(models)
        return outer

    def _recent(self) -> Table:
        table = Table(title="most recent requests", title_justify="left", box=None, padding=(0, 2), show_edge=False)
        for name, just in (("age", "right"), ("agent", "left"), ("model", "left"), ("in", "right"), ("out", "right"),
                           ("cost", "right"), ("status", "left")):
            table.add_column(name, justify=just)  # type: ignore[arg-type]
        now = self.clock()
        for r in self.requests[:6]:
            usd = r.get("usd")
            cost = "unpriced" if usd is None else f"{fmt.usd(usd)} {'est' if r.get('cost_kind') == 'estimated' else r.get('cost_kind', '')}"
            table.add_row(
                fmt.age(now - float(r.get("ts", now))), Text(fmt.printable(str(r.get("agent", "")))),
                Text(fmt.printable(str(r.get("model", "")))), fmt.count(int(r.get("input_tokens", 0))),
                fmt.count(int(r.get("output_tokens", 0))), cost, r.get("status", "ok"),
            )
        if not self.requests:
            table.add_row("", Text("no recent requests in memory for this row"), "", "", "", "", "")
        if any(str(r.get("source", "")).endswith("-session-total") for r in self.requests[:6]):
            table.caption = "session totals: what the agent recorded when it exited, not one request each"
        return table

    def action_close(self) -> None:
        self.dismiss(None)
