"""The live view: a top-style Textual app over a :mod:`snapshot source <tokentop.ui.source>`.

Data and redraw are decoupled: the feed keeps ingesting on its own thread (or remote host), and
:meth:`TokentopApp.refresh_now` — called by one interval timer, or directly by tests with
``refresh_s=None`` — pulls the latest snapshot and hands it to the header and the table, which
repaint only what changed. Pausing keeps pulling (data keeps flowing) but freezes the display.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable, Mapping

from textual import on
from textual.app import App, ComposeResult, SystemCommand
from textual.binding import Binding
from textual.screen import Screen
from textual.timer import Timer
from textual.widgets import Input, Static

from tokentop.core.control.policy_task import PolicyStatus
from tokentop.core.control.port import Controller, NoController, Target
from tokentop.core.snapshot import SORT_KEYS, Row, Snapshot, SortKey, sort_rows
from tokentop.ui import providers_view
from tokentop.ui.header import CONDENSE_BELOW_HEIGHT, CONDENSE_BELOW_WIDTH, HeaderState, Meters
from tokentop.ui.keyline import KEY_LINE_MIN_HEIGHT, KeyLine
from tokentop.ui.limits_bar import LimitsBar
from tokentop.ui.source import SnapshotSource
from tokentop.ui.table import BurnTable
from tokentop.ui.themes import DEFAULT_THEME, NO_COLOR_THEME, load_themes
from tokentop.ui.views import (
    TABLE_VIEWS, ViewSpec, fleet_cells, view_by_dim, visible_columns, window_cells, window_values,
)

if TYPE_CHECKING:
    from tokentop.core.ledger import Ledger

#: A digit key that opens a screen instead of a table view: its title, and a factory that gets the
#: app (its ``source``, ``clock``...) and returns the screen to push, or ``None`` with nothing to show.
ScreenView = tuple[str, Callable[["TokentopApp"], Screen | None]]


def default_screen_views(ledger: Ledger | None = None, *, simulated: bool = False) -> dict[str, ScreenView]:
    """The screen views the live view has: key 5, Providers (billed spend from the provider APIs).
    ``ledger``: the embedded feed's ledger, which the Providers screen then reads as is (without it,
    the screen opens this machine's ledger while it is shown). ``simulated``: ``tokentop demo``'s
    simulated billing, labelled as such on every screen."""
    title = "Providers (simulated billing)" if simulated else "Providers (billed)"
    return {"5": (title, providers_view.opener(ledger, simulated=simulated))}


#: refresh interval steps for + / -
REFRESH_STEPS = (0.25, 0.5, 1.0, 2.0, 3.0, 5.0, 10.0)
#: sessions a kill on an agent/model/project row captures at most
MAX_TARGETS = 50

EMPTY_TEXT = """\
No token usage seen yet on {label}.

  Try it now        tokentop demo          a simulated fleet; nothing real is spent
  Wrap an agent     tokentop run -- claude     its usage shows here, and k can stop it
  Send events       tokentop emit --agent me --model gpt-4o-mini --input 1200 --output 300
                    or POST JSON lines to {url}/v1/events   (docs/events.md)
  OpenTelemetry     OTEL_EXPORTER_OTLP_ENDPOINT={url}
  Point agents at   TOKENTOP_FEED={url}

Press ? for keys, q to quit.
"""


class TokentopApp(App[None]):
    CSS_PATH = "tokentop.tcss"
    TITLE = "tokentop"
    ENABLE_COMMAND_PALETTE = True
    #: size classes on the screen (Textual breakpoints), so a resize in either direction restyles
    #: at once: ``-short`` hides the key line; ``-narrow`` / ``-short`` / ``-low`` condense the header
    HORIZONTAL_BREAKPOINTS = [(0, "-narrow"), (CONDENSE_BELOW_WIDTH, "-wide")]
    VERTICAL_BREAKPOINTS = [(0, "-short"), (KEY_LINE_MIN_HEIGHT, "-low"), (CONDENSE_BELOW_HEIGHT, "-tall")]

    BINDINGS = [
        Binding("q", "quit", "Quit", id="quit"),
        Binding("f10", "quit", "Quit", show=False, id="quit-f10"),
        Binding("f1,question_mark,h", "help", "Help", id="help"),
        *[Binding(str(n), f"view('{n}')", f"View {n}", show=False, id=f"view-{n}") for n in range(1, 10)],
        Binding("B", "sort('burn')", "Sort by $/h", id="sort-burn"),
        Binding("T", "sort('tokens')", "Sort by tok/s", id="sort-tokens"),
        Binding("R", "sort('requests')", "Sort by req/s", id="sort-requests"),
        Binding("C", "sort('spend')", "Sort by spend today", id="sort-spend"),
        Binding("N", "sort('name')", "Sort by name", id="sort-name"),
        Binding("W", "sort('window')", "Sort by 5-hour window share", id="sort-window"),
        Binding("less_than_sign", "cycle_sort(-1)", "Previous sort column", show=False, id="sort-prev"),
        Binding("greater_than_sign", "cycle_sort(1)", "Next sort column", show=False, id="sort-next"),
        Binding("I", "invert_sort", "Invert sort", id="sort-invert"),
        Binding("slash", "filter", "Filter", id="filter"),
        Binding("escape", "clear_filter", "Clear filter", show=False, id="clear-filter"),
        Binding("p,Z", "toggle_pause", "Pause display", id="pause"),
        Binding("plus", "faster", "Faster refresh", show=False, id="faster"),
        Binding("minus", "slower", "Slower refresh", show=False, id="slower"),
        Binding("enter", "detail", "Detail", id="detail"),
        Binding("space", "tag", "Tag row", show=False, id="tag"),
        Binding("U", "untag", "Untag all", show=False, id="untag"),
        Binding("k,f9", "kill", "Kill", id="kill"),
        Binding("s", "pause_session", "Pause session", show=False, id="pause-session"),
        Binding("c", "resume_session", "Continue session", show=False, id="resume-session"),
        Binding("ctrl+l", "redraw", "Redraw", show=False, id="redraw"),
    ]

    def __init__(
        self,
        source: SnapshotSource,
        *,
        clock: Callable[[], float] = time.time,
        refresh_s: float | None = 1.0,
        controller: Controller | None = None,
        readonly: bool = False,
        view: str = "agents",
        sort: SortKey = "burn",
        sort_reverse: bool = False,
        theme: str | None = None,
        daily_budget_usd: float = 0.0,
        config_path: Path | None = None,
        shipped_themes: Path | None = None,
        user_themes: Path | None = None,
        screen_views: Mapping[str, ScreenView] | None = None,
        key_line: bool = True,
    ) -> None:
        views = default_screen_views() if screen_views is None else dict(screen_views)
        for key in views:
            if not (len(key) == 1 and key.isdigit() and key != "0"):
                raise ValueError(f"a view key is one digit 1-9, got {key!r}")
        self._theme_load = load_themes(shipped_themes, user_themes)
        super().__init__()
        #: digit -> screen view (keys that a table view does not take)
        self.screen_views: dict[str, ScreenView] = {k: v for k, v in views.items() if k not in TABLE_VIEWS}
        self.source = source
        self.clock = clock
        self.timer_enabled = refresh_s is not None
        self.refresh_s = refresh_s if refresh_s is not None else 1.0
        self.controller: Controller = controller or NoController()
        self.readonly = readonly
        spec = view_by_dim(view) or TABLE_VIEWS["1"]
        self.view_spec: ViewSpec = spec
        self.sort_key: SortKey = sort if sort in SORT_KEYS else "burn"
        self.sort_reverse = sort_reverse
        self.filter_text = ""
        self.paused = False
        self.daily_budget_usd = daily_budget_usd
        self.config_path = config_path
        #: show the key line at the bottom (``ui.key_line``); hidden anyway on short panes
        self.key_line = key_line
        #: newest snapshot pulled from the source (keeps moving while paused)
        self.latest: Snapshot | None = None
        #: snapshot on screen (frozen while paused)
        self.shown: Snapshot | None = None
        self._timer: Timer | None = None
        self._empty_text = ""
        self._alert_seq: int | None = None
        for t in self._theme_load.themes.values():
            self.register_theme(t)
        wanted = theme or DEFAULT_THEME
        if self.no_color and theme is None:
            wanted = NO_COLOR_THEME
        self.theme_error: str | None = None
        if self.get_theme(wanted) is None:
            self.theme_error = f"theme {wanted!r} is not installed; using {DEFAULT_THEME!r}"
            wanted = DEFAULT_THEME if self.get_theme(DEFAULT_THEME) else "textual-dark"
        self.theme = wanted

    # -- theme variables ---------------------------------------------------------------------------
    def get_theme_variable_defaults(self) -> dict[str, str]:
        """Burn colours for themes that do not define them (e.g. Textual's built-ins)."""
        generated = self.current_theme.to_color_system().generate()
        return {
            "burn-low": generated["success"],
            "burn-mid": generated["warning"],
            "burn-high": generated["error"],
            "spark": generated["primary"],
        }

    # -- layout --------------------------------------------------------------------------------
    def compose(self) -> ComposeResult:
        yield Meters(id="meters")
        yield LimitsBar(id="limits")
        yield BurnTable(self.view_spec, id="table")
        yield Static("", id="empty", markup=False)
        yield KeyLine(id="key-line")
        yield Input(placeholder="filter: name, agent, model, project or host — Enter keeps it, Esc clears", id="filter")

    def on_mount(self) -> None:
        table = self.query_one(BurnTable)
        table.set_sort(self.sort_key, self.sort_reverse)
        table.display = False  # until the first snapshot with data
        table.focus()
        problems = [m for m in (self._theme_load.error_message(), self.theme_error) if m]
        if problems:
            self.notify("\n".join(problems), title="Themes", severity="error", timeout=15)
        self.theme_changed_signal.subscribe(self, self._on_theme_changed)
        self._apply_condensed()
        self.call_after_refresh(self._start)

    async def _start(self) -> None:
        if hasattr(self.source, "on_fresh"):
            self.source.on_fresh = self.refresh_now  # type: ignore[attr-defined]
        await self.source.start()
        self.refresh_now()
        if self.timer_enabled:
            self._timer = self.set_interval(self.refresh_s, self.refresh_now, name="tokentop-refresh")

    async def on_unmount(self) -> None:
        if self._timer is not None:
            self._timer.stop()

    def _apply_condensed(self) -> None:
        meters = self.query_one(Meters)
        meters.set_class(meters.condensed, "-condensed")
        if not self.key_line:
            self.query_one(KeyLine).display = False  # else the screen's size class decides (tokentop.tcss)

    # -- the tick -------------------------------------------------------------------------------
    def refresh_now(self) -> None:
        """Pull the newest snapshot; unless paused, show it. The timer calls this; tests call it."""
        snap = self.source.latest()
        if snap is not None:
            self.latest = snap
        if not self.paused and self.latest is not None:
            self.shown = self.latest
        self.render_rows()

    def current_rows(self) -> list[Row]:
        """The shown snapshot's rows for the current view, filtered and sorted."""
        snap = self.shown
        if snap is None:
            return []
        dim = self.view_spec.dim
        rows: Iterable[Row] = snap.view(dim)
        needle = self.filter_text.casefold()
        if needle:
            on_host = keys_on_matching_hosts(snap, dim, needle)
            rows = [r for r in rows if _matches(r, needle) or r.key in on_host]
        values = window_values(snap, dim) if self.sort_key == "window" else None
        return list(sort_rows(tuple(rows), self.sort_key, self.sort_reverse, values))

    def render_rows(self) -> None:
        table = self.query_one(BurnTable)
        empty = self.query_one("#empty", Static)
        snap = self.shown
        if snap is None or snap.empty:
            url = getattr(self.source, "control_url", None) or "http://127.0.0.1:7411"
            text = EMPTY_TEXT.format(label=self.source.label, url=url)
            if text != self._empty_text:  # an unchanged Static is not re-rendered every tick
                self._empty_text = text
                empty.update(text)
            empty.display = True
            table.display = False
        else:
            if empty.display or not table.display:
                empty.display = False
                table.display = True
                if self.focused is None:
                    table.focus()
            policy = PolicyStatus.of(snap)
            table.flags = policy.row_flags(self.view_spec.dim, snap.sessions) if policy is not None else {}
            cells = fleet_cells(snap) if self.view_spec.dim == "hosts" else {}
            cells.update(window_cells(snap, self.view_spec.dim))
            table.set_extra_cells(cells)
            table.set_columns(visible_columns(self.view_spec, snap))
            table.show(self.current_rows())
        self._alert_on_new_policy_alerts(snap)
        self._render_header()

    def _alert_on_new_policy_alerts(self, snap: Snapshot | None) -> None:
        """Ring the bell and show the message when the feed's policy raised a new alert."""
        policy = PolicyStatus.of(snap)
        if policy is None or policy.alert_seq is None:
            return
        seq = policy.alert_seq
        if self._alert_seq is not None and seq > self._alert_seq:
            fresh = policy.alerts_after(self._alert_seq)
            for alert in fresh[-3:]:
                if alert.level != "cleared":
                    self.notify(alert.message or alert.rule, title=f"tokentop {alert.level}",
                                severity="error" if alert.level in ("over", "runaway") else "warning", timeout=10)
            if any(a.level != "cleared" for a in fresh) or not fresh:
                self.bell()
        self._alert_seq = seq

    def _render_header(self) -> None:
        policy = PolicyStatus.of(self.shown)
        state = HeaderState(
            view_title=self.view_spec.title,
            source_label=self.source.label,
            connected=self.source.connected,
            error=self.source.error,
            now=self.clock(),
            refresh_s=self.refresh_s,
            paused=self.paused,
            filter_text=self.filter_text,
            sort=self.sort_key,
            sort_reverse=self.sort_reverse,
            daily_budget_usd=(policy.daily_budget_usd if policy is not None else 0.0) or self.daily_budget_usd,
            readonly=self.readonly,
            flagged=policy.sessions_over if policy is not None else 0,
        )
        meters = self.query_one(Meters)
        meters.show(self.shown, state)
        self.query_one(LimitsBar).show(self.shown, state.now, condensed=meters.condensed)

    # -- bindings: availability --------------------------------------------------------------
    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "view":
            return parameters[0] in TABLE_VIEWS or parameters[0] in self.screen_views
        if action in ("kill", "pause_session", "resume_session"):
            return not self.readonly
        if action == "clear_filter":
            return bool(self.filter_text) or self.query_one("#filter", Input).has_class("-shown")
        return True

    # -- actions: views and sort ----------------------------------------------------------------
    def action_view(self, key: str) -> None:
        if key in self.screen_views:
            screen = self.screen_views[key][1](self)
            if screen is not None:
                self.push_screen(screen)
            return
        spec = TABLE_VIEWS.get(key)
        if spec is None or spec is self.view_spec:
            return
        self.view_spec = spec
        self.query_one(BurnTable).set_view(spec)
        self.render_rows()
        self._save({"view": spec.dim})

    def action_sort(self, key: SortKey) -> None:
        if key == self.sort_key:
            self.sort_reverse = not self.sort_reverse  # same key again inverts (k9s habit)
        else:
            self.sort_key = key
            self.sort_reverse = False
        self._apply_sort()

    def action_cycle_sort(self, delta: int) -> None:
        i = SORT_KEYS.index(self.sort_key)
        self.sort_key = SORT_KEYS[(i + delta) % len(SORT_KEYS)]
        self._apply_sort()

    def action_invert_sort(self) -> None:
        self.sort_reverse = not self.sort_reverse
        self._apply_sort()

    def _apply_sort(self) -> None:
        self.query_one(BurnTable).set_sort(self.sort_key, self.sort_reverse)
        self.render_rows()
        self._save({"sort": self.sort_key, "sort_reverse": self.sort_reverse})

    @on(BurnTable.HeaderClicked)
    def _header_clicked(self, message: BurnTable.HeaderClicked) -> None:
        self.action_sort(message.sort)

    # -- filter ---------------------------------------------------------------------------------
    def action_filter(self) -> None:
        box = self.query_one("#filter", Input)
        box.add_class("-shown")
        box.value = self.filter_text
        box.focus()
        self.refresh_bindings()

    def action_clear_filter(self) -> None:
        box = self.query_one("#filter", Input)
        box.remove_class("-shown")
        self.filter_text = ""
        box.value = ""
        self.query_one(BurnTable).focus()
        self.render_rows()
        self.refresh_bindings()

    @on(Input.Changed, "#filter")
    def _filter_changed(self, event: Input.Changed) -> None:
        self.filter_text = event.value.strip()
        self.render_rows()

    @on(Input.Submitted, "#filter")
    def _filter_submitted(self, event: Input.Submitted) -> None:
        self.filter_text = event.value.strip()
        if not self.filter_text:
            self.query_one("#filter", Input).remove_class("-shown")
        self.query_one(BurnTable).focus()
        self.render_rows()

    # -- pause / refresh rate ---------------------------------------------------------------------
    def action_toggle_pause(self) -> None:
        self.paused = not self.paused
        if not self.paused and self.latest is not None:
            self.shown = self.latest
        self.render_rows()

    def action_faster(self) -> None:
        self._set_refresh(-1)

    def action_slower(self) -> None:
        self._set_refresh(1)

    def _set_refresh(self, step: int) -> None:
        steps = REFRESH_STEPS
        i = min(range(len(steps)), key=lambda n: abs(steps[n] - self.refresh_s))
        self.refresh_s = steps[max(0, min(len(steps) - 1, i + step))]
        if self._timer is not None:
            self._timer.stop()
            self._timer = self.set_interval(self.refresh_s, self.refresh_now, name="tokentop-refresh")
        self._render_header()
        self._save({"refresh_s": self.refresh_s})

    def action_redraw(self) -> None:
        self.refresh(repaint=True, layout=True)

    # -- tags, detail, help ----------------------------------------------------------------------
    def action_tag(self) -> None:
        table = self.query_one(BurnTable)
        table.toggle_tag()
        table.action_cursor(1)

    def action_untag(self) -> None:
        self.query_one(BurnTable).untag_all()

    def action_detail(self) -> None:
        row = self.query_one(BurnTable).cursor_row
        if row is None:
            return
        from tokentop.ui.screens.detail import DetailScreen

        self.push_screen(DetailScreen(self.view_spec, row, self.source, self.clock))

    def action_help(self) -> None:
        from tokentop.ui.screens.help import HelpScreen

        if isinstance(self.screen, HelpScreen):
            return
        views = {f"view('{k}')": f"{spec.title} view" for k, spec in TABLE_VIEWS.items()}
        views.update({f"view('{k}')": f"{title}" for k, (title, _) in self.screen_views.items()})
        self.push_screen(HelpScreen(self.screen.active_bindings, views))

    # -- kill / pause / resume --------------------------------------------------------------------
    def capture_targets(self) -> list[Target]:
        """The sessions an action would hit, captured now by key: tagged rows, else the cursor row.

        On the Sessions view a row is a session. On other views the row's active sessions are
        captured (an agent running three sessions means three targets, each named in the modal).
        """
        table = self.query_one(BurnTable)
        snap = self.shown
        if snap is None:
            return []
        keys = [k for k in table.rows_keys_in_order() if k in table.tagged] or (
            [table.cursor_key] if table.cursor_key is not None else []
        )
        if self.view_spec.dim == "sessions":
            rows = [snap.find("sessions", k) for k in keys]
            sessions = [r for r in rows if r is not None]
        else:
            field = {"agents": "agent", "models": "model", "projects": "project", "hosts": "host"}.get(self.view_spec.dim)
            wanted = set(keys)
            sessions = [
                r for r in snap.sessions
                if field is not None and (getattr(r, field) or "(none)") in wanted and r.state != "idle"
            ]
            sessions.sort(key=lambda r: -r.usd_per_hour)
        return [
            Target(session=r.key, agent=r.agent, model=r.model, pid=r.pid, host=r.host, cmd=r.cmd,
                   usd_per_hour=r.usd_per_hour)
            for r in sessions[:MAX_TARGETS]
        ]

    def _open_action(self, action: str) -> None:
        from tokentop.ui.screens.action import ActionScreen

        targets = self.capture_targets()
        if not targets:
            where = self.view_spec.title.lower()
            self.notify(f"no active session behind this row of {where}: nothing to {action}", severity="warning")
            return
        self.push_screen(ActionScreen(action, targets, self.controller))

    def action_kill(self) -> None:
        self._open_action("kill")

    def action_pause_session(self) -> None:
        self._open_action("pause")

    def action_resume_session(self) -> None:
        self._open_action("resume")

    # -- palette, theme persistence ---------------------------------------------------------------
    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        for spec in TABLE_VIEWS.values():
            yield SystemCommand(f"View: {spec.title}", f"Show the {spec.title} table (key {spec.key})",
                                lambda k=spec.key: self.action_view(k))
        for key in SORT_KEYS:
            yield SystemCommand(f"Sort by {key}", f"Sort rows by {key}", lambda k=key: self.action_sort(k))
        yield SystemCommand("Pause / resume display", "Freeze the display; data keeps flowing", self.action_toggle_pause)

    def _on_theme_changed(self, theme: Any) -> None:
        self._save({"theme": theme.name})

    def _save(self, choices: dict[str, Any]) -> None:
        """Write the user's choice back to the config file (keeps their other settings)."""
        if self.config_path is None:
            return
        from tokentop import config as config_mod

        try:
            config_mod.save_choices(self.config_path, {"ui": choices})
        except (OSError, config_mod.ConfigError, ValueError) as exc:
            self.notify(f"could not save the choice to {self.config_path}: {exc}", severity="warning")


_SESSION_FIELD = {"agents": "agent", "models": "model", "projects": "project", "hosts": "host"}


def keys_on_matching_hosts(snap: Snapshot, dim: str, needle: str) -> set[str]:
    """Agent / model / project keys with a session on a host whose name contains ``needle``: the
    filter on a host name keeps the agents running there (their figures stay fleet-wide)."""
    field = _SESSION_FIELD.get(dim) if dim != "hosts" else None
    if field is None:
        return set()
    return {getattr(r, field) or "(none)" for r in snap.sessions if r.host and needle in r.host.casefold()}


def _matches(row: Row, needle: str) -> bool:
    for value in (row.key, row.agent, row.model_names, row.project, row.host, row.state):
        if value and needle in value.casefold():
            return True
    return False

