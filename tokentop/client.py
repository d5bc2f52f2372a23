"""Old name of :mod:`tokentop.emitter` (the Python emitter), kept so existing imports still work."""

from tokentop.emitter import AsyncEmitter, Emitter

__all__ = ["AsyncEmitter", "Emitter"]
