"""Atom orders of the engines' input files (no AiiDA): POSCAR and ABACUS's STRU list the atoms grouped by
species, so labels come back in that order and must be put back in the structure's."""

from __future__ import annotations

import numpy as np

__all__ = ("species_grouped_order",)


def species_grouped_order(symbols: list[str]) -> np.ndarray:
    """Permutation that groups the atoms by species (in order of first appearance, stable within a species),
    as POSCAR and POTCAR need them; ``forces[order] = grouped_forces`` undoes it."""
    first = {symbol: index for index, symbol in reversed(list(enumerate(symbols)))}
    return np.array(sorted(range(len(symbols)), key=lambda index: first[symbols[index]]), dtype=int)
