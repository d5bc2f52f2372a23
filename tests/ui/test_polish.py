"""The live view as a person uses it (issue 16): numbers never cut, the cursor where the eye is, a
kill modal that says what would make it possible, the key line, the process line in the detail."""

from __future__ import annotations

import re
from dataclasses import replace

import pytest
from textual.widgets import Button, RadioSet

from tokentop.core.control.controller import build_controller
from tokentop.ui.header import Meters
from tokentop.ui.keyline import KEY_LINE_MIN_HEIGHT, KeyLine
from tokentop.ui.screens.action import ActionScreen
from tokentop.ui.table import BurnTable

from tests.ui.helpers import NOW, make_app, names_in_order, screen_text, snapshot_of, table_lines, traffic


def big_events() -> list[dict]:
    """A runaway at $1.2M/h with $12,345,678 spent today over 10B tokens, and a $22,230/h agent."""
    events = []
    for i in range(10):  # earlier today: 10B tokens, $12,325,678 the agent reported itself
        events.append({"agent": "claude-code", "session": "cc-big", "model": "opus", "provider": "anthropic",
                       "project": "infra", "pid": 4242, "input_tokens": 990_000_000, "output_tokens": 10_000_000,
                       "cost_usd": 1_232_567.8, "age": 3600 + i * 60})
    for i in range(4):  # the last minute: $20,000, i.e. $1.2M/h
        events.append({"agent": "claude-code", "session": "cc-big", "model": "opus", "provider": "anthropic",
                       "project": "infra", "pid": 4242, "input_tokens": 100_000, "output_tokens": 1_000,
                       "cost_usd": 5_000.0, "age": 5 + i * 10})
    events.append({"agent": "codex", "session": "cx-1", "model": "gpt-5", "provider": "openai", "project": "web",
                   "input_tokens": 20_000, "output_tokens": 500, "cost_usd": 22_230.0 / 60, "age": 3})
    return events


def header_text(app) -> str:  # noqa: ANN001
    return app.query_one(Meters).render().plain


@pytest.mark.parametrize("size", [(80, 24), (60, 15), (100, 30), (160, 45)])
@pytest.mark.parametrize("view", ["agents", "sessions"])
async def test_big_figures_take_a_compact_form_and_are_never_cut(size: tuple[int, int], view: str) -> None:
    snap = snapshot_of(big_events())
    row = snap.find("agents", "claude-code")
    assert row is not None and row.usd_per_hour == pytest.approx(1_200_000)  # the scenario holds
    assert row.tokens_today >= 10_000_000_000 and row.usd_today == pytest.approx(12_345_678)
    app = make_app(snap, view=view)
    async with app.run_test(size=size) as pilot:
        await pilot.pause()
        lines = table_lines(app)
        assert lines and all("…" not in line for line in lines), lines
        top = next(line for line in lines[1:] if line.lstrip().startswith(("claude-code", "cc-big")))
        assert "$1.20M" in top and "$12.3M" in top  # $/h and today, compact, whole
        if size[0] >= (100 if view == "agents" else 160):
            assert "10.0B" in top  # tokens today (narrower panes drop the column)
        codex = next(line for line in lines[1:] if line.lstrip().startswith(("codex", "cx-1")))
        assert re.search(r"\$22[.,]2", codex)  # $22,230/h: "$22,230" or "$22.2k", never "$22,230.…"
        header = header_text(app)
        assert "…" not in header, header
        assert "$1.22M/h" in header and "$12.3M" in header


async def test_header_keeps_whole_fields_as_the_pane_narrows() -> None:
    events = big_events() + traffic("homebrew", "hb-1", "my-private-model", per_request_in=3_000,
                                    per_request_out=300, n=3, provider="acme")
    events += [dict(e, status="error", id=f"err-{i}") for i, e in enumerate(events[-2:])]
    app = make_app(snapshot_of(events), daily_budget_usd=50.0, readonly=True)
    #: field -> (how it starts, the whole field up to the next separator or the end of the line)
    field = r"(?:^|  )"
    end = r"(?=  |$)"
    whole = {
        "projected": (field + "projected ", field + r"projected \$[\d.,]+[kMB]?" + end),
        "sessions": (field + "sessions ", field + r"sessions \S+ active" + end),
        "requests": (field + "requests ", field + r"requests [\d.]+[kMB]?" + end),
        "tokens": (field + "tokens ", field + r"tokens [\d.]+[kMB]?" + end),
        "unpriced": ("⚠ ?\\d", r"⚠ ?\d+ unpriced( requests \(not in \$\))?(?= |$)"),
        "errors": (r"\d errors", field + r"\d+ errors" + end),
    }
    async with app.run_test(size=(160, 45)) as pilot:
        await pilot.pause()
        seen: set[str] = set()
        for width in range(220, 40, -6):
            await pilot.resize_terminal(width, 30 if width >= 78 else 15)
            await pilot.pause()
            meters = app.query_one(Meters)
            for line in header_text(app).splitlines():
                assert "…" not in line, (width, line)
                assert len(line) <= meters.size.width, (width, line)
                for name, (start, full) in whole.items():
                    if re.search(start, line):
                        assert re.search(full, line), (width, name, line)
                        seen.add(name)
        assert {"projected", "sessions", "requests", "tokens", "unpriced", "errors"} <= seen
        # the most important fields survive the narrowest panes
        await pilot.resize_terminal(44, 15)
        await pilot.pause()
        line = header_text(app)
        assert "$1.22M/h" in line and "today" in line and "…" not in line


async def test_cursor_stays_on_top_while_rows_resort_until_the_user_moves_it() -> None:
    def frame(leader: str, n: int):  # noqa: ANN202 - `leader` burns the most in this frame
        events = []
        for i, name in enumerate(("s-a", "s-b", "s-c")):
            size = 400_000 if name == leader else 20_000 + i * 5_000
            events += traffic(name[-1], name, "gpt-4o", per_request_in=size, per_request_out=500, n=3, pid=100 + i)
        return snapshot_of(events, now=NOW + n)

    app = make_app(frame("s-c", 0), view="sessions")
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.pause()
        table = app.query_one(BurnTable)
        for n, leader in enumerate(("s-c", "s-a", "s-b", "s-c"), start=1):
            app.feed.push(frame(leader, n))
            app.refresh_now()
            await pilot.pause()
            assert names_in_order(app)[0] == leader
            assert table.cursor_index == 0 and table.cursor_key == leader  # the highlighted row is the top one
        await pilot.press("k")  # k targets the top row, the one the user sees highlighted
        await pilot.pause()
        assert isinstance(app.screen, ActionScreen) and [t.session for t in app.screen.targets] == ["s-c"]
        await pilot.press("escape")
        await pilot.press("down")  # the user moves: from now on the cursor follows its row
        await pilot.pause()
        chosen = table.cursor_key
        assert table.cursor_index == 1 and chosen != "s-c"
        for n, leader in enumerate(("s-a", "s-b", "s-c", chosen), start=10):
            app.feed.push(frame(leader, n))
            app.refresh_now()
            await pilot.pause()
            assert table.cursor_key == chosen
            assert names_in_order(app)[table.cursor_index] == chosen
        await pilot.press("enter")
        await pilot.pause()
        from tokentop.ui.screens.detail import DetailScreen

        assert isinstance(app.screen, DetailScreen) and app.screen.row.key == chosen


async def test_a_fresh_view_puts_the_cursor_back_on_top() -> None:
    events = (traffic("a", "s-a", "gpt-4o", per_request_in=50_000, per_request_out=1_000, n=5, pid=101)
              + traffic("b", "s-b", "gpt-4o", per_request_in=5_000, per_request_out=1_000, n=5, pid=102))
    app = make_app(snapshot_of(events), view="sessions")
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.pause()
        await pilot.press("end")
        table = app.query_one(BurnTable)
        assert table.cursor_index == 1 and table.following
        await pilot.press("1", "2")
        await pilot.pause()
        assert table.cursor_index == 0 and not table.following


async def test_kill_modal_that_cannot_act_shows_disabled_actions_and_what_would_make_it_possible() -> None:
    snap = snapshot_of(traffic("emitter", "nopid-3", "gpt-4o-mini", per_request_in=500, per_request_out=50, n=2))
    app = make_app(snap, view="sessions")  # NoController: no process recorded for this session
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        await pilot.press("k")
        await pilot.pause()
        await app.workers.wait_for_complete()
        await pilot.pause()
        screen = app.screen
        assert isinstance(screen, ActionScreen)
        confirm = screen.query_one("#confirm", Button)
        assert confirm.display and confirm.disabled and str(confirm.label) == "Send TERM"  # shown, not live
        assert screen.query_one("#signals", RadioSet).disabled
        assert app.focused is screen.query_one("#cancel", Button)
        remedy = str(screen.query_one("#remedy").render())
        assert "Nothing can be stopped from here" in remedy
        assert "tokentop run" in remedy and "[control] discovery" in remedy
        await pilot.press("y")
        await pilot.pause()
        assert screen.outcomes is None


async def test_kill_modal_without_a_local_token_says_so() -> None:
    snap = snapshot_of(traffic("claude-code", "cc-1", "claude-sonnet-4-5", provider="anthropic",
                               per_request_in=5_000, per_request_out=100, n=3, pid=4242))
    controller = build_controller(url="http://127.0.0.1:9")  # the test's state dir holds no token
    app = make_app(snap, view="sessions", controller=controller)
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.pause()
        await pilot.press("k")
        await app.workers.wait_for_complete()
        await pilot.pause()
        screen = app.screen
        assert screen.query_one("#confirm", Button).disabled
        remedy = str(screen.query_one("#remedy").render())
        assert "no local token found" in remedy and "To make it possible" in remedy


async def test_kill_modal_that_can_act_has_no_remedy_and_live_buttons() -> None:
    from tests.ui.test_kill_modal import RecordingController, sessions_snapshot

    app = make_app(sessions_snapshot(), view="sessions", controller=RecordingController())
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        await pilot.press("k")
        await app.workers.wait_for_complete()
        await pilot.pause()
        screen = app.screen
        assert not screen.query("#remedy")
        checked = " ".join(str(w.render()) for w in screen.query(".checked"))
        assert "checked: pid 4242 is the process recorded" in checked  # what the plan verified, said
        assert not screen.query_one("#confirm", Button).disabled
        assert not screen.query_one("#signals", RadioSet).disabled


def key_line_text(app) -> str:  # noqa: ANN001
    line = app.query_one(KeyLine)
    return line.render().plain if line.display else ""


async def test_key_line_lists_the_main_keys_from_the_bindings() -> None:
    app = make_app(snapshot_of(big_events()))
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        text = key_line_text(app)
        assert text == "F1 help  / filter  B T R C N sort  Enter detail  k kill  s pause  q quit"
        app.set_keymap({"kill": "x", "sort-burn": "b"})  # remapped keys show as remapped
        await pilot.pause()
        text = key_line_text(app)
        assert "x kill" in text and "b T R C N sort" in text
        await pilot.resize_terminal(50, 24)  # narrow: entries drop whole, least important first
        await pilot.pause()
        text = key_line_text(app)
        assert len(text) <= 48 and "q quit" in text and "F1 help" in text and "Enter detail" not in text
        assert re.fullmatch(r"(\S+( \S+)* \w+)(  \S+( \S+)* \w+)*", text)
        await pilot.resize_terminal(80, KEY_LINE_MIN_HEIGHT - 1)  # a short pane: the table gets the row
        await pilot.pause()
        assert not app.query_one(KeyLine).display
        await pilot.resize_terminal(80, KEY_LINE_MIN_HEIGHT)
        await pilot.pause()
        assert app.query_one(KeyLine).display


async def test_key_line_in_readonly_mode_and_switched_off() -> None:
    app = make_app(snapshot_of(big_events()), readonly=True)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        text = key_line_text(app)
        assert "kill" not in text and "pause" not in text and "F1 help" in text and "q quit" in text
    app = make_app(snapshot_of(big_events()), key_line=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        assert not app.query_one(KeyLine).display


async def test_detail_process_line_fits_one_line_cut_in_the_middle() -> None:
    cmd = ("/usr/local/bin/python3.12 -m agent_runner --workspace /home/dev/projects/billing-api/services/invoices "
           "--model claude-sonnet-4-5 --max-turns 400 --resume session-7f3a9c --log-level debug --final-flag")
    snap = snapshot_of(traffic("claude-code", "cc-1", "claude-sonnet-4-5", provider="anthropic",
                               per_request_in=5_000, per_request_out=100, n=3, pid=4242))
    snap = replace(snap, sessions=tuple(replace(r, cmd=cmd) for r in snap.sessions))
    app = make_app(snap, view="sessions")
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        await pilot.press("enter")
        await pilot.pause()
        from tokentop.ui.screens.detail import DetailScreen

        assert isinstance(app.screen, DetailScreen)
        svg_lines = screen_text(app)
        hits = [line for line in svg_lines if "pid 4242" in line]
        assert len(hits) == 1, svg_lines
        line = hits[0].strip()
        assert line.startswith("pid 4242  cmd /usr/local/bin/python3.12 -m agent_runner")
        assert line.endswith("--final-flag") and "…" in line and len(hits[0]) <= 80
        assert not any("--log-level" in other and other is not hits[0] for other in svg_lines)  # nothing wrapped



async def test_header_condenses_and_expands_when_only_the_height_changes() -> None:
    app = make_app(snapshot_of(big_events()))
    async with app.run_test(size=(120, 30)) as pilot:
        await pilot.pause()
        meters = app.query_one(Meters)
        assert meters.size.height == 3 and not meters.has_class("-condensed")
        await pilot.resize_terminal(120, 18)
        await pilot.pause()
        assert meters.size.height == 1 and meters.has_class("-condensed")
        assert len(header_text(app).splitlines()) == 1
        await pilot.resize_terminal(120, 30)
        await pilot.pause()
        assert meters.size.height == 3 and not meters.has_class("-condensed")
        assert len(header_text(app).splitlines()) == 3
