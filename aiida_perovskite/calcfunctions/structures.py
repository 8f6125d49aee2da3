"""Provenance-tracked structure building: solid solutions and perturbed copies."""

from __future__ import annotations

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
def perturb_structures(structure: orm.StructureData, settings: orm.Dict, seed: orm.Int) -> dict:
    """``perturbed_<i>``: copies with random strain and displacements. ``settings``: count, cell_strain,
    atom_displacement (Å), volume_scale."""
    copies = perturb(
        structure.get_ase(), seed=seed.value, **Perturbation.model_validate(settings.get_dict()).model_dump()
    )
    return {f"perturbed_{i}": orm.StructureData(ase=atoms) for i, atoms in enumerate(copies)}
