"""One meaning per exit status across the project: the registry, the processes and the docs agree."""

from __future__ import annotations

import pathlib
from collections import defaultdict
from importlib.metadata import entry_points

from aiida.plugins import CalculationFactory

from aiida_perovskite.exit_codes import EXIT_CODES, markdown_table

# The calculations the labeling engines launch: their numbers are upstream's and must keep their meaning.
UPSTREAM_CALCULATIONS = ("cp2k", "quantumespresso.pw", "abacus.abacus", "vasp.vasp")
DOCS = pathlib.Path(__file__).resolve().parents[1] / "docs" / "exit-codes.md"


def _project_processes() -> list[type]:
    groups = ("aiida.calculations", "aiida.workflows")
    return [ep.load() for group in groups for ep in entry_points(group=group) if ep.name.startswith("perovskite.")]


def _is_project(cls: type) -> bool:
    return cls.__module__.startswith("aiida_perovskite")


def _upstream_codes() -> dict[int, set[str]]:
    """Exit codes defined by aiida-core and the upstream plugins: inherited by project processes or run by them."""
    classes = {base for cls in _project_processes() for base in cls.__mro__[1:] if hasattr(base, "spec")}
    classes = {cls for cls in classes if not _is_project(cls)}
    classes |= {CalculationFactory(name) for name in UPSTREAM_CALCULATIONS}
    codes: dict[int, set[str]] = defaultdict(set)
    for cls in classes:
        for label, code in getattr(cls.spec(), "exit_codes", {}).items():  # plumpy's base spec has none
            codes[code.status].add(label)
    return codes


def test_processes_are_found():
    names = {cls.__name__ for cls in _project_processes()}
    assert {"ConcurrentLearningWorkChain", "DeepmdTrainCalculation", "TeacherLabelCalculation"} <= names


def test_one_number_per_label_and_one_label_per_number():
    statuses = [code.status for code in EXIT_CODES.values()]
    assert len(statuses) == len(set(statuses))


def test_project_numbers_mean_the_same_upstream():
    """A project number is either unused by aiida-core and the upstream plugins, or used there for the same label."""
    upstream = _upstream_codes()
    clashes = {
        label: sorted(upstream[code.status])
        for label, code in EXIT_CODES.items()
        if upstream.get(code.status, {label}) != {label}
    }
    assert not clashes


def test_every_process_code_is_the_registry_or_inherited():
    upstream = _upstream_codes()
    declared = set()
    for cls in _project_processes():
        for label, code in cls.spec().exit_codes.items():
            if label in EXIT_CODES:
                expected = EXIT_CODES[label]
                assert (code.status, code.message, code.invalidates_cache) == (
                    expected.status,
                    expected.message,
                    expected.invalidates_cache,
                ), f"{cls.__name__}.{label}"
                declared.add(label)
            else:
                assert label in upstream.get(code.status, set()), (
                    f"{cls.__name__}.{label} ({code.status}) is not in the registry"
                )
    assert declared == set(EXIT_CODES), "registry entries no process declares"


def test_docs_table_is_the_registry():
    assert markdown_table() in DOCS.read_text(), "regenerate the table of docs/exit-codes.md from markdown_table()"
