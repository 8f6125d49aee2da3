"""Phase of a ferroelectric perovskite from NPT MD time series: block averages with statistical errors, the
cubic/tetragonal/orthorhombic/rhombohedral decision, and transition temperatures (no AiiDA).

Rules (science brief, section 3), applied to the sorted magnitudes p1 >= p2 >= p3 of the mean polar vector
(the robust signal) or, without it, to the sorted pseudocubic lengths and the cell angles:

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
    min_strain: float = 1e-3  # smallest relative length difference that counts
    min_angle: float = 0.03  # degrees


def _state(value: float, error: float, floor: float, sigma: float) -> str:
    if abs(value) > sigma * error and abs(value) > floor:
        return "nonzero"
    if sigma * error < floor:
        return "zero"
    return UNCERTAIN


def _equal(a: float, b: float, error: float, criteria: PhaseCriteria) -> bool:
    return abs(a - b) <= criteria.sigma * error + criteria.tolerance * max(abs(a), abs(b))


def classify_polar(polar: np.ndarray, criteria: PhaseCriteria = PhaseCriteria(), blocks: int = 5) -> dict:
    """Phase from the time series (n, 3) of the mean polar vector (or mean B-cation displacement)."""
    estimate = block_average(polar, blocks)
    order = np.argsort(-np.abs(estimate.mean))
    magnitudes, errors = np.abs(estimate.mean)[order], estimate.error[order]
    states = [_state(m, e, criteria.min_polar, criteria.sigma) for m, e in zip(magnitudes, errors, strict=True)]
    label = UNCERTAIN
    count = states.count("nonzero")
    if UNCERTAIN not in states[count:] and states[:count] == ["nonzero"] * count:
        leading = magnitudes[:count]
        combined = float(np.sqrt((errors[:count] ** 2).sum())) if count else 0.0
        if all(_equal(leading[0], m, combined, criteria) for m in leading):
            label = {0: "C", 1: "T", 2: "O", 3: "R"}[count]
    return {"label": label, "mean": estimate.mean.tolist(), "error": estimate.error.tolist(), "states": states}


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
