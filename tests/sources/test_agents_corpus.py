"""Generated Gemini CLI, Qwen Code, pi, Amp and Kimi stores (bench/gen_agents.py), imported with
`tokentop import`, equal their ground truth — every trap the generator writes included."""

from __future__ import annotations

import hashlib
import io
import json
import subprocess
import sys
import time
from contextlib import redirect_stdout
from pathlib import Path

import pytest

from tokentop import cli

GEN = Path(__file__).resolve().parents[2] / "bench" / "gen_agents.py"
AGENTS = ("gemini-cli", "qwen-code", "pi", "amp", "kimi")
FIELDS = ("requests", "input_tokens", "cache_read_tokens", "cache_write_tokens", "output_tokens", "reasoning_tokens")


def generate(out: Path, *extra: str) -> None:
    subprocess.run([sys.executable, str(GEN), "all", "--out", str(out), "--records", "1500", "--sessions", "24",
                    "--seed", "5", "--days", "29", *extra], check=True, capture_output=True)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("agents")
    generate(out)
    return out


def report(*args: str) -> dict:
    buf = io.StringIO()
    with redirect_stdout(buf):
        assert cli.main(["report", "--json", "--utc", "--days", "31", *args]) == 0
    return json.loads(buf.getvalue())


def totals(rows: list[dict], agent: str) -> dict[str, int]:
    mine = [r for r in rows if r["agent"] == agent or r["agent"].startswith(agent + "/")]
    return {f: sum(r[f] for r in mine) for f in FIELDS}


def test_import_equals_the_ground_truth_of_every_agent(corpus: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    monkeypatch.setenv("HOME", str(corpus))
    gt = json.loads((corpus / "ground_truth.json").read_text())
    now = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime())
    for agent in AGENTS:  # the generated stores hold traps, and nothing from the future
        assert gt[agent]["requests"] > 1000 and gt[agent]["traps"] and gt[agent]["last"] < now
    assert cli.main(["import"]) == 0
    err = capsys.readouterr().err
    assert "imported" in err
    rows = report("--by", "agent")["by_agent"]
    for agent in AGENTS:
        assert totals(rows, agent) == {f: gt[agent][f] for f in FIELDS}, agent
    # a second import reads nothing new and changes nothing
    assert cli.main(["import", *(arg for a in AGENTS for arg in ("--source", a))]) == 0
    assert "imported 0 new requests" in capsys.readouterr().err
    assert report("--by", "agent")["by_agent"] == rows


def test_per_model_totals_match(corpus: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(corpus))
    assert cli.main(["import", "--quiet"]) == 0
    gt = json.loads((corpus / "ground_truth.json").read_text())
    by_model = report("--by", "model")["by_model"]
    want: dict[str, dict[str, int]] = {}
    for agent in AGENTS:
        for model, t in gt[agent]["by_model"].items():
            w = want.setdefault(model, dict.fromkeys(("requests", "output_tokens"), 0))
            w["requests"] += t["requests"]
            w["output_tokens"] += t["output_tokens"]
    got = {r["model"]: {"requests": r["requests"], "output_tokens": r["output_tokens"]} for r in by_model}
    assert got == want


def test_the_generator_is_deterministic(tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    for out in (a, b):
        generate(out, "--end", "2026-11-26T12:00:00Z")

    def digest(root: Path) -> dict[str, str]:
        return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
                for p in sorted(root.rglob("*")) if p.is_file()}

    assert digest(a) == digest(b)
