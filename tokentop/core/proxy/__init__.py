"""The metering proxy: OpenAI- and Anthropic-compatible, exact usage per request, and a gate that
can refuse the next request (the budget stop). No Textual here; see ``docs/proxy.md``.

Modules: :mod:`.settings` (the ``[proxy]`` section), :mod:`.routes` (upstream and protocol of a
request), :mod:`.identity` (agent / session / project), :mod:`.gate` (the gate, the block list),
:mod:`.sse` and :mod:`.meters` (usage read from answers as they pass), :mod:`.usage` (token
semantics), :mod:`.errors` (the providers' error shapes), :mod:`.sink` (where events go),
:mod:`.app` (the ASGI app), :mod:`.server` (serving it: :func:`proxy_part`, :func:`build_proxy`).

Nothing is imported here: ``tokentop.config`` imports :mod:`.settings`, and must not pull in
uvicorn and httpx with it.
"""
