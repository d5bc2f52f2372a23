"""Agent stores → events: one module per agent (``claude_code``, ``codex``), listed in ``formats``.

``protocol`` says what a format declares; ``tailer`` reads every append-only log format
(``backfill`` parses a large backlog in a worker process); ``sourceset`` opens the enabled
sources; ``live`` follows them inside a feed; ``settings`` is the ``[sources]`` config section.
"""
