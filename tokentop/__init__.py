"""tokentop: top for AI token spend."""

__version__ = "0.1.0"
