"""A teacher added from outside the engine through the `perovskite.teachers` entry-point group (the test of
that extension point): Lennard-Jones labels, NaN forces for cells longer than 4.5 Å (a poisoned frame)."""

from __future__ import annotations

import numpy as np

from aiida_perovskite.teachers import Evaluator, Teacher


class LennardJonesTeacher(Teacher):
    kind = "lj-test"
    request_keys = ()

    def describe(self, request, model_file=None):
        return {
            "kind": self.kind,
            "package": "lj-test-teacher",
            "version": "0.1",
            "model": "lj",
            "file": "none",
            "sha256": "0" * 64,
            "elements": ["Ba", "O", "Ti"],
            "level_of_theory": "Lennard-Jones (test)",
        }

    def load(self, identity, model_file, device):
        return _Evaluator()


class _Evaluator(Evaluator):
    def __call__(self, atoms):
        from ase.calculators.lj import LennardJones

        atoms = atoms.copy()
        atoms.calc = LennardJones(sigma=1.8, epsilon=0.02, rc=3.5, smooth=True)
        forces = atoms.get_forces()
        if atoms.cell.lengths()[0] > 4.5:
            forces[0, 0] = np.nan
        return atoms.get_potential_energy(), forces, -atoms.get_stress(voigt=False) * atoms.get_volume()
