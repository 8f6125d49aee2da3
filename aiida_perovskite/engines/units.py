"""Unit conversions of the labeling engines (CODATA 2018, as ASE uses), and the virial from a stress tensor.

DeePMD's labels are eV, eV/Å and a virial in eV; the engines print Hartree, Rydberg, Bohr, GPa and kbar.
"""

from __future__ import annotations

import numpy as np

__all__ = (
    "BOHR_IN_ANGSTROM",
    "EV_PER_ANGSTROM3_IN_GPA",
    "EV_PER_ANGSTROM3_IN_KBAR",
    "RY_IN_EV",
    "virial_from_pressure",
)

EV_PER_ANGSTROM3_IN_GPA = 160.21766208
EV_PER_ANGSTROM3_IN_KBAR = 10 * EV_PER_ANGSTROM3_IN_GPA
RY_IN_EV = 13.605693122994
BOHR_IN_ANGSTROM = 0.529177210903


def virial_from_pressure(stress: np.ndarray, volume: float, unit_in_ev_per_angstrom3: float) -> np.ndarray:
    """Virial (eV) from a stress tensor with the DFT codes' sign (positive = compressed), in units where one
    eV/Å^3 is ``unit_in_ev_per_angstrom3`` (e.g. 1602.18 for kbar)."""
    return np.asarray(stress, dtype=float) * volume / unit_in_ev_per_angstrom3
