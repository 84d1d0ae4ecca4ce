"""The package picture of docs/design.md holds: dependencies point one way, and no module imports one that
imports it back."""

import ast
from pathlib import Path

from conftest import ROOT

SRC = ROOT / "src"
UTILITIES = {"errors", "atomic", "folders", "interrupt", "quiet", "build", "resolvers", "clustering", "knobs",
             "stored", "targets"}
# package -> the osal packages it may import (besides itself and the utilities); docs/design.md draws these arrows
ALLOWED = {
    "data": set(),
    "models": set(),
    "strategies": set(),
    "records": set(),
    "engine": {"data", "models", "strategies"},
    "loop": {"engine", "data", "models", "strategies", "records"},
    "annotate": {"engine", "data", "models", "strategies"},
    "report": {"records"},
    "campaign": {"records", "loop"},
}


def module_name(path: Path) -> str:
    parts = path.relative_to(SRC).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def osal_imports(path: Path) -> set:
    """Every osal module a file imports, at its top or inside functions."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.split(".")[0] == "osal"}
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "osal":
            found.add(node.module)
            found |= {f"{node.module}.{a.name}" for a in node.names
                      if (SRC / Path(*node.module.split(".")) / f"{a.name}.py").exists()}
    return found


def graph() -> dict:
    modules = {module_name(p): p for p in (SRC / "osal").rglob("*.py")}
    return {name: {m for m in osal_imports(path) if m in modules} for name, path in modules.items()}


def package(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def test_packages_import_only_what_the_picture_allows():
    wrong = []
    for module, imported in graph().items():
        own = package(module)
        if own not in ALLOWED:
            continue  # a top-level utility module
        for other in imported:
            target = package(other)
            if target not in (own, "") and target not in UTILITIES and target not in ALLOWED[own]:
                wrong.append(f"{module} imports {other}")
    assert not wrong, "\n".join(sorted(wrong))


def test_the_lower_packages_know_nothing_of_the_upper_ones():
    g = graph()
    annotate_on_loop = [m for m, imported in g.items() if package(m) == "annotate"
                        for i in imported if package(i) == "loop"]
    loop_on_report = [m for m, imported in g.items() if package(m) == "loop"
                      for i in imported if package(i) == "report"]
    records_on_either = [m for m, imported in g.items() if package(m) == "records"
                         for i in imported if package(i) in ("loop", "report", "annotate", "engine")]
    assert annotate_on_loop == loop_on_report == records_on_either == []


def test_no_module_imports_one_that_imports_it_back():
    g = graph()
    cycles = []

    def visit(node, path, on_path, done):
        on_path.add(node)
        for nxt in g.get(node, ()):
            if nxt in on_path:
                cycles.append(" -> ".join(path[path.index(nxt):] + [nxt]))
            elif nxt not in done:
                visit(nxt, path + [nxt], on_path, done)
        on_path.discard(node)
        done.add(node)

    done = set()
    for start in sorted(g):
        if start not in done:
            visit(start, [start], set(), done)
    assert not cycles, cycles


def test_the_checks_see_a_wrong_import(tmp_path):
    """The import reader finds what a module imports, at its top and inside a function."""
    source = tmp_path / "m.py"
    source.write_text("import os\nfrom osal.loop import experiment\n\ndef f():\n    from osal.report.table import x\n")
    found = osal_imports(source)
    assert "osal.loop" in found and "osal.loop.experiment" in found and "osal.report.table" in found
