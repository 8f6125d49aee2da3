"""Perovskite structures (no AiiDA): parent phases, compositions, solid solutions, perturbations."""

from aiida_perovskite.structures.builders import (
    BCTS_GRID,
    LATTICE_DEFAULTS,
    PHASES,
    SolidSolution,
    bcts_composition,
    parent_cell,
    perturb,
    solid_solution,
)
from aiida_perovskite.structures.composition import CompositionError, SiteComposition, parse_composition

__all__ = (
    "BCTS_GRID",
    "LATTICE_DEFAULTS",
    "PHASES",
    "CompositionError",
    "SiteComposition",
    "SolidSolution",
    "bcts_composition",
    "parent_cell",
    "parse_composition",
    "perturb",
    "solid_solution",
)
