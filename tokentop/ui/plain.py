"""``tokentop --once --plain``: one frame as plain text (screen readers, pipes, logs).

No colour, no box drawing beyond the sparkline blocks, one line per row; money says ``est``.
"""

from __future__ import annotations

from tokentop.core.limits.status import LimitsStatus
from tokentop.core.snapshot import Snapshot, sort_rows
from tokentop.ui import format as fmt
from tokentop.ui.limits_line import window_lines
from tokentop.ui.views import (
    TABLE_VIEWS, ViewSpec, fleet_cells, layout_columns, view_by_dim, visible_columns, window_cells, window_values,
)


def limit_lines(snapshot: Snapshot, now: float, width: int = 100) -> list[str]:
    """The subscription windows, one plain line each (plus the limits status's notes)."""
    lines = ["".join(t for t, _ in line).rstrip() for line in window_lines(snapshot.limits, now, max(width, 200),
                                                                              with_bar=False)]
    status = LimitsStatus.of(snapshot)
    lines += [f"note: {n}" for n in (status.notes if status is not None else ())]
    return lines


def plain_frame(snapshot: Snapshot, *, view: str = "agents", sort: str = "burn", reverse: bool = False, width: int = 100,
                now: float | None = None) -> str:
    t = snapshot.totals
    spec: ViewSpec = view_by_dim(view) or TABLE_VIEWS["1"]
    lines = [
        f"tokentop {spec.title}: burn {fmt.usd(t.usd_per_hour)}/h est, today {fmt.usd(t.usd_today)} est, "
        f"{fmt.rate(t.tokens_per_s)} tok/s, {fmt.rate(t.requests_per_s)} req/s, {t.active_sessions} active sessions",
    ]
    if t.unpriced_requests_today:
        lines.append(f"warning: {t.unpriced_requests_today} requests today could not be priced and are not in the $ figures")
    lines += limit_lines(snapshot, snapshot.generated_at if now is None else now, width)
    values = window_values(snapshot, spec.dim) if sort == "window" else None
    rows = sort_rows(snapshot.view(spec.dim), sort, reverse, values)  # type: ignore[arg-type]
    if not rows:
        lines.append("no token usage seen yet (try: tokentop demo)")
        return "\n".join(lines) + "\n"
    layout = layout_columns(visible_columns(spec, snapshot), width)
    extra = fleet_cells(snapshot) if spec.dim == "hosts" else {}
    extra.update(window_cells(snapshot, spec.dim))
    # plain text is read, not glanced at: names are never cut
    longest = max((len(fmt.printable(r.key)) for r in rows), default=0)
    layout = [(c, max(w, longest) if c.flex else w) for c, w in layout]
    head = []
    for col, w in layout:
        title = col.short_title if col.short_title and len(col.title) > w else col.title
        head.append(title.ljust(w) if col.align == "left" else title.rjust(w))
    lines.append(" ".join(head).rstrip())
    for row in rows:
        cells = []
        for col, w in layout:
            if col.id == "spark":
                text = fmt.sparkline(row.burn_series, w)
            else:
                text, _ = extra.get(col.id, {}).get(row.key) or col.render(row, w)
                text = fmt.ellipsize_middle(text, w) if col.cut_middle else fmt.ellipsize(text, w)
            cells.append(text.ljust(w) if col.align == "left" else text.rjust(w))
        lines.append(" ".join(cells).rstrip())
    return "\n".join(lines) + "\n"
