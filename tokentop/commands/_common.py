"""Helpers shared by commands: config loading with friendly errors, finding or embedding a feed."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from tokentop import config as config_mod
from tokentop.config import Config, ConfigError


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
