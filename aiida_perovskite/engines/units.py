"""Stress units of the labeling engines (CODATA 2018, as ASE uses), and the virial from a stress tensor.

DeePMD's virial is in eV; the engines print their stress in GPa (CP2K, QE) or kbar (VASP, ABACUS).
"""

from __future__ import annotations

import numpy as np

__all__ = ("EV_PER_ANGSTROM3_IN_GPA", "EV_PER_ANGSTROM3_IN_KBAR", "virial_from_pressure")

EV_PER_ANGSTROM3_IN_GPA = 160.21766208
EV_PER_ANGSTROM3_IN_KBAR = 10 * EV_PER_ANGSTROM3_IN_GPA


def virial_from_pressure(stress: np.ndarray, volume: float, unit_in_ev_per_angstrom3: float) -> np.ndarray:
    """Virial (eV) from a stress tensor with the DFT codes' sign (positive = compressed), in units where one
    eV/Å^3 is ``unit_in_ev_per_angstrom3`` (e.g. 1602.18 for kbar)."""
    return np.asarray(stress, dtype=float) * volume / unit_in_ev_per_angstrom3
