"""Structure calcfunctions: provenance of solid solutions and perturbations; init-data input checks."""

from __future__ import annotations

import numpy as np
import pytest
from aiida import orm
from aiida.engine.utils import instantiate_process
from aiida.manage import get_manager

from aiida_perovskite.calcfunctions.structures import build_solid_solution, perturb_structures
from aiida_perovskite.structures import parent_cell, perturb
from aiida_perovskite.workflows.init_data import InitDataWorkChain


def test_build_solid_solution_records_realised_composition():
    results, node = build_solid_solution.run_get_node(
        orm.Str("Ba0.875Ca0.125Ti0.75Sn0.25O3"), orm.List([2, 2, 2]), orm.Int(4), orm.Int(2)
    )
    assert node.is_finished_ok
    assert results["realised"]["exact"] is True
    assert results["realised"]["A"] == {"Ba": 0.875, "Ca": 0.125}
    first, second = results["configuration_0"].get_ase(), results["configuration_1"].get_ase()
    assert first.get_chemical_symbols().count("Sn") == 2 and len(first) == 40
    assert first.get_chemical_symbols() != second.get_chemical_symbols()


def test_perturb_structures_is_seeded():
    structure = orm.StructureData(ase=parent_cell("BaTiO3"))
    settings = orm.Dict({"count": 3, "cell_strain": 0.02, "atom_displacement": 0.04})
    first = perturb_structures(structure, settings, orm.Int(5))
    again = perturb_structures(structure, settings, orm.Int(5))
    other = perturb_structures(structure, settings, orm.Int(6))
    assert first.numsteps == 3 and list(first.symbols) == list(structure.get_ase().get_chemical_symbols())
    np.testing.assert_array_equal(first.get_positions(), again.get_positions())
    np.testing.assert_array_equal(first.get_cells(), again.get_cells())
    assert not np.allclose(first.get_positions(), other.get_positions())
    copies = perturb(structure.get_ase(), count=3, seed=5, cell_strain=0.02, atom_displacement=0.04)
    for index, copy in enumerate(copies):  # each frame is the copy the seeded perturbation makes, cell included
        frame = first.get_step_structure(index)
        np.testing.assert_allclose(frame.get_ase().positions, copy.positions)
        np.testing.assert_allclose(frame.cell, copy.cell.array)
        assert frame.pbc == (True, True, True)


@pytest.mark.parametrize(
    ("perturbation", "message"),
    [
        ({"count": 0}, "perturbation.count: must be at least 1, got 0"),
        ({"count": 2, "cell_strain": 0.8}, r"perturbation.cell_strain: must be in \[0, 0.5\), got 0.8"),
        ({"count": 2, "shake": 1}, r"perturbation.shake: unknown key; allowed keys: count, cell_strain"),
    ],
)
def test_init_data_rejects_bad_perturbations(aiida_localhost, perturbation, message):
    code = orm.InstalledCode(label="cp2k-i", computer=aiida_localhost, filepath_executable="/usr/bin/cp2k.psmp")
    builder = InitDataWorkChain.get_builder()
    builder.structures = {"BaTiO3": orm.StructureData(ase=parent_cell("BaTiO3"))}
    builder.seed = orm.Int(1)
    builder.label.code = code.store()
    with pytest.raises(ValueError, match=message):
        builder.perturbation = orm.Dict(perturbation)
        instantiate_process(get_manager().get_runner(), builder)


def test_init_data_rejects_elements_without_basis(aiida_localhost):
    from ase import Atoms

    code = orm.InstalledCode(label="cp2k-u", computer=aiida_localhost, filepath_executable="/usr/bin/cp2k.psmp")
    builder = InitDataWorkChain.get_builder()
    builder.structures = {
        "UO3": orm.StructureData(ase=Atoms("UO3", positions=np.eye(4, 3) * 2, cell=[4] * 3, pbc=True))
    }
    builder.perturbation = orm.Dict({"count": 1})
    builder.seed = orm.Int(1)
    builder.label.code = code.store()
    with pytest.raises(ValueError, match="no DZVP-MOLOPT-SR-GTH basis set for U"):
        instantiate_process(get_manager().get_runner(), builder)


def test_init_data_valid_inputs_pass(aiida_localhost):
    code = orm.InstalledCode(label="cp2k-ok", computer=aiida_localhost, filepath_executable="/usr/bin/cp2k.psmp")
    builder = InitDataWorkChain.get_builder()
    builder.structures = {"BaTiO3": orm.StructureData(ase=parent_cell("BaTiO3"))}
    builder.perturbation = orm.Dict({"count": 2})
    builder.seed = orm.Int(1)
    builder.label.code = code.store()
    instantiate_process(get_manager().get_runner(), builder)
