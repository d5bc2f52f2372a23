"""Every agent store tokentop reads: the one list that names them (docs/sources.md).

Adding an agent is one module under ``core/sources/`` exporting ``FORMAT`` (a
:class:`~tokentop.core.sources.protocol.LogFormat` for append-only line files, else a
:class:`~tokentop.core.sources.protocol.StoreFormat`) plus one entry here. The order is the
order of ``sources.enabled``'s default, of the format's config keys in ``[sources]``, and of
discovery.
"""

from __future__ import annotations

from typing import Final

from tokentop.core.sources import amp, claude_code, codex, copilot_cli, droid, gemini_cli, kilo, kimi, opencode, pi, qwen_code
from tokentop.core.sources.protocol import Format

FORMATS: Final[tuple[Format, ...]] = (
    claude_code.FORMAT,
    codex.FORMAT,
    opencode.FORMAT,
    kilo.FORMAT,
    copilot_cli.FORMAT,
    droid.FORMAT,
    gemini_cli.FORMAT,
    qwen_code.FORMAT,
    pi.FORMAT,
    amp.FORMAT,
    kimi.FORMAT,
)
