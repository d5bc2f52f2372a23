"""Fixtures for control tests."""

from __future__ import annotations

from typing import Iterator

import pytest

from tests.control.helpers import Children


@pytest.fixture
def children() -> Iterator[Children]:
    c = Children()
    try:
        yield c
    finally:
        c.cleanup()
