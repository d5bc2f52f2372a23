"""The kill / pause / resume modal against the control port (tokentop.core.control.port)."""

from __future__ import annotations

from textual.widgets import Button

from tokentop.core.control.port import NO_PROCESS_REASON, Candidate, Outcome, Plan, Target
from tokentop.ui.screens.action import ActionScreen
from tokentop.ui.screens.help import HelpScreen
from tokentop.ui.table import BurnTable

from tests.ui.helpers import make_app, snapshot_of, traffic


class RecordingController:
    """A controller that can act on sessions with a pid and records what it was asked to do."""

    def __init__(self, candidates: dict[str, tuple[Candidate, ...]] | None = None) -> None:
        self.calls: list[tuple[str, str, int | None, str | None]] = []
        self.candidates = candidates or {}

    def plan(self, target: Target) -> Plan:
        if target.pid is None and target.session not in self.candidates:
            return Plan(target, False, NO_PROCESS_REASON)
        return Plan(target, True, pid=target.pid, cmd=target.cmd, candidates=self.candidates.get(target.session, ()))

    async def act(self, target: Target, action, *, pid=None, signal=None) -> Outcome:  # noqa: ANN001
        self.calls.append((target.session, action, pid, signal))
        return Outcome(target.session, action, True, f"sent {signal} to pid {pid}")


def sessions_snapshot():
    return snapshot_of(
        traffic("claude-code", "runaway-1", "claude-sonnet-4-5", provider="anthropic", per_request_in=80_000,
                per_request_out=1_000, n=5, pid=4242)
        + traffic("codex", "quiet-2", "gpt-4o-mini", per_request_in=1_000, per_request_out=100, n=3, pid=5151)
        + traffic("emitter", "nopid-3", "gpt-4o-mini", per_request_in=500, per_request_out=50, n=2)
    )


async def test_kill_modal_names_target_and_focuses_cancel() -> None:
    controller = RecordingController()
    app = make_app(sessions_snapshot(), view="sessions", controller=controller)
    async with app.run_test(size=(120, 30)) as pilot:
        await pilot.pause()
        assert app.query_one(BurnTable).cursor_key == "runaway-1"
        await pilot.press("k")
        await pilot.pause()
        screen = app.screen
        assert isinstance(screen, ActionScreen)
        text = " ".join(str(w.render()) for w in screen.query(".target"))
        for part in ("claude-code", "runaway-1", "4242", "/h est", "claude-sonnet-4-5"):
            assert part in text
        assert app.focused is screen.query_one("#cancel", Button)
        assert str(screen.query_one("#confirm", Button).label) == "Send TERM"
        await pilot.press("enter")  # Enter on the focused Cancel: nothing happens
        await pilot.pause()
        assert controller.calls == []
        assert not isinstance(app.screen, ActionScreen)


async def test_confirm_sends_term_by_default_and_kill_when_chosen() -> None:
    controller = RecordingController()
    app = make_app(sessions_snapshot(), view="sessions", controller=controller)
    async with app.run_test(size=(120, 30)) as pilot:
        await pilot.pause()
        await pilot.press("k")
        await pilot.pause()
        await pilot.press("y")
        await pilot.pause()
        assert controller.calls == [("runaway-1", "terminate", 4242, "TERM")]
        outcome = str(app.screen.query_one("#outcome").render())
        assert "sent TERM to pid 4242" in outcome
        await pilot.press("escape")
        await pilot.press("k")
        await pilot.pause()
        await pilot.click("#sig-kill")
        await pilot.pause()
        assert str(app.screen.query_one("#confirm", Button).label) == "Send KILL"
        await pilot.click("#confirm")
        await pilot.pause()
        assert controller.calls[-1] == ("runaway-1", "kill", 4242, "KILL")


async def test_no_pid_says_why_and_cannot_confirm() -> None:
    app = make_app(sessions_snapshot(), view="sessions")  # default NoController
    async with app.run_test(size=(120, 30)) as pilot:
        await pilot.pause()
        app.query_one(BurnTable).move_cursor_to("nopid-3")
        await pilot.press("k")
        await pilot.pause()
        screen = app.screen
        reasons = " ".join(str(w.render()) for w in screen.query(".reason"))
        assert "no pid was reported" in reasons
        assert "tokentop run" in reasons
        assert screen.query_one("#confirm", Button).disabled
        await pilot.press("y")  # the shortcut cannot bypass it either
        await pilot.pause()
        assert isinstance(app.screen, ActionScreen) and app.screen.outcomes is None


async def test_candidates_act_on_none_until_one_is_picked() -> None:
    candidates = {"nopid-3": (Candidate(700, "python agent.py", 1.0, "/work/a"), Candidate(701, "python agent.py --other", 2.0))}
    controller = RecordingController(candidates)
    app = make_app(sessions_snapshot(), view="sessions", controller=controller)
    async with app.run_test(size=(120, 30)) as pilot:
        await pilot.pause()
        app.query_one(BurnTable).move_cursor_to("nopid-3")
        await pilot.press("k")
        await pilot.pause()
        screen = app.screen
        assert screen.query_one("#confirm", Button).disabled
        await pilot.press("y")
        await pilot.pause()
        assert controller.calls == []
        options = screen.query_one("#candidates")
        options.focus()
        await pilot.press("down", "enter")  # highlight the second candidate and pick it
        await pilot.pause()
        assert not screen.query_one("#confirm", Button).disabled
        await pilot.press("y")
        await pilot.pause()
        assert controller.calls == [("nopid-3", "terminate", 701, "TERM")]


async def test_pause_and_continue_go_through_the_same_modal() -> None:
    controller = RecordingController()
    app = make_app(sessions_snapshot(), view="sessions", controller=controller)
    async with app.run_test(size=(120, 30)) as pilot:
        await pilot.pause()
        await pilot.press("s")
        await pilot.pause()
        assert isinstance(app.screen, ActionScreen)
        assert "Pause 1 session?" in str(app.screen.query_one("#title").render())
        assert app.focused is app.screen.query_one("#cancel", Button)
        await pilot.press("y")
        await pilot.pause()
        await pilot.press("escape")
        await pilot.press("c")
        await pilot.pause()
        await pilot.press("y")
        await pilot.pause()
        assert [c[1] for c in controller.calls] == ["pause", "resume"]


async def test_the_target_is_captured_at_key_press() -> None:
    controller = RecordingController()
    app = make_app(sessions_snapshot(), view="sessions", controller=controller)
    async with app.run_test(size=(120, 30)) as pilot:
        await pilot.pause()
        await pilot.press("k")
        await pilot.pause()
        # the data moves under the modal: quiet-2 becomes the top row
        app.feed.push(snapshot_of(traffic("codex", "quiet-2", "gpt-4o", per_request_in=900_000,
                                            per_request_out=1_000, n=5, pid=5151)))
        app.refresh_now()
        await pilot.pause()
        await pilot.press("y")
        await pilot.pause()
        assert controller.calls == [("runaway-1", "terminate", 4242, "TERM")]


async def test_readonly_hides_kill_pause_and_continue() -> None:
    controller = RecordingController()
    app = make_app(sessions_snapshot(), view="sessions", controller=controller, readonly=True)
    async with app.run_test(size=(120, 30)) as pilot:
        await pilot.pause()
        for key in ("k", "f9", "s", "c"):
            await pilot.press(key)
            await pilot.pause()
            assert not isinstance(app.screen, ActionScreen)
        await pilot.press("question_mark")
        await pilot.pause()
        assert isinstance(app.screen, HelpScreen)
        descriptions = [d for _, d in app.screen.rows]
        assert "Sort by $/h" in descriptions and "Agents view" in descriptions
        assert "Kill" not in descriptions and "Pause session" not in descriptions
        assert not any("k" in keys.split() for keys, _ in app.screen.rows)
        assert controller.calls == []


async def test_modal_buttons_stay_visible_in_a_60x15_pane() -> None:
    app = make_app(sessions_snapshot(), view="sessions", controller=RecordingController())
    async with app.run_test(size=(60, 15)) as pilot:
        await pilot.pause()
        await pilot.press("k")
        await pilot.pause()
        screen = app.screen
        for button_id in ("#cancel", "#confirm"):
            region = screen.query_one(button_id).region
            assert region.height >= 1 and region.y + region.height <= 15 and region.x + region.width <= 60
        assert app.focused is screen.query_one("#cancel")


async def test_a_plan_that_cannot_act_but_lists_candidates_acts_once_one_is_picked() -> None:
    class Picky(RecordingController):
        def plan(self, target: Target) -> Plan:
            cands = (Candidate(801, "claude", 1.0, "/w/a"), Candidate(802, "claude", 2.0, "/w/b"))
            return Plan(target, False, "2 running processes could be this session; pick one", candidates=cands)

    controller = Picky()
    app = make_app(sessions_snapshot(), view="sessions", controller=controller)
    async with app.run_test(size=(120, 30)) as pilot:
        await pilot.pause()
        await pilot.press("k")
        await pilot.pause()
        screen = app.screen
        assert "pick the process below" in " ".join(str(w.render()) for w in screen.query(".reason"))
        assert screen.query_one("#confirm", Button).disabled
        screen.query_one("#candidates").focus()
        await pilot.press("enter")  # the first candidate
        await pilot.pause()
        await pilot.press("y")
        await pilot.pause()
        assert controller.calls == [("runaway-1", "terminate", 801, "TERM")]


async def test_k_stops_a_real_demo_agent_through_the_embedded_control_layer(feed) -> None:  # noqa: ANN001
    """End to end: a simulated agent (a real child process) reports its pid; k + y ends it."""
    import asyncio
    import time

    from tokentop.commands.demo import spawn_fleet, stop_fleet
    from tokentop.commands.top import make_controller
    from tokentop.ui.feeds import EmbeddedFeed

    children = spawn_fleet(feed.address, seed=5, size=1, run_tag="e2e", backfill_s=0.0)
    child = children[0]
    try:
        source = EmbeddedFeed(feed)
        deadline = time.monotonic() + 30
        while True:
            snap = source.latest()
            rows = [r for r in snap.sessions if r.pid == child.pid] if snap else []
            if rows or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.1)
        assert rows, "the demo agent never reported its pid"
        app = make_app(feed=source, view="sessions", controller=make_controller(source), clock=time.time)
        async with app.run_test(size=(120, 30)) as pilot:
            app.refresh_now()
            await pilot.pause()
            await pilot.press("k")
            await pilot.pause()
            screen = app.screen
            assert isinstance(screen, ActionScreen)
            assert screen.targets[0].pid == child.pid
            assert not screen.query_one("#confirm", Button).disabled
            await pilot.press("y")
            for _ in range(100):
                await pilot.pause(0.05)
                if screen.outcomes is not None:
                    break
            assert screen.outcomes is not None and screen.outcomes[0].ok, screen.outcomes
        assert child.wait(10) is not None
    finally:
        stop_fleet(children)


async def test_a_slow_plan_does_not_freeze_the_ui_and_confirm_waits_for_it() -> None:
    import threading

    release = threading.Event()

    class Slow(RecordingController):
        def plan(self, target: Target) -> Plan:
            release.wait(5)  # e.g. walking the process table, or an HTTP round trip
            return super().plan(target)

    controller = Slow()
    app = make_app(sessions_snapshot(), view="sessions", controller=controller)
    async with app.run_test(size=(120, 30)) as pilot:
        await pilot.pause()
        await pilot.press("k")
        await pilot.pause()
        screen = app.screen
        assert isinstance(screen, ActionScreen) and not screen.ready
        assert "checking the process" in " ".join(str(w.render()) for w in screen.query(".note"))
        assert screen.query_one("#confirm", Button).disabled
        await pilot.press("y")  # too early: nothing happens
        assert isinstance(app.screen, ActionScreen)
        release.set()
        for _ in range(100):
            await pilot.pause(0.02)
            if screen.ready:
                break
        await pilot.pause()
        assert controller.calls == []
        assert not screen.query_one("#confirm", Button).disabled
        assert app.focused is screen.query_one("#cancel", Button)


async def test_escape_closes_the_modal_while_plans_are_still_being_made() -> None:
    import threading

    release = threading.Event()

    class Stuck(RecordingController):
        def plan(self, target: Target) -> Plan:
            release.wait(5)
            return super().plan(target)

    app = make_app(sessions_snapshot(), view="sessions", controller=Stuck())
    try:
        async with app.run_test(size=(120, 30)) as pilot:
            await pilot.pause()
            await pilot.press("k")
            await pilot.pause()
            assert isinstance(app.screen, ActionScreen)
            await pilot.press("escape")
            await pilot.pause()
            assert not isinstance(app.screen, ActionScreen)
            release.set()
    finally:
        release.set()
