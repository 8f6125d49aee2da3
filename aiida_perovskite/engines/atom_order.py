"""Atom orders of the engines' input files (no AiiDA): POSCAR and ABACUS's STRU list the atoms grouped by
species, so labels come back in that order and must be put back in the structure's."""

from __future__ import annotations

import numpy as np

__all__ = ("species_grouped_order",)


def species_grouped_order(species: list[str]) -> np.ndarray:
    """Permutation that groups the atoms by species (symbols or kind names; in order of first appearance,
    stable within a species), as POSCAR and STRU list them; ``forces[order] = grouped_forces`` undoes it."""
    first = {name: index for index, name in reversed(list(enumerate(species)))}
    return np.array(sorted(range(len(species)), key=lambda index: first[species[index]]), dtype=int)
