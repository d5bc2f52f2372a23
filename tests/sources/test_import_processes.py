"""``tokentop import`` leaves no process behind: its backfill worker is shut down and joined when
the import ends, fails or is interrupted (Ctrl-C). Real processes, a corpus large enough for the
worker (backfill.PARALLEL_MIN_BYTES)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from tests.sources.test_windows import GEN, date_files_by_last_line
from tokentop.core.sources.backfill import PARALLEL_MIN_BYTES


@pytest.fixture(scope="module")
def big_corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("big-corpus")
    end = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 3600))
    subprocess.run([sys.executable, str(GEN), "--out", str(out), "--lines", "24000", "--sessions", "120",
                    "--seed", "3", "--end", end, "--days", "20"], check=True, capture_output=True)
    date_files_by_last_line(out)  # quiet files: only those go to the worker
    size = sum(p.stat().st_size for p in out.rglob("*.jsonl"))
    assert size > PARALLEL_MIN_BYTES * 1.2
    return out


def start_import(corpus: Path, *args: str) -> subprocess.Popen[str]:
    env = dict(os.environ, HOME=str(corpus))
    return subprocess.Popen([sys.executable, "-m", "tokentop", "import", *args], env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)


def wait_for_worker(proc: subprocess.Popen[str], timeout: float = 30.0) -> list[psutil.Process]:
    """The import's child processes, once its parsing worker runs."""
    parent = psutil.Process(proc.pid)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            children = parent.children(recursive=True)
            if any("spawn_main" in " ".join(c.cmdline()) and "resource_tracker" not in " ".join(c.cmdline())
                   for c in children):
                return children
        except psutil.Error:
            pass
        assert proc.poll() is None, f"import ended before its worker started: {proc.communicate()}"
        time.sleep(0.005)
    raise AssertionError("no worker process started")


def assert_all_gone(children: list[psutil.Process], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    alive = children
    while alive and time.monotonic() < deadline:
        alive = [c for c in alive if c.is_running() and c.status() != psutil.STATUS_ZOMBIE]
        time.sleep(0.02)
    assert not alive, f"left behind: {[(c.pid, c.cmdline()) for c in alive]}"


@pytest.mark.parametrize("target", ["process", "group"], ids=["kill -INT pid", "Ctrl-C (whole group)"])
def test_interrupted_import_leaves_no_process_behind(big_corpus: Path, target: str) -> None:
    proc = start_import(big_corpus)
    children = wait_for_worker(proc)
    if target == "group":
        os.killpg(proc.pid, signal.SIGINT)
    else:
        proc.send_signal(signal.SIGINT)
    t0 = time.monotonic()
    _, err = proc.communicate(timeout=30)
    took = time.monotonic() - t0
    assert proc.returncode == 130, err
    assert "interrupted" in err and "Traceback" not in err, err
    # the worker is stopped, not waited for: the import ends promptly, its children at once
    assert took < 5, took
    assert_all_gone(children, timeout=1.0)


def test_finished_import_leaves_no_process_behind(big_corpus: Path) -> None:
    proc = start_import(big_corpus, "--json")
    children = wait_for_worker(proc)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    assert '"new": ' in out
    assert_all_gone(children, timeout=1.0)


def test_a_failing_import_stops_its_worker(tmp_path: Path, big_corpus: Path) -> None:
    """In-process: the sink fails (a ledger error) while the worker parses; poll raises, and by then the
    worker processes have been stopped and joined."""
    from tokentop.core.ledger import Ledger
    from tokentop.core.sources.settings import SourceSettings
    from tokentop.core.sources.sourceset import SourceSet

    settings = SourceSettings(roots={"claude-code": (big_corpus / ".claude",), "codex": (big_corpus / ".codex",)})
    me = psutil.Process()
    before = {c.pid for c in me.children(recursive=True)}
    seen: list[psutil.Process] = []

    def sink(batch) -> None:  # noqa: ANN001
        # this process's resource tracker is its own (it lives as long as the process): not a worker
        seen.extend(c for c in me.children(recursive=True)
                    if c.pid not in before and "resource_tracker" not in " ".join(c.cmdline()))
        raise OSError("disk full")

    with Ledger(tmp_path / "l.db") as ledger:
        sources = SourceSet.open(settings, ledger, workers=1, batch_events=500)
        with pytest.raises(OSError, match="disk full"):
            sources.poll(sink)
    assert seen, "the worker never started"
    assert_all_gone(seen, timeout=0.5)


def test_a_worker_count_that_is_not_a_number_is_a_clear_error(monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    from tokentop import cli

    monkeypatch.setenv("TOKENTOP_IMPORT_WORKERS", "two")
    assert cli.main(["import", "--quiet"]) != 0
    assert "TOKENTOP_IMPORT_WORKERS must be a whole number, got 'two'" in capsys.readouterr().err


@pytest.mark.parametrize("blocked", [True, False], ids=["started with SIGINT blocked", "started plainly"])
def test_a_worker_hit_by_ctrl_c_while_its_interpreter_starts(blocked: bool) -> None:
    # Ctrl-C reaches the terminal's whole process group; a worker still starting (before its initializer
    # ignores SIGINT) died of it, printing "Fatal Python error: init_import_site" into the import's output.
    from concurrent.futures import ProcessPoolExecutor
    from concurrent.futures.process import BrokenProcessPool

    from tokentop.core.sources import backfill

    context = backfill._SpawnContext()
    with ProcessPoolExecutor(1, mp_context=context, initializer=backfill._ignore_sigint) as pool:
        if blocked:
            with backfill._children_start_sigint_blocked():  # what WorkerBacklog does around each submit
                job = pool.submit(os.getpid)
        else:
            job = pool.submit(os.getpid)
        (worker,) = context.started
        os.kill(worker.pid, signal.SIGINT)  # the interpreter is still starting: site, imports, unpickling
        if blocked:
            assert job.result(timeout=30) == worker.pid  # it lived, and then ignored the Ctrl-C
        else:
            with pytest.raises(BrokenProcessPool):  # the failure the block prevents (so this test can fail)
                job.result(timeout=30)
