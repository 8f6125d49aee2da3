"""Atom orders of the engines' input files (no AiiDA): POSCAR and ABACUS's STRU list the atoms grouped by
species, so labels come back in that order and must be put back in the structure's."""

from __future__ import annotations

import numpy as np

__all__ = ("species_grouped_order", "ungrouped")


def species_grouped_order(species: list[str]) -> np.ndarray:
    """Permutation that groups the atoms by species (symbols or kind names; in order of first appearance,
    stable within a species), as POSCAR and STRU list them; ``forces[order] = grouped_forces`` undoes it."""
    first = {name: index for index, name in reversed(list(enumerate(species)))}
    return np.array(sorted(range(len(species)), key=lambda index: first[species[index]]), dtype=int)


def ungrouped(grouped: np.ndarray, species: list[str]) -> np.ndarray:
    """Per-atom values (e.g. forces) listed in ``species_grouped_order``, put back in the order of ``species``."""
    values = np.empty_like(np.asarray(grouped, dtype=float))
    values[species_grouped_order(species)] = grouped
    return values
