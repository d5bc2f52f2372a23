"""``tokentop demo``: a deterministic simulated fleet of agents (no textual import here)."""
