"""A generated corpus (bench/gen_agent_logs.py) imported with `tokentop import` equals its ground truth."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from contextlib import redirect_stdout
from pathlib import Path

import pytest

from tokentop import cli

# every test on both JSON paths (typed decoding and its fallback): the same events either way
pytestmark = pytest.mark.usefixtures("json_path")

GEN = Path(__file__).resolve().parents[2] / "bench" / "gen_agent_logs.py"


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("corpus")
    subprocess.run([sys.executable, str(GEN), "--out", str(out), "--lines", "5000", "--sessions", "40", "--seed", "42"],
                   check=True, capture_output=True)
    # one malformed line that claims usage (the generator's own may all be ones the byte filter skips),
    # so the summary has a malformed line to report; the ground truth does not count it
    session = next(p for p in sorted((out / ".claude" / "projects").rglob("*.jsonl")) if "subagents" not in p.parts)
    with open(session, "a") as fh:
        fh.write('{"type":"assistant","message":{"usage":{"input_tokens":"NaN"}},"timestamp":"bad"}\n')
    return out


def report(*args: str) -> dict:
    buf = io.StringIO()
    with redirect_stdout(buf):
        assert cli.main(["report", "--json", "--utc", "--days", "31", *args]) == 0
    return json.loads(buf.getvalue())


@pytest.mark.parametrize("workers", [0, 2])
def test_import_then_report_equals_ground_truth(corpus: Path, monkeypatch: pytest.MonkeyPatch, capsys,
                                                workers: int) -> None:
    """Serial, and with two parser processes pricing rows for this one to store: jobs of 1 MB, at
    most one per worker ahead, and few rows queued in the ledger (the import's back-pressure)."""
    from tokentop.commands import import_cmd
    from tokentop.core.sources import backfill

    monkeypatch.setenv("HOME", str(corpus))
    monkeypatch.setattr(backfill, "PARALLEL_MIN_BYTES", 0)
    monkeypatch.setattr(backfill, "JOB_BYTES", 1024 * 1024)
    monkeypatch.setattr(backfill, "JOBS_AHEAD", 1)
    monkeypatch.setattr(import_cmd, "MAX_QUEUED_ROWS", 300)
    monkeypatch.setattr(import_cmd, "IMPORT_BATCH_EVENTS", 200)
    assert cli.main(["import", "--workers", str(workers)]) == 0
    err = capsys.readouterr().err
    assert "imported" in err and "malformed" in err
    gt = json.loads((corpus / "ground_truth.json").read_text())
    by_agent = {r["agent"]: r for r in report("--by", "agent")["by_agent"]}
    claude = [r for a, r in by_agent.items() if a.startswith("claude-code")]
    c, x = gt["claude"], gt["codex"]

    def total(rows: list[dict], field: str) -> int:
        return sum(r[field] for r in rows)

    assert total(claude, "requests") == c["messages"]
    assert total(claude, "output_tokens") == c["output_tokens"]
    assert total(claude, "cache_read_tokens") == c["cache_read_tokens"]
    assert total(claude, "cache_write_tokens") == c["cache_creation_tokens"]
    assert total(claude, "input_tokens") == c["input_tokens"] + c["cache_read_tokens"] + c["cache_creation_tokens"]
    assert total(claude, "unpriced_requests") == 0
    assert abs(total(claude, "usd") - c["cost_usd"]) < 0.0001
    codex = by_agent["codex"]
    assert (codex["requests"], codex["input_tokens"], codex["cache_read_tokens"], codex["output_tokens"],
            codex["reasoning_tokens"]) == (x["events"], x["input_tokens"], x["cached_input_tokens"], x["output_tokens"],
                                           x["reasoning_output_tokens"])
    assert abs(codex["usd"] - x["cost_usd"]) < 0.0001
    # per day (UTC days of the final streaming line) and per model, as the generator dates and names them
    days = {r["date"]: r for r in report("--by", "day")["by_day"]}
    for day, want in gt["claude_daily"].items():
        got = days[day]["output_tokens"] - gt["codex_daily"].get(day, {}).get("output_tokens", 0)
        assert got == want["output_tokens"], day
    models = {r["model"]: r for r in report("--by", "model")["by_model"]}
    for model, want in gt["claude_by_model"].items():
        assert models[model]["requests"] == want["messages"]
        assert abs(models[model]["usd"] - want["cost_usd"]) < 0.01
    # a second import reads nothing new and changes nothing
    assert cli.main(["import"]) == 0
    assert "imported 0 new requests" in capsys.readouterr().err
    assert report()["totals"]["requests"] == c["messages"] + x["events"]


def test_report_json_has_the_documented_shape(corpus: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(corpus))
    assert cli.main(["import", "--quiet", "--source", "codex"]) == 0
    data = report("--by", "session")
    fields = {"requests", "input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens",
              "reasoning_tokens", "usd", "unpriced_requests"}
    assert set(data["totals"]) == fields
    assert data["by_session"] and all(set(r) == fields | {"session"} for r in data["by_session"])
    assert {r["session"] for r in data["by_session"]} and data["totals"]["requests"] == \
        sum(r["requests"] for r in data["by_session"])


def test_report_csv_has_one_row_per_key(corpus: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    monkeypatch.setenv("HOME", str(corpus))
    assert cli.main(["import", "--quiet", "--source", "codex"]) == 0
    capsys.readouterr()
    assert cli.main(["report", "--csv", "--by", "model", "--days", "31"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0] == "model,requests,input_tokens,output_tokens,cache_read_tokens,cache_write_tokens,reasoning_tokens,usd,unpriced_requests"
    assert {ln.split(",")[0] for ln in lines[1:]} == {"gpt-5-codex", "gpt-5.1-codex", "gpt-5.2-codex"}


def test_parallel_import_gives_the_same_events_as_serial(corpus: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from tokentop.core.ledger import Ledger
    from tokentop.core.sources import backfill
    from tokentop.core.sources.settings import SourceSettings
    from tokentop.core.sources.tailer import LogSources

    monkeypatch.setattr(backfill, "PARALLEL_MIN_BYTES", 0)
    monkeypatch.setattr(backfill, "JOB_BYTES", 1024 * 1024)  # several jobs, results interleaved with ours
    settings = SourceSettings(roots={"claude-code": (corpus / ".claude" / "projects",), "codex": (corpus / ".codex",)},
                              backfill_days=31)
    runs = []
    monkeypatch.setattr(backfill, "JOBS_AHEAD", 1)  # jobs submitted as earlier ones are handed over
    for workers in (0, 1, 2):
        ledger = Ledger(tmp_path / f"w{workers}.db")
        src = LogSources(ledger, settings, batch_events=500,
                         backfill=backfill.ParallelBackfill(workers) if workers else None)
        got: dict[str, tuple] = {}
        src.poll(lambda batch: [got.setdefault(e.id, (e.input_tokens, e.output_tokens, e.ts, e.agent)) for e in batch])
        runs.append((got, src.stats.files_read, len(src.cursors)))
        # the cursors of files the worker read were taken over: a second poll reads nothing
        assert src.poll(lambda batch: None) == 0
        ledger.close()
    assert runs[0] == runs[1] == runs[2]


def test_a_feed_reading_the_corpus_live_equals_ground_truth(corpus: Path, tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """The live path: the feed's own log sources (backfill, then following the files) into its ledger."""
    import time

    from tokentop import config as config_mod
    from tokentop.commands.report import build
    from tokentop.core.feed.runner import FeedRunner

    monkeypatch.setenv("HOME", str(corpus))
    cfg = config_mod.from_mapping({"ledger": {"path": str(tmp_path / "feed.db")}, "sources": {"backfill_days": 31}})
    runner = FeedRunner(cfg, listen="127.0.0.1:0", host_name="test-host").start_in_thread(require_listen=True)
    try:
        deadline = time.monotonic() + 60
        while runner.snapshot().status.get("import", {}).get("state") != "done":
            assert time.monotonic() < deadline, "the feed did not finish reading the corpus"
            time.sleep(0.05)
        data = build(runner.ledger, days=31, by="agent", utc=True)
    finally:
        runner.stop()
    gt = json.loads((corpus / "ground_truth.json").read_text())
    rows = data["by_agent"]
    claude = [r for r in rows if r["agent"].startswith("claude-code")]
    codex = [r for r in rows if r["agent"] == "codex"]
    c, x = gt["claude"], gt["codex"]
    assert sum(r["requests"] for r in claude) == c["messages"]
    assert sum(r["output_tokens"] for r in claude) == c["output_tokens"]
    assert sum(r["input_tokens"] for r in claude) == c["input_tokens"] + c["cache_read_tokens"] + c["cache_creation_tokens"]
    assert sum(r["cache_write_tokens"] for r in claude) == c["cache_creation_tokens"]
    assert abs(sum(r["usd"] for r in claude) - c["cost_usd"]) < 0.0001
    assert (sum(r["requests"] for r in codex), sum(r["input_tokens"] for r in codex),
            sum(r["output_tokens"] for r in codex)) == (x["events"], x["input_tokens"], x["output_tokens"])
    assert abs(sum(r["usd"] for r in codex) - x["cost_usd"]) < 0.0001

