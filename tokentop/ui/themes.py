"""Theme files: ``themes/*.toml`` shipped with tokentop, then the user's ``<config dir>/themes``.

A theme file holds Textual :class:`~textual.theme.Theme` fields at the top level and tokentop's own
colours under ``[variables]`` (``burn-low``, ``burn-mid``, ``burn-high``, ``spark``). Every colour
is checked with :meth:`textual.color.Color.parse` *before* the theme is registered (``Theme``
itself accepts garbage). A user theme with the same name as a shipped one replaces it. Files that
fail are collected into one message; the good ones still load.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Final, Iterable

from textual.color import Color, ColorParseError
from textual.theme import Theme

from tokentop import config as config_mod

DEFAULT_THEME: Final = "tokentop"
#: used when NO_COLOR is set (Textual also drops colours then; this keeps contrast sane)
NO_COLOR_THEME: Final = "tokentop-ansi"

_COLOUR_FIELDS: Final = ("primary", "secondary", "warning", "error", "success", "accent", "foreground",
                         "background", "surface", "panel", "boost")
_OTHER_FIELDS: Final = {"name": str, "dark": bool, "luminosity_spread": (int, float), "text_alpha": (int, float)}


@dataclass
class ThemeLoad:
    themes: dict[str, Theme] = field(default_factory=dict)
    #: where each theme came from (shipped file or user file)
    origin: dict[str, Path] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)

    def error_message(self) -> str | None:
        if not self.errors:
            return None
        return f"{len(self.errors)} theme file(s) could not be loaded:\n" + "\n".join(f"  {e}" for e in self.errors)


def shipped_theme_dir() -> Path | None:
    """The repo's ``themes/`` when running from source, else the ``tokentop.themes`` package data."""
    root = Path(__file__).resolve().parents[2]
    source = root / "themes"
    if (root / "pyproject.toml").is_file() and source.is_dir() and any(source.glob("*.toml")):
        return source
    path = Path(str(resources.files("tokentop") / "themes"))  # installed: tokentop/themes/*.toml
    return path if path.is_dir() else None


def user_theme_dir() -> Path:
    return config_mod.config_dir() / "themes"


def parse_theme(data: dict[str, Any], where: str, default_name: str) -> Theme:
    """A validated :class:`Theme` from a parsed TOML table; ``ValueError`` names every problem."""
    problems: list[str] = []
    kwargs: dict[str, Any] = {}
    for key, value in data.items():
        if key == "variables":
            if not isinstance(value, dict):
                problems.append("[variables] must be a table")
                continue
            variables: dict[str, str] = {}
            for vkey, vvalue in value.items():
                if not isinstance(vvalue, str):
                    problems.append(f"variables.{vkey} must be a colour string, got {vvalue!r}")
                    continue
                try:
                    Color.parse(vvalue)
                except ColorParseError:
                    problems.append(f"variables.{vkey}: {vvalue!r} is not a colour")
                    continue
                variables[vkey] = vvalue
            kwargs["variables"] = variables
        elif key in _COLOUR_FIELDS:
            if not isinstance(value, str):
                problems.append(f"{key} must be a colour string, got {value!r}")
                continue
            try:
                Color.parse(value)
            except ColorParseError:
                problems.append(f"{key}: {value!r} is not a colour")
                continue
            kwargs[key] = value
        elif key in _OTHER_FIELDS:
            kind = _OTHER_FIELDS[key]
            if not isinstance(value, kind) or (kind is not bool and isinstance(value, bool)):
                problems.append(f"{key} has the wrong type ({type(value).__name__})")
                continue
            kwargs[key] = value
        else:
            known = ", ".join(sorted((*_COLOUR_FIELDS, *_OTHER_FIELDS, "variables")))
            problems.append(f"unknown key {key!r} (known: {known})")
    if "primary" not in data:
        problems.append("'primary' is required")
    if problems:
        raise ValueError(f"{where}: " + "; ".join(problems))
    kwargs.setdefault("name", default_name)
    return Theme(**kwargs)


def load_theme_files(paths: Iterable[Path], into: ThemeLoad) -> None:
    for path in sorted(paths):
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except tomllib.TOMLDecodeError as exc:
            into.errors.append(f"{path}: not valid TOML: {exc}")
            continue
        except OSError as exc:
            into.errors.append(f"{path}: cannot read: {exc.strerror or exc}")
            continue
        try:
            theme = parse_theme(data, str(path), path.stem)
        except ValueError as exc:
            into.errors.append(str(exc))
            continue
        into.themes[theme.name] = theme
        into.origin[theme.name] = path


def load_themes(shipped: Path | None = None, user: Path | None = None) -> ThemeLoad:
    """Shipped themes, then user themes (which override shipped ones by name)."""
    out = ThemeLoad()
    shipped = shipped if shipped is not None else shipped_theme_dir()
    user = user if user is not None else user_theme_dir()
    if shipped is not None and shipped.is_dir():
        load_theme_files(shipped.glob("*.toml"), out)
    if user.is_dir():
        load_theme_files(user.glob("*.toml"), out)
    return out
