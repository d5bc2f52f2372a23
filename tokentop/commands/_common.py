"""Helpers shared by commands: config loading with friendly errors, finding or embedding a feed."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from tokentop import config as config_mod
from tokentop.config import Config, ConfigError


def add_config_option(parser: argparse.ArgumentParser, *, sub: bool = True) -> None:
    """``--config PATH``, for every command that reads the config.

    On subcommands the default is suppressed so ``tokentop --config X serve`` keeps ``X``.
    """
    parser.add_argument("--config", metavar="PATH", default=argparse.SUPPRESS if sub else None,
                        help="config file (env TOKENTOP_CONFIG)")


def add_feed_options(parser: argparse.ArgumentParser, *, sub: bool = True) -> None:
    """``--config PATH`` and ``--feed URL``: every command that talks to a feed takes both after its
    name (``tokentop log --feed URL``), as well as before it (``tokentop --feed URL log``)."""
    add_config_option(parser, sub=sub)
    parser.add_argument(
        "--feed", metavar="URL", default=argparse.SUPPRESS if sub else None,
        help="feed to use: http://HOST:PORT or unix:/path (env TOKENTOP_FEED)",
    )


def fail(message: str, code: int = 2) -> int:
    print(f"tokentop: {message}", file=sys.stderr)
    return code


def load_config(args: argparse.Namespace) -> Config:
    """The validated config; raises ``SystemExit(2)`` with the error on stderr."""
    try:
        return config_mod.load(getattr(args, "config", None))
    except ConfigError as exc:
        print(f"tokentop: {exc}", file=sys.stderr)
        raise SystemExit(2) from None


def feed_url(args: argparse.Namespace, cfg: Config) -> str:
    return getattr(args, "feed", None) or cfg.feed_url


def find_feed(args: argparse.Namespace, cfg: Config) -> Any | None:
    """A ``FeedClient`` for a feed that answers, else ``None``."""
    from tokentop.core.feed.client import FeedClient

    url = feed_url(args, cfg)
    try:
        client = FeedClient(url)
    except ValueError as exc:
        print(f"tokentop: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    if client.healthy():
        return client
    client.close()
    return None
