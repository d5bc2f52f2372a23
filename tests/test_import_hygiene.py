"""tokentop/core must never import Textual: it runs in feeds, CLIs and tests without a UI."""

from __future__ import annotations

import ast
import pkgutil
import subprocess
import sys
from pathlib import Path

import tokentop.core

CORE = Path(tokentop.core.__file__).parent
UI_PACKAGES = ("textual", "rich.live", "plotext")


def test_core_source_has_no_ui_imports() -> None:
    offenders = []
    for path in CORE.rglob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        for node in ast.walk(tree):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            for name in names:
                if name.split(".")[0] in ("textual", "plotext") or name.startswith("tokentop.ui"):
                    offenders.append(f"{path.relative_to(CORE.parent.parent)}:{node.lineno} imports {name}")
    assert not offenders, "core must not import UI code:\n" + "\n".join(offenders)


def test_importing_every_core_module_loads_no_textual() -> None:
    modules = [m.name for m in pkgutil.walk_packages([str(CORE)], prefix="tokentop.core.")]
    assert "tokentop.core.feed.server" in modules
    code = (
        "import importlib, sys\n"
        f"for m in {modules!r}: importlib.import_module(m)\n"
        "bad = [m for m in sys.modules if m == 'textual' or m.startswith('textual.')]\n"
        "assert not bad, bad\n"
        "print('ok', len(sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=CORE.parent.parent)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("ok")


def _imports_of(path: Path, module: str, modules: dict[str, Path]) -> set[str]:
    """tokentop modules ``module`` imports: top-level and inside functions (both run sooner or
    later); ``if TYPE_CHECKING:`` blocks are skipped (they never run). Importing ``a.b.c`` also
    runs ``a`` and ``a.b``, so those count too."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()

    def add(target: str) -> None:
        parts = target.split(".")
        for i in range(1, len(parts) + 1):
            name = ".".join(parts[:i])
            if name in modules and name != module and not module.startswith(name + "."):
                found.add(name)

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If):
            test = node.test
            name = test.id if isinstance(test, ast.Name) else getattr(test, "attr", None)
            if name == "TYPE_CHECKING":
                for child in node.orelse:
                    visit(child)
                return
        if isinstance(node, ast.Import):
            for alias in node.names:
                add(alias.name)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.startswith("tokentop"):
                add(target)
                for alias in node.names:
                    add(f"{target}.{alias.name}")
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(ast.parse(path.read_text(encoding="utf-8"), str(path)))
    return found


def import_cycles(root: Path) -> list[list[str]]:
    """Groups of tokentop modules that import each other, directly or through others."""
    modules: dict[str, Path] = {}
    for path in (root / "tokentop").rglob("*.py"):
        parts = list(path.relative_to(root).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        modules[".".join(parts)] = path
    graph = {m: _imports_of(p, m, modules) for m, p in modules.items()}
    # Tarjan's strongly connected components, iteratively
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, edges = work[-1]
            for nxt in edges:
                if nxt not in index:
                    index[nxt] = low[nxt] = len(index)
                    stack.append(nxt)
                    on_stack.add(nxt)
                    work.append((nxt, iter(sorted(graph[nxt]))))
                    break
                if nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    group = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        group.append(member)
                        if member == node:
                            break
                    if len(group) > 1:
                        groups.append(sorted(group))
    return groups


def test_no_import_cycles_inside_tokentop() -> None:
    cycles = import_cycles(CORE.parent.parent)
    assert not cycles, "modules that import each other:\n" + "\n".join(" <-> ".join(g) for g in cycles)


def test_the_cycle_check_finds_a_cycle(tmp_path: Path) -> None:
    # the check above can fail: two modules importing each other (one of them inside a function)
    pkg = tmp_path / "tokentop"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from tokentop import b\n")
    (pkg / "b.py").write_text("def f():\n    from tokentop.a import x\n")
    (pkg / "c.py").write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from tokentop import a\n")
    assert import_cycles(tmp_path) == [["tokentop.a", "tokentop.b"]]
