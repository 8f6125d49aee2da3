"""Structural fingerprints of frames and farthest-point sampling among them, for diversity-aware selection.

A frame's fingerprint is its smoothed radial distribution per element pair: neighbours per atom within the
cutoff, binned by distance and Gaussian-broadened. It is invariant to translation, rotation and the order of the
atoms, intensive (a supercell of a frame has the fingerprint of the frame), and it sees what distinguishes the
frames of a perovskite campaign: cation off-centring splits the B-O and A-O peaks, strain shifts them, temperature
broadens them. Frames of one MD run that differ only by thermal noise lie close together in it.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import combinations_with_replacement

import numpy as np
from ase.neighborlist import primitive_neighbor_list
from scipy.spatial.distance import cdist

__all__ = ("FINGERPRINT_CUTOFF", "farthest_point_order", "radial_fingerprints")

FINGERPRINT_CUTOFF = 6.0  # Å: the Deep Potential cutoff of the campaigns' networks
BIN_WIDTH = 0.05  # Å, spacing of the points the smeared distribution is sampled at
BROADENING = 0.1  # Å, standard deviation of the Gaussian each distance is smeared by
SWITCH_WIDTH = 1.0  # Å below the cutoff where a neighbour's weight falls smoothly to zero


def radial_fingerprints(
    cells: np.ndarray,
    positions: np.ndarray,
    symbols: Sequence[str],
    elements: Sequence[str] | None = None,
    cutoff: float = FINGERPRINT_CUTOFF,
) -> np.ndarray:
    """Fingerprints (frames, element pairs x bins) of periodic frames with the atoms ``symbols``.

    ``elements`` fixes the element pairs (default: the elements of ``symbols``), so that frames of different
    compositions or atom counts share one space: give the union when comparing them.
    """
    symbols = list(symbols)
    elements = sorted(set(symbols)) if elements is None else list(elements)
    missing = sorted(set(symbols) - set(elements))
    if missing:
        raise ValueError(f"elements {missing} of the frames are not among the fingerprint's elements {elements}")
    pairs = list(combinations_with_replacement(range(len(elements)), 2))
    pair_index = np.full((len(elements), len(elements)), -1)
    for index, (first, second) in enumerate(pairs):
        pair_index[first, second] = pair_index[second, first] = index
    types = np.array([elements.index(symbol) for symbol in symbols])
    centres = (np.arange(int(np.ceil(cutoff / BIN_WIDTH))) + 0.5) * BIN_WIDTH
    cells = np.asarray(cells, dtype=float).reshape(-1, 3, 3)
    positions = np.asarray(positions, dtype=float).reshape(len(cells), len(symbols), 3)
    fingerprints = np.zeros((len(cells), len(pairs), centres.size))
    for frame, (cell, coords) in enumerate(zip(cells, positions, strict=True)):
        first, second, distance = primitive_neighbor_list("ijd", (True,) * 3, cell, coords, cutoff)
        channel = pair_index[types[first], types[second]]
        smeared = np.exp(-0.5 * ((distance[:, None] - centres) / BROADENING) ** 2) * _switch(distance, cutoff)[:, None]
        fingerprints[frame] = np.eye(len(pairs))[channel].T @ smeared
    weight = BIN_WIDTH / (BROADENING * np.sqrt(2 * np.pi)) / len(symbols)  # one neighbour integrates to 1 / atom
    return fingerprints.reshape(len(cells), -1) * weight


def _switch(distance: np.ndarray, cutoff: float) -> np.ndarray:
    """1 up to ``SWITCH_WIDTH`` below the cutoff, then smoothly (C2, DeePMD's polynomial) to 0 at it, so that a
    neighbour crossing the cutoff does not make the fingerprint jump."""
    x = np.clip((distance - cutoff + SWITCH_WIDTH) / SWITCH_WIDTH, 0.0, 1.0)
    return x**3 * (-6 * x**2 + 15 * x - 10) + 1


def farthest_point_order(
    features: np.ndarray, count: int, reference: np.ndarray | None = None, first: int = 0
) -> np.ndarray:
    """``count`` rows of ``features`` picked greedily, each the farthest (Euclidean) from everything picked before
    and from the ``reference`` rows (frames already labeled); without a reference the first pick is row ``first``.
    Ties go to the lowest row."""
    features = np.asarray(features, dtype=float)
    count = min(count, len(features))
    if count <= 0:
        return np.zeros(0, dtype=int)
    nearest = np.full(len(features), np.inf)
    if reference is not None and len(reference):
        nearest = cdist(features, np.asarray(reference, dtype=float)).min(axis=1)
        chosen = [int(np.argmax(nearest))]
    else:
        chosen = [first]
    while len(chosen) < count:
        nearest = np.minimum(nearest, np.linalg.norm(features - features[chosen[-1]], axis=1))
        nearest[chosen] = -np.inf
        chosen.append(int(np.argmax(nearest)))
    return np.array(chosen)
