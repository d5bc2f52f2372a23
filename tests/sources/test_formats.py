"""One source = one module: a new agent is a module declaring ``FORMAT`` plus one entry in a list.

The agents below are defined here, in the test, and added to a copy of ``FORMATS``: the shared
tailer, the source set, the config section and the live loop read them with no change of their own.
``toy-agent`` appends JSONL lines (a :class:`LogFormat`); ``toy-store`` rewrites one JSON file in
place (a :class:`StoreFormat` with its own poller, the shape of SQLite or whole-JSON stores).
"""

from __future__ import annotations

import ast
import asyncio
import json
import os
import pickle
import threading
import time
from pathlib import Path
from typing import Any, Mapping

import pytest

from tests.sources.helpers import NOW, claude_line, write_lines
from tokentop import config as config_mod
from tokentop.core.events import Event
from tokentop.core.feed.service import FeedService
from tokentop.core.ledger import Ledger
from tokentop.core.pricing import Pricer
from tokentop.core.setting import Setting
from tokentop.core.sources import formats as formats_mod
from tokentop.core.sources.formats import FORMATS
from tokentop.core.sources.live import LiveSources
from tokentop.core.sources.protocol import LineReader, LogFormat, Progress, Sink, SourceContext, Stats, StoreFormat
from tokentop.core.sources.settings import KNOWN_SOURCES, SECTIONS, SourceSettings, sections
from tokentop.core.sources.sourceset import SourceSet
from tokentop.core.sources.tailer import LogSources

SOURCES_DIR = Path(formats_mod.__file__).parent


# -- toy-agent: the whole module a JSONL agent needs -------------------------------------------------

def toy_roots(values: Mapping[str, Any], env: Mapping[str, str]) -> tuple[Path, ...]:
    raw = env.get("TOY_HOME") or values["toy_home"]
    return (Path(raw),) if raw else ()


class ToyFile(LineReader):
    prefilter = b'"usage"'

    def feed(self, raw: bytes, offset: int, live: bool, now: float, out: list[Event], stats: dict[str, int]) -> None:
        try:
            obj = json.loads(raw)
            usage = obj["usage"]
            out.append(Event(id=f"toy:{obj['id']}", ts=float(obj["ts"]), agent="toy-agent", session=self.path.stem,
                             provider="openai", model=obj["model"], input_tokens=int(usage["in"]),
                             output_tokens=int(usage["out"]), source="toy-log"))
        except (ValueError, KeyError, TypeError):
            stats["malformed"] = stats.get("malformed", 0) + 1


TOY = LogFormat(name="toy-agent", roots=toy_roots, reader=ToyFile,
                config_keys={"toy_home": Setting(str, "", "toy agent home (holding chats/)")},
                subdirs=("chats",))


def toy_line(n: int, out: int = 10, ts: float | None = None) -> str:
    # real lines are longer than the tailer's 256-byte head hash (a shorter file re-reads on append)
    return json.dumps({"id": f"t{n}", "ts": NOW - 60 if ts is None else ts, "model": "gpt-5",
                       "usage": {"in": 100, "out": out}, "text": "x" * 200})


# -- toy-store: a store rewritten in place, read by its own poller -----------------------------------

class ToyStore:
    """Reads ``<root>/usage.json`` (``{"records": [...]}``, rewritten whole) when its size or
    mtime changed; emits records not emitted before (ids make a re-emit harmless anyway)."""

    def __init__(self, ctx: SourceContext) -> None:
        self.ctx = ctx
        self.stats = Stats()
        self.seen: set[str] = set()
        self.sig: tuple[int, int] | None = None

    def _file(self) -> Path | None:
        return self.ctx.roots[0] / "usage.json" if self.ctx.roots else None

    def poll(self, sink: Sink, *, progress: Progress | None = None) -> int:
        path = self._file()
        try:
            st = os.stat(path) if path else None
        except OSError:
            st = None
        if st is None or (st.st_size, st.st_mtime_ns) == self.sig:
            return 0
        self.sig = (st.st_size, st.st_mtime_ns)
        records = json.loads(Path(path).read_bytes())["records"]  # type: ignore[arg-type]
        self.stats.files, self.stats.files_read = 1, self.stats.files_read + 1
        new = [Event(id=f"store:{r['id']}", ts=r["ts"], agent="toy-store", model="gpt-5", provider="openai",
                     input_tokens=r["in"], output_tokens=r["out"], source="toy-store-db")
               for r in records if r["id"] not in self.seen]
        self.seen.update(r["id"] for r in records)
        if new:
            sink(new)
        self.stats.events += len(new)
        if progress:
            progress(st.st_size, st.st_size)
        return len(new)

    def poll_changed(self, sink: Sink, paths: set[str]) -> int:
        return self.poll(sink) if str(self._file()) in paths else 0

    def poll_recent(self, sink: Sink) -> int:
        return self.poll(sink)

    def poll_tick(self, sink: Sink) -> int:
        return 0  # the watcher reports its file

    def watch_dirs(self) -> list[Path]:
        return list(self.ctx.roots)


def store_roots(values: Mapping[str, Any], env: Mapping[str, str]) -> tuple[Path, ...]:
    return (Path(values["toy_store_dir"]),) if values["toy_store_dir"] else ()


STORE = StoreFormat(name="toy-store", roots=store_roots, source=ToyStore,
                    config_keys={"toy_store_dir": Setting(str, "", "toy store dir")})


def write_store(root: Path, records: list[tuple[str, int]]) -> None:
    root.mkdir(parents=True, exist_ok=True)
    tmp = root / "usage.json.tmp"  # written beside and renamed, as such agents do
    tmp.write_text(json.dumps({"records": [{"id": i, "ts": NOW - 30, "in": 50, "out": out} for i, out in records]}))
    tmp.replace(root / "usage.json")


# -- the list is the only place that names agents -----------------------------------------------------

def test_known_sources_and_the_config_section_derive_from_the_one_list() -> None:
    # (written to hold as agents are added: the list's order, not its length, is the contract)
    assert KNOWN_SOURCES == tuple(f.name for f in FORMATS)
    assert KNOWN_SOURCES[:2] == ("claude-code", "codex") and {"opencode", "kilo"} <= set(KNOWN_SOURCES)
    keys = list(SECTIONS["sources"])
    own = [k for f in FORMATS for k in f.config_keys]
    assert keys == ["enabled", "backfill_days", *own, "watch", "poll_interval_s"]
    assert own[:2] == ["claude_roots", "codex_home"] and {"opencode_dir", "kilo_dir"} <= set(own)
    assert config_mod.SCHEMA["sources"] is SECTIONS["sources"]


def test_a_third_agent_adds_its_name_and_config_key_to_the_section() -> None:
    section = sections(FORMATS + (TOY,))["sources"]
    assert section["enabled"].default == [*KNOWN_SOURCES, "toy-agent"]
    assert section["enabled"].check is not None and section["enabled"].check(["toy-agent"]) is None
    assert "unknown source(s) ['toy']" in (section["enabled"].check(["toy"]) or "")
    assert list(section)[2:-2] == [*(k for f in FORMATS for k in f.config_keys), "toy_home"]
    with pytest.raises(ValueError, match="share a name"):
        sections(FORMATS + (TOY, TOY))


def test_format_declarations_pickle_for_the_backfill_worker() -> None:
    settings = SourceSettings(roots={"claude-code": (Path("/x"),)})
    back = pickle.loads(pickle.dumps(settings))
    assert [f.name for f in back.formats] == list(KNOWN_SOURCES) and back.roots == settings.roots


AGENT_WORDS = ("claude", "codex", ".zst", "zstandard", "opencode", "kilo", "copilot", "gemini", "qwen", "droid", "kimi")


def _agent_specifics(path: Path) -> list[str]:
    """Names and string constants (docstrings excepted) that mention an agent."""
    tree = ast.parse(path.read_text())
    docstrings = {id(n.body[0].value) for n in ast.walk(tree)
                  if isinstance(n, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
                  and n.body and isinstance(n.body[0], ast.Expr) and isinstance(n.body[0].value, ast.Constant)}
    found = []
    for node in ast.walk(tree):
        if id(node) in docstrings:
            continue
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            text = node.value
        elif isinstance(node, ast.Name):
            text = node.id
        elif isinstance(node, ast.Attribute):
            text = node.attr
        elif isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            text = node.name
        elif isinstance(node, ast.alias):
            text = node.name
        else:
            continue
        found += [f"{path.name}:{node.lineno if hasattr(node, 'lineno') else '?'} {text!r}"
                  for w in AGENT_WORDS if w in text.lower()]
    return found


@pytest.mark.parametrize("module", ["tailer.py", "backfill.py", "sourceset.py", "protocol.py", "settings.py", "live.py",
                                    "attach.py", "status.py", "store.py", "documents.py", "diagnose.py"])
def test_the_shared_modules_name_no_agent(module: str) -> None:
    assert _agent_specifics(SOURCES_DIR / module) == []


def test_the_scan_sees_agent_specifics() -> None:
    # the check above can fail: the format modules are full of them
    assert _agent_specifics(SOURCES_DIR / "codex.py")


# -- a third JSONL agent through the real tailer -----------------------------------------------------

@pytest.fixture
def toy_home(tmp_path: Path) -> Path:
    return tmp_path / "toy"


def toy_settings(home: Path, enabled: tuple[str, ...] = KNOWN_SOURCES + ("toy-agent",)) -> SourceSettings:
    return SourceSettings(formats=FORMATS + (TOY,), enabled=enabled, roots={"toy-agent": (home,)})


def test_a_jsonl_agent_declared_in_one_module_is_read_incrementally_by_the_shared_tailer(tmp_path: Path, toy_home: Path) -> None:
    path = write_lines(toy_home / "chats" / "proj" / "s1.jsonl", [toy_line(1), '{"not": "usage"}', toy_line(2, out=20)])
    write_lines(toy_home / "other" / "s2.jsonl", [toy_line(9)])  # outside the declared subdir: not the agent's
    ledger = Ledger(tmp_path / "l.db")
    got: list[Event] = []
    try:
        src = LogSources(ledger, toy_settings(toy_home))
        assert src.poll(got.extend) == 2
        assert [(e.id, e.agent, e.session, e.output_tokens) for e in got] == [
            ("toy:t1", "toy-agent", "s1", 10), ("toy:t2", "toy-agent", "s1", 20)]
        write_lines(path, [toy_line(3, out=30), '{"usage": broken'], mode="a")
        src = LogSources(ledger, toy_settings(toy_home))  # a restart: the cursor is in the ledger
        assert src.poll(got.extend) == 1 and got[-1].id == "toy:t3"
        assert src.stats.counters == {"malformed": 1}
        assert src.stats.bytes_read == len(toy_line(3, out=30)) + len('{"usage": broken') + 2
        # a watcher's report: the agent's files are recognised by their declared dir and suffix
        assert [lf.fmt.name for lf, _ in src.files_at({str(path), str(toy_home / "other" / "s2.jsonl"),
                                                        str(toy_home / "chats" / "x.json")})] == ["toy-agent"]
        assert src.watch_dirs() == [toy_home / "chats"]
    finally:
        ledger.close()


def test_a_disabled_agent_is_not_read(tmp_path: Path, toy_home: Path) -> None:
    write_lines(toy_home / "chats" / "s1.jsonl", [toy_line(1)])
    src = LogSources(None, toy_settings(toy_home, enabled=("claude-code",)))
    assert src.poll(lambda batch: None) == 0 and src.watch_dirs() == []


def test_a_new_agent_is_configured_through_its_declared_key_and_env_override(
        tmp_path: Path, toy_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # the config schema is built from the list: with the third agent in it, its key validates
    monkeypatch.setitem(config_mod.SCHEMA, "sources", sections(FORMATS + (TOY,))["sources"])
    cfg = config_mod.from_mapping({"sources": {"enabled": ["toy-agent"], "toy_home": str(tmp_path / "elsewhere")}})
    settings = SourceSettings.from_config(cfg, env={"HOME": str(tmp_path)}, formats=FORMATS + (TOY,))
    assert settings.enabled == ("toy-agent",) and settings.roots["toy-agent"] == (tmp_path / "elsewhere",)
    settings = SourceSettings.from_config(cfg, env={"TOY_HOME": str(toy_home), "HOME": str(tmp_path)},
                                          formats=FORMATS + (TOY,))
    assert settings.roots["toy-agent"] == (toy_home,)  # the env wins over the file
    with pytest.raises(config_mod.ConfigError, match="unknown source"):
        config_mod.from_mapping({"sources": {"enabled": ["toy-agnet"]}})


# -- a store that is not append-only lines: driven like the tailer ------------------------------------

def test_import_drives_a_store_format_and_the_log_formats_as_one_source(tmp_path: Path, toy_home: Path) -> None:
    claude_root = tmp_path / "claude" / "projects"
    write_lines(claude_root / "p" / "a.jsonl", [claude_line("m1", "r1", out=7)])
    write_lines(toy_home / "chats" / "s.jsonl", [toy_line(1)])
    write_store(tmp_path / "store", [("a", 5), ("b", 6)])
    settings = SourceSettings(formats=FORMATS + (TOY, STORE), enabled=("claude-code", "toy-agent", "toy-store"),
                              roots={"claude-code": (claude_root,), "toy-agent": (toy_home,),
                                     "toy-store": (tmp_path / "store",)})
    ledger = Ledger(tmp_path / "l.db")
    try:
        sources = SourceSet.open(settings, ledger)
        got: list[Event] = []
        seen: list[tuple[int, int]] = []
        assert sources.poll(got.extend, progress=lambda d, t: seen.append((d, t))) == 4
        assert sorted(e.id for e in got) == ["claude:r1", "store:a", "store:b", "toy:t1"]
        assert seen[-1][0] == seen[-1][1] and all(d <= t for d, t in seen)  # one scale across both sources
        assert sources.stats.events == 4 and sources.stats.files == 3
        write_store(tmp_path / "store", [("a", 5), ("b", 6), ("c", 7)])  # rewritten whole, one record more
        assert sources.poll(got.extend) == 1 and got[-1].id == "store:c"
        assert set(sources.watch_dirs()) == {claude_root, toy_home / "chats", tmp_path / "store"}
    finally:
        ledger.close()


@pytest.mark.parametrize("watch", [True, False], ids=["watchfiles", "polling"])
def test_the_live_loop_follows_a_jsonl_agent_and_a_store_it_does_not_know(tmp_path: Path, toy_home: Path, watch: bool) -> None:
    path = write_lines(toy_home / "chats" / "s.jsonl", [toy_line(1)])
    write_store(tmp_path / "store", [("a", 5)])
    settings = SourceSettings(formats=FORMATS + (TOY, STORE), enabled=("toy-agent", "toy-store"),
                              roots={"toy-agent": (toy_home,), "toy-store": (tmp_path / "store",)},
                              watch=watch, poll_interval_s=0.1)
    ledger = Ledger(tmp_path / "feed.db")
    service = FeedService(ledger, Pricer(), host="test-host")
    live = LiveSources(service, ledger, settings)
    thread = threading.Thread(target=asyncio.run, args=(live.run(),), daemon=True)
    thread.start()

    def ids() -> set[str]:
        return {s.event.id for s in ledger.events_since(0)}

    def wait_for(want: set[str], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while ids() != want:
            assert time.monotonic() < deadline, f"have {ids()}, want {want}"
            time.sleep(0.02)

    try:
        wait_for({"toy:t1", "store:a"}, 5)  # the backfill
        deadline = time.monotonic() + 5
        while live.mode != ("watching" if watch else "polling"):
            assert time.monotonic() < deadline
            time.sleep(0.02)
        time.sleep(0.5)  # the mode is set just before watchfiles sets its watches up
        write_lines(path, [toy_line(2, ts=time.time())], mode="a")
        write_store(tmp_path / "store", [("a", 5), ("b", 6)])
        wait_for({"toy:t1", "store:a", "toy:t2", "store:b"}, 2)
    finally:
        live.stop_event.set()
        thread.join(10)
        ledger.close()
    assert not thread.is_alive()
