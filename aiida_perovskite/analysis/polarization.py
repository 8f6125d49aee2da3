"""Local polarization of perovskites from MD frames (no AiiDA): per-cation displacements against their oxygen
cages, per-element averages and TAID, per-cell phase labels, and Born-charge unit-cell polarization.

Formulas and reference values: the project's science brief, section 4. Lengths in Å, P in C/m².
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence

import numpy as np

from aiida_perovskite.analysis.cages import (
    MAX_B_O_DISTANCE,
    Cages,
    build_cages,
    cage_displacements,
    infer_sites,
    to_fractional,
)

__all__ = (
    "BORN_CHARGES",
    "E_PER_A2_IN_C_PER_M2",
    "FrameAnalysis",
    "LocalAnalysis",
    "cell_phase_labels",
    "element_statistics",
)

E_PER_A2_IN_C_PER_M2 = 16.02176634
# Born effective charges of the cubic phase (e): A, B, O parallel and perpendicular to the B-O bond.
BORN_CHARGES = {
    "BaTiO3": {"A": 2.75, "B": 7.16, "O_par": -5.69, "O_perp": -2.11},
    "PbTiO3": {"A": 3.90, "B": 7.06, "O_par": -5.83, "O_perp": -2.56},
    "SrTiO3": {"A": 2.54, "B": 7.12, "O_par": -5.66, "O_perp": -2.00},
    "KNbO3": {"A": 1.14, "B": 9.23, "O_par": -7.01, "O_perp": -1.65},
}
PHASE_FAMILIES = {"T": [1, 0, 0], "O": [1, 1, 0], "R": [1, 1, 1]}


@dataclasses.dataclass(frozen=True)
class FrameAnalysis:
    """One frame: displacements of every A and B cation (rows in the order of ``cages[site].cations``), the
    B-cation -> oxygen vectors, and with Born charges the polarization of every B-centred unit cell."""

    displacements: dict[str, np.ndarray]  # "A", "B": (m, 3) Å
    b_oxygen_vectors: np.ndarray  # (m, 6, 3) Å
    polarization: np.ndarray | None  # (m, 3) C/m²

    @property
    def implausible(self) -> bool:
        """True when a B-O distance exceeds 3 Å: the reference cages no longer describe this frame."""
        return bool(np.einsum("mjk,mjk->mj", self.b_oxygen_vectors, self.b_oxygen_vectors).max() > MAX_B_O_DISTANCE**2)


@dataclasses.dataclass
class LocalAnalysis:
    """Neighbour lists of one reference structure, reused for every frame of a trajectory."""

    symbols: np.ndarray
    sites: dict[str, list[str]]
    reference_fractional: np.ndarray
    cages: dict[str, Cages]  # "A", "B": oxygen cages; "BA": the 8 A cations around each B (unit cells)

    @classmethod
    def from_reference(
        cls,
        cell,
        positions,
        symbols: Sequence[str],
        a_elements: Sequence[str] | None = None,
        b_elements: Sequence[str] | None = None,
    ) -> LocalAnalysis:
        cell, positions, symbols = np.asarray(cell, float), np.asarray(positions, float), np.asarray(symbols)
        sites = infer_sites(list(symbols), a_elements, b_elements)
        cages = {site: build_cages(cell, positions, symbols, sites[site], site) for site in ("A", "B")}
        cages["BA"] = build_cages(cell, positions, symbols, sites["B"], "B", targets=sites["A"], size=8)
        return cls(symbols, sites, to_fractional(cell, positions), cages)

    def frame(self, cell, positions, born: Mapping[str, float] | str | None = None) -> FrameAnalysis:
        """Everything of one frame from one conversion to fractional coordinates."""
        cell = np.asarray(cell, float)
        fractional = to_fractional(cell, positions)
        b_fractional = self.cages["B"].fractional_vectors(fractional)
        to_oxygen = b_fractional @ cell
        displacements = {
            "A": self.cages["A"].displacements(cell, fractional),
            "B": cage_displacements(b_fractional, cell),  # the B-O vectors serve the polarization too
        }
        polarization = None if born is None else self._polarization(cell, fractional, to_oxygen, born)
        return FrameAnalysis(displacements, to_oxygen, polarization)

    def displacements(self, cell, positions) -> dict[str, np.ndarray]:
        """``d_i`` of every A and B cation (rows in the order of ``cages[site].cations``), in Å."""
        return self.frame(cell, positions).displacements

    def polarization(self, cell, positions, born: Mapping[str, float] | str) -> np.ndarray:
        """Polarization of every B-centred unit cell (C/m², rows in the order of ``cages["B"].cations``)."""
        return self.frame(cell, positions, born).polarization

    def _polarization(self, cell, fractional, to_oxygen, born: Mapping[str, float] | str) -> np.ndarray:
        """``P = (e/Ω) [Z_B r_B + 1/2 Σ_6 Z_O r_O + 1/8 Σ_8 Z_A r_A]``, positions relative to the B cation, Z_O a
        tensor (parallel charge along the reference B-O bond), Ω = volume / number of B sites."""
        charges = BORN_CHARGES[born] if isinstance(born, str) else born
        to_a = np.einsum("mnk->mk", self.cages["BA"].fractional_vectors(fractional)) @ cell  # Σ_8 r_A
        bonds = self.cages["B"].reference @ cell  # bond directions of the reference geometry, in this cell
        axis = bonds / np.sqrt(np.einsum("mjk,mjk->mj", bonds, bonds))[..., None]
        parallel = np.einsum("mj,mjk->mk", np.einsum("mjk,mjk->mj", to_oxygen, axis), axis)  # Σ_6 (r_O·u) u
        oxygen_sum = np.einsum("mjk->mk", to_oxygen)
        oxygen_term = charges["O_perp"] * oxygen_sum + (charges["O_par"] - charges["O_perp"]) * parallel
        dipole = 0.5 * oxygen_term + charges["A"] * to_a / 8
        volume = abs(np.linalg.det(cell)) / len(self.cages["B"].cations)
        return dipole / volume * E_PER_A2_IN_C_PER_M2


def element_statistics(
    displacements: Mapping[str, np.ndarray], symbols: np.ndarray, cages: Mapping[str, Cages]
) -> dict[str, dict[str, object]]:
    """Per element: mean vector d̄ (eq. 2), TAID = |d̄| (eq. 3), mean and std of |d|, count."""
    statistics = {}
    for site in ("A", "B"):
        elements = symbols[cages[site].cations]
        for element in dict.fromkeys(elements):
            d = displacements[site][elements == element]
            magnitude = np.linalg.norm(d, axis=1)
            mean = d.mean(axis=0)
            statistics[str(element)] = {
                "site": site,
                "count": len(d),
                "mean_vector": mean.tolist(),
                "taid": float(np.linalg.norm(mean)),
                "mean_magnitude": float(magnitude.mean()),
                "std_magnitude": float(magnitude.std()),
            }
    return statistics


def cell_phase_labels(vectors: np.ndarray, threshold: float = 0.1) -> np.ndarray:
    """Per cell: ``T``, ``O`` or ``R`` for the nearest of the <100>, <110>, <111> directions, ``N``
    (non-polar) where ``|d| < threshold`` (Å)."""
    vectors = np.asarray(vectors, dtype=float)
    magnitude = np.linalg.norm(vectors, axis=-1)
    unit = vectors / np.where(magnitude > 0, magnitude, 1)[..., None]
    absolute = np.sort(np.abs(unit), axis=-1)[..., ::-1]  # family members are permutations and sign flips
    scores = {
        label: absolute @ (np.array(direction) / np.linalg.norm(direction))
        for label, direction in PHASE_FAMILIES.items()
    }
    labels = np.array(list(scores))[np.argmax(np.stack(list(scores.values()), axis=-1), axis=-1)]
    return np.where(magnitude < threshold, "N", labels)
