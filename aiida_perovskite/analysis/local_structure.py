"""Structural descriptors of perovskite frames (no AiiDA): O-centred radial distribution functions,
cation-O bond lengths, displacement distributions, stereographic projections and normalised lattice
constants."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy.spatial import cKDTree

from aiida_perovskite.analysis.cages import image_shifts

__all__ = (
    "bond_lengths",
    "displacement_histograms",
    "normalised_lattice",
    "oxygen_centred_rdf",
    "stereographic",
)


def _periodic_images(cell: np.ndarray, positions: np.ndarray, cutoff: float) -> np.ndarray:
    """Positions of the periodic images of ``positions`` in every cell within ``cutoff`` of the home cell."""
    shifts = image_shifts(cell, cutoff)
    fractional = np.linalg.solve(cell.T, positions.T).T % 1.0
    return (fractional[None] + shifts[:, None]).reshape(-1, 3) @ cell


def oxygen_centred_rdf(
    cell, positions, symbols: Sequence[str], cation: str, r_max: float = 6.0, bins: int = 120
) -> tuple[np.ndarray, np.ndarray]:
    """g(r) of ``cation`` around O: bin centres (Å) and g normalised by the cation density."""
    cell, positions, symbols = np.asarray(cell, float), np.asarray(positions, float), np.asarray(symbols)
    oxygens, cations = positions[symbols == "O"], positions[symbols == cation]
    if len(oxygens) == 0 or len(cations) == 0:
        raise ValueError(f"no O or no {cation} in the frame")
    edges = np.linspace(0, r_max, bins + 1)
    pairs = cKDTree(_periodic_images(cell, cations, r_max)).sparse_distance_matrix(
        cKDTree(oxygens), r_max, output_type="ndarray"
    )
    counts, _ = np.histogram(pairs["v"][pairs["v"] > 1e-8], bins=edges)
    density = len(cations) / abs(np.linalg.det(cell))
    shells = 4 / 3 * np.pi * (edges[1:] ** 3 - edges[:-1] ** 3)
    return (edges[1:] + edges[:-1]) / 2, counts / (len(oxygens) * density * shells)


def bond_lengths(vectors: np.ndarray) -> dict[str, np.ndarray]:
    """From B->O vectors (m, 6, 3): per cation the short, medium (mean of the middle four) and long bond
    and the mean of all six (Å)."""
    lengths = np.sort(np.linalg.norm(vectors, axis=-1), axis=-1)
    return {
        "short": lengths[:, 0],
        "medium": lengths[:, 1:5].mean(axis=1),
        "long": lengths[:, 5],
        "mean": lengths.mean(axis=1),
    }


def displacement_histograms(vectors: np.ndarray, bins: np.ndarray) -> np.ndarray:
    """Counts of d_x, d_y, d_z in ``bins`` (edges in Å): shape (3, len(bins) - 1)."""
    return np.stack([np.histogram(np.asarray(vectors)[:, axis], bins=bins)[0] for axis in range(3)])


def stereographic(vectors: np.ndarray) -> np.ndarray:
    """Stereographic projection of displacement directions onto the (001) plane: rows (X, Y, hemisphere),
    projected from the pole opposite to each vector's hemisphere (so both hemispheres fill the unit disc);
    zero vectors have no direction and are left out."""
    vectors = np.asarray(vectors, dtype=float).reshape(-1, 3)
    norms = np.linalg.norm(vectors, axis=1)
    unit = vectors[norms > 1e-12] / norms[norms > 1e-12, None]
    hemisphere = np.where(unit[:, 2] >= 0, 1.0, -1.0)
    scale = 1.0 / (1.0 + np.abs(unit[:, 2]))
    return np.column_stack([unit[:, 0] * scale, unit[:, 1] * scale, hemisphere])


def normalised_lattice(cell, repeats: Sequence[int]) -> dict[str, float]:
    """Pseudocubic lattice constants (cell lengths / repeats, Å) and the cell angles (degrees)."""
    from ase.geometry import cell_to_cellpar

    a, b, c, alpha, beta, gamma = cell_to_cellpar(np.asarray(cell, float))
    n1, n2, n3 = repeats
    return {"a": a / n1, "b": b / n2, "c": c / n3, "alpha": alpha, "beta": beta, "gamma": gamma}
