"""Subscription limits: the 5-hour and weekly windows of Claude and Codex plans (docs/limits.md).

``windows`` is the typed record and the pure math (classification, pace, exhaustion); ``store``
keeps the latest observation per (agent, account, window); the sources are ``codex`` (rollout
``rate_limits``), ``statusline`` (Claude Code's statusLine JSON), ``oauth`` (the undocumented
usage endpoint, opt-in) and ``estimate`` (5-hour blocks from the ledger); ``usage`` says who ate
the current window; ``attach`` is the feed part that puts them together and publishes ``limits``
in every snapshot; ``install`` writes the statusLine into Claude Code's settings.

Nothing here is imported by this package's ``__init__``: importing the record does not pull in
the feed.
"""
