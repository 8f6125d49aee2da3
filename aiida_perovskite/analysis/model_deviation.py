"""Model deviation of an ensemble and the trust-level decision of the concurrent-learning loop.

The force deviation of a frame is ``max_i sqrt(< |F_i - <F_i>|^2 >)`` over atoms ``i``, the average running
over the models (what LAMMPS' ``pair_style deepmd ... out_file model_devi.out`` writes as ``max_devi_f``).
A frame is *accurate* below the lower trust level, a *candidate* between the two levels and *failed* at or
above the upper one; NaN or infinite deviations are failed, never accurate.
"""

from __future__ import annotations

import abc
from typing import ClassVar

import numpy as np
from pydantic import model_validator

from aiida_perovskite.analysis.deepmd_outputs import parse_step_table
from aiida_perovskite.analysis.fingerprints import farthest_point_order
from aiida_perovskite.schema import Settings, bounded, problem

__all__ = (
    "ACCURATE",
    "CANDIDATE",
    "FAILED",
    "SANITY_DEFAULTS",
    "SELECTION_MODES",
    "SELECTORS",
    "Selector",
    "TrustLevels",
    "choose",
    "classify",
    "force_deviation",
    "parse_model_devi",
    "sanity_mask",
    "selector",
    "summarise",
)

ACCURATE, CANDIDATE, FAILED = 0, 1, 2
CLASS_NAMES = {ACCURATE: "accurate", CANDIDATE: "candidate", FAILED: "failed"}
# The candidate filter of `sanity_mask`: shortest distance (Å), cell skew, volume change from the run's start.
SANITY_DEFAULTS = {"min_distance": 0.8, "max_skew": 0.5, "max_volume_change": 0.2}


def parse_model_devi(text: str) -> dict[str, np.ndarray]:
    """Columns of ``model_devi.out`` by name: ``step``, ``max_devi_v`` ... ``avg_devi_f`` (and ``devi_e`` if any).

    A last line cut by a crashed run is dropped.
    """
    columns = parse_step_table(text, "model_devi.out")
    columns["step"] = columns["step"].astype(int)
    return columns


def force_deviation(forces: np.ndarray) -> float:
    """``max_i sqrt(<|F_i - <F_i>|^2>)`` for ``forces`` of shape (models, atoms, 3), in the forces' unit."""
    forces = np.asarray(forces, dtype=float)
    spread = forces - forces.mean(axis=0, keepdims=True)
    return float(np.sqrt((spread**2).sum(axis=-1).mean(axis=0)).max())


class TrustLevels(Settings):
    """Force trust levels in eV/Å; optional virial levels (per atom, eV) as a second criterion."""

    force_lo: bounded(0, description="below it a frame is accurate (eV/Å); above the ensemble's noise floor")
    force_hi: bounded(0, lo_open=True, description="at or above it a frame is failed (eV/Å)")
    virial_lo: bounded(0) | None = None
    virial_hi: bounded(0, lo_open=True) | None = None

    @model_validator(mode="after")
    def _ordered(self) -> TrustLevels:
        if (self.virial_lo is None) != (self.virial_hi is None):
            raise problem("give both virial_lo and virial_hi, or neither")
        for kind in ("force", "virial"):
            lo, hi = getattr(self, f"{kind}_lo"), getattr(self, f"{kind}_hi")
            if lo is not None and lo >= hi:
                raise problem(f"must be below {kind}_hi ({lo} >= {hi}); e.g. 0.125 and 0.5 eV/Å", f"{kind}_lo")
        return self


def _classify_one(deviation: np.ndarray, lo: float, hi: float) -> np.ndarray:
    deviation = np.asarray(deviation, dtype=float)
    classes = np.full(deviation.shape, CANDIDATE, dtype=int)
    with np.errstate(invalid="ignore"):
        classes[deviation < lo] = ACCURATE
        classes[(deviation >= hi) | ~np.isfinite(deviation)] = FAILED
    return classes


def classify(force_devi: np.ndarray, levels: TrustLevels, virial_devi: np.ndarray | None = None) -> np.ndarray:
    """Class of each frame: failed if any criterion fails, accurate only if all are accurate."""
    classes = _classify_one(force_devi, levels.force_lo, levels.force_hi)
    if levels.virial_lo is not None:
        if virial_devi is None:
            raise ValueError("virial trust levels were given but no virial deviations")
        classes = np.maximum(classes, _classify_one(virial_devi, levels.virial_lo, levels.virial_hi))
    return classes


def _highest_first(pool: np.ndarray, deviations: np.ndarray) -> np.ndarray:
    """Positions in ``pool`` ordered by the frames' deviation, highest first, ties by frame index."""
    return np.lexsort((pool, -np.asarray(deviations, dtype=float)[pool]))


class Selector(abc.ABC):
    """A selection strategy (as DPGEN2's selectors): the frames it chooses from and how it picks among them.
    A new strategy is a subclass with a ``name`` and an entry in :data:`SELECTORS`."""

    name: ClassVar[str]
    uses_fingerprints: ClassVar[bool] = False  # pick() also takes the frames' fingerprints and the labeled ones'

    def pool(self, classes: np.ndarray, deviations: np.ndarray) -> np.ndarray:
        """Indices of the frames to choose from (before the sanity filter): the candidates."""
        return np.flatnonzero(np.asarray(classes) == CANDIDATE)

    @abc.abstractmethod
    def pick(self, pool: np.ndarray, deviations: np.ndarray, max_count: int, seed: int | None) -> np.ndarray:
        """``max_count`` of the ``pool`` (fewer than it holds)."""


class RandomCandidates(Selector):
    """Uniformly among the candidates (between the trust levels): the loop's default."""

    name = "random"

    def pick(self, pool, deviations, max_count, seed):
        if seed is None:
            raise ValueError("random selection needs an explicit seed")
        return np.random.default_rng(seed).choice(pool, size=max_count, replace=False)


class HighestDeviation(Selector):
    """The candidates with the highest deviation (ties broken by index)."""

    name = "max_deviation"

    def pick(self, pool, deviations, max_count, seed):
        return pool[_highest_first(pool, deviations)[:max_count]]


class UniformFrames(RandomCandidates):
    """Uniformly among every explored frame with a finite deviation, deviations otherwise ignored: naive
    sampling, the baseline bench/label_efficiency.py compares the loop's selection with."""

    name = "uniform"

    def pool(self, classes, deviations):
        return np.flatnonzero(np.isfinite(np.asarray(deviations, dtype=float)))


class DiverseCandidates(RandomCandidates):
    """Farthest-point sampling among the candidates in a structural fingerprint space
    (:mod:`~aiida_perovskite.analysis.fingerprints`): each pick is the candidate least like the frames picked before
    it and the frames already labeled, so a batch does not spend labels on near-copies from one correlated MD run.
    Without labeled frames to compare with, the highest-deviation candidate comes first."""

    name = "diverse"
    uses_fingerprints = True

    def pick(self, pool, deviations, max_count, seed, fingerprints=None, reference=None):
        if fingerprints is None:
            raise ValueError("diverse selection needs the fingerprints of the frames")
        first = int(_highest_first(pool, deviations)[0])
        return pool[farthest_point_order(np.asarray(fingerprints)[pool], max_count, reference, first)]


SELECTORS: dict[str, Selector] = {
    cls.name: cls() for cls in (RandomCandidates, HighestDeviation, UniformFrames, DiverseCandidates)
}
SELECTION_MODES = tuple(SELECTORS)


def selector(mode: str) -> Selector:
    """The selection strategy called ``mode``."""
    if mode not in SELECTORS:
        raise ValueError(f"unknown selection mode {mode!r}; choose one of {', '.join(SELECTION_MODES)}")
    return SELECTORS[mode]


def choose(
    candidates: np.ndarray,
    deviations: np.ndarray,
    max_count: int,
    mode: str,
    seed: int | None,
    fingerprints: np.ndarray | None = None,
    reference: np.ndarray | None = None,
) -> np.ndarray:
    """At most ``max_count`` of the ``candidates`` (indices) by the strategy ``mode``, sorted. ``fingerprints``
    (rows aligned with ``deviations``) and ``reference`` (fingerprints of labeled frames) are for the strategies
    that use them."""
    strategy = selector(mode)
    candidates = np.asarray(candidates, dtype=int)
    if max_count < 0:
        raise ValueError(f"max_count must not be negative, got {max_count}")
    if candidates.size <= max_count:
        return np.sort(candidates)
    if strategy.uses_fingerprints:
        return np.sort(strategy.pick(candidates, deviations, max_count, seed, fingerprints, reference))
    return np.sort(strategy.pick(candidates, deviations, max_count, seed))


def sanity_mask(
    cells: np.ndarray,
    positions: np.ndarray,
    min_distance: float | None = None,
    max_skew: float | None = None,
    max_volume_change: float | None = None,
    reference_volumes: np.ndarray | None = None,
) -> np.ndarray:
    """True for frames that pass: shortest interatomic distance >= ``min_distance`` (Å, minimum image), cell
    skew ``max |tilt| / diagonal`` of the LAMMPS-style lower-triangular cell <= ``max_skew``, and volume within
    ``max_volume_change`` (relative) of ``reference_volumes`` (each frame's starting cell): a cell that swelled or
    collapsed under a bad model is not a physical configuration, even where the ensemble agrees on it."""
    cells = np.asarray(cells, dtype=float)
    positions = np.asarray(positions, dtype=float)
    keep = np.ones(len(cells), dtype=bool)
    if max_volume_change is not None and reference_volumes is not None and len(cells):
        volumes = np.abs(np.linalg.det(cells))
        keep &= np.abs(volumes / np.asarray(reference_volumes, dtype=float) - 1) <= max_volume_change
    for index, (cell, coords) in enumerate(zip(cells, positions, strict=True)):
        if not keep[index]:
            continue
        if (max_skew is not None and cell_skew(cell) > max_skew) or (
            min_distance is not None and shortest_distance(cell, coords) < min_distance
        ):
            keep[index] = False
    return keep


def cell_skew(cell: np.ndarray) -> float:
    """Largest tilt relative to its cell length, in the upper-triangular-free (LAMMPS) representation."""
    from ase.geometry import cell_to_cellpar, cellpar_to_cell

    lower = cellpar_to_cell(cell_to_cellpar(cell))  # a along x, b in the xy plane: tilts in the lower triangle
    return float(max(abs(lower[1, 0]) / lower[0, 0], abs(lower[2, 0]) / lower[0, 0], abs(lower[2, 1]) / lower[1, 1]))


def shortest_distance(cell: np.ndarray, positions: np.ndarray) -> float:
    """Shortest distance between two atoms under periodic boundary conditions (minimum image)."""
    from ase.geometry import get_distances

    _, distances = get_distances(positions, cell=cell, pbc=True)
    np.fill_diagonal(distances, np.inf)
    return float(distances.min())


def summarise(classes: np.ndarray) -> dict[str, int]:
    return {name: int((np.asarray(classes) == code).sum()) for code, name in CLASS_NAMES.items()}
