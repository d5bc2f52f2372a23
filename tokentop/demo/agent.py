"""One simulated agent as a real process: ``python -m tokentop.demo.agent --feed URL --seed N --index I``.

It replays its :func:`~tokentop.demo.fleet.schedule` against the wall clock and posts each request
to the feed with its own pid, so the live view's kill flow can stop it for real. It exits when the
feed goes away for good or when told to (SIGTERM/SIGINT).
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time

from tokentop.demo.fleet import fleet, schedule, session_id


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="tokentop-demo-agent")
    p.add_argument("--feed", required=True)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--index", type=int, required=True)
    p.add_argument("--run", required=True, help="run tag shared by the fleet (part of session and event ids)")
    p.add_argument("--size", type=int, default=12)
    p.add_argument("--speed", type=float, default=1.0, help="time multiplier (tests use >1)")
    p.add_argument("--backfill", type=float, default=90.0,
                   help="seconds of history sent at once on start, so the view fills immediately")
    args = p.parse_args(argv)

    from tokentop.core.feed.client import FeedClient, FeedUnavailable

    agent = fleet(args.seed, args.size)[args.index]
    session = session_id(agent, args.run)
    stop = False

    def on_signal(signum: int, frame: object) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    pid = os.getpid()
    launched = time.time()
    start = launched - args.backfill
    failures = 0
    with FeedClient(args.feed, timeout=5.0) as client:
        for n, req in enumerate(schedule(agent, args.seed)):
            due = start + req.at_s / args.speed
            ts = due
            while not stop and (delay := due - time.time()) > 0:
                time.sleep(min(delay, 0.2))
            if stop:
                break
            event = {
                "id": f"{session}-{n}",
                "ts": round(ts, 3),
                "agent": agent.agent,
                "session": session,
                "project": agent.project,
                "branch": agent.branch,
                "provider": agent.provider,
                "model": agent.model,
                "input_tokens": req.input_tokens,
                "output_tokens": req.output_tokens,
                "cache_read_tokens": req.cache_read_tokens,
                "reasoning_tokens": req.reasoning_tokens,
                "latency_ms": req.latency_ms,
                "status": req.status,
                "source": "demo",
            }
            if ts >= launched:
                # only requests made while this process runs carry its pid: the feed binds a session
                # to a pid only when the process started before the event (backfilled history did not)
                event["pid"] = pid
            try:
                client.post_events([event])
                failures = 0
            except FeedUnavailable:
                failures += 1
                if failures >= 10:
                    return 1  # the feed is gone: the demo is over
                time.sleep(1.0)
    return 0


if __name__ == "__main__":
    sys.exit(main())
