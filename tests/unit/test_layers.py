"""The package graph: import-linter's contracts hold, and no module imports itself in a cycle."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import grimp

REPO = Path(__file__).resolve().parents[2]


def test_import_contracts_hold() -> None:
    """Layers (cli -> commands -> … -> agent), agent and container self-contained,
    only the engine adapter importing docker: see .importlinter."""
    lint = Path(sys.executable).parent / "lint-imports"
    proc = subprocess.run([str(lint), "--config", str(REPO / ".importlinter"), "--no-cache"], cwd=REPO,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    assert "0 broken" in proc.stdout


def find_cycle(graph: grimp.ImportGraph, modules: set[str]) -> list[str]:
    """One import cycle among ``modules`` (function-level imports included), or []."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(m: str) -> list[str]:
        state[m] = 1
        stack.append(m)
        for nxt in sorted(graph.find_modules_directly_imported_by(m) & modules):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state:
                found = visit(nxt)
                if found:
                    return found
        stack.pop()
        state[m] = 2
        return []

    for m in sorted(modules):
        if m not in state:
            cycle = visit(m)
            if cycle:
                return cycle
    return []


def test_no_import_cycles() -> None:
    graph = grimp.build_graph("stackyard", cache_dir=None, exclude_type_checking_imports=True)
    modules = {m for m in graph.modules if m.startswith("stackyard.")}
    cycle = find_cycle(graph, modules)
    assert not cycle, " -> ".join(cycle)
