"""The analytic model behind every mock engine: a smooth Lennard-Jones pair potential (ASE), whose energy,
forces and stress tests can recompute independently of any file format."""

from __future__ import annotations

import numpy as np
from ase import Atoms
from ase.calculators.lj import LennardJones

ENTROPY_TERM = 0.0125  # eV: the mocks report E(no entropy) = E(free) + this, as a smeared DFT run would


def reference_labels(atoms: Atoms) -> tuple[float, np.ndarray, np.ndarray]:
    """Free energy (eV), forces (eV/Å) and stress (eV/Å^3, ASE's sign: positive = tensile) of ``atoms``."""
    atoms = atoms.copy()
    atoms.calc = LennardJones(sigma=1.8, epsilon=0.05, rc=4.5, smooth=True)
    return atoms.get_potential_energy(), atoms.get_forces(), atoms.get_stress(voigt=False)


def reference_virial(atoms: Atoms) -> np.ndarray:
    """DeePMD's virial (eV): minus the stress times the volume."""
    return -reference_labels(atoms)[2] * atoms.get_volume()
