"""Process control: identity checks and signals, the session→process registry, the control API,
emitter control messages, the audit log, budgets and runaway policy. Contract: ``docs/control.md``.

The live view gets its :class:`~tokentop.core.control.port.Controller` from :func:`build_controller`.
This package's ``__init__`` stays import-light (config imports :mod:`.settings` through it).
"""

from __future__ import annotations

from typing import Any


def build_controller(*, runner: Any = None, url: str | None = None, token: str | None = None, origin: str = "ui") -> Any:
    """The Controller for the live view.

    * ``runner``: an embedded :class:`~tokentop.core.feed.runner.FeedRunner` → acts in-process.
    * ``url``: a feed reached over HTTP/Unix socket → its control API with ``token`` (default: the
      local token file in the state dir). Without a token the controller explains it cannot act.
    """
    if runner is not None:
        from tokentop.core.control.controller import LocalController

        return LocalController(runner, origin=origin)
    if url is not None:
        from tokentop.core.control.controller import RemoteController, UnavailableController

        if token is None:
            from tokentop.config import state_dir
            from tokentop.core.feed.auth import read_token

            token = read_token(state_dir())
        if not token:
            return UnavailableController(
                f"no local token found (expected in {_token_hint()}): control of the feed at {url} needs it"
            )
        return RemoteController(url, token, origin=origin)
    from tokentop.core.control.port import NoController

    return NoController()


def _token_hint() -> str:
    from tokentop.config import state_dir
    from tokentop.core.feed.auth import token_path

    return str(token_path(state_dir()))
