"""The package's layering: no import circles between files or packages (lazy imports included), and the pure
core (physics in analysis/ and structures/, the loop's rules in loop/, teachers, protocols, the exit-code
registry) imports no AiiDA."""

from __future__ import annotations

import ast
import graphlib
import pathlib

import pytest

PACKAGE = pathlib.Path(__file__).resolve().parents[1] / "aiida_perovskite"
PURE = ("analysis", "structures", "loop", "teachers", "protocols", "exit_codes", "schema")


def _modules() -> dict[str, pathlib.Path]:
    modules = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return modules


def _imports(name: str, path: pathlib.Path) -> set[str]:
    """Every module ``name`` imports, at any depth of the file (function-level imports included)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{anchor}.{base}" if base else anchor
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return found


def _graph(level: int | None = None) -> dict[str, set[str]]:
    """Imports between the project's files, or between its packages (names cut to ``level`` parts)."""
    modules = _modules()

    def owner(imported: str) -> str | None:
        while imported and imported not in modules:
            imported = imported.rpartition(".")[0]
        return imported or None

    def cut(name: str) -> str:
        return ".".join(name.split(".")[:level]) if level else name

    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        targets = {cut(t) for t in map(owner, _imports(name, path)) if t}
        graph.setdefault(cut(name), set()).update(targets - {cut(name)})
    return graph


@pytest.mark.parametrize("level", [None, 2], ids=["files", "packages"])
def test_no_import_circles(level):
    try:
        graphlib.TopologicalSorter(_graph(level)).prepare()
    except graphlib.CycleError as error:
        pytest.fail(f"import circle: {' -> '.join(error.args[1])}")


def test_the_pure_core_imports_no_aiida():
    modules = _modules()
    offenders = {
        name: sorted(i for i in _imports(name, path) if i == "aiida" or i.startswith("aiida."))
        for name, path in modules.items()
        if name.split(".")[1:2] and name.split(".")[1] in PURE
    }
    assert not {name: found for name, found in offenders.items() if found}


def test_a_circle_is_found():
    """The check itself: a graph with a circle fails it."""
    with pytest.raises(graphlib.CycleError):
        graphlib.TopologicalSorter({"a": {"b"}, "b": {"c"}, "c": {"a"}}).prepare()


def test_the_tests_mirror_the_package_layout():
    """tests/<folder>/ holds the tests of aiida_perovskite/<folder>/ (besides the helpers' folders)."""
    helpers = {"mock_engines", "teacher_plugins", "recorded", "__pycache__"}
    folders = {path.name for path in pathlib.Path(__file__).parent.iterdir() if path.is_dir()} - helpers
    packages = {path.name for path in PACKAGE.iterdir() if (path / "__init__.py").is_file()}
    assert folders <= packages, f"test folders without a package: {sorted(folders - packages)}"
