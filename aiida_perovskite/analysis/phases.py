"""Phase of a ferroelectric perovskite from NPT MD time series: block averages with statistical errors, the
cubic/tetragonal/orthorhombic/rhombohedral decision, and transition temperatures (no AiiDA).

Rules (science brief, section 3), applied to the sorted magnitudes p1 >= p2 >= p3 of the polar vector (the robust
signal) or, without it, to the sorted pseudocubic lengths and the cell angles:

| phase | polar components | lengths | angles |
|---|---|---|---|
| C (Pm-3m) | none | l1 = l2 = l3 | all 90° |
| T (P4mm) | one | l1 = l2 < l3 | all 90° |
| O (Amm2) | two equal | l1 < l2 = l3 | one ≠ 90° |
| R (R3m) | three equal | l1 = l2 = l3 | three equal ≠ 90° |

A quantity is *non-zero* when it exceeds ``sigma`` standard errors of its block average and a physical floor
(``min_polar``, ``min_strain``, ``min_angle``); it is *zero* when the errors are small enough that the floor
would have been detected; otherwise the evidence is within the noise and the phase is ``uncertain``. Two
values are *equal* when they differ by less than ``sigma`` combined errors plus ``tolerance`` of their size.

The polar magnitudes are sorted frame by frame before they are averaged (:func:`canonical_polar`), as Zhong,
Vanderbilt and Rabe did for the local modes of BaTiO3 (Phys. Rev. B 52, 6301 (1995)): a cell of a few hundred
atoms switches between the symmetry-equivalent directions of its phase during a run (a tetragonal cell's axis from
[001] to [010], say), and the average of the raw vector then shrinks towards zero in the components that switched,
where the average of the sorted magnitudes keeps the phase's signature.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Sequence

import numpy as np

__all__ = (
    "Estimate",
    "PhaseCriteria",
    "block_average",
    "canonical_polar",
    "classify_lattice",
    "classify_polar",
    "hysteresis",
    "transitions",
)

UNCERTAIN = "uncertain"


@dataclasses.dataclass(frozen=True)
class Estimate:
    mean: np.ndarray
    error: np.ndarray  # standard error of the mean from block averages


def block_average(series: np.ndarray, blocks: int = 5) -> Estimate:
    """Mean of each column and its standard error from ``blocks`` consecutive block means (which are nearly
    independent when each block is longer than the correlation time)."""
    series = np.asarray(series, dtype=float)
    if series.ndim == 1:
        series = series[:, None]
    if len(series) < blocks or blocks < 2:
        raise ValueError(f"{len(series)} samples cannot form {blocks} blocks (need at least 2 blocks, 1 sample each)")
    usable = len(series) // blocks * blocks
    means = series[len(series) - usable :].reshape(blocks, -1, series.shape[1]).mean(axis=1)
    return Estimate(means.mean(axis=0), means.std(axis=0, ddof=1) / np.sqrt(blocks))


@dataclasses.dataclass(frozen=True)
class PhaseCriteria:
    sigma: float = 3.0  # significance, in standard errors
    tolerance: float = 0.25  # relative difference still counted as "equal" (finite cells are not perfect)
    # smallest mean polar component that counts, in Å of B-cation displacement: half the 0.1 Å below which a
    # cell counts as non-polar (science brief, section 4); a 3x3x3 cell's paraelectric mean fluctuates by
    # ~0.01 Å per block, so a tighter floor leaves every paraelectric run "uncertain"
    min_polar: float = 0.05
    # frame-to-frame spread (standard deviation / mean) of a sorted polar magnitude: a polarization p with
    # fluctuations s has ~s/p, and counts up to max_polar_spread (p > 3s); fluctuations about zero, folded by the
    # sorting, have 0.44 (the largest of three Gaussian components) to 0.85 (the smallest), so from noise_spread on
    # a magnitude above the floor is taken for the fluctuations of a hot small cell: zero if the unsorted average
    # vector is zero, else uncertain; in between the two spreads, uncertain
    max_polar_spread: float = 0.35
    noise_spread: float = 0.40
    min_strain: float = 1e-3  # smallest relative length difference that counts
    min_angle: float = 0.03  # degrees


def _state(value: float, error: float, floor: float, sigma: float) -> str:
    if abs(value) > sigma * error and abs(value) > floor:
        return "nonzero"
    if sigma * error < floor:
        return "zero"
    return UNCERTAIN


def _equal(a: float, b: float, error: float, criteria: PhaseCriteria, split: float = 0.0) -> bool:
    return abs(a - b) <= criteria.sigma * error + criteria.tolerance * max(abs(a), abs(b)) + split


# Sorting splits equal magnitudes: the largest and the smallest of k equal components with frame-to-frame
# fluctuations s differ on average by the expected range of k normal samples
NORMAL_RANGE = {1: 0.0, 2: 2 / np.sqrt(np.pi), 3: 1.6926}


def canonical_polar(polar: np.ndarray) -> np.ndarray:
    """Per frame the magnitudes of the polar vector's components, largest first: the one representative of the 48
    directions the cubic point group makes equivalent, so a switch between them leaves it unchanged."""
    return -np.sort(-np.abs(np.asarray(polar, dtype=float)), axis=1)


def _polar_state(magnitude: float, error: float, spread: float, vector_is_zero: bool, criteria: PhaseCriteria) -> str:
    state = _state(magnitude, error, criteria.min_polar, criteria.sigma)
    if state == "zero" or spread <= criteria.max_polar_spread:
        return state
    if spread >= criteria.noise_spread and vector_is_zero:
        return "zero"
    return UNCERTAIN


def classify_polar(polar: np.ndarray, criteria: PhaseCriteria = PhaseCriteria(), blocks: int = 5) -> dict:
    """Phase from the time series (n, 3) of the mean polar vector (or mean B-cation displacement): the number of
    non-zero sorted magnitudes and whether they are equal. ``mean``/``error`` are the raw vector's average (its
    direction), ``magnitudes``/``magnitude_errors``/``spreads`` the sorted magnitudes that decide."""
    vector = block_average(polar, blocks)
    canonical = canonical_polar(polar)
    estimate = block_average(canonical, blocks)
    magnitudes, errors = estimate.mean, estimate.error
    spreads = canonical.std(axis=0) / np.maximum(magnitudes, np.finfo(float).tiny)
    vector_is_zero = all(
        _state(m, e, criteria.min_polar, criteria.sigma) == "zero"
        for m, e in zip(vector.mean, vector.error, strict=True)
    )
    states = [
        _polar_state(*values, vector_is_zero, criteria) for values in zip(magnitudes, errors, spreads, strict=True)
    ]
    label = UNCERTAIN
    count = states.count("nonzero")
    if UNCERTAIN not in states[count:] and states[:count] == ["nonzero"] * count:
        leading = magnitudes[:count]
        combined = float(np.sqrt((errors[:count] ** 2).sum())) if count else 0.0
        split = NORMAL_RANGE[count] * float(np.sqrt(canonical[:, :count].var(axis=0).mean())) if count else 0.0
        if all(_equal(leading[0], m, combined, criteria, split) for m in leading):
            label = {0: "C", 1: "T", 2: "O", 3: "R"}[count]
    return {
        "label": label,
        "mean": vector.mean.tolist(),
        "error": vector.error.tolist(),
        "magnitudes": magnitudes.tolist(),
        "magnitude_errors": errors.tolist(),
        "spreads": spreads.tolist(),
        "states": states,
    }


def classify_lattice(
    lengths: np.ndarray, angles: np.ndarray, criteria: PhaseCriteria = PhaseCriteria(), blocks: int = 5
) -> dict:
    """Phase from the time series of the pseudocubic lengths (n, 3) and the cell angles (n, 3, degrees)."""
    length, angle = block_average(lengths, blocks), block_average(angles, blocks)
    order = np.argsort(length.mean)
    sorted_lengths, length_errors = length.mean[order], length.error[order]
    scale = float(sorted_lengths.mean())

    def same(i: int, j: int) -> str:
        error = float(np.hypot(length_errors[i], length_errors[j]))
        return _state(
            (sorted_lengths[j] - sorted_lengths[i]) / scale, error / scale, criteria.min_strain, criteria.sigma
        )

    gaps = [same(0, 1), same(1, 2)]  # "zero" = equal, "nonzero" = different
    shear = [
        _state(a - 90.0, e, criteria.min_angle, criteria.sigma) for a, e in zip(angle.mean, angle.error, strict=True)
    ]
    label = UNCERTAIN
    if UNCERTAIN not in gaps + shear:
        sheared = shear.count("nonzero")
        if gaps == ["zero", "zero"] and sheared == 0:
            label = "C"
        elif gaps == ["zero", "nonzero"] and sheared == 0:
            label = "T"
        elif gaps == ["nonzero", "zero"] and sheared == 1:
            label = "O"
        elif gaps == ["zero", "zero"] and sheared == 3:
            deviations = np.abs(angle.mean - 90.0)
            if all(_equal(deviations[0], d, float(np.sqrt((angle.error**2).sum())), criteria) for d in deviations):
                label = "R"
    return {
        "label": label,
        "lengths": length.mean.tolist(),
        "length_errors": length.error.tolist(),
        "angles": angle.mean.tolist(),
        "angle_errors": angle.error.tolist(),
    }


def transitions(temperatures: Sequence[float], labels: Sequence[str]) -> list[dict]:
    """Where the phase changes between neighbouring temperatures (uncertain points skipped): the bracket and
    its midpoint as the estimate of the transition temperature."""
    known = sorted((t, label) for t, label in zip(temperatures, labels, strict=True) if label != UNCERTAIN)
    found = []
    for (t_low, low), (t_high, high) in itertools.pairwise(known):
        if low != high:
            found.append({"from": low, "to": high, "between": [t_low, t_high], "estimate": (t_low + t_high) / 2})
    return found


def hysteresis(heating: Sequence[dict], cooling: Sequence[dict]) -> list[dict]:
    """The transitions (as :func:`transitions` gives them, low-temperature phase first) found on both a heating
    and a cooling ladder: their estimates and the width heating - cooling (K)."""
    cooled = {(found["from"], found["to"]): found["estimate"] for found in cooling}
    rows = []
    for found in heating:
        pair = (found["from"], found["to"])
        if pair in cooled:
            rows.append(
                {
                    "pair": f"{pair[0]} -> {pair[1]}",
                    "heating": found["estimate"],
                    "cooling": cooled[pair],
                    "width": found["estimate"] - cooled[pair],
                }
            )
    return rows
