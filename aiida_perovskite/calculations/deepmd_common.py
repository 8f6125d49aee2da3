"""What the DeePMD-kit CalcJobs share: backends and type-map checks."""

from __future__ import annotations

from collections.abc import Sequence

from aiida import orm

from aiida_perovskite.analysis.model_files import BACKENDS, DEFAULT_BACKEND

__all__ = (
    "BACKENDS",
    "DEFAULT_BACKEND",
    "structure_elements_missing",
    "validate_backend",
    "validate_type_map_covers",
)


def validate_backend(backend: orm.Str, _) -> str | None:
    if backend.value not in BACKENDS:
        return f"unknown backend {backend.value!r}; choose one of {', '.join(BACKENDS)}"
    return None


def validate_type_map_covers(model_type_map: Sequence[str], data_type_map: Sequence[str], what: str) -> str | None:
    """Error message if ``data_type_map`` has an element the model's type_map lacks."""
    missing = [element for element in data_type_map if element not in model_type_map]
    if missing:
        return (
            f"the type_map of {what} has element(s) {missing} that the model's type_map {list(model_type_map)} "
            "does not cover: add them to the model's type_map"
        )
    return None


def structure_elements_missing(
    structure, type_map: Sequence[str], name: str = "the structure", owner: str = "the model's"
) -> str | None:
    """Error message if ``structure`` (StructureData) has an element ``type_map`` lacks."""
    unknown = sorted(set(structure.get_symbols_set()) - set(type_map))
    if unknown:
        return f"{name} contains element(s) {unknown} that {owner} type_map {list(type_map)} lacks"
    return None
