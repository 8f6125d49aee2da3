"""The VASP engine through aiida-vasp's real VaspWorkChain, VaspCalculation and VaspParser, with a mock ``vasp``
that writes VASP-format outputs of a known analytic model (VASP itself is licensed and not installable here)."""

from __future__ import annotations

import re
import subprocess
import sys

import numpy as np
import pytest
from aiida import orm
from aiida.engine import run_get_node
from ase import Atoms
from ase.io import read, write

from aiida_perovskite.engines import get_engine
from aiida_perovskite.engines.atom_order import species_grouped_order, ungrouped
from aiida_perovskite.workflows.label import LabelWorkChain
from tests.helpers import cubic_batio3
from tests.mock_engines import REPOSITORY, mock_code
from tests.mock_engines.potcars import write_fake_potcars
from tests.mock_engines.reference import reference_labels, reference_virial

pytest.importorskip("aiida_vasp", reason="aiida-vasp is not installed (pip install 'aiida-perovskite[vasp]')")

FAMILY = "MOCK.PBE"
POTCARS = {"Ba_sv": 10.0, "Ca_sv": 10.0, "Ti_sv": 12.0, "O": 6.0}
FAST = {"potential_family": FAMILY}


def distorted_batio3(seed: int = 0) -> Atoms:
    atoms = cubic_batio3()
    rng = np.random.default_rng(seed)
    atoms.set_cell(atoms.cell[:] @ (np.eye(3) + rng.uniform(-0.02, 0.02, (3, 3))), scale_atoms=True)
    atoms.positions += rng.normal(0, 0.08, atoms.positions.shape)
    return atoms


def interleaved_solid_solution() -> Atoms:
    """Ba, Ti, Ca, Ti, O...: the A cations are not contiguous, so VASP's POSCAR must regroup the atoms."""
    atoms = distorted_batio3(seed=3).repeat((2, 1, 1))[[0, 1, 5, 6, 2, 3, 4, 7, 8, 9]]
    atoms.symbols[2] = "Ca"
    return atoms


@pytest.fixture
def potcar_family(aiida_profile, tmp_path):
    from aiida_vasp.data.potcar import PotcarData, PotcarGroup

    if not PotcarGroup.collection.find(filters={"label": FAMILY}):
        PotcarData.upload_potcar_family(write_fake_potcars(tmp_path / "potpaw", POTCARS), FAMILY, "mock POTCARs")
    return FAMILY


@pytest.fixture
def mock_vasp(aiida_localhost, tmp_path):
    return mock_code(aiida_localhost, tmp_path, "vasp")


def test_species_grouped_order_groups_by_first_appearance_and_is_undone_by_indexing():
    symbols = ["Ba", "Ca", "Ba", "Ti", "O", "Ca", "O"]
    order = species_grouped_order(symbols)
    assert [symbols[i] for i in order] == ["Ba", "Ba", "Ca", "Ca", "Ti", "O", "O"]
    restored = ungrouped(np.arange(len(symbols))[order], symbols)
    assert restored.tolist() == list(range(len(symbols)))


def test_mock_outputs_are_read_by_ase_and_dpdata(tmp_path):
    """The mock's files are real VASP formats: ASE (vasprun.xml, OUTCAR) and dpdata (OUTCAR) read the model's
    labels back."""
    import dpdata

    atoms = distorted_batio3()
    write(tmp_path / "POSCAR", atoms, format="vasp", direct=True)
    (tmp_path / "INCAR").write_text("ENCUT = 400\nNELM = 60\nIBRION = -1\nNSW = 0\nISIF = 2\n")
    (tmp_path / "KPOINTS").write_text("mesh\n0\nGamma\n2 2 2\n0 0 0\n")
    write_fake_potcars(tmp_path / "potpaw", {"Ba_sv": 10.0})
    (tmp_path / "POTCAR").write_text((tmp_path / "potpaw/Ba_sv/POTCAR").read_text())
    subprocess.run(
        [sys.executable, "-m", "tests.mock_engines.vasp"],
        cwd=tmp_path,
        env={"PYTHONPATH": str(REPOSITORY)},
        check=True,
        capture_output=True,
    )
    energy, forces, stress = reference_labels(atoms)
    for name, force_digits in (("vasprun.xml", 1e-7), ("OUTCAR", 1e-6)):
        parsed = read(tmp_path / name)
        assert parsed.get_potential_energy(force_consistent=True) == pytest.approx(energy, abs=1e-7)
        np.testing.assert_allclose(parsed.get_forces(), forces, atol=force_digits)
        np.testing.assert_allclose(parsed.get_stress(voigt=False), stress, atol=1e-8)
    system = dpdata.LabeledSystem(str(tmp_path / "OUTCAR"), fmt="vasp/outcar")
    assert system["energies"][0] == pytest.approx(energy, abs=1e-7)
    # dpdata rotates the cell to lower-triangular form: compare rotation invariants
    np.testing.assert_allclose(np.linalg.norm(system["forces"][0], axis=1), np.linalg.norm(forces, axis=1), atol=1e-5)
    np.testing.assert_allclose(
        np.linalg.eigvalsh(system["virials"][0]), np.linalg.eigvalsh(reference_virial(atoms)), atol=1e-5
    )


def test_builder_follows_the_bcts_protocol(potcar_family, mock_vasp):
    builder = get_engine("vasp").get_builder(mock_vasp, orm.StructureData(ase=cubic_batio3()), None, FAST, None)
    incar = builder.parameters["incar"]
    assert (incar["encut"], incar["ediff"], incar["isif"], incar["nsw"]) == (600, 1.0e-4, 2, 0)
    # k-spacing 0.2 1/Å with 2π included (VASP's KSPACING): a 4 Å cell needs ceil(2π / 4 / 0.2) = 8 points
    assert builder.kpoints.get_kpoints_mesh()[0] == [8, 8, 8]
    assert builder.potential_mapping.get_dict() == {"Ba": "Ba_sv", "Ti": "Ti_sv", "O": "O"}
    assert builder.settings["parser_settings"]["energy_type"] == ["energy_free"]


def test_an_element_without_a_mapped_potcar_is_named():
    error = get_engine("vasp").check_elements({"Ba", "Ti", "O", "Xe"}, "fast", FAST)
    assert "no POTCAR is mapped for Xe" in error


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"potential_family": "PBE.missing"}, "POTCAR family 'PBE.missing' is not in the database"),
        ({"potential_family": FAMILY, "potential_mapping": {"Ti": "Ti_pv"}}, "has no Ti_pv"),
    ],
)
def test_missing_potentials_are_rejected_at_submission(potcar_family, mock_vasp, overrides, message):
    builder = LabelWorkChain.get_builder()
    builder.engine = orm.Str("vasp")
    builder.code = mock_vasp
    builder.structures = {"bto": orm.StructureData(ase=cubic_batio3())}
    builder.overrides = orm.Dict(overrides)
    with pytest.raises(ValueError, match=message):
        run_get_node(builder)


def test_a_cp2k_code_is_rejected_for_the_vasp_engine(potcar_family, aiida_localhost):
    code = orm.InstalledCode(
        label="cp2k-not-vasp",
        computer=aiida_localhost,
        filepath_executable="/usr/bin/true",
        default_calc_job_plugin="cp2k",
    ).store()
    builder = LabelWorkChain.get_builder()
    builder.engine = orm.Str("vasp")
    builder.code = code
    builder.structures = {"bto": orm.StructureData(ase=cubic_batio3())}
    builder.overrides = orm.Dict(FAST)
    with pytest.raises(ValueError, match=re.escape("engine 'vasp' needs a code for 'vasp.vasp'")):
        run_get_node(builder)


def test_label_workchain_returns_the_model_labels_in_deepmd_units(potcar_family, mock_vasp):
    structures = {"bto": distorted_batio3(), "bcto": interleaved_solid_solution()}
    builder = LabelWorkChain.get_builder()
    builder.engine = orm.Str("vasp")
    builder.code = mock_vasp
    builder.protocol = orm.Str("fast")
    builder.overrides = orm.Dict(FAST)
    builder.structures = {name: orm.StructureData(ase=atoms) for name, atoms in structures.items()}
    _, node = run_get_node(builder)
    assert node.is_finished_ok, (node.exit_status, node.exit_message)
    assert node.outputs.failures.get_dict() == {}

    frames_by_formula = {len(frames.atom_types): frames for _, frames in node.outputs.training_set.iter_frames()}
    for atoms in structures.values():
        frames = frames_by_formula[len(atoms)]
        energy, forces, _ = reference_labels(atoms)
        assert [frames.type_map[t] for t in frames.atom_types] == atoms.get_chemical_symbols()
        assert frames.energies[0] == pytest.approx(energy, abs=1e-7)  # the free energy (TOTEN), not E(sigma->0)
        np.testing.assert_allclose(frames.forces[0], forces, atol=1e-7)  # back in the input's atom order
        np.testing.assert_allclose(frames.virials[0], reference_virial(atoms), atol=1e-6)  # kbar -> eV
        np.testing.assert_allclose(frames.coords[0], atoms.positions)

    calcs = [n for n in node.called_descendants if isinstance(n, orm.CalcJobNode)]
    assert len(calcs) == 2 and all(calc.is_finished_ok for calc in calcs)
    (solid_solution,) = [calc for calc in calcs if len(calc.inputs.structure.sites) == 10]
    poscar_species = solid_solution.inputs.structure.get_ase().get_chemical_symbols()
    assert poscar_species == ["Ba", "Ti", "Ti", "Ca", *["O"] * 6]  # grouped by species for POSCAR and POTCAR
    assert all(calc.base.extras.get("stage", None) == "label" for calc in calcs)  # tags reach the CalcJobs


def test_electronic_non_convergence_is_restarted_by_aiida_vasp_handlers(potcar_family, mock_vasp, tmp_path):
    flag = tmp_path / "unconverged-once"
    builder = get_engine("vasp").get_builder(
        mock_vasp,
        orm.StructureData(ase=distorted_batio3()),
        "fast",
        FAST,
        {"environment_variables": {"MOCK_VASP_UNCONVERGED": str(flag)}},
    )
    _, node = run_get_node(builder)
    assert node.is_finished_ok, (node.exit_status, node.exit_message)
    first, second = sorted(node.called, key=lambda n: n.ctime)
    assert flag.exists()
    assert not first.outputs.misc["run_status"]["electronic_converged"]
    assert second.outputs.misc["run_status"]["electronic_converged"]
    # aiida-vasp's handler_electronic_conv: gentler mixing and more electronic steps
    assert "amix" not in first.inputs.parameters.get_dict()
    assert (second.inputs.parameters["amix"], second.inputs.parameters["nelm"]) == (0.2, 140)
    energy, _, _ = reference_labels(distorted_batio3())
    frame = get_engine("vasp").frame(builder.structure, misc=node.outputs.misc)
    assert frame.energies[0] == pytest.approx(energy, abs=1e-7)
