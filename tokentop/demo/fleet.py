"""The simulated fleet: who the agents are and, for a seed, exactly what each one sends when.

Pure and deterministic: :func:`fleet` and :func:`schedule` depend only on the seed (and the agent's
index), never on the clock, so ``tokentop demo --seed 7`` always shows the same fleet doing the
same things. Each agent runs in its own child process (:mod:`tokentop.demo.agent`) that replays its
schedule against the wall clock and posts the events, with its own pid, to the feed.

Profiles: ``steady`` (regular requests of similar size), ``bursty`` (quiet spells, then a quick
run of requests) and ``runaway`` (its request rate and context size ramp up until it is stopped).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Final, Iterator

#: The demo's agents and the models each one really runs, as (provider, model): a claude-code row
#: never shows an OpenAI model, nor codex a Claude one. Only agents tokentop can watch (Claude Code,
#: Codex; OpenCode and Gemini CLI, whose sources are being added) — nothing tokentop cannot read
#: (Goose). Every model id is one genai-prices knows, so every demo dollar is a real estimate.
AGENT_MODELS: Final[dict[str, tuple[tuple[str, str], ...]]] = {
    "claude-code": (("anthropic", "claude-sonnet-4-5"), ("anthropic", "claude-opus-4-1"),
                    ("anthropic", "claude-haiku-4-5")),
    "codex": (("openai", "gpt-5-codex"), ("openai", "gpt-5"), ("openai", "o4-mini")),
    "opencode": (("anthropic", "claude-sonnet-4-5"), ("openai", "gpt-5")),
    "gemini-cli": (("google", "gemini-2.5-pro"), ("google", "gemini-2.5-flash")),
}
AGENTS: Final = tuple(AGENT_MODELS)
#: how often each agent appears in a fleet (Claude Code and Codex are the common ones)
AGENT_WEIGHTS: Final = (4, 3, 2, 1)
#: every (provider, model) some demo agent runs
MODELS: Final = tuple(dict.fromkeys(pair for pairs in AGENT_MODELS.values() for pair in pairs))
#: models with reasoning tokens (part of their output)
REASONING_MODELS: Final = frozenset({"gpt-5-codex", "gpt-5", "o4-mini"})
PROJECTS: Final = ("billing-api", "web-frontend", "infra", "data-pipeline", "docs-site", "mobile-app")
FLEET_SIZE: Final = 12


@dataclass(frozen=True, slots=True)
class SimAgent:
    index: int
    agent: str
    provider: str
    model: str
    project: str
    branch: str
    profile: str  # steady | bursty | runaway
    #: mean seconds between requests at the start
    interval_s: float
    #: typical prompt size (tokens, including cache reads) and reply size
    input_tokens: int
    output_tokens: int


@dataclass(frozen=True, slots=True)
class SimRequest:
    """One request, ``at_s`` seconds after the agent started."""

    at_s: float
    input_tokens: int
    output_tokens: int
    cache_read_tokens: int
    reasoning_tokens: int
    latency_ms: float
    status: str = "ok"


def fleet(seed: int, size: int = FLEET_SIZE) -> list[SimAgent]:
    """``size`` agents for ``seed``: mostly steady, a few bursty, exactly one runaway."""
    rng = random.Random(f"tokentop-demo-fleet:{seed}")
    runaway = rng.randrange(size)
    out: list[SimAgent] = []
    for i in range(size):
        agent = rng.choices(AGENTS, AGENT_WEIGHTS)[0]
        models = AGENT_MODELS[agent]
        provider, model = models[rng.randrange(len(models))]
        if i == runaway:
            # a Claude Code loop re-sending a swelling context: the classic runaway
            profile = "runaway"
            agent, (provider, model) = "claude-code", ("anthropic", "claude-sonnet-4-5")
        else:
            profile = "bursty" if rng.random() < 0.35 else "steady"
        out.append(
            SimAgent(
                index=i,
                agent=agent,
                provider=provider,
                model=model,
                project=PROJECTS[rng.randrange(len(PROJECTS))],
                branch=rng.choice(("main", "feature/search", "fix/retry", "refactor/db")),
                profile=profile,
                interval_s=round(rng.uniform(1.5, 6.0), 2),
                input_tokens=rng.choice((2_000, 6_000, 12_000, 25_000, 40_000)),
                output_tokens=rng.choice((200, 400, 800, 1_500)),
            )
        )
    return out


def schedule(agent: SimAgent, seed: int) -> Iterator[SimRequest]:
    """The agent's requests in time order, forever (the caller stops iterating)."""
    rng = random.Random(f"tokentop-demo-agent:{seed}:{agent.index}")
    t = rng.uniform(0.0, agent.interval_s)
    context = agent.input_tokens
    while True:
        if agent.profile == "runaway":
            # ramps: requests come faster and prompts grow (a loop re-sending a swelling context)
            ramp = min(8.0, 1.0 + t / 60.0)
            gap = max(1.0, agent.interval_s / ramp) * rng.uniform(0.7, 1.3)
            context = min(120_000, int(context * rng.uniform(1.005, 1.03)) + 300)
            inp = context
            out = int(agent.output_tokens * rng.uniform(0.8, 2.0))
        elif agent.profile == "bursty":
            if rng.random() < 0.15:
                gap = rng.uniform(15.0, 40.0)  # a quiet spell
            else:
                gap = rng.uniform(0.3, 1.2)
            inp = int(agent.input_tokens * rng.uniform(0.5, 1.6))
            out = int(agent.output_tokens * rng.uniform(0.5, 1.8))
        else:
            gap = agent.interval_s * rng.uniform(0.8, 1.2)
            inp = int(agent.input_tokens * rng.uniform(0.85, 1.15))
            out = int(agent.output_tokens * rng.uniform(0.8, 1.2))
        cache_read = int(inp * rng.uniform(0.3, 0.8)) if agent.provider == "anthropic" else int(inp * rng.uniform(0.0, 0.5))
        reasoning = int(out * rng.uniform(0.2, 0.6)) if agent.model in REASONING_MODELS else 0
        status = "error" if rng.random() < 0.01 else "ok"
        yield SimRequest(
            at_s=round(t, 3), input_tokens=inp, output_tokens=out, cache_read_tokens=cache_read,
            reasoning_tokens=reasoning, latency_ms=round(rng.uniform(400, 9000), 1), status=status,
        )
        t += gap


def session_id(agent: SimAgent, run: str) -> str:
    return f"{agent.agent}-{run}-{agent.index:02d}"
