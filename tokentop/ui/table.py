"""The live table: a line-API widget that paints only what is visible and only what changed.

Why not ``DataTable``: it repaints every visible cell on any update (~35 ms per frame at 160x50;
docs/ui.md § Performance). Here each row's line is a cached :class:`Strip`, rebuilt only
when that row's data, the layout, the cursor/tag mark or the theme changed, and :meth:`show`
refreshes only the screen lines whose content changed.

The cursor starts on the top row and stays on the top *position* while rows re-sort, until the
user moves it (keys, mouse): a fresh view must not carry the cursor off with whichever row happened
to be first in an early frame, so that Enter and ``k`` hit a row the user never chose. Once moved,
the cursor is a row *key*: when rows re-sort, it follows its row. If the row disappears (filtered
out, evicted) the cursor moves to the row now at the same place, visibly.
"""

from __future__ import annotations

from typing import Sequence

from rich.segment import Segment
from rich.style import Style
from textual import events
from textual.binding import Binding
from textual.geometry import Region, Size
from textual.message import Message
from textual.strip import Strip
from textual.widget import Widget

from tokentop.core.snapshot import Row, SortKey
from tokentop.ui import format as fmt
from tokentop.ui.views import CellText, Column, ViewSpec, layout_columns, visible_columns

GUTTER = 1  # left cell: the tag mark
#: how a budget / runaway flag from the feed's policy, or a block at the API (status.blocks), shows
#: in the STATE column
FLAG_TEXT = {"warning": "WARN", "over": "OVER", "runaway": "RUNAWAY", "blocked": "BLOCKED"}
FLAG_STYLE = {"warning": "burn-mid", "over": "burn-high", "runaway": "burn-high", "blocked": "burn-high"}


class BurnTable(Widget, can_focus=True):
    """Rows of one view, sorted by the app; cursor by key; tags by key."""

    COMPONENT_CLASSES = {
        "burn-table--header",
        "burn-table--header-sorted",
        "burn-table--cursor",
        "burn-table--tagged",
        "burn-table--name",
        "burn-table--dim",
        "burn-table--warn",
        "burn-table--burn-low",
        "burn-table--burn-mid",
        "burn-table--burn-high",
        "burn-table--spark",
    }

    BINDINGS = [
        Binding("up", "cursor(-1)", "Up", show=False),
        Binding("down", "cursor(1)", "Down", show=False),
        Binding("pageup", "page(-1)", "Page up", show=False),
        Binding("pagedown", "page(1)", "Page down", show=False),
        Binding("home", "edge(-1)", "First row", show=False),
        Binding("end", "edge(1)", "Last row", show=False),
    ]

    class HeaderClicked(Message):
        def __init__(self, sort: SortKey) -> None:
            self.sort = sort
            super().__init__()

    class CursorMoved(Message):
        def __init__(self, key: str | None) -> None:
            self.key = key
            super().__init__()

    def __init__(self, spec: ViewSpec, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.spec = spec
        #: the view's columns that apply to the snapshot on screen (see :meth:`set_columns`)
        self.columns: tuple[Column, ...] = visible_columns(spec, None)
        self.rows: list[Row] = []
        self._index: dict[str, int] = {}
        self.cursor_key: str | None = None
        #: False until the user moves the cursor: it then sits on whatever row is on top
        self.following = False
        self.tagged: set[str] = set()
        self.sort_key: SortKey = "burn"
        self.sort_reverse = False
        self._top = 0
        self._layout: list[tuple[Column, int]] = []
        self._layout_width = -1
        self._cache: dict[str, tuple[object, Strip]] = {}
        self._painted: list[tuple[str, Row] | None] = []
        self._painted_marks: list[tuple[bool, bool] | None] = []
        #: cells computed while deciding what to repaint (one show() to the next), by key:
        #: (row, width, flags, cells); render_line takes them instead of computing them twice
        self._fresh_cells: dict[str, tuple[Row, int, dict[str, str], tuple[tuple[str, str], ...]]] = {}
        self._styles: dict[str, Style] = {}
        #: key -> policy level ("warning" | "over" | "runaway") for this view, from status.policy.flags
        self.flags: dict[str, str] = {}
        #: column id -> row key -> cell, for columns whose text comes from the snapshot's status
        #: (a host's lag in the Hosts view); a missing key falls back to the column's own render
        self.extra_cells: dict[str, dict[str, CellText]] = {}
        #: how many row lines were rebuilt in total (the bench and tests read it)
        self.lines_rendered = 0

    # -- public API ------------------------------------------------------------------------------
    def set_view(self, spec: ViewSpec) -> None:
        if spec is self.spec:
            return
        self.spec = spec
        self.columns = visible_columns(spec, None)
        self.rows = []
        self._index = {}
        self.cursor_key = None
        self.following = False  # a fresh view: the cursor is on top again until the user moves it
        self.tagged.clear()
        self._top = 0
        self._invalidate()

    def set_columns(self, columns: tuple[Column, ...]) -> None:
        """Show these of the view's columns (e.g. HOST once a second host appears); cursor, tags
        and scroll position stay."""
        if columns != self.columns:
            self.columns = columns
            self._invalidate()

    def set_extra_cells(self, cells: dict[str, dict[str, CellText]]) -> None:
        """Cells from the snapshot's status (a host's LAG / SEEN). A row whose data did not change
        keeps its Row object, so the lines whose extra cells changed are repainted here."""
        if cells == self.extra_cells:
            return
        old, self.extra_cells = self.extra_cells, cells
        changed: set[str] = set()
        for col in old.keys() | cells.keys():
            before, now = old.get(col, {}), cells.get(col, {})
            changed.update(k for k in before.keys() | now.keys() if before.get(k) != now.get(k))
        for key in changed:
            self._cache.pop(key, None)
            self._fresh_cells.pop(key, None)  # computed with the old extra cells
            self._refresh_key(key)

    def set_sort(self, key: SortKey, reverse: bool) -> None:
        if (key, reverse) != (self.sort_key, self.sort_reverse):
            self.sort_key, self.sort_reverse = key, reverse
            self.refresh(Region(0, 0, self.size.width, 1))

    def show(self, rows: Sequence[Row]) -> None:
        """Display ``rows`` (already filtered and sorted); repaint only the lines that changed."""
        old_cursor_index = self._index.get(self.cursor_key, 0) if self.cursor_key is not None else 0
        self.rows = list(rows)
        self._index = {r.key: i for i, r in enumerate(self.rows)}
        if not self.following and self.rows and self.cursor_key != self.rows[0].key:
            self.cursor_key = self.rows[0].key
            self.post_message(self.CursorMoved(self.cursor_key))
        elif self.cursor_key not in self._index:
            if self.rows:
                self.cursor_key = self.rows[min(old_cursor_index, len(self.rows) - 1)].key
                self.post_message(self.CursorMoved(self.cursor_key))
            else:
                self.cursor_key = None
        self.tagged &= self._index.keys()
        self._scroll_to_cursor()
        self._repaint_changed()

    @property
    def cursor_row(self) -> Row | None:
        if self.cursor_key is None:
            return None
        i = self._index.get(self.cursor_key)
        return None if i is None else self.rows[i]

    @property
    def cursor_index(self) -> int | None:
        return None if self.cursor_key is None else self._index.get(self.cursor_key)

    def move_cursor_to(self, key: str) -> None:
        """Put the cursor on ``key`` (a user's choice: from now on it follows that row)."""
        if key in self._index:
            self.following = True
        if key in self._index and key != self.cursor_key:
            self.cursor_key = key
            self._scroll_to_cursor()
            self._repaint_changed()
            self.post_message(self.CursorMoved(key))

    def toggle_tag(self) -> None:
        key = self.cursor_key
        if key is None:
            return
        if key in self.tagged:
            self.tagged.discard(key)
        else:
            self.tagged.add(key)
        self._refresh_key(key)

    def untag_all(self) -> None:
        keys = list(self.tagged)
        self.tagged.clear()
        for key in keys:
            self._refresh_key(key)

    def rows_keys_in_order(self) -> list[str]:
        return [r.key for r in self.rows]

    def render_text(self) -> list[str]:
        """What the table shows now, as plain text lines (tests, ``--once --plain``)."""
        return [strip.text for strip in (self.render_line(y) for y in range(self.size.height))]

    # -- actions ---------------------------------------------------------------------------------
    def action_cursor(self, delta: int) -> None:
        self._move_index(delta)

    def action_page(self, delta: int) -> None:
        self._move_index(delta * max(1, self._body_height() - 1))

    def action_edge(self, direction: int) -> None:
        self._move_index(-len(self.rows) if direction < 0 else len(self.rows))

    def _move_index(self, delta: int) -> None:
        if not self.rows:
            return
        i = self._index.get(self.cursor_key, 0) if self.cursor_key is not None else 0
        j = max(0, min(len(self.rows) - 1, i + delta))
        self.move_cursor_to(self.rows[j].key)

    # -- mouse -----------------------------------------------------------------------------------
    def on_click(self, event: events.Click) -> None:
        y, x = event.y, event.x
        if y == 0:
            col = self._column_at(x)
            if col is not None and col.sort is not None:
                self.post_message(self.HeaderClicked(col.sort))
            return
        i = self._top + y - 1
        if 0 <= i < len(self.rows):
            self.move_cursor_to(self.rows[i].key)

    def on_mouse_scroll_down(self, event: events.MouseScrollDown) -> None:
        self._move_index(3)
        event.stop()

    def on_mouse_scroll_up(self, event: events.MouseScrollUp) -> None:
        self._move_index(-3)
        event.stop()

    def _column_at(self, x: int) -> Column | None:
        pos = GUTTER
        for col, w in self._current_layout():
            if pos <= x < pos + w:
                return col
            pos += w + 1
        return None

    # -- painting --------------------------------------------------------------------------------
    def on_resize(self, event: events.Resize) -> None:
        self._scroll_to_cursor()
        self._invalidate()

    def notify_style_update(self) -> None:
        super().notify_style_update()
        self._styles.clear()
        self._cache.clear()
        self._painted = []

    def _invalidate(self) -> None:
        self._fresh_cells.clear()
        self._cache.clear()
        self._painted = []
        self._layout_width = -1
        self.refresh()

    def _body_height(self) -> int:
        return max(0, self.size.height - 1)

    def _scroll_to_cursor(self) -> None:
        body = self._body_height()
        i = self.cursor_index
        if i is None or body <= 0:
            self._top = max(0, min(self._top, max(0, len(self.rows) - body)))
            return
        if i < self._top:
            self._top = i
        elif i >= self._top + body:
            self._top = i - body + 1
        self._top = max(0, min(self._top, max(0, len(self.rows) - body)))

    def _repaint_changed(self) -> None:
        self._fresh_cells.clear()
        body = self._body_height()
        width = self.size.width
        if not self._painted or len(self._painted) != body:
            self._painted = [None] * body
            self.refresh()
            self._record_painted(body)
            return
        changed: list[int] = []
        layout = self._current_layout()
        for y in range(body):
            i = self._top + y
            now = (self.rows[i].key, self.rows[i]) if i < len(self.rows) else None
            before = self._painted[y]
            if now is not None and before is not None and now[0] == before[0] and now[1] is not before[1] \
                    and self._mark(now[0]) == self._painted_marks[y] and self._same_text(now[1], layout, width):
                continue  # new data, same visible text: nothing to repaint
            if now != before or (now is not None and self._mark(now[0]) != self._painted_marks[y]):
                changed.append(y)
        if len(changed) > 8:
            self.refresh(Region(0, 1, width, body))  # one region beats many small ones
        else:
            for y in changed:
                self.refresh(Region(0, y + 1, width, 1))
        self._record_painted(body)

    def _same_text(self, row: Row, layout: list[tuple[Column, int]], width: int) -> bool:
        """True when ``row`` would paint exactly the cached line; the cache then adopts ``row``."""
        hit = self._cache.get(row.key)
        if hit is None:
            return False
        cursor, tagged = self._mark(row.key)
        sig = hit[0]
        if sig[1:4] != (width, cursor, tagged):
            return False
        cells = self._cells(row, layout)
        if cells != sig[4]:
            self._fresh_cells[row.key] = (row, width, self.flags, cells)  # render_line paints these
            return False
        self._cache[row.key] = ((row, width, cursor, tagged, cells), hit[1])
        return True

    def _mark(self, key: str) -> tuple[bool, bool]:
        return (key == self.cursor_key, key in self.tagged)

    def _record_painted(self, body: int) -> None:
        painted: list[tuple[str, Row] | None] = []
        marks: list[tuple[bool, bool] | None] = []
        for y in range(body):
            i = self._top + y
            if i < len(self.rows):
                painted.append((self.rows[i].key, self.rows[i]))
                marks.append(self._mark(self.rows[i].key))
            else:
                painted.append(None)
                marks.append(None)
        self._painted = painted
        self._painted_marks = marks

    def _refresh_key(self, key: str) -> None:
        i = self._index.get(key)
        if i is None:
            return
        y = i - self._top
        if 0 <= y < self._body_height():
            self.refresh(Region(0, y + 1, self.size.width, 1))
            if self._painted_marks and y < len(self._painted_marks):
                self._painted_marks[y] = self._mark(key)

    def _style(self, name: str) -> Style:
        style = self._styles.get(name)
        if style is None:
            style = self.get_component_rich_style(f"burn-table--{name}", partial=True)
            self._styles[name] = style
        return style

    def _current_layout(self) -> list[tuple[Column, int]]:
        width = self.size.width - GUTTER
        if width != self._layout_width:
            self._layout = layout_columns(self.columns, max(0, width))
            self._layout_width = width
            self._cache.clear()
        return self._layout

    def render_line(self, y: int) -> Strip:
        width = self.size.width
        layout = self._current_layout()
        if y == 0:
            return self._header_strip(layout, width)
        i = self._top + y - 1
        if i >= len(self.rows):
            return Strip.blank(width, self._composite("", False, False))
        row = self.rows[i]
        cursor, tagged = self._mark(row.key)
        hit = self._cache.get(row.key)
        if hit is not None and hit[0][0] is row and hit[0][1:] == (width, cursor, tagged):
            return hit[1]
        fresh = self._fresh_cells.pop(row.key, None)
        if fresh is not None and fresh[0] is row and fresh[1] == width and fresh[2] is self.flags \
                and layout is self._layout:
            cells = fresh[3]
        else:
            cells = self._cells(row, layout)
        sig = (row, width, cursor, tagged, cells)
        if hit is not None and hit[0][1:] == sig[1:]:
            self._cache[row.key] = (sig, hit[1])  # new data, same text: keep the strip
            return hit[1]
        strip = self._row_strip(cells, width, cursor, tagged)
        self._cache[row.key] = (sig, strip)
        self.lines_rendered += 1
        return strip

    def _header_strip(self, layout: list[tuple[Column, int]], width: int) -> Strip:
        head = self._style("header")
        sorted_style = head + self._style("header-sorted")
        segs = [Segment(" " * GUTTER, head)]
        for n, (col, w) in enumerate(layout):
            title = col.short_title if col.short_title and len(col.title) > w else col.title
            style = head
            text = fmt.ellipsize(title, w)
            if col.sort is not None and col.sort == self.sort_key:
                arrow = "▲" if ((col.sort == "name") != self.sort_reverse) else "▼"
                text = (title if len(title) < w else title[: max(0, w - 1)]) + arrow
                style = sorted_style
            text = text.ljust(w) if col.align == "left" else text.rjust(w)
            if n:
                segs.append(Segment(" ", head))
            segs.append(Segment(text, style))
        return Strip(segs).adjust_cell_length(width, head)

    def _cells(self, row: Row, layout: list[tuple[Column, int]]) -> tuple[tuple[str, str], ...]:
        """The row's visible text, padded to the layout, with each cell's style name."""
        out = []
        for col, w in layout:
            if col.id == "spark":
                text = fmt.sparkline(row.burn_series, w)
                style_name = "burn-" + fmt.burn_level(row.usd_per_hour) if row.usd_per_hour else "spark"
            else:
                extra = self.extra_cells.get(col.id)
                text, style_name = (extra.get(row.key) if extra else None) or col.render(row, w)
                if col.id == "state" and row.key in self.flags:
                    level = self.flags[row.key]
                    text, style_name = FLAG_TEXT.get(level, level.upper()), FLAG_STYLE.get(level, "warn")
                text = fmt.ellipsize_middle(text, w) if col.cut_middle else fmt.ellipsize(text, w)
                text = text.ljust(w) if col.align == "left" else text.rjust(w)
            out.append((text, style_name))
        return tuple(out)

    def _composite(self, name: str, cursor: bool, tagged: bool) -> Style:
        key = f"{name}|{cursor:d}{tagged:d}"
        style = self._styles.get(key)
        if style is None:
            style = self.rich_style
            if tagged:
                style = style + self._style("tagged")
            if cursor:
                style = style + self._style("cursor")
            if name:
                style = style + self._style(name)
                if cursor:
                    style = style + self._style("cursor")
            self._styles[key] = style
        return style

    def _row_strip(self, cells: tuple[tuple[str, str], ...], width: int, cursor: bool, tagged: bool) -> Strip:
        # Neighbouring cells of the same style go out as one segment (the separators too): about
        # half the segments of one per cell, and each segment costs Textual's compositor and its
        # colour filter per line and frame.
        base = self._composite("", cursor, tagged)
        segs = []
        run = ["•" if tagged else " "]
        run_style = base
        for n, (text, style_name) in enumerate(cells):
            style = self._composite(style_name, cursor, tagged) if style_name else base
            if n:
                if run_style is not base:
                    segs.append(Segment("".join(run), run_style))
                    run, run_style = [], base
                run.append(" ")
            if style is not run_style:
                segs.append(Segment("".join(run), run_style))
                run, run_style = [], style
            run.append(text)
        segs.append(Segment("".join(run), run_style))
        return Strip(segs).adjust_cell_length(width, base)

    def get_content_height(self, container: Size, viewport: Size, width: int) -> int:  # noqa: D401
        return max(1, len(self.rows) + 1)
