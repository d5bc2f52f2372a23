"""Placeholder replaced by the policy wiring (budgets and runaway rules)."""

from typing import Any


def attach_policy(runner: Any, ctl: Any) -> None:
    return None
