"""Oxygen cages of perovskite cations and local ionic displacements (BCTS eq. 1), for periodic, possibly
triclinic cells. Neighbour lists are built once on a reference structure (scipy cKDTree over the periodic
images) and reused for every frame, so a frame costs a few vectorised numpy operations.

``d_i = x_i - (1/n) sum_j x_Oj`` with n = 12 for A sites and n = 6 for B sites, every vector taken through
the periodic image that the reference chose (so wrapping an atom across the boundary changes nothing).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np
from scipy.spatial import cKDTree

__all__ = ("CAGE_SIZES", "CageError", "Cages", "build_cages", "cage_displacements", "infer_sites", "to_fractional")

CAGE_SIZES = {"A": 12, "B": 6}
MAX_B_O_DISTANCE = 3.0  # Å: a B-O "bond" longer than this means the cage is implausible (rebuild)


class CageError(ValueError):
    """The neighbour lists do not describe perovskite cages for this structure."""


@dataclasses.dataclass
class Cages:
    """For each cation of one site (A or B): its oxygen neighbours and the reference's cation -> oxygen vectors
    in fractional coordinates (periodic image included), which pick the image of every later frame."""

    site: str
    cations: np.ndarray  # (m,) atom indices
    oxygens: np.ndarray  # (m, n) atom indices of the cage oxygens
    reference: np.ndarray  # (m, n, 3) fractional cation -> oxygen vectors of the reference structure

    def fractional_vectors(self, fractional: np.ndarray) -> np.ndarray:
        """Cation -> oxygen vectors (m, n, 3) in fractional coordinates of a frame (``fractional``: (atoms, 3)),
        through the periodic image nearest the reference's."""
        delta = fractional[self.oxygens] - fractional[self.cations][:, None, :]
        delta += np.round(self.reference - delta)
        return delta

    def displacements(self, cell: np.ndarray, fractional: np.ndarray) -> np.ndarray:
        """``x_cation - mean(x_O)`` for every cation of this site (m, 3), in Å."""
        return cage_displacements(self.fractional_vectors(fractional), cell)


def cage_displacements(fractional_vectors: np.ndarray, cell: np.ndarray) -> np.ndarray:
    """``x_cation - mean(x_O)`` (m, 3) in Å from the cation -> oxygen vectors (m, n, 3) in fractional coordinates."""
    return -np.einsum("mnk->mk", fractional_vectors) / fractional_vectors.shape[1] @ cell  # ~5x an axis-1 mean


def to_fractional(cell: np.ndarray, positions: np.ndarray) -> np.ndarray:
    """Fractional coordinates (atoms, 3) of Cartesian ``positions`` in the rows-are-vectors ``cell``."""
    return np.asarray(positions, float) @ np.linalg.inv(np.asarray(cell, float))


def infer_sites(
    symbols: Sequence[str], a_elements: Sequence[str] | None = None, b_elements: Sequence[str] | None = None
) -> dict[str, list[str]]:
    """A and B elements: as given, else by the usual perovskite site of each element."""
    from aiida_perovskite.structures.composition import A_SITE, B_SITE

    symbols = [str(symbol) for symbol in symbols]
    present = sorted(set(symbols) - {"O"}, key=symbols.index)
    a_site = list(a_elements) if a_elements else [e for e in present if e in A_SITE]
    b_site = list(b_elements) if b_elements else [e for e in present if e in B_SITE]
    unknown = [e for e in present if e not in a_site and e not in b_site]
    if unknown:
        raise CageError(f"cannot tell the site of {unknown}: pass a_elements=[...] and b_elements=[...]")
    return {"A": a_site, "B": b_site}


def build_cages(
    cell: np.ndarray,
    positions: np.ndarray,
    symbols: Sequence[str],
    elements: Sequence[str],
    site: str,
    targets: Sequence[str] = ("O",),
    size: int | None = None,
) -> Cages:
    """The ``size`` (default ``CAGE_SIZES[site]``) nearest atoms of ``targets`` (default oxygen) around every
    atom of ``elements`` in the reference structure, with the periodic image each one is in."""
    cell = np.asarray(cell, dtype=float)
    positions = np.asarray(positions, dtype=float)
    symbols = np.asarray(symbols)
    size = size or CAGE_SIZES[site]
    cations = np.flatnonzero(np.isin(symbols, list(elements)))
    oxygens = np.flatnonzero(np.isin(symbols, list(targets)))
    if cations.size == 0 or oxygens.size == 0:
        raise CageError(f"no {site}-site cations {list(elements)} or no {list(targets)} in the structure")
    fractional = to_fractional(cell, positions)
    shifts = image_shifts(cell, 4.0)  # enough periodic images that every cage (< ~3 Å) is inside
    images = (fractional[oxygens][None, :, :] + shifts[:, None, :]).reshape(-1, 3)
    tree = cKDTree(images @ cell)
    distances, found = tree.query(positions[cations], k=size)
    if np.isinf(distances).any():
        raise CageError(f"fewer than {size} oxygens around some {site}-site cation")
    neighbours = oxygens[found % oxygens.size]
    reference = fractional[neighbours] + shifts[found // oxygens.size] - fractional[cations][:, None, :]
    cages = Cages(site, cations, neighbours, reference)
    if list(targets) == ["O"]:
        _check_shell(distances, site)
    return cages


def image_shifts(cell: np.ndarray, cutoff: float) -> np.ndarray:
    """Integer lattice shifts (k, 3) of every periodic image cell within ``cutoff`` (Å) of the home cell."""
    widths = np.abs(np.linalg.det(cell)) / np.linalg.norm(np.cross(cell[[1, 2, 0]], cell[[2, 0, 1]]), axis=1)
    reach = np.ceil(cutoff / widths).astype(int)
    return np.array(np.meshgrid(*[np.arange(-r, r + 1) for r in reach], indexing="ij")).reshape(3, -1).T


def _check_shell(distances: np.ndarray, site: str) -> None:
    """The cage must be a closed first shell: its farthest oxygen well inside the second shell."""
    if site == "B" and distances.max() > MAX_B_O_DISTANCE:
        raise CageError(f"a B-O distance of {distances.max():.2f} Å exceeds {MAX_B_O_DISTANCE} Å: not an octahedron")
