"""Formatting and column layout: pure functions, no app."""

from __future__ import annotations

from decimal import Decimal

from tokentop.ui import format as fmt
from tokentop.ui.views import TABLE_VIEWS, layout_columns


def test_sparkline_is_zero_based_and_quiet_is_blank() -> None:
    assert fmt.sparkline([5.0] * 10, 10) == "█" * 10  # steady non-zero is full height, not the lowest bar
    assert fmt.sparkline([0.0] * 120, 8) == " " * 8
    line = fmt.sparkline([0.0] * 60 + [1.0] * 60, 12)
    assert line[:6] == " " * 6 and set(line[6:]) == {"█"}
    assert len(fmt.sparkline([1.0, 2.0], 20)) == 20  # short series are right-aligned (newest right)
    assert fmt.sparkline([1.0, 2.0], 20).endswith("▄█")


def test_money_never_rounds_a_cost_to_zero() -> None:
    assert fmt.usd(Decimal("0")) == "$0.00"
    assert fmt.usd(Decimal("0.004")) == "$0.0040"
    assert fmt.usd(Decimal("0.00001")) == "<$0.0001"
    assert fmt.usd(1234.5) == "$1,234.50"
    assert fmt.count(1_234_567) == "1.23M" and fmt.rate(0.01) == "<0.1"


def test_control_characters_in_names_are_neutralised() -> None:
    assert fmt.printable("evil\x1b[2Jname\n") == "evil?[2Jname?"


def test_columns_drop_by_priority_and_name_burn_spend_always_stay() -> None:
    for spec in TABLE_VIEWS.values():
        for width in (40, 59, 79, 119, 200):
            layout = layout_columns(spec.columns, width)
            ids = [c.id for c, _ in layout]
            assert {"name", "burn", "spend"} <= set(ids)
            if width >= 59:
                assert sum(w for _, w in layout) + len(layout) - 1 <= width
    wide = [c.id for c, _ in layout_columns(TABLE_VIEWS["2"].columns, 160)]
    assert {"pid", "agent", "models", "spark", "state"} <= set(wide)
