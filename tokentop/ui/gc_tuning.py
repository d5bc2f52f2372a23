"""Garbage-collector settings for the live view's process.

Each snapshot (a remote frame decoded, or the embedded feed's) is some tens of thousands of
container objects that live exactly one refresh. With CPython's default thresholds (700/10/10)
the young generations are collected hundreds of times a minute, each pass walking the snapshot
on screen and the whole Textual tree with it: measured at ~20 % of the view's CPU at 200 busy
sessions. :func:`tune_for_live_view` moves everything alive at start-up (modules, the app,
widgets, themes) out of the collector's sight (``gc.freeze``) and collects the young generation
after 10x more allocations. Reference counting still frees almost everything at once; the
collector is only for cycles, which the snapshot does not make.
"""

from __future__ import annotations

import gc

#: allocations (net) between young-generation collections; CPython's default is 700
GEN0_THRESHOLD = 10_000


def tune_for_live_view() -> tuple[int, int, int]:
    """Freeze what start-up allocated and raise the young-generation threshold; returns the old
    thresholds (so a caller can restore them)."""
    old = gc.get_threshold()
    gc.collect()
    gc.freeze()
    gc.set_threshold(GEN0_THRESHOLD, old[1], old[2])
    return old
