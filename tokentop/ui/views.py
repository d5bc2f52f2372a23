"""The table's views (Agents, Sessions, Models, Projects, Hosts) and their columns.

A view is a :class:`ViewSpec`: which snapshot dimension it shows, the digit key that selects it and
its columns; :data:`TABLE_VIEWS` lists them by key. Adding a table view is one entry there. The app
binds the digits ``1``-``9``; a digit no table view takes can open a screen instead (key ``5``,
Providers: :func:`tokentop.ui.app.default_screen_views`).

Cells are :data:`CellText` pairs ``(text, style)`` where ``style`` names a theme-driven style
(``burn-low``, ``burn-mid``, ``burn-high``, ``dim``, ``warn``, ``spark``); the table turns them into
colours. Text is always literal: nothing here is ever parsed as markup.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Final, Literal

from tokentop.core.limits.windows import agent_points, session_points
from tokentop.core.snapshot import Row, Snapshot, SortKey
from tokentop.core.team.status import FleetHost, FleetStatus
from tokentop.ui import format as fmt

#: One rendered cell: its literal text and the name of its theme style.
CellText = tuple[str, str]
Align = Literal["left", "right"]


@dataclass(frozen=True)
class Column:
    id: str
    title: str
    #: fixed width in cells; the ``flex`` column takes what is left (at least ``width``)
    width: int
    #: the cell of a row in the width the layout gives the column: numbers choose a compact form
    #: (``$22.2k``) that fits rather than be cut; text may be longer and is ellipsized by the caller
    render: Callable[[Row, int], CellText]
    align: Align = "right"
    #: higher survives longer when the pane is narrow; 100 never drops
    priority: int = 50
    flex: bool = False
    #: sort key a click on the header selects
    sort: SortKey | None = None
    #: the sparkline column shrinks to ``min_width`` before anything else drops
    min_width: int | None = None
    #: long values lose their middle (ids), not their end
    cut_middle: bool = False
    #: shown only when this is true of the snapshot on screen (``None``: always)
    when: Callable[[Snapshot], bool] | None = None
    #: the header's title when ``title`` does not fit the width the layout gives the column
    short_title: str | None = None


@dataclass(frozen=True)
class ViewSpec:
    key: str  # the digit that selects it
    dim: str  # snapshot dimension
    title: str
    columns: tuple[Column, ...] = field(default=())


def _dash_if_zero(text: str, value: float) -> CellText:
    return (text, "dim") if value == 0 else (text, "")


def name_cell(row: Row, width: int) -> CellText:
    return fmt.printable(row.key), "name"


def models_cell(row: Row, width: int) -> CellText:
    names = row.model_names
    return (fmt.printable(names), "dim") if names else ("-", "dim")


def sessions_cell(row: Row, width: int) -> CellText:
    return _dash_if_zero(fmt.count_fit(row.sessions, width), row.sessions)


def req_cell(row: Row, width: int) -> CellText:
    return _dash_if_zero(fmt.rate_fit(row.requests_per_s, width), row.requests_per_s)


def tok_cell(row: Row, width: int) -> CellText:
    return _dash_if_zero(fmt.rate_fit(row.tokens_per_s, width), row.tokens_per_s)


def burn_cell(row: Row, width: int) -> CellText:
    if row.usd_per_hour == 0 and row.unpriced_requests_today and row.state == "active":
        return "unpriced", "warn"  # requests it could not price: never shown as $0
    if row.usd_per_hour == 0:
        return "$0.00", "dim"
    return fmt.usd_fit(row.usd_per_hour, width), "burn-" + fmt.burn_level(row.usd_per_hour)


def spend_cell(row: Row, width: int) -> CellText:
    """Spend today; requests that could not be priced are flagged, never folded in as $0."""
    if row.unpriced_requests_today and row.usd_today == 0:
        return "unpriced", "warn"
    if row.unpriced_requests_today:
        return fmt.usd_fit(row.usd_today, width - 2) + "+?", "warn"
    text = fmt.usd_fit(row.usd_today, width)
    return (text, "dim") if row.usd_today == 0 else (text, "")


def tokens_cell(row: Row, width: int) -> CellText:
    return _dash_if_zero(fmt.count_fit(row.tokens_today, width), row.tokens_today)


def state_cell(row: Row, width: int) -> CellText:
    style = {"active": "", "idle": "dim", "paused": "warn", "stopped": "warn"}.get(row.state, "warn")
    return fmt.printable(row.state), style


def pid_cell(row: Row, width: int) -> CellText:
    return (str(row.pid), "") if row.pid is not None else ("-", "dim")


def agent_cell(row: Row, width: int) -> CellText:
    return fmt.printable(row.agent or "-"), "dim" if row.agent is None else ""


def host_cell(row: Row, width: int) -> CellText:
    return fmt.printable(row.host or "-"), "dim" if row.host is None else ""


def lag_cell(row: Row, width: int) -> CellText:
    # filled by the app from status["fleet"] (BurnTable.extra_cells); this is the fallback
    return "-", "dim"


def several_hosts(snap: Snapshot) -> bool:
    """More than one host in the snapshot: a fleet view, where a session's host matters."""
    return len(snap.hosts) > 1


def window_cell(row: Row, width: int) -> CellText:
    # filled by the app from snapshot.limits (window_cells); a row with no share of a window
    return "-", "dim"


def has_5h_window(snap: Snapshot) -> bool:
    """The snapshot has a 5-hour subscription window: the ``5H%`` column applies."""
    return any(w.window == "5h" for w in snap.limits)


def window_values(snap: Snapshot | None, dim: str) -> dict[str, float]:
    """Row key → percentage points of its 5-hour window: an agent's window's used %, a session's
    share of its agent's window (by tokens since the window started) times that %."""
    if snap is None or not snap.limits:
        return {}
    if dim == "agents":
        return agent_points(snap.limits)
    if dim == "sessions":
        return session_points(snap.limits)
    return {}


def window_cells(snap: Snapshot | None, dim: str) -> dict[str, dict[str, CellText]]:
    """The ``5H%`` column's cells (column id -> row key -> cell)."""
    cells: dict[str, CellText] = {}
    for key, points in window_values(snap, dim).items():
        text = f"{points:.0f}" if points >= 9.95 else f"{points:.1f}"
        cells[key] = (text, "burn-high" if points >= 90 else "burn-mid" if points >= 70 else "") if points > 0 \
            else ("0", "dim")
    return {"window": cells}


def spark_cell(row: Row, width: int) -> CellText:
    # the table draws the series itself at the column's current width
    return "", "spark"


def _cols(*cols: Column) -> tuple[Column, ...]:
    return cols


NAME = Column("name", "NAME", 12, name_cell, align="left", priority=100, flex=True, sort="name")
MODELS = Column("models", "MODEL", 16, models_cell, align="left", priority=30)
SESSIONS = Column("sessions", "SESS", 4, sessions_cell, priority=28)
REQ = Column("req", "REQ/S", 6, req_cell, priority=45, sort="requests")
TOK = Column("tok", "TOK/S", 6, tok_cell, priority=80, sort="tokens")
BURN = Column("burn", "$/H est", 9, burn_cell, priority=100, sort="burn")
SPEND = Column("spend", "TODAY est", 10, spend_cell, priority=90, sort="spend")
TOKENS = Column("tokens", "TOKENS", 7, tokens_cell, priority=20)
STATE = Column("state", "STATE", 7, state_cell, align="left", priority=25)
SPARK = Column("spark", "BURN 2 MIN", 20, spark_cell, align="left", priority=60, min_width=8, short_title="BURN 2M")
SESSION = Column("name", "SESSION", 16, name_cell, align="left", priority=100, flex=True, sort="name", cut_middle=True)
AGENT = Column("agent", "AGENT", 12, agent_cell, align="left", priority=70)
MODEL = Column("models", "MODEL", 16, models_cell, align="left", priority=30)
PID = Column("pid", "PID", 7, pid_cell, priority=35)
#: on Sessions, only when the snapshot has several hosts; in narrow panes it outlives pid, model and
#: req/s (whose host a session runs on is what a kill needs), not the agent, tok/s or money
HOST = Column("host", "HOST", 10, host_cell, align="left", priority=50, when=several_hosts)
HOST_NAME = Column("name", "HOST", 12, name_cell, align="left", priority=100, flex=True, sort="name")
#: percentage points of the agent's 5-hour subscription window the row used (snapshot.limits)
WINDOW = Column("window", "5H%", 4, window_cell, priority=55, sort="window", when=has_5h_window)
#: fleet receive time minus the host's accept time of its newest event (status["fleet"])
LAG = Column("lag", "LAG", 7, lag_cell, priority=75)
#: how long ago the host last sent an event or heartbeat (status["fleet"])
SEEN = Column("seen", "SEEN", 8, lag_cell, priority=65)

#: The table views by their digit key.
TABLE_VIEWS: Final[dict[str, ViewSpec]] = {spec.key: spec for spec in (
    ViewSpec("1", "agents", "Agents", _cols(NAME, MODELS, SESSIONS, REQ, TOK, BURN, SPEND, WINDOW, TOKENS, STATE, SPARK)),
    ViewSpec("2", "sessions", "Sessions", _cols(SESSION, HOST, AGENT, MODEL, PID, REQ, TOK, BURN, SPEND, WINDOW, TOKENS, STATE,
                                                SPARK)),
    ViewSpec("3", "models", "Models", _cols(NAME, SESSIONS, REQ, TOK, BURN, SPEND, TOKENS, STATE, SPARK)),
    ViewSpec("4", "projects", "Projects", _cols(NAME, MODELS, SESSIONS, REQ, TOK, BURN, SPEND, TOKENS, STATE, SPARK)),
    ViewSpec("6", "hosts", "Hosts", _cols(HOST_NAME, SESSIONS, LAG, SEEN, REQ, TOK, BURN, SPEND, TOKENS, STATE, SPARK)),
)}


def view_by_dim(dim: str) -> ViewSpec | None:
    for spec in TABLE_VIEWS.values():
        if spec.dim == dim:
            return spec
    return None


#: a host lagging more than this is shown as a warning
LAG_WARN_S = 5.0


def fleet_hosts(snap: Snapshot | None) -> dict[str, FleetHost]:
    """The hosts of a fleet feed's status (:class:`FleetStatus`), or ``{}`` when the snapshot is not
    a fleet's."""
    fleet = FleetStatus.of(snap)
    return dict(fleet.hosts) if fleet is not None else {}


def fleet_cells(snap: Snapshot | None) -> dict[str, dict[str, CellText]]:
    """The Hosts view's LAG and SEEN cells from the fleet status (column id -> host -> cell)."""
    lag: dict[str, CellText] = {}
    seen: dict[str, CellText] = {}
    for name, h in fleet_hosts(snap).items():
        if h.lag_s is not None:
            lag[name] = (fmt.age(h.lag_s), "warn" if h.lag_s > LAG_WARN_S or not h.reporting else "")
        if h.last_report_s_ago is not None:
            seen[name] = (fmt.age(h.last_report_s_ago), "" if h.reporting else "warn")
    return {"lag": lag, "seen": seen}


def visible_columns(spec: ViewSpec, snap: Snapshot | None) -> tuple[Column, ...]:
    """The view's columns that apply to ``snap`` (a column with ``when`` needs it to be true)."""
    return tuple(c for c in spec.columns if c.when is None or (snap is not None and c.when(snap)))


def layout_columns(columns: tuple[Column, ...], width: int) -> list[tuple[Column, int]]:
    """Which columns fit in ``width`` cells and how wide each is (1 space between columns).

    The sparkline shrinks to its minimum first, then columns drop lowest priority first; the flex
    (name) column takes the remaining space.
    """
    chosen = list(columns)

    def fixed_total(cols: list[Column], spark_w: int | None) -> int:
        total = 0
        for c in cols:
            if c.min_width is not None and spark_w is not None:
                total += spark_w
            else:
                total += c.width
        return total + max(0, len(cols) - 1)

    spark = next((c for c in chosen if c.min_width is not None), None)
    spark_w = spark.width if spark else None
    while True:
        need = fixed_total(chosen, spark_w)
        if need <= width:
            break
        if spark is not None and spark in chosen and spark_w is not None and spark_w > spark.min_width:  # type: ignore[operator]
            spark_w = max(spark.min_width, spark_w - (need - width))  # type: ignore[arg-type]
            continue
        droppable = [c for c in chosen if c.priority < 100]
        if not droppable:
            break
        chosen.remove(min(droppable, key=lambda c: c.priority))
    extra = max(0, width - fixed_total(chosen, spark_w))
    widths = {c.id: (spark_w if (c.min_width is not None and spark_w is not None) else c.width) for c in chosen}
    # spare room: the name up to 24 cells, the model up to 20, the sparkline up to 48, the model up to 30,
    # then the name again
    for cid, cap in (("name", 20), ("models", 20), ("spark", 48), ("models", 30), ("name", 10_000)):
        if extra <= 0 or cid not in widths:
            continue
        grow = min(extra, max(0, cap - widths[cid]))
        widths[cid] += grow
        extra -= grow
    return [(c, widths[c.id]) for c in chosen]
