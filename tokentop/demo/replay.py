"""The demo fleet replayed in-process into an aggregator: a deterministic snapshot for a seed.

Used for the README screenshot and tests; ``tokentop demo`` itself runs real child processes.
"""

from __future__ import annotations

from tokentop.core.aggregate import Aggregator
from tokentop.core.events import parse_event
from tokentop.core.pricing import Pricer
from tokentop.core.snapshot import Snapshot
from tokentop.demo.fleet import fleet, schedule, session_id


def fleet_snapshot(seed: int, now: float, seconds: float = 150.0, *, run: str = "demo", first_pid: int = 41000) -> Snapshot:
    """The snapshot after the fleet of ``seed`` ran for ``seconds`` ending at ``now``."""
    agg = Aggregator()
    pricer = Pricer()
    start = now - seconds
    for agent in fleet(seed):
        session = session_id(agent, run)
        for n, req in enumerate(schedule(agent, seed)):
            if req.at_s > seconds:
                break
            event = parse_event(
                {
                    "id": f"{session}-{n}", "ts": start + req.at_s, "agent": agent.agent, "session": session,
                    "project": agent.project, "branch": agent.branch, "provider": agent.provider,
                    "model": agent.model, "pid": first_pid + agent.index, "input_tokens": req.input_tokens,
                    "output_tokens": req.output_tokens, "cache_read_tokens": req.cache_read_tokens,
                    "reasoning_tokens": req.reasoning_tokens, "latency_ms": req.latency_ms, "status": req.status,
                    "source": "demo",
                },
                now=now,
            )
            agg.apply(event, pricer.price(event), now)
    return agg.snapshot(now)
