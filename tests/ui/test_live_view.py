"""Pilot tests of the live view: what a user sees and what their keys do."""

from __future__ import annotations

from dataclasses import replace

from tokentop.core.snapshot import sort_rows
from tokentop.ui.header import Meters
from tokentop.ui.table import BurnTable

from tests.ui.helpers import NOW, fleet_events, make_app, names_in_order, snapshot_of, table_lines, traffic


async def test_rows_sorted_by_burn_by_default_and_unpriced_is_loud() -> None:
    app = make_app(snapshot_of(fleet_events()))
    async with app.run_test(size=(120, 30)) as pilot:
        await pilot.pause()
        order = names_in_order(app)
        assert order[0] == "claude-code"  # the biggest $/h is on top
        burns = [r.usd_per_hour for r in app.query_one(BurnTable).rows]
        assert burns == sorted(burns, reverse=True)
        text = "\n".join(table_lines(app))
        homebrew = next(line for line in table_lines(app) if "homebrew" in line)
        assert "unpriced" in homebrew and "$0.00 " not in homebrew.split("my-private")[1][30:]
        header = app.query_one(Meters).render().plain
        assert "3 unpriced requests" in header
        assert "est" in header
        assert "claude-sonnet-4-5" in text


async def test_sort_keys_and_invert() -> None:
    snap = snapshot_of(fleet_events())
    app = make_app(snap)
    async with app.run_test(size=(120, 30)) as pilot:
        await pilot.pause()
        await pilot.press("R")  # requests/s
        assert names_in_order(app)[0] == "codex"
        assert app.query_one(BurnTable).render_text()[0].find("REQ/S▼") >= 0
        await pilot.press("I")
        assert names_in_order(app)[-1] == "codex"
        assert "SORT requests▲" in app.query_one(Meters).render().plain
        await pilot.press("N")
        assert names_in_order(app) == sorted(names_in_order(app), key=str.casefold)
        await pilot.press("N")  # the same key again inverts
        assert names_in_order(app) == sorted(names_in_order(app), key=str.casefold, reverse=True)
        await pilot.press("T")
        assert [r.key for r in sort_rows(snap.agents, "tokens")] == names_in_order(app)
        await pilot.press("greater_than_sign")  # next column after tokens: requests
        assert app.sort_key == "requests"
        await pilot.press("less_than_sign", "less_than_sign")
        assert app.sort_key == "burn"
        await pilot.press("C")
        assert app.sort_key == "spend"


async def test_header_click_sorts_by_that_column() -> None:
    app = make_app(snapshot_of(fleet_events()))
    async with app.run_test(size=(120, 30)) as pilot:
        await pilot.pause()
        table = app.query_one(BurnTable)
        first = table.render_text()[0]
        x = first.index("REQ/S")
        await pilot.click(BurnTable, offset=(x + 1, 0))
        assert app.sort_key == "requests"
        assert names_in_order(app)[0] == "codex"


async def test_filter_is_live_and_escape_clears_it() -> None:
    app = make_app(snapshot_of(fleet_events()))
    async with app.run_test(size=(120, 30)) as pilot:
        await pilot.pause()
        await pilot.press("slash", "c", "o", "d")
        assert set(names_in_order(app)) == {"codex", "claude-code"}
        await pilot.press("e", "x")
        assert names_in_order(app) == ["codex"]
        assert "FILTER" in app.query_one(Meters).render().plain
        await pilot.press("enter")  # keeps the filter, back to the table
        assert names_in_order(app) == ["codex"]
        assert app.focused is app.query_one(BurnTable)
        await pilot.press("escape")
        assert len(names_in_order(app)) == 4
        assert "FILTER" not in app.query_one(Meters).render().plain


async def test_filter_matches_model_and_project_too() -> None:
    app = make_app(snapshot_of(fleet_events()))
    async with app.run_test(size=(120, 30)) as pilot:
        await pilot.pause()
        await pilot.press("slash", *"gpt-4o-mini")
        assert names_in_order(app) == ["codex"]
        await pilot.press("escape")
        await pilot.press("2", "slash", *"billing")  # session rows carry their project
        assert names_in_order(app) == ["cc-1"]


async def test_pause_freezes_display_while_data_keeps_flowing() -> None:
    first = snapshot_of(fleet_events())
    app = make_app(first)
    async with app.run_test(size=(120, 30)) as pilot:
        await pilot.pause()
        await pilot.press("p")
        assert "PAUSED" in app.query_one(Meters).render().plain
        more = fleet_events() + traffic("newcomer", "nc-1", "gpt-4o", per_request_in=90_000, per_request_out=9_000, n=10, every_s=1.0)
        second = snapshot_of(more, now=NOW + 5)
        app.feed.push(second)
        app.refresh_now()
        await pilot.pause()
        assert app.latest is second  # data kept flowing
        assert "newcomer" not in names_in_order(app)  # display frozen
        assert not any("newcomer" in line for line in table_lines(app))
        await pilot.press("Z")  # htop's key resumes too
        assert "newcomer" in names_in_order(app)
        assert "PAUSED" not in app.query_one(Meters).render().plain


async def test_cursor_stays_on_the_same_session_across_resorts() -> None:
    events = (
        traffic("a", "s-a", "gpt-4o", per_request_in=50_000, per_request_out=1_000, n=5, pid=101)
        + traffic("b", "s-b", "gpt-4o", per_request_in=20_000, per_request_out=1_000, n=5, pid=102)
        + traffic("c", "s-c", "gpt-4o", per_request_in=5_000, per_request_out=1_000, n=5, pid=103)
    )
    app = make_app(snapshot_of(events), view="sessions")
    async with app.run_test(size=(120, 30)) as pilot:
        await pilot.pause()
        assert names_in_order(app) == ["s-a", "s-b", "s-c"]
        await pilot.press("down", "down")
        table = app.query_one(BurnTable)
        assert table.cursor_key == "s-c"
        # s-c becomes the biggest spender: it moves to the top and the cursor goes with it
        surge = events + traffic("c", "s-c", "gpt-4o", per_request_in=400_000, per_request_out=1_000, n=5,
                                 pid=103, start_age=0.5)
        app.feed.push(snapshot_of(surge, now=NOW + 1))
        app.refresh_now()
        await pilot.pause()
        assert names_in_order(app)[0] == "s-c"
        assert table.cursor_key == "s-c"
        assert table.cursor_index == 0
        # and k names that session, not whatever now sits where the cursor was
        await pilot.press("k")
        from tokentop.ui.screens.action import ActionScreen

        assert isinstance(app.screen, ActionScreen)
        assert [t.session for t in app.screen.targets] == ["s-c"]


async def test_views_switch_with_digits_and_key_5_opens_providers() -> None:
    from tokentop.ui.screens.providers import ProvidersScreen

    app = make_app(snapshot_of(fleet_events()))
    async with app.run_test(size=(120, 30)) as pilot:
        await pilot.pause()
        await pilot.press("2")
        assert app.view_spec.dim == "sessions"
        assert set(names_in_order(app)) == {"cc-1", "cx-1", "ai-1", "hb-1"}
        assert "PID" in table_lines(app)[0]
        await pilot.press("3")
        assert "gpt-4o-mini" in names_in_order(app)
        await pilot.press("4")
        assert set(names_in_order(app)) == {"billing", "web", "infra", "lab"}
        await pilot.press("5")
        await pilot.pause()
        assert isinstance(app.screen, ProvidersScreen)  # a screen over the table, not a table view
        assert app.view_spec.dim == "projects"
        assert app.check_action("view", ("7",)) is False  # 6 is Hosts; 7-9 are free
        await pilot.press("escape")
        await pilot.pause()
        await pilot.press("1")
        assert app.view_spec.dim == "agents"


async def test_names_are_rendered_literally() -> None:
    events = traffic("[bold]x[/]", "[red]s[/red]", "gpt-4o", per_request_in=1000, per_request_out=10, n=2) + traffic(
        "[link=http://evil]y", "s2", "gpt-4o", per_request_in=10, per_request_out=1, n=1
    )
    app = make_app(snapshot_of(events))
    async with app.run_test(size=(120, 30)) as pilot:
        await pilot.pause()
        text = "\n".join(table_lines(app))
        assert "[bold]x[/]" in text
        assert "[link=http://evil]y" in text
        await pilot.press("2")
        assert "[red]s[/red]" in "\n".join(table_lines(app))
        await pilot.press("k")
        from tokentop.ui.screens.action import ActionScreen

        screen = app.screen
        assert isinstance(screen, ActionScreen)
        shown = " ".join(str(w.render()) for w in screen.query(".target"))
        assert "[red]s[/red]" in shown and "[bold]x[/]" in shown


async def test_empty_state_explains_how_to_connect() -> None:
    app = make_app(None)
    async with app.run_test(size=(120, 30)) as pilot:
        await pilot.pause()
        empty = app.query_one("#empty")
        assert empty.display and not app.query_one(BurnTable).display
        text = str(empty.render())
        for hint in ("tokentop demo", "tokentop run", "tokentop emit", "/v1/events", "OTEL_EXPORTER_OTLP_ENDPOINT",
                     "http://127.0.0.1:7411"):
            assert hint in text
        app.feed.push(snapshot_of(fleet_events()))
        app.refresh_now()
        await pilot.pause()
        assert not empty.display and app.query_one(BurnTable).display


async def test_tagged_rows_are_the_kill_targets() -> None:
    app = make_app(snapshot_of(fleet_events()), view="sessions")
    async with app.run_test(size=(120, 30)) as pilot:
        await pilot.pause()
        await pilot.press("space", "space")  # tags the first two rows (space moves down)
        table = app.query_one(BurnTable)
        assert table.tagged == set(names_in_order(app)[:2])
        await pilot.press("k")
        assert {t.session for t in app.screen.targets} == set(names_in_order(app)[:2])
        await pilot.press("escape")
        await pilot.press("U")
        assert not table.tagged


async def test_refresh_interval_keys_and_header() -> None:
    app = make_app(snapshot_of(fleet_events()))
    async with app.run_test(size=(120, 30)) as pilot:
        await pilot.pause()
        await pilot.press("plus")
        assert app.refresh_s == 0.5
        assert "every 0.5 s" in app.query_one(Meters).render().plain
        await pilot.press("minus", "minus")
        assert app.refresh_s == 2.0


async def test_agent_row_kill_captures_its_active_sessions() -> None:
    events = traffic("claude-code", "cc-1", "gpt-4o", per_request_in=50_000, per_request_out=10, n=3, pid=11) + traffic(
        "claude-code", "cc-2", "gpt-4o", per_request_in=10_000, per_request_out=10, n=3, pid=12
    ) + traffic("other", "o-1", "gpt-4o", per_request_in=1_000, per_request_out=10, n=3, pid=13)
    app = make_app(snapshot_of(events))
    async with app.run_test(size=(120, 30)) as pilot:
        await pilot.pause()
        assert app.query_one(BurnTable).cursor_key == "claude-code"
        await pilot.press("k")
        assert [t.session for t in app.screen.targets] == ["cc-1", "cc-2"]
        assert [t.pid for t in app.screen.targets] == [11, 12]


async def test_small_panes_stay_readable_and_reflow_on_resize() -> None:
    app = make_app(snapshot_of(fleet_events()), view="sessions")
    async with app.run_test(size=(120, 30)) as pilot:
        await pilot.pause()
        meters = app.query_one(Meters)
        assert not meters.has_class("-condensed") and meters.size.height == 3
        assert "PID" in table_lines(app)[0]
        await pilot.resize_terminal(80, 24)
        await pilot.pause()
        assert not meters.has_class("-condensed")
        head = table_lines(app)[0]
        assert "$/H est" in head and "TODAY est" in head and "SESSION" in head
        await pilot.resize_terminal(60, 15)
        await pilot.pause()
        assert meters.has_class("-condensed") and meters.size.height == 1
        lines = table_lines(app)
        assert all(len(line) <= 60 for line in lines)
        head = lines[0]
        assert "$/H est" in head and "SESSION" in head and "PID" not in head
        assert any(line.lstrip().startswith("cc-1") for line in lines[1:])
        condensed = meters.render().plain
        assert "/h" in condensed and "today" in condensed and "Sessions" in condensed
        await pilot.resize_terminal(120, 30)
        await pilot.pause()
        assert "PID" in table_lines(app)[0] and not meters.has_class("-condensed")


async def test_detail_screen_shows_chart_models_and_recent_requests() -> None:
    from tokentop.ui.screens.detail import DetailScreen
    from tokentop.ui.feeds import ManualFeed

    requests = [
        {"ts": NOW - 2 - i * 5, "agent": "claude-code", "model": "claude-sonnet-4-5", "input_tokens": 60_000,
         "output_tokens": 2_000, "usd": 0.2, "cost_kind": "estimated", "status": "ok"}
        for i in range(8)
    ]
    source = ManualFeed(snapshot_of(fleet_events()), requests=requests)
    app = make_app(feed=source)
    async with app.run_test(size=(110, 34)) as pilot:
        await pilot.pause()
        await pilot.press("enter")
        await pilot.pause()
        screen = app.screen
        assert isinstance(screen, DetailScreen) and screen.row.key == "claude-code"
        chart = str(screen.query_one("#chart").render())
        assert "$/h (estimated), last 2 min" in chart and "tokens/s" in chart
        assert "12400" in chart  # 62,000 tokens per 5 s bin
        from rich.console import Console

        console = Console(width=108, record=True, file=open("/dev/null", "w"))
        console.print(screen._breakdown())
        console.print(screen._recent())
        text = console.export_text()
        assert "claude-sonnet-4-5" in text and "by model" in text
        assert "most recent requests" in text and "60.0k" in text
        await pilot.press("escape")
        assert not isinstance(app.screen, DetailScreen)


async def test_click_selects_a_row_and_palette_offers_themes_views_and_sorts() -> None:
    app = make_app(snapshot_of(fleet_events()))
    async with app.run_test(size=(120, 30)) as pilot:
        await pilot.pause()
        table = app.query_one(BurnTable)
        await pilot.click(BurnTable, offset=(3, 3))  # third row
        assert table.cursor_key == names_in_order(app)[2]
        titles = [c.title for c in app.get_system_commands(app.screen)]
        assert "Theme" in " ".join(titles)
        assert "View: Sessions" in titles and "Sort by tokens" in titles


async def test_arrow_keys_work_as_soon_as_data_arrives() -> None:
    app = make_app(None, view="sessions")
    async with app.run_test(size=(120, 30)) as pilot:
        await pilot.pause()
        app.feed.push(snapshot_of(fleet_events()))
        app.refresh_now()
        await pilot.pause()
        table = app.query_one(BurnTable)
        assert app.focused is table
        await pilot.press("down")
        assert table.cursor_key == names_in_order(app)[1]


async def test_a_screen_view_can_claim_a_free_digit() -> None:
    from textual.screen import Screen
    from textual.widgets import Static

    from tokentop.ui.app import default_screen_views

    class Extra(Screen):
        def compose(self):  # noqa: ANN202
            yield Static("extra view")

    app = make_app(snapshot_of(fleet_events()),
                   screen_views={**default_screen_views(), "7": ("Extra view", lambda app: Extra())})
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.pause()
        assert app.check_action("view", ("7",)) is True
        await pilot.press("7")
        await pilot.pause()
        assert isinstance(app.screen, Extra)


async def test_keys_typed_in_the_filter_are_text_not_commands() -> None:
    app = make_app(snapshot_of(fleet_events()))
    async with app.run_test(size=(120, 30)) as pilot:
        await pilot.pause()
        await pilot.press("slash", "q", "k", "p", "2", "space", "question_mark")
        await pilot.pause()
        assert app.is_running and app.filter_text == "qkp2 ?"
        assert app.view_spec.dim == "agents" and not app.paused
        assert app.screen is app.screen_stack[0]


async def test_unchanged_rows_are_not_repainted() -> None:
    events = fleet_events()
    app = make_app(snapshot_of(events))
    async with app.run_test(size=(120, 30)) as pilot:
        await pilot.pause()
        table = app.query_one(BurnTable)
        before = table.lines_rendered
        # the same data in new objects (as a remote feed sends every second): nothing to redraw
        app.feed.push(snapshot_of(events))
        app.refresh_now()
        await pilot.pause()
        assert table.lines_rendered == before
        # one row's money changes: that line is rebuilt, not the others
        app.feed.push(snapshot_of(events + traffic("aider", "ai-1", "gpt-4o", per_request_in=5_000,
                                                     per_request_out=10, n=1, start_age=0.5)))
        app.refresh_now()
        await pilot.pause()
        assert table.lines_rendered == before + 1


async def test_policy_flags_budget_and_alerts_from_the_feed_are_shown() -> None:
    base = snapshot_of(fleet_events())

    def with_policy(seq: int, alerts: list) -> object:
        return replace(base, status={"policy": {
            "flags": {"agents": {"aider": "warning"}, "sessions": {"cc-1": "runaway"}},
            "budgets": [{"rule": "daily", "view": "totals", "key": "all", "measure": "usd_per_day",
                         "value": 1.41, "limit": 30.0, "level": "ok"}],
            "alerts": alerts, "alert_seq": seq,
        }})

    app = make_app(with_policy(3, []))
    rings: list[int] = []
    notes: list[str] = []
    app.bell = lambda: rings.append(1)  # type: ignore[method-assign]
    app.notify = lambda message, **kw: notes.append(message)  # type: ignore[method-assign]
    async with app.run_test(size=(120, 30)) as pilot:
        await pilot.pause()
        lines = table_lines(app)
        # the runaway session's agent row stands out too
        assert "RUNAWAY" in next(line for line in lines if "claude-code" in line)
        assert "WARN" in next(line for line in lines if "aider" in line)
        header = app.query_one(Meters).render().plain
        assert "of $30.00" in header and "1 OVER/RUNAWAY" in header
        assert rings == []  # alerts already raised before we started are not re-announced
        alert = {"seq": 4, "level": "runaway", "rule": "hot", "message": "session cc-1 is a runaway: $75.60/h"}
        app.feed.push(with_policy(4, [alert]))
        app.refresh_now()
        await pilot.pause()
        assert rings == [1] and notes == ["session cc-1 is a runaway: $75.60/h"]
        app.refresh_now()
        await pilot.pause()
        assert rings == [1]  # once per alert
