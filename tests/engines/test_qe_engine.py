"""The Quantum ESPRESSO engine with the real pw.x (Debian's quantum-espresso) through aiida-quantumespresso's
PwBaseWorkChain and PwParser, on PbTiO3 with the LDA ultrasoft pseudopotentials Debian ships (no Ba there).

The labels are checked against pw.x itself: a force against a central difference of energies, and the virial
against a central difference under a traceless strain (the isotropic Pulay stress of a finite basis cancels).
"""

from __future__ import annotations

import pathlib
import shutil

import numpy as np
import pytest
from aiida import orm
from aiida.engine import run_get_node
from ase import Atoms

from aiida_perovskite.engines import get_engine
from aiida_perovskite.workflows.label import LabelWorkChain
from tests.conftest import executable

pytest.importorskip(
    "aiida_quantumespresso", reason="aiida-quantumespresso is not installed (pip install 'aiida-perovskite[qe]')"
)

DEBIAN_PSEUDOS = pathlib.Path("/usr/share/espresso/pseudo")
PSEUDOS = {"Pb": "Pb.pz-d-van.UPF", "Ti": "Ti.pz-sp-van_ak.UPF", "O": "O.pz-van_ak.UPF"}
FAMILY = "Debian-LDA-US"
TEST = {"pseudo_family": FAMILY, "ecutwfc": 30, "ecutrho": 240}
OPTIONS = {"environment_variables": {"OMP_NUM_THREADS": "1"}}
STEP = 0.01  # Å, displacement of Ti for the force check
STRAIN = 0.004  # traceless strain (-δ/2, -δ/2, +δ) for the virial check


def tetragonal_pbtio3(dz_ti: float = 0.0, strain: float = 0.0) -> Atoms:
    atoms = Atoms(
        "PbTiO3",
        positions=[[0, 0, 0], [1.95, 1.95, 2.30 + dz_ti], [1.95, 1.95, 0.05], [1.95, 0, 2.05], [0, 1.95, 2.05]],
        cell=np.diag([3.90, 3.90, 4.10]),
        pbc=True,
    )
    atoms.positions[1, 0] += 0.03  # off the symmetric site: a non-zero x force too
    deformation = np.diag([1 - strain / 2, 1 - strain / 2, 1 + strain])
    atoms.set_cell(atoms.cell[:] @ deformation, scale_atoms=True)
    return atoms


@pytest.fixture
def lda_family(aiida_profile, tmp_path):
    from aiida_pseudo.data.pseudo import UpfData
    from aiida_pseudo.groups.family import PseudoPotentialFamily

    if not all((DEBIAN_PSEUDOS / name).is_file() for name in PSEUDOS.values()):
        pytest.skip(f"the pseudopotentials of Debian's quantum-espresso-data are not in {DEBIAN_PSEUDOS}")
    if PseudoPotentialFamily.collection.find(filters={"label": FAMILY}):
        return FAMILY
    folder = tmp_path / "pseudos"
    folder.mkdir()
    for name in PSEUDOS.values():
        shutil.copy(DEBIAN_PSEUDOS / name, folder / name)
    PseudoPotentialFamily.create_from_folder(folder, FAMILY, pseudo_type=UpfData)
    return FAMILY


@pytest.fixture
def pw_code(aiida_localhost):
    return orm.InstalledCode(
        label="pw",
        computer=aiida_localhost,
        filepath_executable=str(executable("pw.x")),
        default_calc_job_plugin="quantumespresso.pw",
    ).store()


def label(code, structures: dict[str, Atoms], overrides=TEST):
    builder = LabelWorkChain.get_builder()
    builder.engine = orm.Str("qe")
    builder.code = code
    builder.protocol = orm.Str("fast")
    builder.overrides = orm.Dict(overrides)
    builder.options = OPTIONS
    builder.max_concurrent = orm.Int(2)
    builder.structures = {name: orm.StructureData(ase=atoms) for name, atoms in structures.items()}
    return run_get_node(builder)[1]


def test_builder_takes_the_protocol_and_the_family(lda_family, pw_code):
    builder = get_engine("qe").get_builder(pw_code, orm.StructureData(ase=tetragonal_pbtio3()), None, TEST)
    parameters = builder.pw.parameters.get_dict()
    assert parameters["CONTROL"] == {"calculation": "scf", "tprnfor": True, "tstress": True}
    assert (parameters["SYSTEM"]["ecutwfc"], parameters["SYSTEM"]["ecutrho"]) == (30.0, 240.0)
    assert parameters["ELECTRONS"]["conv_thr"] == pytest.approx(5 * 2.0e-10)
    # 0.2 1/Å with 2π included: a = 3.9 Å needs ceil(2π / 3.9 / 0.2) = 9 points, c = 4.1 Å needs 8
    assert builder.kpoints.get_kpoints_mesh()[0] == [9, 9, 8]
    assert {kind: pseudo.filename for kind, pseudo in builder.pw.pseudos.items()} == PSEUDOS


def test_missing_family_cutoffs_and_elements_are_rejected_at_submission(lda_family, pw_code):
    engine = get_engine("qe")
    assert "is not in the database" in engine.check_elements({"Pb", "Ti", "O"}, "fast", {"pseudo_family": "nope"})
    assert "recommends no cutoffs" in engine.check_elements({"Pb", "Ti", "O"}, "fast", {"pseudo_family": FAMILY})
    with pytest.raises(ValueError, match="Ba"):
        atoms = tetragonal_pbtio3()
        atoms.symbols[0] = "Ba"
        label(pw_code, {"bto": atoms})


@pytest.mark.slow
def test_real_pw_labels_agree_with_finite_differences_of_its_energies(lda_family, pw_code):
    structures = {
        "centre": tetragonal_pbtio3(),
        "ti_plus": tetragonal_pbtio3(dz_ti=+STEP),
        "ti_minus": tetragonal_pbtio3(dz_ti=-STEP),
        "strain_plus": tetragonal_pbtio3(strain=+STRAIN),
        "strain_minus": tetragonal_pbtio3(strain=-STRAIN),
    }
    node = label(pw_code, structures, overrides={**TEST, "kpoint_spacing": 0.85})  # a 2x2x2 mesh: ~10 s a frame
    assert node.is_finished_ok, (node.exit_status, node.exit_message)
    (frames,) = [frames for _, frames in node.outputs.training_set.iter_frames()]
    order = sorted(structures)
    energy = dict(zip(order, frames.energies, strict=True))
    centre = order.index("centre")

    force_fd = -(energy["ti_plus"] - energy["ti_minus"]) / (2 * STEP)
    assert frames.forces[centre, 1, 2] == pytest.approx(force_fd, abs=0.01), (frames.forces[centre, 1], force_fd)
    assert abs(force_fd) > 0.5  # eV/Å: a real force
    assert np.abs(frames.forces[centre].sum(axis=0)).max() < 0.02

    # virial W = -dE/dε; for ε = (-δ/2, -δ/2, δ): -dE/dδ = W_zz - (W_xx + W_yy) / 2
    virial = frames.virials[centre]
    from_stress = virial[2, 2] - (virial[0, 0] + virial[1, 1]) / 2
    from_energies = -(energy["strain_plus"] - energy["strain_minus"]) / (2 * STRAIN)
    assert from_stress == pytest.approx(from_energies, rel=0.1), (from_stress, from_energies)
    assert abs(from_energies) > 0.5  # eV: a real anisotropic stress
    assert np.allclose(frames.coords[centre], structures["centre"].positions)
