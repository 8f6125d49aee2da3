"""The four ferroelectric phases of a perovskite relaxed with any ASE calculator, and the comparison of two
potentials on them (no AiiDA).

A student potential is only as good as its energy landscape around the polar minima: the BaTiO3 phases lie
within a few meV per formula unit of each other, so the same order, the same energy differences and the same
cell shapes as the teacher are the first checks of a distilled model. Each phase is relaxed (positions and
cell, ``FrechetCellFilter``) under its own space-group symmetry (``FixSymmetry``), from a polar start of that
phase, so a saddle point (T, O) stays the saddle point the teacher's table reports.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from aiida_perovskite.analysis.polarization import LocalAnalysis
from aiida_perovskite.structures.builders import parent_cell

__all__ = (
    "PHASE_ORDER",
    "PhaseComparison",
    "PhaseTolerances",
    "RelaxedPhase",
    "compare_phases",
    "relax_phase",
    "relax_phases",
    "relaxed_cell",
)

PHASE_ORDER = ("cubic", "tetragonal", "orthorhombic", "rhombohedral")
# Polar starts near the BaTiO3 minima (Å, degrees); the relaxation finds the calculator's own minimum.
BATIO3_STARTS = {
    "cubic": {"a": 4.01},
    "tetragonal": {"a": 3.99, "c_over_a": 1.03, "displacement": 0.12},
    "orthorhombic": {"a": 4.02, "angle": 89.8, "displacement": 0.12},
    "rhombohedral": {"a": 4.02, "angle": 89.85, "displacement": 0.12},
}


@dataclasses.dataclass(frozen=True)
class RelaxedPhase:
    """One relaxed phase: energy per formula unit (eV), pseudocubic cell (Å, degrees: cell / repeat),
    mean unit-cell polarization with the cubic Born charges (C/m²) and whether the forces reached ``fmax``."""

    phase: str
    energy_per_formula_unit: float
    lengths: tuple[float, float, float]
    angles: tuple[float, float, float]
    polarization: tuple[float, float, float]
    steps: int
    converged: bool

    @property
    def polarization_magnitude(self) -> float:
        return float(np.linalg.norm(self.polarization))


def relaxed_cell(
    calculator,
    phase: str,
    composition: str = "BaTiO3",
    start: Mapping[str, float] | None = None,
    repeat: Sequence[int] = (2, 2, 2),
    fmax: float = 1e-3,
    max_steps: int = 1000,
) -> tuple:
    """``phase`` of ``composition`` (a ``repeat`` supercell of the 5-atom cell) relaxed with ``calculator``: the
    atoms (calculator attached, symmetry constraint removed), the optimizer's steps and whether it converged."""
    from ase.constraints import FixSymmetry
    from ase.filters import FrechetCellFilter
    from ase.optimize import BFGS

    start = dict(start if start is not None else BATIO3_STARTS[phase])
    lattice = start.pop("a", None)
    atoms = parent_cell(composition, phase, a=lattice, **start).repeat(tuple(repeat))
    atoms.set_constraint(FixSymmetry(atoms, symprec=1e-4))
    atoms.calc = calculator
    optimizer = BFGS(FrechetCellFilter(atoms), logfile=None)
    converged = bool(optimizer.run(fmax=fmax, steps=max_steps))
    atoms.set_constraint()
    return atoms, int(optimizer.nsteps), converged


def relax_phase(
    calculator, phase: str, composition: str = "BaTiO3", repeat: Sequence[int] = (2, 2, 2), **options: Any
) -> RelaxedPhase:
    """Relax ``phase`` of ``composition`` (a ``repeat`` supercell of the 5-atom cell) with ``calculator``;
    ``options``: ``start``, ``fmax``, ``max_steps`` of :func:`relaxed_cell`."""
    atoms, steps, converged = relaxed_cell(calculator, phase, composition, repeat=repeat, **options)
    units = int(np.prod(repeat))
    cellpar = atoms.cell.cellpar()
    symbols = atoms.get_chemical_symbols()
    analysis = LocalAnalysis.from_reference(atoms.cell[:], atoms.positions, symbols)
    polarization = analysis.polarization(atoms.cell[:], atoms.positions, composition).mean(axis=0)
    return RelaxedPhase(
        phase=phase,
        energy_per_formula_unit=float(atoms.get_potential_energy()) / units,
        lengths=tuple(float(v) for v in cellpar[:3] / np.asarray(repeat, float)),
        angles=tuple(float(v) for v in cellpar[3:]),
        polarization=tuple(float(v) for v in polarization),
        steps=steps,
        converged=converged,
    )


def relax_phases(calculator, phases: Sequence[str] = PHASE_ORDER, **kwargs) -> dict[str, RelaxedPhase]:
    return {phase: relax_phase(calculator, phase, **kwargs) for phase in phases}


@dataclasses.dataclass(frozen=True)
class PhaseTolerances:
    """The issue's bar for a student against its teacher."""

    energy_mev_per_formula_unit: float = 2.0
    length_relative: float = 3e-3
    angle_degrees: float = 0.05


@dataclasses.dataclass(frozen=True)
class PhaseComparison:
    """Student against teacher: one row per phase and quantity, and whether every row and the order pass."""

    rows: list[dict]
    student_order: list[str]
    teacher_order: list[str]

    @property
    def passed(self) -> bool:
        return self.student_order == self.teacher_order and all(row["ok"] for row in self.rows)


def _relative_energies(phases: Mapping[str, RelaxedPhase]) -> dict[str, float]:
    """meV per formula unit relative to the cubic phase."""
    reference = phases["cubic"].energy_per_formula_unit
    return {name: 1000 * (phase.energy_per_formula_unit - reference) for name, phase in phases.items()}


def compare_phases(
    student: Mapping[str, RelaxedPhase],
    teacher: Mapping[str, RelaxedPhase],
    tolerances: PhaseTolerances = PhaseTolerances(),
) -> PhaseComparison:
    """Energies relative to cubic, lengths and angles of the student's relaxed phases against the teacher's."""
    e_student, e_teacher = _relative_energies(student), _relative_energies(teacher)
    rows = []
    for name in teacher:
        s, t = student[name], teacher[name]
        if name != "cubic":
            difference = e_student[name] - e_teacher[name]
            rows.append(
                {
                    "phase": name,
                    "quantity": "E - E_cubic (meV/f.u.)",
                    "student": e_student[name],
                    "teacher": e_teacher[name],
                    "difference": difference,
                    "ok": abs(difference) <= tolerances.energy_mev_per_formula_unit,
                }
            )
        for axis, (ls, lt) in enumerate(zip(s.lengths, t.lengths, strict=True)):
            relative = (ls - lt) / lt
            rows.append(
                {
                    "phase": name,
                    "quantity": f"{'abc'[axis]} (Å)",
                    "student": ls,
                    "teacher": lt,
                    "difference": relative,
                    "ok": abs(relative) <= tolerances.length_relative,
                }
            )
        for axis, (as_, at) in enumerate(zip(s.angles, t.angles, strict=True)):
            rows.append(
                {
                    "phase": name,
                    "quantity": f"{('alpha', 'beta', 'gamma')[axis]} (°)",
                    "student": as_,
                    "teacher": at,
                    "difference": as_ - at,
                    "ok": abs(as_ - at) <= tolerances.angle_degrees,
                }
            )
    return PhaseComparison(
        rows=rows,
        student_order=sorted(e_student, key=e_student.get),
        teacher_order=sorted(e_teacher, key=e_teacher.get),
    )
