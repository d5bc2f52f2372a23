"""``tokentop report --billed``: fetches what the ledger lacks, totals equal the provider's data exactly."""

from __future__ import annotations

import json
import time
from decimal import Decimal

import pytest

from tests.providers.helpers import DAY, seed_days
from tokentop import cli


@pytest.fixture
def env(fake_api, monkeypatch):
    monkeypatch.setenv("OPENAI_ADMIN_KEY", fake_api.api.openai.key)
    monkeypatch.setenv("ANTHROPIC_ADMIN_KEY", fake_api.api.anthropic.key)
    monkeypatch.setenv("TOKENTOP_OPENAI_BASE_URL", fake_api.openai_base)
    monkeypatch.setenv("TOKENTOP_ANTHROPIC_BASE_URL", fake_api.anthropic_base)
    return fake_api


def _window(days: int) -> tuple[int, int]:
    now = int(time.time())
    end = now - now % DAY + DAY
    return end - days * DAY, end


def _run(capsys, *argv: str) -> tuple[int, str, str]:
    code = cli.main(["report", "--billed", *argv])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_json_totals_equal_the_servers_data_exactly(env, capsys):
    now = int(time.time())
    for p in ("openai", "anthropic"):
        seed_days(env, p, 40, now=now)  # more than the window: older days must not leak in
    env.api.page_cap = 4  # many pages
    code, out, err = _run(capsys, "--days", "30", "--json")
    assert code == 0, err
    doc = json.loads(out, parse_float=Decimal)
    start, end = _window(30)
    for p in ("openai", "anthropic"):
        rep = doc["providers"][p]
        exp = env.api.expected(p, start, end)
        assert rep["usd_total"] == exp["usd"]
        assert rep["input_tokens_total"] == exp["input_tokens"]
        assert rep["output_tokens_total"] == exp["output_tokens"]
        assert rep["requests_total"] == (exp["requests"] if p == "openai" else None)
        assert len(rep["by_day"]) == 30 and rep["complete"] is True and rep["error"] is None
        assert sum(d["usd"] for d in rep["by_day"]) == exp["usd"]
        assert sum(m["usd"] for m in rep["by_model"]) == exp["usd"]
        assert sum(m["input_tokens"] for m in rep["by_model"]) == exp["input_tokens"]
        assert set(rep["by_day"][0]) == {"date", "usd", "requests", "input_tokens", "output_tokens"}
        assert set(rep["by_model"][0]) == {"model", "usd", "requests", "input_tokens", "output_tokens"}
        assert {m["model"] for m in rep["by_model"]} == {"model-a", "model-b", "(no model)"}
        empty = [d for d in rep["by_day"] if d["input_tokens"] == 0]
        assert empty and all(d["usd"] == 0 for d in empty)  # empty buckets are zero days, not gaps


def test_second_run_fetches_only_unsettled_days_and_offline_reads_the_ledger(env, capsys, monkeypatch):
    now = int(time.time())
    seed_days(env, "openai", 10, now=now)
    assert _run(capsys, "--provider", "openai", "--days", "10", "--json")[0] == 0
    first = len(env.api.log)
    code, out, _ = _run(capsys, "--provider", "openai", "--days", "10", "--json")
    assert code == 0
    again = env.api.log[first:]
    today = now - now % DAY
    # only days not yet settled when fetched (today; yesterday just after midnight) are asked again
    assert len(again) == 2 and all(int(dict(q)["start_time"]) >= today - DAY for _, q in again)
    online = json.loads(out, parse_float=Decimal)["providers"]["openai"]
    monkeypatch.delenv("OPENAI_ADMIN_KEY")
    n = len(env.api.log)
    code, out, _ = _run(capsys, "--provider", "openai", "--days", "10", "--json", "--offline")
    assert code == 0 and len(env.api.log) == n
    offline = json.loads(out, parse_float=Decimal)
    assert offline["offline"] is True and offline["providers"]["openai"]["usd_total"] == online["usd_total"]
    assert offline["providers"]["openai"]["by_day"] == online["by_day"]  # re-fetch did not double count


def test_csv_and_table_outputs(env, capsys):
    now = int(time.time())
    seed_days(env, "anthropic", 3, now=now)
    code, out, _ = _run(capsys, "--provider", "anthropic", "--days", "3", "--csv")
    assert code == 0
    lines = out.strip().splitlines()
    assert lines[0] == "provider,kind,key,usd,requests,input_tokens,output_tokens"
    total = lines[1].split(",")
    start, end = _window(3)
    assert total[:2] == ["anthropic", "total"] and Decimal(total[3]) == env.api.expected("anthropic", start, end)["usd"]
    assert total[4] == ""  # no request counts from Anthropic: empty, not 0
    assert sum(1 for ln in lines if ",day," in ln) == 3
    code, out, _ = _run(capsys, "--provider", "anthropic", "--days", "3", "--offline")
    assert code == 0 and "anthropic — billed" in out and "model-b" in out and "n/a req" in out


def test_wrong_key_and_missing_key(env, capsys, monkeypatch):
    monkeypatch.setenv("OPENAI_ADMIN_KEY", "sk-admin-WRONG-000000000000000000000000")
    code, out, err = _run(capsys, "--provider", "openai", "--days", "2", "--json")
    assert code == 1
    assert "OPENAI_ADMIN_KEY" in err and "sk-admin-WRONG-000000000000000000000000" not in err + out
    assert json.loads(out)["providers"]["openai"]["complete"] is False
    monkeypatch.delenv("OPENAI_ADMIN_KEY")
    monkeypatch.delenv("ANTHROPIC_ADMIN_KEY")
    code, _, err = _run(capsys, "--days", "2")
    assert code == 2 and "OPENAI_ADMIN_KEY" in err and "ANTHROPIC_ADMIN_KEY" in err
    code, _, err = _run(capsys, "--provider", "anthropic")
    assert code == 2 and "ANTHROPIC_ADMIN_KEY" in err


def test_one_provider_failing_still_reports_the_other(env, capsys, isolated_dirs):
    cfg = isolated_dirs / "cfg"
    cfg.mkdir(exist_ok=True)
    (cfg / "config.toml").write_text("[providers.anthropic]\nmax_attempts = 3\nbackoff_base_s = 0.01\n")
    now = int(time.time())
    seed_days(env, "openai", 2, now=now)
    seed_days(env, "anthropic", 2, now=now)
    env.api.fail(500, path="/v1/organizations/", times=50)
    code, out, err = _run(capsys, "--days", "2", "--json")
    assert code == 1 and "anthropic" in err and "gave up" in err
    doc = json.loads(out, parse_float=Decimal)
    start, end = _window(2)
    assert doc["providers"]["openai"]["usd_total"] == env.api.expected("openai", start, end)["usd"]
    assert doc["providers"]["anthropic"]["error"]


def test_billed_arguments_fold_into_a_parser_that_already_has_days_and_formats():
    import argparse

    from tokentop.commands.report_billed import add_billed_arguments

    parser = argparse.ArgumentParser()
    parser.add_argument("--days", type=int, default=7)
    fmt = parser.add_mutually_exclusive_group()
    fmt.add_argument("--json", action="store_true")
    fmt.add_argument("--csv", action="store_true")
    parser.add_argument("--billed", action="store_true")
    add_billed_arguments(parser)  # must not raise "conflicting option string"
    args = parser.parse_args(["--billed", "--provider", "anthropic", "--days", "3", "--json", "--offline"])
    assert (args.provider, args.days, args.json, args.offline) == ("anthropic", 3, True, True)


def test_billed_only_options_are_refused_on_the_local_report(capsys) -> None:
    assert cli.main(["report", "--offline"]) == 2
    assert "--provider and --offline go with --billed" in capsys.readouterr().err
    assert cli.main(["report", "--billed", "--by", "model"]) == 2
    assert "--by and --utc apply to the local report" in capsys.readouterr().err
