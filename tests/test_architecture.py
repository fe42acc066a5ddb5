"""The package's shape: calls go one way between folders, no import cycles, thin routes, every module in
docs/ARCHITECTURE.md. Read from the source (every import, also those inside functions), not by importing."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PKG = ROOT / "lasl_backend"

#: which parts a part may import (top-level modules are parts of their own; ``lasl_backend`` is the version)
ALLOWED: dict[str, set[str]] = {
    "atomic": set(),
    "data": set(),
    "metrics": {"data"},
    "config": {"strategies", "knowledge"},
    "knowledge": {"atomic"},
    "crf": set(),
    "strategies": set(),
    "stopping": set(),
    "ner": {"crf", "data", "metrics", "atomic", "knowledge"},
    "labelstudio": {"data"},
    "formats": {"data", "labelstudio", "atomic"},
    "serving": {"labelstudio", "strategies", "stopping", "ner", "config", "data", "metrics", "atomic", "lasl_backend"},
    "sim": {"strategies", "stopping", "ner", "data", "metrics", "atomic"},
    "cli": {"config", "data", "formats", "knowledge", "metrics", "ner", "serving", "sim", "devtools"},
    "devtools": {"atomic", "config", "crf", "data", "formats", "knowledge", "labelstudio", "metrics", "ner", "serving", "sim", "stopping", "strategies", "lasl_backend"},
    "lasl_backend": set(),
}
#: what the routes module must not reach: the model, the CRF, the store, the backend and training code
ROUTES_FORBIDDEN = ("lasl_backend.ner", "lasl_backend.crf", "lasl_backend.serving.store", "lasl_backend.serving.backend",
                    "lasl_backend.serving.training_run", "lasl_backend.serving.model_slot", "lasl_backend.serving.scheduler")


def _modules() -> dict[str, Path]:
    out = {}
    for p in PKG.rglob("*.py"):
        parts = list(p.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = p
    return out


MODULES = _modules()


def _is_extension(package: str, name: str) -> bool:
    """``from . import _crfkernel``: a compiled module of the package, not the package's own names."""
    folder = ROOT.joinpath(*package.split("."))
    return any(folder.glob(f"{name}.*.so")) or (folder / f"{name}.c").is_file()


def _imports(name: str, path: Path) -> set[str]:
    """The package's modules that ``name`` imports, anywhere in its source."""
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            subs = [f"{target}.{a.name}" for a in node.names if f"{target}.{a.name}" in MODULES]
            if subs:
                found.update(subs)
            elif target in MODULES and not all(_is_extension(target, a.name) for a in node.names):
                found.add(target)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name in MODULES)
    found.discard(name)
    return found


GRAPH = {name: _imports(name, path) for name, path in MODULES.items()}


def _part(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else parts[0]


def test_the_graph_is_read_from_the_source() -> None:
    # a sample of edges that exist: if the reader broke, every other test here would pass vacuously
    assert "lasl_backend.serving.service" in GRAPH["lasl_backend.serving.routes"]
    assert "lasl_backend.crf" in GRAPH["lasl_backend.ner.tagger"]
    assert "lasl_backend.ner.training" in GRAPH["lasl_backend.ner"]
    assert len(MODULES) > 60


@pytest.mark.parametrize("module", sorted(MODULES))
def test_calls_go_one_way_between_parts(module: str) -> None:
    part = _part(module)
    bad = sorted(t for t in GRAPH[module] if _part(t) != part and _part(t) not in ALLOWED[part])
    assert not bad, f"{module} ({part}) may import only {sorted(ALLOWED[part])}, but imports {bad}"


def test_outside_ner_the_model_side_is_reached_only_through_its_package() -> None:
    deep = sorted((m, t) for m, ts in GRAPH.items() for t in ts
                  if t.startswith("lasl_backend.ner.") and _part(m) in ("serving", "sim", "cli"))
    assert not deep, f"import lasl_backend.ner, not its modules: {deep}"


def test_no_import_cycles() -> None:
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    cycles: list[list[str]] = []

    def visit(v: str) -> None:  # Tarjan's strongly connected components
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in GRAPH[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                cycles.append(sorted(comp))

    for v in sorted(GRAPH):
        if v not in index:
            visit(v)
    assert not cycles, f"import cycles: {cycles}"


def test_routes_import_no_model_crf_store_or_training_code() -> None:
    reached = GRAPH["lasl_backend.serving.routes"]
    bad = sorted(t for t in reached if t.startswith(ROUTES_FORBIDDEN))
    assert not bad, f"serving/routes.py imports {bad}"


def test_architecture_names_every_module_and_only_those() -> None:
    doc = (ROOT / "docs" / "ARCHITECTURE.md").read_text(encoding="utf-8")
    table = doc[doc.index("## Modules"):]
    named = set(re.findall(r"^\| `([\w/]+\.py)` \|", table, flags=re.M))
    files = {str(p.relative_to(PKG)) for p in PKG.rglob("*.py")}
    assert not files - named, f"docs/ARCHITECTURE.md does not name {sorted(files - named)}"
    assert not named - files, f"docs/ARCHITECTURE.md names modules that do not exist: {sorted(named - files)}"
