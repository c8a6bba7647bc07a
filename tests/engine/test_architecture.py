"""The engine is Qt-free and light to import."""

from __future__ import annotations

import subprocess
import sys

ENGINE_MODULES = ["engine", "engine.cli", "engine.generators", "engine.resources"]


def test_engine_imports_without_qt() -> None:
    code = (
        "import importlib, pkgutil, sys\n"
        "import engine\n"
        "names = [m.name for m in pkgutil.walk_packages(engine.__path__, 'engine.')]\n"
        "for n in names:\n"
        "    importlib.import_module(n)\n"
        "bad = [m for m in sys.modules if m.startswith('PySide6') or m.startswith('d2a_desktop')]\n"
        "assert not bad, bad\n"
        "print(len(names))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert int(out.stdout.strip()) >= 3


def test_cli_help_is_light() -> None:
    code = (
        "import sys\n"
        "from engine.cli import main\n"
        "try:\n"
        "    main(['--help'])\n"
        "except SystemExit:\n"
        "    pass\n"
        "heavy = [m for m in ('torch', 'mediapipe', 'onnxruntime', 'cv2', 'PySide6') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "Commands" in out.stdout or "Usage" in out.stdout


def _cycles(graph: object, modules: list[str]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan), i.e. the import cycles."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.find_modules_directly_imported_by(v):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                found.append(sorted(comp))

    for m in modules:
        if m not in index:
            visit(m)
    return found


def test_no_import_cycles() -> None:
    # Lazy (function-level) imports count too: a cycle hidden inside a function is still a tangle.
    import grimp  # ships with import-linter (the dev extra)
    graph = grimp.build_graph("engine", "d2a_desktop")
    assert _cycles(graph, sorted(graph.modules)) == []
