"""The ABACUS engine through aiida-abacus's real AbacusCalculation and AbacusParser, with a mock ``abacus`` that
writes ABACUS-format outputs of a known analytic model (ABACUS is not installable here)."""

from __future__ import annotations

import re
import subprocess
import sys

import numpy as np
import pytest
from aiida import orm
from aiida.engine import run_get_node

from aiida_perovskite.engines import get_engine
from aiida_perovskite.workflows.label import LabelWorkChain
from tests.engines.test_vasp_engine import distorted_batio3, interleaved_solid_solution
from tests.helpers import cubic_batio3
from tests.mock_engines import REPOSITORY, mock_code
from tests.mock_engines.pseudos import write_fake_orbital, write_fake_upf
from tests.mock_engines.reference import reference_labels, reference_virial

pytest.importorskip("aiida_abacus", reason="aiida-abacus is not installed (pip install 'aiida-perovskite[abacus]')")

FAMILY = "MOCK-SG15-DZP"
VALENCE = {"Ba": 10.0, "Ca": 10.0, "Ti": 12.0, "O": 6.0}
FAST = {"orbital_family": FAMILY}


@pytest.fixture
def orbital_family(aiida_profile, tmp_path):
    from aiida_abacus.data.orbital import AtomicOrbitalData
    from aiida_abacus.group.orb_group import AtomicOrbitalFamily

    if AtomicOrbitalFamily.collection.find(filters={"label": FAMILY}):
        return FAMILY
    nodes = []
    for element, zval in VALENCE.items():
        node = AtomicOrbitalData(write_fake_upf(tmp_path, element, zval), write_fake_orbital(tmp_path, element))
        nodes.append(node.store())
    family = AtomicOrbitalFamily(label=FAMILY).store()
    family.add_nodes(nodes)
    return FAMILY


@pytest.fixture
def mock_abacus(aiida_localhost, tmp_path):
    return mock_code(aiida_localhost, tmp_path, "abacus")


def label_builder(code, structures, protocol="fast", overrides=FAST):
    builder = LabelWorkChain.get_builder()
    builder.engine = orm.Str("abacus")
    builder.code = code
    builder.protocol = orm.Str(protocol)
    builder.overrides = orm.Dict(overrides)
    builder.structures = {name: orm.StructureData(ase=atoms) for name, atoms in structures.items()}
    return builder


def test_builder_follows_the_unipero_protocol(orbital_family, mock_abacus):
    builder = get_engine("abacus").get_builder(mock_abacus, orm.StructureData(ase=cubic_batio3()), None, FAST)
    parameters = builder.abacus.parameters["input"]
    assert (parameters["basis_type"], parameters["dft_functional"], parameters["ecutwfc"]) == ("lcao", "pbesol", 100)
    assert (parameters["scf_thr"], parameters["smearing_method"], parameters["smearing_sigma"]) == (
        1e-7,
        "gaussian",
        0.003,
    )
    assert (parameters["mixing_type"], parameters["mixing_beta"]) == ("pulay", 0.6)
    assert (parameters["cal_force"], parameters["cal_stress"]) == (1, 1)
    # 0.1 1/Bohr with 2π included: a 4 Å (7.56 Bohr) cell needs ceil(2π / 7.559 / 0.1) = 9 points
    assert builder.kpoints.get_kpoints_mesh()[0] == [9, 9, 9]
    assert {kind: pseudo.element for kind, pseudo in builder.abacus.pseudos.items()} == {
        "Ba": "Ba",
        "Ti": "Ti",
        "O": "O",
    }


def test_mock_log_is_read_by_dpdata(tmp_path):
    """The mock writes a real ABACUS layout: dpdata's abacus/scf reader (INPUT, STRU, OUT.*/running_scf.log)
    gets the model's labels back."""
    import dpdata

    atoms = distorted_batio3()
    dpdata.System(atoms, fmt="ase/structure").to(
        "abacus/stru", tmp_path / "STRU", pp_file=["Ba.upf", "Ti.upf", "O.upf"]
    )
    (tmp_path / "INPUT").write_text("INPUT_PARAMETERS\ncalculation scf\nsuffix aiida\npseudo_dir ./\n")
    (tmp_path / "KPT").write_text("K_POINTS\n0\nGamma\n2 2 2 0 0 0\n")
    for element in ("Ba", "Ti", "O"):
        (tmp_path / f"{element}.upf").write_text("mock")
    subprocess.run(
        [sys.executable, "-m", "tests.mock_engines.abacus"],
        cwd=tmp_path,
        env={"PYTHONPATH": str(REPOSITORY)},
        check=True,
        capture_output=True,
    )
    system = dpdata.LabeledSystem(str(tmp_path), fmt="abacus/scf")
    energy, forces, _ = reference_labels(atoms)
    assert system["energies"][0] == pytest.approx(energy, abs=1e-8)
    np.testing.assert_allclose(system["forces"][0], forces, atol=1e-9)
    np.testing.assert_allclose(system["virials"][0], reference_virial(atoms), atol=1e-8)


def test_an_element_outside_the_orbital_family_is_rejected_at_submission(orbital_family, mock_abacus):
    structure = cubic_batio3()
    structure.symbols[0] = "Sr"
    with pytest.raises(
        ValueError, match=re.escape(f"orbital family {FAMILY!r} has no pseudopotential/orbital pair for Sr")
    ):
        run_get_node(label_builder(mock_abacus, {"sto": structure}))


def test_a_missing_orbital_family_is_rejected_at_submission(orbital_family, mock_abacus):
    with pytest.raises(ValueError, match="orbital family 'SG15-DZP' is not in the database"):
        run_get_node(label_builder(mock_abacus, {"bto": cubic_batio3()}, overrides={}))


def test_label_workchain_returns_the_model_labels_in_deepmd_units(orbital_family, mock_abacus):
    structures = {"bto": distorted_batio3(), "bcto": interleaved_solid_solution()}
    _, node = run_get_node(label_builder(mock_abacus, structures))
    assert node.is_finished_ok, (node.exit_status, node.exit_message)
    assert node.outputs.failures.get_dict() == {}
    frames_by_size = {len(frames.atom_types): frames for _, frames in node.outputs.training_set.iter_frames()}
    for atoms in structures.values():
        frames = frames_by_size[len(atoms)]
        energy, forces, _ = reference_labels(atoms)
        assert [frames.type_map[t] for t in frames.atom_types] == atoms.get_chemical_symbols()
        assert frames.energies[0] == pytest.approx(energy, abs=1e-9)
        np.testing.assert_allclose(frames.forces[0], forces, atol=1e-9)  # STRU groups species: put back in order
        np.testing.assert_allclose(frames.virials[0], reference_virial(atoms), atol=1e-8)  # KBAR -> eV
    calcs = [n for n in node.called_descendants if isinstance(n, orm.CalcJobNode)]
    assert len(calcs) == 2 and all(calc.is_finished_ok for calc in calcs)
    assert all(calc.base.extras.get("stage", None) == "label" for calc in calcs)


def test_unconverged_scf_is_restarted_with_gentler_mixing(orbital_family, mock_abacus, tmp_path):
    flag = tmp_path / "unconverged-once"
    engine = get_engine("abacus")
    structure = orm.StructureData(ase=distorted_batio3())
    builder = engine.get_builder(
        mock_abacus, structure, "fast", FAST, {"environment_variables": {"MOCK_ABACUS_UNCONVERGED": str(flag)}}
    )
    _, node = run_get_node(builder)
    assert node.is_finished_ok, (node.exit_status, node.exit_message)
    first, second = sorted((n for n in node.called if isinstance(n, orm.CalcJobNode)), key=lambda n: n.ctime)
    assert first.is_finished_ok  # aiida-abacus's parser does not notice: the handler reads the log
    assert (second.inputs.parameters["input"]["mixing_beta"], second.inputs.parameters["input"]["scf_nmax"]) == (
        0.3,
        200,
    )
    frame = engine.frame(structure, misc=node.outputs.misc)
    assert frame.energies[0] == pytest.approx(reference_labels(distorted_batio3())[0], abs=1e-9)


def test_scf_that_never_converges_ends_with_an_exit_code_and_is_reported(orbital_family, mock_abacus, tmp_path):
    never = tmp_path / "never"
    never.mkdir()
    # a fresh flag file per run: every attempt is unconverged
    prelude = f"export MOCK_ABACUS_UNCONVERGED={never}/$$"
    code = mock_code(mock_abacus.computer, tmp_path, "abacus", prelude, "abacus-never")
    builder = label_builder(code, {"bto": distorted_batio3()})
    builder.tolerated_failed_fraction = orm.Float(0.0)
    _, node = run_get_node(builder)
    assert node.exit_status == LabelWorkChain.exit_codes.ERROR_TOO_MANY_FAILURES.status
    failure = node.outputs.failures["bto"]
    abacus_workchain = orm.load_node(failure["pk"])
    assert failure["exit_status"] == abacus_workchain.process_class.exit_codes.ERROR_SCF_NOT_CONVERGED.status
    assert len([n for n in abacus_workchain.called if isinstance(n, orm.CalcJobNode)]) == 3  # first run + 2 remedies


@pytest.mark.daemon
def test_relabel_recovers_a_frame_the_scf_remedies_could_not(daemon, orbital_family, mock_abacus, tmp_path):
    """Frames fail unless INPUT asks for scf_nmax 500; relabel re-runs them with that override."""
    from aiida.engine import submit

    from aiida_perovskite.workflows.relabel import relabel
    from tests.conftest import await_process

    runs = tmp_path / "runs"
    runs.mkdir()
    prelude = f"grep -q '^scf_nmax  *500$' INPUT || export MOCK_ABACUS_UNCONVERGED={runs}/$$"
    code = mock_code(mock_abacus.computer, tmp_path, "abacus", prelude, "abacus-500")
    structures = {"bto": distorted_batio3(), "bcto": interleaved_solid_solution()}
    builder = label_builder(code, structures)
    builder.tolerated_failed_fraction = orm.Float(1.0)
    node = await_process(submit(builder), timeout=600)
    assert node.is_finished_ok and "training_set" not in node.outputs
    assert sorted(node.outputs.failures.get_dict()) == ["bcto", "bto"]

    merged, still_failed = relabel(node, overrides={"abacus": {"parameters": {"input": {"scf_nmax": 500}}}})
    assert still_failed == {}
    assert merged.nframes == 2
    for _, frames in merged.iter_frames():
        (atoms,) = [a for a in structures.values() if len(a) == len(frames.atom_types)]
        np.testing.assert_allclose(frames.forces[0], reference_labels(atoms)[1], atol=1e-9)
