"""The live view of a fleet feed (``tokentop --nats``): Hosts view, HOST column, host filter, the
fleet line of the header and the host in the kill modal. Snapshots are built by the real aggregator
with a ``status["fleet"]`` shaped like ``tokentop.core.team.fleet.FleetConsumer._report``'s."""

from __future__ import annotations

from dataclasses import replace

from tokentop.core.snapshot import Snapshot
from tokentop.ui.header import Meters
from tokentop.ui.plain import plain_frame
from tokentop.ui.screens.action import ActionScreen

from tests.ui.helpers import make_app, names_in_order, snapshot_of, table_lines, traffic


def _on(host: str, events: list[dict]) -> list[dict]:
    return [dict(e, host=host) for e in events]


def fleet_status(*, connected: bool = True) -> dict:
    return {
        "url": "nats://127.0.0.1:4222", "stream": "TOKENTOP", "consumer": "fleet-viewer-abc",
        "connected": connected, "hosts_reporting": 2, "reporting_window_s": 60.0,
        "hosts": {
            "box-1": {"reporting": True, "last_report_s_ago": 0.8, "lag_s": 0.4, "events": 6, "outbox_pending": 0},
            "box-2": {"reporting": True, "last_report_s_ago": 2.1, "lag_s": 1.2, "events": 45, "outbox_pending": 0},
            "gpu-3": {"reporting": False, "last_report_s_ago": 150.0, "lag_s": 9.0, "events": 2, "outbox_pending": 3},
        },
        "received": 53, "pending": 0, "bad_messages": 0, "last_bad": None, "last_error": None,
    }


def fleet_snapshot(status: dict | None = None) -> Snapshot:
    snap = snapshot_of(
        _on("box-1", traffic("claude-code", "cc-1", "claude-sonnet-4-5", provider="anthropic", per_request_in=60_000,
                             per_request_out=2_000, n=6, every_s=8.0, pid=4242, project="billing"))
        + _on("box-2", traffic("codex", "cx-1", "gpt-4o-mini", per_request_in=800, per_request_out=100, n=40,
                               every_s=0.2, pid=5151, project="web"))
        + _on("box-2", traffic("claude-code", "cc-2", "claude-sonnet-4-5", provider="anthropic", per_request_in=9_000,
                               per_request_out=600, n=5, every_s=3.0, pid=6161, project="web"))
        + _on("gpu-3", traffic("aider", "ai-1", "gpt-4o", per_request_in=9_000, per_request_out=600, n=2,
                               every_s=3.0, start_age=30.0, project="infra"))
    )
    return replace(snap, status={**snap.status, "fleet": status if status is not None else fleet_status()})


def header_text(app) -> str:  # noqa: ANN001
    return app.query_one(Meters).render().plain


async def test_key_6_shows_hosts_with_lag_and_silent_hosts_loud() -> None:
    app = make_app(fleet_snapshot())
    async with app.run_test(size=(120, 30)) as pilot:
        await pilot.pause()
        await pilot.press("6")
        await pilot.pause()
        assert app.view_spec.dim == "hosts"
        assert set(names_in_order(app)) == {"box-1", "box-2", "gpu-3"}
        lines = table_lines(app)
        assert lines[0].split()[:4] == ["HOST", "SESS", "LAG", "SEEN"]
        box1 = next(line for line in lines if "box-1" in line)
        assert "0.4 s" in box1 and "0.8 s" in box1  # its lag, and when it last reported
        gpu = next(line for line in lines if "gpu-3" in line)
        assert "9.0 s" in gpu and "2 min" in gpu
        # the session counts of each host come from the same aggregator as every other view
        assert {r.key: r.sessions for r in app.shown.hosts}["box-2"] == 2


async def test_a_quiet_hosts_seen_and_lag_keep_moving_though_its_row_did_not_change() -> None:
    # the aggregator hands out the same Row object for a row whose data did not change; only the
    # fleet status moves (a silent host's SEEN grows, it stops reporting)
    first = fleet_snapshot()
    status = fleet_status()
    status["hosts"]["gpu-3"] = {**status["hosts"]["gpu-3"], "last_report_s_ago": 600.0}
    status["hosts"]["box-1"] = {**status["hosts"]["box-1"], "lag_s": 7.5}
    later = replace(first, status={**first.status, "fleet": status})
    app = make_app(first, view="hosts")
    async with app.run_test(size=(120, 30)) as pilot:
        await pilot.pause()
        assert "2 min" in next(line for line in table_lines(app) if "gpu-3" in line)
        app.feed.push(later)
        app.refresh_now()
        await pilot.pause()
        assert "10 min" in next(line for line in table_lines(app) if "gpu-3" in line)
        assert "7.5 s" in next(line for line in table_lines(app) if "box-1" in line)


async def test_sessions_show_their_host_only_when_the_fleet_has_several() -> None:
    app = make_app(fleet_snapshot(), view="sessions")
    async with app.run_test(size=(120, 30)) as pilot:
        await pilot.pause()
        lines = table_lines(app)
        assert "HOST" in lines[0]
        assert "box-2" in next(line for line in lines if "cx-1" in line)
        assert "gpu-3" in next(line for line in lines if "ai-1" in line)
    single = make_app(snapshot_of(_on("box-1", traffic("codex", "cx-1", "gpt-4o-mini", per_request_in=800,
                                                         per_request_out=100, n=3))), view="sessions")
    async with single.run_test(size=(120, 30)) as pilot:
        await pilot.pause()
        assert "HOST" not in table_lines(single)[0]  # one host: the column would say the same everywhere


async def test_host_column_drops_before_money_in_small_panes() -> None:
    app = make_app(fleet_snapshot(), view="sessions")
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        head = table_lines(app)[0]
        assert "HOST" in head and "$/H" in head and "TODAY" in head
        cx = next(line for line in table_lines(app) if "cx-1" in line)
        assert "box-2" in cx and len(cx.rstrip()) <= 80
        await pilot.resize_terminal(60, 15)
        await pilot.pause()
        head = table_lines(app)[0]
        assert "SESSION" in head and "$/H" in head and "TODAY" in head
        assert all(len(line.rstrip()) <= 60 for line in table_lines(app))


async def test_filter_on_a_host_name_keeps_its_sessions_and_the_agents_running_there() -> None:
    app = make_app(fleet_snapshot(), view="sessions")
    async with app.run_test(size=(120, 30)) as pilot:
        await pilot.pause()
        await pilot.press("slash", *"box-2", "enter")
        await pilot.pause()
        assert set(names_in_order(app)) == {"cx-1", "cc-2"}
        await pilot.press("1")
        await pilot.pause()
        assert set(names_in_order(app)) == {"codex", "claude-code"}  # aider runs only on gpu-3
        await pilot.press("6")
        await pilot.pause()
        assert names_in_order(app) == ["box-2"]
        await pilot.press("escape")
        await pilot.pause()
        assert set(names_in_order(app)) == {"box-1", "box-2", "gpu-3"}


async def test_header_counts_hosts_reporting_and_each_hosts_lag() -> None:
    app = make_app(fleet_snapshot())
    async with app.run_test(size=(140, 30)) as pilot:
        await pilot.pause()
        text = header_text(app)
        fleet = text.splitlines()[3]
        assert fleet.startswith("fleet 2/3 hosts reported in the last 60 s")
        # the silent host first, then by lag, largest first
        assert fleet.index("gpu-3 silent 2 min") < fleet.index("box-2 1.2 s") < fleet.index("box-1 0.4 s")
        assert app.query_one(Meters).size.height == 4
        await pilot.resize_terminal(60, 15)
        await pilot.pause()
        condensed = header_text(app)
        assert "\n" not in condensed
        assert "fleet 2/3 hosts, max lag 1.2 s" in condensed  # a silent host's old lag is not the max
        assert condensed.startswith("$") and " today $" in condensed
        assert app.query_one(Meters).size.height == 1


async def test_header_says_when_the_fleet_lost_nats_and_stays_plain_without_a_fleet() -> None:
    status = fleet_status(connected=False)
    status["last_error"] = "ConnectionRefusedError: [Errno 111]"
    status["hosts"] = {"box-1": status["hosts"]["box-1"]}
    status["hosts_reporting"] = 1
    app = make_app(fleet_snapshot(status))
    async with app.run_test(size=(140, 30)) as pilot:
        await pilot.pause()
        fleet = header_text(app).splitlines()[3]
        assert fleet.startswith("fleet 1 host reported")
        assert "NATS disconnected (ConnectionRefusedError" in fleet
    plain = make_app(snapshot_of(traffic("codex", "cx-1", "gpt-4o-mini", per_request_in=800, per_request_out=100, n=3)))
    async with plain.run_test(size=(140, 30)) as pilot:
        await pilot.pause()
        assert "fleet" not in header_text(plain)
        assert plain.query_one(Meters).size.height == 3


async def test_kill_modal_names_the_host_of_each_target() -> None:
    app = make_app(fleet_snapshot())  # agents view: claude-code runs on box-1 and box-2
    async with app.run_test(size=(120, 30)) as pilot:
        await pilot.pause()
        assert app.query_one("BurnTable").cursor_key == "claude-code"
        await pilot.press("k")
        await pilot.pause()
        screen = app.screen
        assert isinstance(screen, ActionScreen)
        text = " ".join(str(w.render()) for w in screen.query(".target"))
        assert "session cc-1" in text and "host box-1" in text
        assert "session cc-2" in text and "host box-2" in text


async def test_kill_on_a_host_row_targets_that_hosts_active_sessions_only() -> None:
    app = make_app(fleet_snapshot(), view="hosts")
    async with app.run_test(size=(120, 30)) as pilot:
        await pilot.pause()
        await pilot.press("down")  # box-2: the second biggest burn
        assert app.query_one("BurnTable").cursor_key == "box-2"
        await pilot.press("k")
        await pilot.pause()
        screen = app.screen
        assert isinstance(screen, ActionScreen)
        assert sorted((t.session, t.host) for t in screen.targets) == [("cc-2", "box-2"), ("cx-1", "box-2")]


def test_plain_frame_of_the_hosts_view_has_the_lag() -> None:
    out = plain_frame(fleet_snapshot(), view="hosts")
    box1 = next(line for line in out.splitlines() if line.startswith("box-1"))
    assert "0.4 s" in box1
