"""The teacher labeling engine with the real SevenNet checkpoints of the sevenn wheel and real DeePMD models:
identities and refusals, finite-difference checks of forces and virial through the CalcJob, per-frame
failures, the DeePMD path against `dp test`, and an extra teacher added through the entry-point group."""

from __future__ import annotations

import datetime
import json
import pathlib
import re

import numpy as np
import pytest
from aiida import orm
from aiida.engine import run_get_node

from aiida_perovskite.calculations.teacher_label import TeacherLabelCalculation
from aiida_perovskite.engines import get_engine
from aiida_perovskite.engines.teacher import teacher_inputs
from aiida_perovskite.teachers import TeacherError, describe_teacher, file_sha256
from aiida_perovskite.teachers.batch import FrameChecks, label_batch
from aiida_perovskite.workflows.label import LabelWorkChain
from tests.conftest import executable
from tests.helpers import cubic_batio3, script_code

CHECKS = {"min_distance": 0.5, "max_force": 50.0, "max_energy_deviation": 5.0}
MF0 = {"kind": "sevenn", "model": "7net-mf-0", "modal": "R2SCAN"}
TEST_TEACHERS = pathlib.Path(__file__).resolve().parents[1] / "teacher_plugins"


@pytest.fixture
def teacher_code(aiida_localhost):
    return orm.InstalledCode(
        label="teacher",
        computer=aiida_localhost,
        filepath_executable=str(executable("perovskite-teacher")),
        default_calc_job_plugin="perovskite.teacher.label",
    ).store()


def off_centre(shift: float = 0.1, a: float = 4.0):
    """Cubic BaTiO3 with Ti displaced along x: a real, non-zero force on every atom type."""
    atoms = cubic_batio3(a)
    atoms.positions[1, 0] += shift
    return atoms


def label_with_teacher(code, frames: dict, inputs: dict, **settings):
    builder = TeacherLabelCalculation.get_builder()
    builder.code = code
    builder.structures = {name: orm.StructureData(ase=atoms) for name, atoms in frames.items()}
    builder.teacher = inputs["teacher"]
    if "model" in inputs:
        builder.model = inputs["model"]
    builder.settings = orm.Dict({"checks": CHECKS, "threads": 1, **settings})
    builder.metadata.options = {"resources": {"num_machines": 1}, "withmpi": False}
    _, node = run_get_node(builder)
    return node


def frame_labels(node) -> dict[str, tuple[float, np.ndarray, np.ndarray]]:
    labels = node.outputs.labels
    offsets = np.concatenate([[0], np.cumsum(labels.get_array("natoms"))])
    forces = labels.get_array("forces")
    return {
        str(name): (float(energy), forces[offsets[row] : offsets[row + 1]], virial)
        for row, (name, energy, virial) in enumerate(
            zip(labels.get_array("names"), labels.get_array("energies"), labels.get_array("virials"), strict=True)
        )
    }


def test_the_identity_of_a_shipped_checkpoint_names_package_version_file_hash_and_modal():
    import sevenn

    identity = describe_teacher(MF0)
    assert identity["package"] == "sevenn" and identity["version"] == sevenn.__version__
    assert identity["shipped"] and identity["file"] == "checkpoint_sevennet_mf_0.pth"
    shipped = pathlib.Path(sevenn.__file__).parent / "pretrained_potentials" / "SevenNet_MF_0" / identity["file"]
    assert identity["sha256"] == file_sha256(shipped)
    assert identity["modal"] == "R2SCAN" and identity["level_of_theory"].startswith("r2SCAN")
    assert {"Ba", "Ca", "Sn", "Ti", "O", "Pb", "Sr"} <= set(identity["elements"])
    pbe = describe_teacher({**MF0, "modal": "PBE"})
    assert pbe["sha256"] == identity["sha256"] and pbe["level_of_theory"].startswith("PBE")


@pytest.mark.parametrize(
    ("request_", "reason", "message"),
    [
        ({"kind": "sevenn", "model": "7net-omat"}, "download_needed", "would download it at run time, which this"),
        ({"kind": "sevenn", "model": "7net-mf-0"}, "invalid", "give modal, one of R2SCAN, PBE"),
        ({**MF0, "modal": "r2scan"}, "invalid", "got 'r2scan'"),
        ({"kind": "sevenn", "model": "/no/such/checkpoint.pth"}, "checkpoint_missing", "no SevenNet checkpoint file"),
        ({"kind": "sevenn", "model": "7net-0", "modal": "PBE"}, "invalid", "single fidelity: remove modal"),
        ({"kind": "mace", "model": "x"}, "unknown_kind", "installed kinds: deepmd, sevenn"),
        ({**MF0, "device": "cuda"}, "invalid", "unknown key(s) ['device']"),
        ({"kind": "deepmd", "level_of_theory": "PBEsol"}, "checkpoint_missing", "needs its frozen model file"),
    ],
)
def test_teachers_that_cannot_run_here_are_refused_with_the_reason(request_, reason, message):
    with pytest.raises(TeacherError, match=re.escape(message)) as error:
        describe_teacher(request_)
    assert error.value.reason == reason


def test_a_missing_or_downloading_teacher_is_refused_before_any_node_is_stored(aiida_profile):
    before = orm.QueryBuilder().append(orm.Node).count()
    with pytest.raises(TeacherError, match="sevenn would download it"):
        teacher_inputs({"kind": "sevenn", "model": "7net-omat"})
    assert orm.QueryBuilder().append(orm.Node).count() == before


def test_the_label_workchain_refuses_a_teacher_engine_without_its_teacher(teacher_code):
    builder = LabelWorkChain.get_builder()
    builder.engine, builder.code = orm.Str("teacher"), teacher_code
    builder.structures = {"bto": orm.StructureData(ase=cubic_batio3())}
    with pytest.raises(ValueError, match=r"the teacher engine needs engine_inputs\.teacher"):
        run_get_node(builder)


def test_the_label_workchain_refuses_elements_the_teacher_does_not_know(teacher_code, tiny_pytorch_model):
    inputs = teacher_inputs({"kind": "deepmd", "level_of_theory": "Lennard-Jones"}, model=tiny_pytorch_model)
    builder = LabelWorkChain.get_builder()
    builder.engine, builder.code, builder.engine_inputs = orm.Str("teacher"), teacher_code, inputs
    atoms = cubic_batio3()
    atoms[0].symbol = "Sr"
    builder.structures = {"sto": orm.StructureData(ase=atoms)}
    with pytest.raises(ValueError, match=r"was not trained on Sr"):
        run_get_node(builder)


class _Scripted:
    """An evaluator that raises, returns NaN or explodes for chosen frames (by atom count)."""

    def __call__(self, atoms):
        n = len(atoms)
        if n == 2:
            raise RuntimeError("model failure")
        forces = np.zeros((n, 3))
        energy = -5.0 * n
        if n == 3:
            forces[0, 0] = np.nan
        if n == 4:
            forces[0, 0] = 1e3
        if n == 6:
            energy = 100.0 * n
        return energy, forces, np.zeros((3, 3))


def test_every_kind_of_bad_frame_is_recorded_with_its_reason_and_the_others_labeled():
    from ase import Atoms

    def chain(n, spacing=2.0):
        return Atoms("H" * n, positions=[[i * spacing, 0, 0] for i in range(n)], cell=np.eye(3) * 20, pbc=True)

    frames = [(f"n{n}", chain(n)) for n in (1, 2, 3, 4, 5, 6, 7, 8)] + [("close", chain(5, spacing=0.3))]
    result = label_batch(_Scripted(), frames, FrameChecks(**CHECKS))
    assert result.names == ["n1", "n5", "n7", "n8"]
    assert result.failures["n2"] == "the teacher raised RuntimeError: model failure"
    assert result.failures["n3"] == "the teacher returned NaN or infinite energy, forces or virial"
    assert "above max_force 50.0 eV/Å (exploded)" in result.failures["n4"]
    assert "from the batch median -5.000, above max_energy_deviation" in result.failures["n6"]
    assert "0.300 Å apart, closer than min_distance 0.5 Å" in result.failures["close"]


@pytest.mark.slow
def test_sevenn_forces_and_virial_are_derivatives_of_its_energy(teacher_code):
    """One batch through the real CalcJob and parser: F = -dE/dx (central difference of the teacher's energies,
    δ = 0.01 Å) and the virial W = -dE/dε under a traceless strain (δ = 0.01), in eV/Å and eV with DeePMD's
    sign; a frame with overlapping atoms fails with the reason while the others are labeled."""
    step, strain = 0.01, 0.01
    centre = off_centre()
    frames = {"centre": centre}
    for name, sign in (("plus", 1), ("minus", -1)):
        frames[name] = centre.copy()
        frames[name].positions[1, 0] += sign * step
    for name, sign in (("stretched", 1), ("squeezed", -1)):
        deformation = np.diag([1 + sign * strain, 1 - sign * strain / 2, 1 - sign * strain / 2])
        frames[name] = centre.copy()
        frames[name].set_cell(centre.cell[:] @ deformation, scale_atoms=True)
    overlapping = centre.copy()
    overlapping.positions[2] = overlapping.positions[1] + [0.05, 0, 0]
    frames["overlapping"] = overlapping

    node = label_with_teacher(teacher_code, frames, teacher_inputs(MF0))
    assert node.exit_status == TeacherLabelCalculation.exit_codes.ERROR_FRAMES_FAILED.status, node.exit_message
    assert node.outputs.failures.get_dict() == {
        "overlapping": "two atoms are 0.050 Å apart, closer than min_distance 0.5 Å"
    }
    labels = frame_labels(node)
    assert sorted(labels) == ["centre", "minus", "plus", "squeezed", "stretched"]
    _, forces, virial = labels["centre"]
    assert np.abs(forces.sum(axis=0)).max() < 1e-4  # a conservative model: no net force
    finite_difference = -(labels["plus"][0] - labels["minus"][0]) / (2 * step)
    assert forces[1, 0] == pytest.approx(finite_difference, abs=5e-3), (forces[1, 0], finite_difference)
    assert abs(forces[1, 0]) > 0.1  # a real force, not zero against zero
    # W = -dE/dε; for ε = (δ, -δ/2, -δ/2): -dE/dδ = W_xx - (W_yy + W_zz) / 2
    from_virial = virial[0, 0] - (virial[1, 1] + virial[2, 2]) / 2
    from_energies = -(labels["stretched"][0] - labels["squeezed"][0]) / (2 * strain)
    assert from_virial == pytest.approx(from_energies, rel=0.02), (from_virial, from_energies)
    assert abs(from_energies) > 0.05
    assert np.allclose(virial, virial.T, atol=1e-6)
    assert node.outputs.timings["label_seconds"] < node.outputs.timings["load_seconds"] * 20


@pytest.mark.slow
def test_the_deepmd_teacher_equals_dp_test_on_the_same_frames(teacher_code, tiny_pytorch_model, aiida_localhost):
    from aiida_perovskite.calculations.deepmd_test import DeepmdTestCalculation
    from aiida_perovskite.data import TrainingSetData
    from tests.helpers import lj_frames

    inputs = teacher_inputs({"kind": "deepmd", "level_of_theory": "Lennard-Jones"}, model=tiny_pytorch_model)
    model = inputs["model"]
    assert inputs["teacher"]["sha256"] == model.sha256
    frames = lj_frames(nframes=4, seed=11)
    atoms = frames.to_ase()
    node = label_with_teacher(teacher_code, {f"f{i}": a for i, a in enumerate(atoms)}, inputs)
    assert node.is_finished_ok, node.exit_message
    labels = frame_labels(node)

    builder = DeepmdTestCalculation.get_builder()
    builder.code = orm.InstalledCode(
        label="dp-test", computer=aiida_localhost, filepath_executable=str(executable("dp"))
    ).store()
    builder.model, builder.dataset = model, TrainingSetData([frames]).store()
    _, test = run_get_node(builder)
    assert test.is_finished_ok, test.exit_message
    predictions = test.outputs.predictions
    (system,) = test.outputs.metrics["systems"]
    prefix = system.replace(".", "_")
    natoms = frames.natoms
    energies = predictions.get_array(f"{prefix}__energy_predicted") * natoms  # dp test: energy per atom
    forces = predictions.get_array(f"{prefix}__force_predicted").reshape(4, natoms, 3)
    virials = predictions.get_array(f"{prefix}__virial_predicted").reshape(4, 3, 3) * natoms
    for index in range(4):
        energy, force, virial = labels[f"f{index}"]
        assert energy == pytest.approx(energies[index], abs=1e-5)
        np.testing.assert_allclose(force, forces[index], atol=1e-5)
        np.testing.assert_allclose(virial, virials[index], atol=1e-4)


@pytest.mark.slow
def test_a_teacher_added_through_the_entry_point_group_runs_and_its_nan_frame_fails(teacher_code, monkeypatch):
    """tests/teacher_plugins is a distribution with a `perovskite.teachers` entry point (a Lennard-Jones teacher
    that returns NaN forces for stretched cells); no file of the engine knows it."""
    monkeypatch.syspath_prepend(str(TEST_TEACHERS))  # this process finds the entry point ...
    monkeypatch.setenv("PYTHONPATH", str(TEST_TEACHERS))  # ... and so does the job, a subprocess
    inputs = teacher_inputs({"kind": "lj-test"})
    assert inputs["teacher"]["level_of_theory"] == "Lennard-Jones (test)"
    frames = {f"ok_{i}": off_centre(0.05 * i) for i in range(3)} | {"poisoned": off_centre(a=4.6)}
    node = label_with_teacher(teacher_code, frames, inputs)
    assert node.outputs.failures.get_dict() == {
        "poisoned": "the teacher returned NaN or infinite energy, forces or virial"
    }
    assert sorted(frame_labels(node)) == ["ok_0", "ok_1", "ok_2"]


def test_recorded_partial_output_marks_the_frames_not_reached(calcjob_node_with_retrieved):
    """A job cut short (walltime) keeps the frames it labeled; the others fail with the reason, none vanish."""
    import io

    from aiida_perovskite.parsers.teacher_label import NOT_REACHED, TeacherLabelParser

    structures = {name: orm.StructureData(ase=cubic_batio3()) for name in ("a", "b", "c")}
    teacher = orm.Dict({"kind": "sevenn", "model": "x", "sha256": "0", "level_of_theory": "x"})
    buffer = io.BytesIO()
    np.savez(
        buffer,
        names=np.array(["a"]),
        energies=np.array([-40.0]),
        natoms=np.array([5]),
        forces=np.zeros((5, 3)),
        virials=np.zeros((1, 3, 3)),
    )
    node = calcjob_node_with_retrieved(
        "perovskite.teacher.label",
        {**{f"structures__{k}": v for k, v in structures.items()}, "teacher": teacher},
        {"labels.npz": buffer.getvalue(), "failures.json": json.dumps({"b": "the teacher raised X: y"})},
    )
    results, calcfunction = TeacherLabelParser.parse_from_node(node, store_provenance=False)
    assert calcfunction.exit_status == TeacherLabelCalculation.exit_codes.ERROR_FRAMES_FAILED.status
    assert results["failures"].get_dict() == {"b": "the teacher raised X: y", "c": NOT_REACHED}
    assert list(results["labels"].get_array("uuids")) == [structures["a"].uuid]


def _labels_file(names, forces) -> bytes:
    import io

    buffer = io.BytesIO()
    np.savez(
        buffer,
        names=np.array(names),
        energies=np.full(len(names), -40.0),
        natoms=np.array([len(f) for f in forces]),
        forces=np.concatenate(forces),
        virials=np.zeros((len(names), 3, 3)),
    )
    return buffer.getvalue()


def _parse_teacher_output(calcjob_node_with_retrieved, files: dict):
    from aiida_perovskite.parsers.teacher_label import TeacherLabelParser

    structures = {name: orm.StructureData(ase=cubic_batio3()) for name in ("a", "b")}
    teacher = orm.Dict({"kind": "sevenn", "model": "x", "sha256": "0", "level_of_theory": "x"})
    inputs = {**{f"structures__{k}": v for k, v in structures.items()}, "teacher": teacher}
    node = calcjob_node_with_retrieved("perovskite.teacher.label", inputs, files)
    results, calcfunction = TeacherLabelParser.parse_from_node(node, store_provenance=False)
    return results, calcfunction, structures


@pytest.mark.parametrize(
    ("bad", "reason"),
    [(np.full((5, 3), np.nan), "NaN or infinite"), (np.zeros((4, 3)), "forces of shape (4, 3)")],
)
def test_a_damaged_label_in_the_output_fails_its_frame_and_never_enters_a_set(calcjob_node_with_retrieved, bad, reason):
    """The parser checks what it reads, not only the teacher what it computes: the file may be damaged."""
    files = {"labels.npz": _labels_file(["a", "b"], [np.zeros((5, 3)), bad]), "failures.json": "{}"}
    results, calc, structures = _parse_teacher_output(calcjob_node_with_retrieved, files)
    assert calc.exit_status == TeacherLabelCalculation.exit_codes.ERROR_FRAMES_FAILED.status
    assert reason in results["failures"]["b"] and list(results["failures"].keys()) == ["b"]
    assert list(results["labels"].get_array("uuids")) == [structures["a"].uuid]
    assert np.isfinite(results["labels"].get_array("forces")).all()


@pytest.mark.parametrize("content", [b"\x00garbage" * 50, b"PK\x03\x04 truncated zip"])
def test_a_garbage_labels_file_is_unreadable_output_not_a_traceback(calcjob_node_with_retrieved, content):
    results, calc, _ = _parse_teacher_output(
        calcjob_node_with_retrieved, {"labels.npz": content, "failures.json": "{}"}
    )
    assert calc.exit_status == TeacherLabelCalculation.exit_codes.ERROR_UNREADABLE_OUTPUT.status
    assert "labels.npz cannot be parsed" in calc.exit_message and "labels" not in results


@pytest.mark.parametrize("reason", ["No such file or directory", "Permission denied"])
def test_a_job_whose_executable_could_not_start_says_so(calcjob_node_with_retrieved, reason):
    """Recorded from a real job whose code pointed at a path missing on the computer (bash's message)."""
    log = f"_aiidasubmit.sh: line 13: /opt/nowhere/perovskite-teacher: {reason}\n"
    _, calc, _ = _parse_teacher_output(calcjob_node_with_retrieved, {"teacher.log": log})
    assert calc.exit_status == TeacherLabelCalculation.exit_codes.ERROR_EXECUTABLE_NOT_RUN.status
    assert f"could not start /opt/nowhere/perovskite-teacher ({reason})" in calc.exit_message
    _, calc, _ = _parse_teacher_output(calcjob_node_with_retrieved, {"teacher.log": "Traceback: killed\n"})
    assert calc.exit_status == TeacherLabelCalculation.exit_codes.ERROR_MISSING_OUTPUT_FILE.status


def test_the_engine_reports_its_batch_size_and_label_source(aiida_profile):
    engine = get_engine("teacher")
    assert engine.batch_size("fast") == 20 and engine.batch_size() == 100
    source = engine.label_source(None, None, teacher_inputs(MF0))
    assert source["engine"] == "teacher" and source["method"].startswith("r2SCAN")
    assert source["details"] == f"sevenn 7net-mf-0 [R2SCAN] sha256:{describe_teacher(MF0)['sha256']}"


@pytest.mark.slow
@pytest.mark.daemon
def test_the_label_workchain_labels_batches_and_relabel_recovers_the_rejected_frames(daemon, teacher_code):
    from aiida.engine import submit

    from aiida_perovskite.workflows.relabel import failed_frames, relabel
    from tests.conftest import await_process

    inputs = teacher_inputs(MF0)
    structures = {f"good_{i}": off_centre(0.02 * i) for i in range(5)}
    structures |= {f"strong_{i}": off_centre(0.25 + 0.05 * i) for i in range(2)}  # Ti forces of 2-3 eV/Å
    builder = LabelWorkChain.get_builder()
    builder.engine, builder.code, builder.engine_inputs = orm.Str("teacher"), teacher_code, inputs
    strict = {"batch_size": 3, "checks": {"max_force": 1.5}}  # too strict: the strong frames are refused
    builder.protocol, builder.overrides = orm.Str("fast"), orm.Dict(strict)
    builder.structures = {name: orm.StructureData(ase=atoms) for name, atoms in structures.items()}
    builder.tolerated_failed_fraction = orm.Float(0.5)
    node = await_process(submit(builder), timeout=600)
    assert node.is_finished_ok, node.exit_message

    jobs = sorted((c for c in node.called if c.process_label == "TeacherLabelCalculation"), key=lambda n: n.pk)
    assert [job.base.extras.get("frames") for job in jobs] == [
        ["good_0", "good_1", "good_2"],
        ["good_3", "good_4", "strong_0"],
        ["strong_1"],
    ]
    failures = node.outputs.failures.get_dict()
    assert sorted(failures) == ["strong_0", "strong_1"]
    assert [failures[name]["pk"] for name in ("strong_0", "strong_1")] == [jobs[1].pk, jobs[2].pk]
    frames_failed = TeacherLabelCalculation.exit_codes.ERROR_FRAMES_FAILED.status
    assert all(f["exit_status"] == frames_failed for f in failures.values())
    assert all("above max_force 1.5 eV/Å" in f["message"] for f in failures.values())

    data = node.outputs.training_set
    assert data.nframes == 5
    assert data.label_sources == [get_engine("teacher").label_source("fast", None, inputs)]
    # provenance: every labeled frame -> labels of a teacher job -> the teacher identity node
    assemble = data.creator
    for link in assemble.base.links.get_incoming().all():
        if link.link_label.startswith("labels__"):
            job = link.node.creator
            assert job.inputs.teacher.uuid == inputs["teacher"].uuid
            frame = link.link_label.split("__", 1)[1]
            assert job.inputs.structures[frame].uuid == assemble.inputs[f"structure__{frame}"].uuid

    merged, still_failed = relabel(node, {"settings": {"checks": {"max_force": 50.0}}}, timeout=600)
    assert still_failed == {}
    assert merged.nframes == 7 and merged.label_sources == data.label_sources
    assert failed_frames(node) == {}
    query = orm.QueryBuilder().append(orm.CalcJobNode, filters={"extras.relabel_of": jobs[1].uuid})
    (retry,) = query.all(flat=True)
    assert sorted(retry.inputs.structures) == ["strong_0"]  # the frames that batch labeled are not labeled again
    relabel_node = merged.creator.caller  # the relabel is a process: retries and merge are its children
    assert relabel_node.process_label == "RelabelWorkChain" and relabel_node.is_finished_ok
    assert retry.caller.pk == relabel_node.pk and relabel_node.outputs.training_set.uuid == merged.uuid
    retried = {jobs[1].uuid: ["strong_0"], jobs[2].uuid: ["strong_1"]}
    assert relabel_node.inputs.failed.get_dict() == {node.uuid: retried}


@pytest.mark.slow
@pytest.mark.daemon
def test_label_jobs_stream_a_free_slot_is_refilled_while_a_slow_job_still_runs(daemon, aiida_localhost, tmp_path):
    """With two slots and the first (oldest) job slow, the third and the fourth start as soon as the fast ones
    before them end, not after the slow one (waiting for the oldest job, or wave by wave, would wait for it)."""
    import sys

    from aiida.engine import submit

    from tests.conftest import await_process

    slow_when = (
        f'{sys.executable} -c "import numpy, sys; '
        f"sys.exit(0 if any('slow' in n for n in numpy.load('frames.npz')['names']) else 1)\""
    )
    script = f'#!/bin/bash\nif {slow_when}; then sleep 40; fi\nexec {executable("perovskite-teacher")} "$@"\n'
    code = script_code(aiida_localhost, "teacher-slow-frames", tmp_path / "teacher-slow-frames", script)
    builder = LabelWorkChain.get_builder()
    builder.engine, builder.code, builder.engine_inputs = orm.Str("teacher"), code, teacher_inputs(MF0)
    builder.protocol, builder.overrides = orm.Str("fast"), orm.Dict({"batch_size": 1})
    names = ["a_slow", "b_fast", "c_fast", "d_fast"]
    builder.structures = {name: orm.StructureData(ase=off_centre(0.01 * i)) for i, name in enumerate(names)}
    builder.max_concurrent = orm.Int(2)
    node = await_process(submit(builder), timeout=600)
    assert node.is_finished_ok, node.exit_message
    assert node.outputs.training_set.nframes == 4

    jobs = {
        job.base.extras.get("frames")[0]: job for job in node.called if job.process_label == "TeacherLabelCalculation"
    }
    assert sorted(jobs) == names
    slow_ended = jobs["a_slow"].mtime
    for name in ("c_fast", "d_fast"):
        assert jobs[name].ctime < slow_ended - datetime.timedelta(seconds=10), (name, jobs[name].ctime, slow_ended)
        running = [other for other, job in jobs.items() if job.ctime < jobs[name].ctime < job.mtime]
        assert running == ["a_slow"]  # never more than max_concurrent at once


@pytest.mark.slow
@pytest.mark.daemon
def test_labels_are_assembled_in_parts_while_later_jobs_run_and_merge_to_the_one_set(daemon, teacher_code):
    """60 frames of a trajectory in jobs of 26, one at a time: the frames become structures 50 at a time as the
    jobs need them (the last 10 after the first job started); the first part (the 52 frames of the first two jobs)
    is assembled before the third job ends, and the merged output is the set one assembly of all labels makes."""
    from aiida.common.links import LinkType
    from aiida.engine import submit

    from aiida_perovskite.calcfunctions.training_sets import assemble_training_set
    from aiida_perovskite.workflows.label import FRAMES_PER_PART
    from tests.conftest import await_process

    assert FRAMES_PER_PART == 50  # the frame and batch counts below are chosen for parts of 50
    calc_input = LinkType.INPUT_CALC
    builder = LabelWorkChain.get_builder()
    builder.engine, builder.code, builder.engine_inputs = orm.Str("teacher"), teacher_code, teacher_inputs(MF0)
    builder.protocol, builder.overrides = orm.Str("fast"), orm.Dict({"batch_size": 26})
    frames = [orm.StructureData(ase=off_centre(0.002 * i)) for i in range(60)]
    builder.trajectories = {"f": orm.TrajectoryData(structurelist=frames)}
    builder.max_concurrent = orm.Int(1)
    node = await_process(submit(builder), timeout=600)
    assert node.is_finished_ok, node.exit_message
    jobs = sorted((job for job in node.called if job.process_label == "TeacherLabelCalculation"), key=lambda j: j.pk)
    assert [len(job.base.extras.get("frames")) for job in jobs] == [26, 26, 8]
    conversions = sorted((c for c in node.called if c.process_label == "frames_to_structures"), key=lambda c: c.pk)
    made = [sorted(int(key.split("_")[1]) for key in conversion.outputs) for conversion in conversions]
    launch_order = sorted(range(60), key=lambda i: f"f_{i}")  # frames are launched in the order of their names
    assert made == [sorted(launch_order[:50]), sorted(launch_order[50:])]
    assert jobs[0].ctime < conversions[1].ctime < jobs[1].ctime
    for job in jobs:  # every labeled structure is a frame of the trajectory, linked to it
        for name, structure in job.inputs.structures.items():
            conversion = structure.creator
            assert conversion.inputs.trajectory.uuid == builder.trajectories["f"].uuid
            index = int(name.split("_")[1])
            np.testing.assert_allclose(structure.get_ase().positions, frames[index].get_ase().positions)

    merged = node.outputs.training_set
    assert merged.nframes == 60 and merged.creator.process_label == "merge_training_sets"
    parts = {link.link_label: link.node for link in merged.creator.base.links.get_incoming(link_type=calc_input).all()}
    assert {label: part.nframes for label, part in parts.items()} == {"part_0000": 52, "part_0001": 8}
    assert parts["part_0000"].creator.ctime < jobs[2].mtime  # assembled while the last job still ran

    labels = {
        link.link_label: link.node
        for part in parts.values()
        for link in part.creator.base.links.get_incoming(link_type=calc_input).all()
        if "__" in link.link_label
    }
    source = parts["part_0000"].creator.inputs.label_source
    whole = assemble_training_set(engine=orm.Str("teacher"), label_source=source, **labels)
    assert whole.nframes == 60 and whole.system_names == merged.system_names
    assert whole.content_hash() == merged.content_hash() and whole.type_map == merged.type_map
    assert whole.label_sources == merged.label_sources
