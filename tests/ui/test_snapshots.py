"""Visual snapshots at a fixed size with a frozen clock and fixed data (review with
``pytest --snapshot-update`` only after reading the report). Textual is pinned in pyproject."""

from __future__ import annotations

from tokentop.ui.feeds import ManualFeed

from tests.ui.helpers import NOW, fleet_events, make_app, snapshot_of

SIZE = (110, 28)


def app_with_data(**kwargs):
    requests = [
        {"ts": NOW - 3 - i * 7, "agent": "claude-code", "model": "claude-sonnet-4-5", "input_tokens": 60_000 - i * 1000,
         "output_tokens": 2_000, "usd": 0.21, "cost_kind": "estimated", "status": "ok"}
        for i in range(12)
    ]
    source = ManualFeed(snapshot_of(fleet_events()), label="feed http://127.0.0.1:7411", requests=requests)
    return make_app(feed=source, **kwargs)


def test_main_view(snap_compare) -> None:  # noqa: ANN001
    assert snap_compare(app_with_data(), terminal_size=SIZE)


def test_sorted_by_tokens_inverted(snap_compare) -> None:  # noqa: ANN001
    assert snap_compare(app_with_data(), press=["T", "I"], terminal_size=SIZE)


def test_filtered(snap_compare) -> None:  # noqa: ANN001
    assert snap_compare(app_with_data(), press=["slash", "c", "o", "d", "enter"], terminal_size=SIZE)


def test_paused(snap_compare) -> None:  # noqa: ANN001
    assert snap_compare(app_with_data(), press=["p"], terminal_size=SIZE)


def test_detail(snap_compare) -> None:  # noqa: ANN001
    assert snap_compare(app_with_data(), press=["enter"], terminal_size=SIZE)


def test_kill_modal(snap_compare) -> None:  # noqa: ANN001
    assert snap_compare(app_with_data(), press=["2", "k"], terminal_size=SIZE)


def test_help(snap_compare) -> None:  # noqa: ANN001
    assert snap_compare(app_with_data(), press=["question_mark"], terminal_size=(110, 48))


def test_light_theme(snap_compare) -> None:  # noqa: ANN001
    assert snap_compare(app_with_data(theme="tokentop-light"), terminal_size=SIZE)


def test_small_pane(snap_compare) -> None:  # noqa: ANN001
    assert snap_compare(app_with_data(view="sessions"), terminal_size=(60, 15))


def test_empty_state(snap_compare) -> None:  # noqa: ANN001
    assert snap_compare(make_app(None), terminal_size=(100, 20))
