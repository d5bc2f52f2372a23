"""How a config key is declared: :class:`Setting`, the shared value checks, :class:`ConfigError`.

The one module every config owner imports (it imports nothing of tokentop). Each owner declares
its sections as plain data next to the code that reads them (``SECTIONS`` for flat sections,
``NAMED_TABLES`` for tables whose keys the user names, such as ``[budget.daily]``);
``tokentop/config.py`` lists the owners in one literal and validates every file against them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Final, Mapping

#: A check returns ``None`` when the value is fine, else the problem ("must be greater than 0").
Check = Callable[[Any], "str | None"]

#: ``kind`` of a number that may be written as 5 or 5.0
NUM: Final = (int, float)


class ConfigError(ValueError):
    """The configuration is invalid. The message names the file, line and key."""


@dataclass(frozen=True)
class Setting:
    kind: type | tuple[type, ...]
    default: Any
    doc: str
    check: Check | None = None


#: section name -> key -> Setting
Sections = Mapping[str, Mapping[str, Setting]]


def positive(v: Any) -> str | None:
    return None if v > 0 else "must be greater than 0"


def non_negative(v: Any) -> str | None:
    return None if v >= 0 else "must be 0 or more"


def fraction(v: Any) -> str | None:
    return None if 0 < v <= 1 else "must be a fraction in (0, 1]"


def one_of(*choices: str) -> Check:
    def check(v: Any) -> str | None:
        return None if v in choices else f"must be one of {', '.join(repr(c) for c in choices)}"

    return check


def between(low: float, high: float, unit: str = "") -> Check:
    suffix = f" {unit}" if unit else ""

    def check(v: Any) -> str | None:
        return None if low <= v <= high else f"must be between {low:g} and {high:g}{suffix}"

    return check


def string_list(v: Any) -> str | None:
    return None if all(isinstance(x, str) for x in v) else "must be a list of strings"


def http_url(v: Any) -> str | None:
    return None if v == "" or v.startswith(("http://", "https://")) else "must start with http:// or https://"
