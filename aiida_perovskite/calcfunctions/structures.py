"""Provenance-tracked structure building: solid solutions and perturbed copies."""

from __future__ import annotations

import numpy as np
from aiida import orm
from aiida.engine import calcfunction

from aiida_perovskite.loop.settings import Perturbation
from aiida_perovskite.structures import parse_composition, perturb, solid_solution

__all__ = ("build_solid_solution", "perturb_structures")


@calcfunction
def build_solid_solution(
    composition: orm.Str | orm.Dict,
    repeats: orm.List,
    seed: orm.Int,
    configurations: orm.Int,
    lattice_constant: orm.Float | None = None,
) -> dict:
    """``configuration_<i>`` StructureData (random cation placement) and ``realised`` (Dict: site fractions
    actually built, ``exact`` whether they equal the request)."""
    spec = composition.get_dict() if isinstance(composition, orm.Dict) else composition.value
    built = solid_solution(
        parse_composition(spec),
        repeats.get_list(),
        seed.value,
        a=lattice_constant.value if lattice_constant is not None else None,
        configurations=configurations.value,
    )
    outputs = {f"configuration_{i}": orm.StructureData(ase=atoms) for i, atoms in enumerate(built.configurations)}
    outputs["realised"] = orm.Dict({**built.realised, "exact": built.exact, "requested": built.requested.formula()})
    return outputs


@calcfunction
def perturb_structures(structure: orm.StructureData, settings: orm.Dict, seed: orm.Int) -> orm.TrajectoryData:
    """Copies with random strain and displacements, one per frame of a trajectory. ``settings``: count,
    cell_strain, atom_displacement (Å), volume_scale. One node, not one per copy: storing 1,000 structures and
    linking them one by one took ~100 s before the first labeling job (docs/benchmarks.md)."""
    copies = perturb(
        structure.get_ase(), seed=seed.value, **Perturbation.model_validate(settings.get_dict()).model_dump()
    )
    trajectory = orm.TrajectoryData()
    trajectory.set_trajectory(
        symbols=copies[0].get_chemical_symbols(),
        positions=np.array([atoms.positions for atoms in copies]),
        cells=np.array([atoms.cell.array for atoms in copies]),
        pbc=structure.pbc,
    )
    return trajectory
