"""Real CP2K through a live daemon: labels and a finite-difference check, SCF-failure recovery, failed
frames reported and recovered by relabel."""

from __future__ import annotations

import pathlib
import stat

import numpy as np
import pytest
from aiida import orm
from aiida.common.links import LinkType
from aiida.engine import submit

from aiida_perovskite.engines.cp2k.workchain import Cp2kLabelBaseWorkChain
from aiida_perovskite.workflows.label import LabelWorkChain
from aiida_perovskite.workflows.relabel import failed_frames, relabel
from tests.conftest import await_process, executable
from tests.helpers import cubic_batio3

pytestmark = [pytest.mark.slow, pytest.mark.daemon]

# Coarse but self-consistent settings: the checks compare CP2K with itself, not with experiment. A 2x2x2 mesh,
# not Gamma only: at one k-point the 5-atom cell is far from converged (a Ti force of ~18 eV/Å for a 0.08 Å
# shift), and the error of the central difference then exceeds the tolerance (0.03 eV/Å measured).
TEST_SETTINGS = {"settings": {"cutoff": 300, "rel_cutoff": 30, "kpoint_spacing": 0.8, "eps_scf": 1.0e-7}}
OPTIONS = {"environment_variables": {"OMP_NUM_THREADS": "1"}}
STEP = 0.01  # Å, finite-difference displacement
STRAIN = 0.01  # traceless strain (δ, -δ/2, -δ/2) for the virial check

SCF_ABORT = """\
 *** SCF run NOT converged ***

 *******************************************************************************
 *   ___                                                                       *
 *  /   \\                                                                      *
 * [ABORT]                                                                     *
 *  \\___/     SCF run NOT converged. To continue the calculation regardless,   *
 *    |                please set the keyword IGNORE_CONVERGENCE_FAILURE.      *
 *  O/|                                                                        *
 * /| |                                                                        *
 * / \\                                                           qs_scf.F:611 *
 *******************************************************************************
"""


def wrapper(directory: pathlib.Path, name: str, fail_when: str) -> pathlib.Path:
    """A stand-in for cp2k.psmp that prints CP2K's own SCF abort when ``fail_when`` (bash) is true and
    otherwise runs the real CP2K."""
    script = directory / name
    script.write_text(
        "#!/bin/bash\n"
        f"if {fail_when}; then\n  cat <<'EOF'\n{SCF_ABORT}EOF\n  exit 1\nfi\n"
        f'exec {executable("cp2k.psmp")} "$@"\n'
    )
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    return script


def cp2k_code(computer, path, label) -> orm.InstalledCode:
    return orm.InstalledCode(
        label=label, computer=computer, filepath_executable=str(path), default_calc_job_plugin="cp2k"
    ).store()


def off_centre(dx: float = 0.0, a: float = 4.0, strain: float = 0.0) -> orm.StructureData:
    atoms = cubic_batio3(a=a)
    atoms.positions[1] += [0.08 + dx, 0.03, 0.05]  # Ti off centre: non-zero forces
    atoms.set_cell(atoms.cell[:] @ np.diag([1 + strain, 1 - strain / 2, 1 - strain / 2]), scale_atoms=True)
    return orm.StructureData(ase=atoms)


def label(code, structures, **inputs):
    builder = LabelWorkChain.get_builder()
    builder.code = code
    builder.structures = structures
    builder.protocol = orm.Str("fast")
    builder.overrides = orm.Dict(TEST_SETTINGS)
    builder.options = OPTIONS
    for key, value in inputs.items():
        setattr(builder, key, value)
    return submit(builder)


def test_forces_and_virial_agree_with_finite_differences_of_cp2k_energies(daemon, aiida_localhost):
    code = cp2k_code(aiida_localhost, executable("cp2k.psmp"), "cp2k-real")
    structures = {"centre": off_centre(), "plus": off_centre(+STEP), "minus": off_centre(-STEP)}
    structures |= {"strained": off_centre(strain=+STRAIN), "compressed": off_centre(strain=-STRAIN)}
    node = await_process(label(code, structures, max_concurrent=orm.Int(2)), timeout=1800)
    assert node.is_finished_ok, (node.exit_status, node.exit_message, node.exception)
    assert node.outputs.failures.get_dict() == {}
    data = node.outputs.training_set
    assert data.nframes == 5
    (frames,) = [frames for _, frames in data.iter_frames()]
    assert frames.virials is not None and np.all(np.isfinite(frames.virials))
    assert np.abs(frames.forces.sum(axis=1)).max() < 0.1  # eV/Å; the grid breaks translation invariance a little

    order = sorted(structures)  # frames are stored in name order
    energy = dict(zip(order, frames.energies, strict=True))
    force_ti_x = frames.forces[order.index("centre"), 1, 0]
    finite_difference = -(energy["plus"] - energy["minus"]) / (2 * STEP)
    assert force_ti_x == pytest.approx(finite_difference, abs=5e-3), (force_ti_x, finite_difference)
    assert abs(force_ti_x) > 0.05  # a real force, not zero against zero

    # virial W = -dE/dε; for ε = (δ, -δ/2, -δ/2): -dE/dδ = W_xx - (W_yy + W_zz) / 2 (the sign and the
    # GPa x volume conversion of the printed stress tensor, independent of any isotropic basis-set error)
    virial = frames.virials[order.index("centre")]
    from_stress = virial[0, 0] - (virial[1, 1] + virial[2, 2]) / 2
    from_energies = -(energy["strained"] - energy["compressed"]) / (2 * STRAIN)
    assert from_stress == pytest.approx(from_energies, rel=0.1, abs=0.01), (from_stress, from_energies)
    assert abs(from_energies) > 0.05  # eV: a real anisotropic stress

    jobs = [child for child in node.called if child.base.extras.get("stage", None) == "label"]
    assert sorted(name for job in jobs for name in job.base.extras.get("frames")) == order


def test_scf_failure_is_recovered_with_gentler_mixing(daemon, aiida_localhost, tmp_path):
    marker = tmp_path / "failed-once"
    fake = wrapper(tmp_path, "cp2k-fail-once", f"[ ! -e {marker} ] && touch {marker}")
    builder = Cp2kLabelBaseWorkChain.get_builder_from_protocol(
        cp2k_code(aiida_localhost, fake, "cp2k-fail-once"),
        off_centre(),
        "fast",
        {**TEST_SETTINGS, **{"metadata": {"options": OPTIONS}}},
    )
    node = await_process(submit(builder), timeout=1200)
    assert node.is_finished_ok, (node.exit_status, node.exit_message)
    first, second = sorted(node.called, key=lambda n: n.ctime)
    assert first.exit_status == first.process_class.exit_codes.ERROR_SCF_NOT_CONVERGED.status
    assert second.is_finished_ok
    assert second.inputs.parameters["FORCE_EVAL"]["DFT"]["SCF"]["MIXING"]["ALPHA"] == 0.1
    assert second.inputs.parameters["FORCE_EVAL"]["DFT"]["SCF"]["MAX_SCF"] == 160


def test_failures_above_tolerance_are_reported_and_relabel_recovers_them(daemon, aiida_localhost, tmp_path):
    # frames in a 4.05 Å cell "fail to converge" unless the input asks for MAX_SCF 200
    fake = wrapper(tmp_path, "cp2k-fail-cell", "grep -q '^ *A 4.05 ' aiida.inp && ! grep -q 'MAX_SCF 200$' aiida.inp")
    code = cp2k_code(aiida_localhost, fake, "cp2k-fail-cell")
    structures = {f"good_{i}": off_centre(0.01 * i) for i in range(3)}
    structures |= {f"hard_{i}": off_centre(0.01 * i, a=4.05) for i in range(2)}
    node = await_process(label(code, structures, tolerated_failed_fraction=orm.Float(0.2)), timeout=2400)
    assert node.exit_status == LabelWorkChain.exit_codes.ERROR_TOO_MANY_FAILURES.status
    assert "2 of 5 frames failed" in node.exit_message
    failures = node.outputs.failures.get_dict()
    assert sorted(failures) == ["hard_0", "hard_1"]
    assert all(
        f["exit_status"] == Cp2kLabelBaseWorkChain.exit_codes.ERROR_SCF_NOT_CONVERGED.status for f in failures.values()
    )
    assert node.outputs.training_set.nframes == 3
    assert sorted(failed_frames(node)) == ["hard_0", "hard_1"]

    overrides = {"cp2k": {"parameters": {"FORCE_EVAL": {"DFT": {"SCF": {"MAX_SCF": 200}}}}}}
    merged, still_failed = relabel(node, overrides, timeout=1800)
    assert still_failed == {}
    assert merged.nframes == 5
    assert failed_frames(node) == {}
    merge = merged.creator
    assert {link.link_label for link in merge.base.links.get_incoming(link_type=LinkType.INPUT_CALC).all()} == {
        "previous",
        "recovered",
    }
    assert merge.caller.process_label == "RelabelWorkChain"  # the relabel is a process in the graph


def test_init_data_labels_perturbed_batio3(daemon, aiida_localhost):
    from aiida_perovskite.structures import parent_cell
    from aiida_perovskite.workflows.init_data import InitDataWorkChain

    builder = InitDataWorkChain.get_builder()
    builder.structures = {"BaTiO3": orm.StructureData(ase=parent_cell("BaTiO3", "tetragonal"))}
    builder.perturbation = orm.Dict({"count": 2, "cell_strain": 0.02, "atom_displacement": 0.03})
    builder.seed = orm.Int(2026)
    builder.label.code = cp2k_code(aiida_localhost, executable("cp2k.psmp"), "cp2k-init")
    builder.label.protocol = orm.Str("fast")
    builder.label.overrides = orm.Dict(TEST_SETTINGS)
    builder.label.options = OPTIONS
    node = await_process(submit(builder), timeout=1800)
    assert node.is_finished_ok, (node.exit_status, node.exit_message, node.exception)
    data = node.outputs.training_set
    assert data.nframes == 2 and data.type_map == ["Ba", "Ti", "O"]
    (frames,) = [frames for _, frames in data.iter_frames()]
    assert not np.allclose(frames.cells[0], frames.cells[1])  # two different perturbations
    assert np.all(np.isfinite(frames.forces)) and frames.virials is not None
