"""Every config key a user can write is documented (docs/config.md or the page it points to)."""

from __future__ import annotations

from pathlib import Path

from tokentop import config

DOCS = Path(__file__).resolve().parent.parent / "docs"


def test_every_section_and_key_is_documented() -> None:
    text = "\n".join(p.read_text(encoding="utf-8") for p in DOCS.glob("*.md"))
    index = (DOCS / "config.md").read_text(encoding="utf-8")
    missing = []
    for section, keys in config.SCHEMA.items():
        if f"[{section}]" not in index:
            missing.append(f"[{section}] has no section in docs/config.md")
        missing += [f"{section}.{key}" for key in keys if f"`{key}`" not in text and f"{key} =" not in text]
    for table, keys in config.NAMED_TABLES.items():
        if f"[{table}" not in index:
            missing.append(f"[{table}.*] has no section in docs/config.md")
        missing += [f"{table}.*.{key}" for key in keys if f"`{key}`" not in text and f"{key} =" not in text]
    for section, keys in config.SECTION_ENTRIES.items():
        if f"[{section}.NAME]" not in index:
            missing.append(f"[{section}.NAME] entries have no section in docs/config.md")
        missing += [f"{section}.NAME.{key}" for key in keys if f"`{key}`" not in text and f"{key} =" not in text]
    assert not missing, "undocumented config: " + ", ".join(missing)
