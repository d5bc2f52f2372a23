"""Provider pollers: cost of parsing, storing and summarising billed rows. Prints figures.

    /work/venv/bin/python bench/providers_bench.py [--models 10]

Figures: parse of a day of 1-minute buckets (1440 × models results), the ledger replace of those
rows, the providers view's panel for the last hour (incl. unattributed spend against local events),
and a 30-day report — each run once after a warm-up.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tokentop.core.events import Event  # noqa: E402
from tokentop.core.ledger import Ledger  # noqa: E402
from tokentop.core.pricing import Cost, Pricer, to_pusd  # noqa: E402
from tokentop.core.providers import openai  # noqa: E402
from tokentop.core.providers.panel import build_panel  # noqa: E402
from tokentop.core.providers.records import CostRow  # noqa: E402
from tokentop.core.providers.report import build_report  # noqa: E402
from tokentop.core.providers.store import BilledStore  # noqa: E402


def timed(label: str, fn, n_items: int) -> object:
    t0 = time.perf_counter()
    out = fn()
    dt = time.perf_counter() - t0
    print(f"{label:<48} {dt * 1000:9.1f} ms  ({n_items:,} items, {dt / max(1, n_items) * 1e6:7.2f} µs/item)")
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", type=int, default=10)
    args = ap.parse_args()
    models = [f"gpt-4o-mini-{i}" if i else "gpt-4o" for i in range(args.models)]
    now = time.time()
    end = int(now // 60) * 60 + 60
    start = end - 1440 * 60
    buckets = [{"object": "bucket", "start_time": s, "end_time": s + 60, "results": [
        {"object": "organization.usage.completions.result", "input_tokens": 1000 + i, "input_cached_tokens": 100,
         "output_tokens": 50, "num_model_requests": 2, "model": m} for i, m in enumerate(models)]}
        for s in range(start, end, 60)]
    n = 1440 * len(models)
    fetched = timed("parse 1440 one-minute buckets", lambda: openai._buckets(buckets, lambda s, e, r: openai.usage_row(s, e, "1m", r)), n)
    with tempfile.TemporaryDirectory() as tmp:
        led = Ledger(Path(tmp) / "b.db")
        store = BilledStore(led)
        timed("ledger replace (1 day of 1m rows)", lambda: store.replace_usage("openai", "1m", start, end, fetched.rows, fetched.buckets, now), n)
        timed("ledger replace again (idempotent re-fetch)", lambda: store.replace_usage("openai", "1m", start, end, fetched.rows, fetched.buckets, now), n)
        local = [(Event(id=f"e{i}", ts=now - (i % 3600), model=models[i % len(models)], input_tokens=900, output_tokens=40),
                  Cost(to_pusd(Decimal("0.0001")), "estimated")) for i in range(20000)]
        led.append(local)
        pricer = Pricer()
        build_panel(store, "openai", now, pricer)  # warm the pricer
        timed("providers panel: last hour + unattributed", lambda: build_panel(store, "openai", now, pricer), 60 * len(models) + 20000)
        day0 = int(now // 86400) * 86400
        days = [(day0 - d * 86400) for d in range(30)]
        costs = [CostRow("openai", d, d + 86400, to_pusd(Decimal("1.23")), line_item=f"{m}, input", model=m) for d in days for m in models]
        store.replace_costs("openai", days[-1], day0 + 86400, costs, [(d, d + 86400) for d in days], now)
        timed("30-day report", lambda: build_report(store, "openai", 30, now), len(costs))
        led.close()


if __name__ == "__main__":
    main()
