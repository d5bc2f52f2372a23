"""The wheel's package list is explicit (so themes/ ships as tokentop/themes): keep it complete."""

from __future__ import annotations

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_every_python_package_and_the_themes_are_in_the_wheel_list() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(config["packages"])
    on_disk = {
        ".".join(p.parent.relative_to(ROOT).parts)
        for p in (ROOT / "tokentop").rglob("*.py")
        if "__pycache__" not in p.parts
    }
    missing = on_disk - listed
    assert not missing, f"add these to [tool.setuptools] packages in pyproject.toml: {sorted(missing)}"
    assert config["package-dir"]["tokentop.themes"] == "themes"
    assert "*.toml" in config["package-data"]["tokentop.themes"]
    assert len(list((ROOT / "themes").glob("*.toml"))) >= 5
