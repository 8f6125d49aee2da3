"""CP2K engine without running CP2K: basis lookup, k-points, input, output parsing with units, handlers."""

from __future__ import annotations

import pathlib

import numpy as np
import pytest
from aiida import orm
from aiida.engine.utils import instantiate_process
from aiida.manage import get_manager
from aiida.plugins import CalculationFactory

from aiida_perovskite.engines.cp2k.inputs import (
    BasisLookupError,
    basis_and_potential,
    label_parameters,
    parse_stress_gpa,
    read_labeled_frame,
)
from aiida_perovskite.engines.cp2k.workchain import Cp2kLabelBaseWorkChain
from aiida_perovskite.engines.kpoints import kpoint_mesh
from aiida_perovskite.protocols import load_protocol
from tests.helpers import cubic_batio3, failed_calcjob

Cp2kCalculation = CalculationFactory("cp2k")
HARTREE_EV = 27.211386245988
HARTREE_BOHR_EV_ANGSTROM = 51.422067476325886

SCIENCE_ELEMENTS = ["Ba", "Pb", "Ca", "Sr", "Bi", "K", "Na", "Hf", "Ti", "Zr", "Nb", "Mg", "In", "Zn", "Sn", "O"]


@pytest.mark.parametrize("element", SCIENCE_ELEMENTS)
def test_every_element_of_the_science_brief_has_basis_and_potential(element):
    basis, potential = basis_and_potential(element)
    assert basis.startswith("DZVP-MOLOPT-SR-GTH-q") and potential.startswith("GTH-PBE-q")
    assert basis.rsplit("q", 1)[1] == potential.rsplit("q", 1)[1]  # same valence


def test_element_without_basis_is_named():
    with pytest.raises(BasisLookupError, match="no DZVP-MOLOPT-SR-GTH basis set for U "):
        basis_and_potential("U")


def test_kpoint_mesh_from_spacing():
    assert kpoint_mesh(np.eye(3) * 4.0, 0.8) == [2, 2, 2]
    assert kpoint_mesh(np.diag([4.0, 8.0, 16.0]), 0.35) == [5, 3, 2]
    assert kpoint_mesh(np.eye(3) * 4.0, 2.0) == [1, 1, 1]


def test_input_has_pbesol_stress_and_every_kind():
    parameters = label_parameters(["Ba", "Ti", "O", "O", "O"], 5, load_protocol("cp2k", "balanced")["settings"])
    force_eval = parameters["FORCE_EVAL"]
    assert force_eval["DFT"]["XC"]["XC_FUNCTIONAL"]["PBE"]["PARAMETRIZATION"] == "PBESOL"
    assert force_eval["STRESS_TENSOR"] == "ANALYTICAL"
    assert [kind["_"] for kind in force_eval["SUBSYS"]["KIND"]] == ["Ba", "O", "Ti"]
    assert force_eval["DFT"]["MGRID"]["CUTOFF"] == 500
    assert force_eval["DFT"]["SCF"]["SMEAR"]["METHOD"] == "FERMI_DIRAC"


# A real CP2K 2023.1 output (Debian) of BaTiO3 with Ti off-centre; its input is the .inp beside it.
RECORDED = pathlib.Path(__file__).resolve().parents[1] / "recorded" / "cp2k_batio3_single_point.out"


def recorded_atoms():
    atoms = cubic_batio3(a=4.0)
    atoms.positions[1] = [2.05, 2.0, 2.02]
    return atoms


def test_output_units_are_converted():
    frame = read_labeled_frame(RECORDED, recorded_atoms())
    assert frame.energies[0] == pytest.approx(-131.846855727688450 * HARTREE_EV, rel=1e-9)
    assert frame.forces[0, 1, 0] == pytest.approx(-0.00927375 * HARTREE_BOHR_EV_ANGSTROM, rel=1e-5)
    # virial = CP2K stress (GPa, positive = compressed) x volume; 1 eV/Å^3 = 160.21766208 GPa
    assert frame.virials[0, 0, 0] == pytest.approx(-1.04102661669 * 64.0 / 160.21766208, rel=1e-9)
    np.testing.assert_allclose(frame.virials[0], frame.virials[0].T)
    np.testing.assert_allclose(frame.coords[0], recorded_atoms().positions)


def test_output_of_other_atoms_is_rejected():
    with pytest.raises(ValueError, match="do not match the input structure"):
        read_labeled_frame(RECORDED, recorded_atoms()[[1, 0, 2, 3, 4]])


def test_stress_absent_gives_none():
    assert parse_stress_gpa("no stress here") is None


@pytest.fixture
def base_workchain(aiida_localhost):
    code = orm.InstalledCode(
        label="cp2k-h",
        computer=aiida_localhost,
        filepath_executable="/usr/bin/cp2k.psmp",
        default_calc_job_plugin="cp2k",
    ).store()
    builder = Cp2kLabelBaseWorkChain.get_builder_from_protocol(code, orm.StructureData(ase=cubic_batio3()), "fast")
    process = instantiate_process(get_manager().get_runner(), builder)
    process.setup()
    return process


def failed(exit_code, computer) -> orm.CalcJobNode:
    return failed_calcjob(computer, "cp2k", exit_code)


def test_scf_handler_escalates_then_gives_up(base_workchain, aiida_localhost):
    code = Cp2kCalculation.exit_codes.ERROR_SCF_NOT_CONVERGED
    scf = lambda: base_workchain.ctx.inputs.parameters["FORCE_EVAL"]["DFT"]["SCF"]  # noqa: E731
    assert (scf()["MIXING"]["ALPHA"], scf()["MAX_SCF"], scf()["SMEAR"]["ELECTRONIC_TEMPERATURE"]) == (0.3, 80, 300)
    base_workchain.handle_scf_not_converged(failed(code, aiida_localhost))
    assert (scf()["MIXING"]["ALPHA"], scf()["MAX_SCF"], scf()["SMEAR"]["ELECTRONIC_TEMPERATURE"]) == (0.1, 160, 300)
    base_workchain.handle_scf_not_converged(failed(code, aiida_localhost))
    assert (scf()["MIXING"]["ALPHA"], scf()["MAX_SCF"], scf()["SMEAR"]["ELECTRONIC_TEMPERATURE"]) == (0.05, 240, 1500)
    report = base_workchain.handle_scf_not_converged(failed(code, aiida_localhost))
    assert report.exit_code.status == Cp2kLabelBaseWorkChain.exit_codes.ERROR_SCF_NOT_CONVERGED.status


def test_walltime_handler_doubles_the_time_once(base_workchain, aiida_localhost):
    code = Cp2kCalculation.exit_codes.ERROR_OUT_OF_WALLTIME
    before = base_workchain.ctx.inputs.metadata["options"]["max_wallclock_seconds"]
    assert base_workchain.handle_out_of_walltime(failed(code, aiida_localhost)).exit_code.status == 0
    assert base_workchain.ctx.inputs.metadata["options"]["max_wallclock_seconds"] == 2 * before
    report = base_workchain.handle_out_of_walltime(failed(code, aiida_localhost))
    assert report.exit_code.status == Cp2kLabelBaseWorkChain.exit_codes.ERROR_WALLTIME_EXHAUSTED.status


def test_protocols_exist():
    for name in ("fast", "balanced", "precise"):
        assert load_protocol("cp2k", name)["settings"]["functional"] == "PBESOL"
    assert pathlib.Path("/usr/share/cp2k/BASIS_MOLOPT").is_file()


def test_a_single_kpoint_uses_the_gamma_only_code(aiida_localhost):
    code = orm.InstalledCode(
        label="cp2k-k",
        computer=aiida_localhost,
        filepath_executable="/usr/bin/cp2k.psmp",
        default_calc_job_plugin="cp2k",
    ).store()
    structure = orm.StructureData(ase=cubic_batio3())
    mesh = Cp2kLabelBaseWorkChain.get_builder_from_protocol(code, structure, "fast")
    assert mesh.cp2k.kpoints.get_kpoints_mesh()[0] == [2, 2, 2]
    gamma = Cp2kLabelBaseWorkChain.get_builder_from_protocol(
        code, structure, "fast", {"settings": {"kpoint_spacing": 5.0}}
    )
    assert "kpoints" not in gamma.cp2k
