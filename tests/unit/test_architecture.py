"""docs/architecture.md states which part of the package imports which; this keeps it
true. Each row of its dependency table names a part (a subpackage or a top-level module
of ``workbench``) and every other part it imports, anywhere in its files, lazily or not."""

from __future__ import annotations

import ast
import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PACKAGE = REPO / "workbench"
DOC = REPO / "docs" / "architecture.md"


def _part(module: str) -> str:
    """'workbench.labelstudio.push' -> 'labelstudio'; 'workbench' -> 'workbench'."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "workbench"


def _module_name(path: Path) -> str:
    rel = path.relative_to(REPO).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _imported(path: Path) -> set[str]:
    """Full names of the workbench modules (or packages) a file imports."""
    module = _module_name(path)
    package = module if path.stem == "__init__" else module.rpartition(".")[0]
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names if a.name.split(".")[0] == "workbench"}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                name = ".".join(base + ([node.module] if node.module else []))
            else:
                name = node.module or ""
            if name.split(".")[0] != "workbench":
                continue
            # `from .. import cli` imports a module; `from .. import __version__` a name
            subs = [f"{name}.{a.name}" for a in node.names]
            found = [s for s in subs if _exists(s)]
            out |= set(found) if found else {name}
    return out


def _exists(module: str) -> bool:
    p = REPO.joinpath(*module.split("."))
    return p.with_suffix(".py").is_file() or (p / "__init__.py").is_file()


def actual_edges() -> dict[str, set[str]]:
    edges: dict[str, set[str]] = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        module = _module_name(path)
        src = _part(module)
        edges.setdefault(src, set())
        edges[src] |= {_part(t) for t in _imported(path)} - {src, "workbench"}
    return edges


def documented_edges() -> dict[str, set[str]]:
    text = DOC.read_text()
    section = text.split("## Dependencies", 1)[1].split("\n## ", 1)[0]
    edges = {}
    for line in section.splitlines():
        m = re.match(r"\|\s*`([\w.]+)`\s*\|(.*)\|\s*$", line)
        if m:
            names = re.findall(r"`([\w.]+)`", m.group(2))
            edges[m.group(1).removesuffix(".py").removesuffix("/")] = set(names)
    return edges


def test_the_dependency_table_in_architecture_md_matches_the_imports():
    actual = actual_edges()
    documented = documented_edges()
    assert documented, "docs/architecture.md has no '## Dependencies' table"
    rows = []
    for part in sorted(set(actual) | set(documented)):
        missing = actual.get(part, set()) - documented.get(part, set())
        extra = documented.get(part, set()) - actual.get(part, set())
        if missing or extra:
            rows.append(
                f"{part}: imports not in the doc {sorted(missing)}, "
                f"in the doc but not imported {sorted(extra)}"
            )
    assert not rows, "update docs/architecture.md's dependency table:\n" + "\n".join(rows)


def test_the_catalog_imports_only_errors_and_nothing_imports_the_cli():
    actual = actual_edges()
    assert actual["catalog"] <= {"errors"}
    assert [p for p, deps in actual.items() if "cli" in deps and p != "__main__"] == []


def test_test_files_have_unique_names():
    """pytest imports test modules by basename (tests/ has no packages): two files of one
    name in different tiers stop the whole run at collection ("import file mismatch")."""
    tests = Path(__file__).resolve().parents[1]
    seen: dict[str, Path] = {}
    clashes = []
    for path in sorted(tests.rglob("test_*.py")):
        if path.name in seen:
            clashes.append(f"{seen[path.name].relative_to(tests)} and {path.relative_to(tests)}")
        seen.setdefault(path.name, path)
    assert clashes == [], "rename one of each: " + "; ".join(clashes)


def test_test_modules_take_shared_folders_from_module_tmp():
    """A module's shared folders come from ``module_tmp`` (removed when the module passes),
    never from ``tmp_path_factory`` directly: pytest keeps those to the session's end, and
    the suite's registered models filled a CI disk that way."""
    tests = Path(__file__).resolve().parents[1]
    offenders = [
        str(path.relative_to(tests))
        for path in sorted(tests.rglob("test_*.py"))
        if path.name != "test_architecture.py" and "tmp_path_factory" in path.read_text()
    ]
    assert offenders == [], "use the module_tmp fixture in: " + ", ".join(offenders)
