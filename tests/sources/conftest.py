"""Fixtures shared by the source tests."""

from __future__ import annotations

import pytest

from tokentop.core import fastjson


@pytest.fixture(params=["typed", "general"])
def json_path(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Run a test on both JSON paths of the readers: msgspec's typed decoding, and the general path
    (orjson, then the standard library) that reads every line the typed decoder refuses. Both must
    give the same events; the environment variable carries the choice into backfill workers."""
    typed = request.param == "typed"
    if typed and not fastjson.AVAILABLE:  # pragma: no cover - msgspec is a declared dependency
        pytest.skip("msgspec is not installed")
    monkeypatch.setattr(fastjson, "ENABLED", typed)
    monkeypatch.setenv(fastjson.ENV, "1" if typed else "0")
    return request.param
