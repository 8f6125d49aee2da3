"""Jobs through a real Slurm scheduler: the one-node cluster of scripts/slurm.sh (Debian's slurm-wlm) and the
``core.slurm`` computer of profiles/computers/slurm-localhost.yaml. A training and a teacher labeling job run via
sbatch; a training that exceeds its ``--time`` is killed by Slurm and continued from its checkpoint; a job
cancelled with ``scancel`` is reported as such and handled."""

from __future__ import annotations

import pathlib
import shutil
import subprocess
import time

import pytest
from aiida import orm
from aiida.engine import submit
from aiida.plugins import CalculationFactory

from aiida_perovskite.analysis.model_files import BACKENDS
from aiida_perovskite.calculations.deepmd_train import TRAIN_LOG
from aiida_perovskite.data import TrainingSetData
from aiida_perovskite.stack import PROFILES_DIR, ensure_computer, load_yaml
from aiida_perovskite.workflows.deepmd_train_base import DeepmdTrainBaseWorkChain
from tests.conftest import await_process, executable
from tests.helpers import lj_frames

pytestmark = [pytest.mark.slow, pytest.mark.daemon]

DeepmdTrainCalculation = CalculationFactory("perovskite.deepmd.train")


def _cluster_up() -> str | None:
    """Why the tests cannot run, or None when Slurm answers."""
    if shutil.which("sinfo") is None:
        return "Slurm is not installed (scripts/install.sh --test installs slurm-wlm)"
    result = subprocess.run(["sinfo", "-h", "-N", "-o", "%t"], capture_output=True, text=True, check=False)
    if result.returncode != 0 or not result.stdout.strip().startswith(("idle", "mix", "alloc")):
        return f"no Slurm node is up ({(result.stderr or result.stdout).strip()}): run scripts/slurm.sh"
    return None


@pytest.fixture(scope="module")
def slurm(aiida_profile) -> orm.Computer:
    reason = _cluster_up()
    if reason:
        print(f"skipping the Slurm tests: {reason}")
        pytest.skip(reason)
    return ensure_computer(load_yaml(PROFILES_DIR / "computers" / "slurm-localhost.yaml"), report=lambda _: None)


@pytest.fixture(scope="module")
def slurm_dp(slurm) -> orm.InstalledCode:
    return orm.InstalledCode(
        label="dp-slurm",
        computer=slurm,
        filepath_executable=str(executable("dp")),
        default_calc_job_plugin="perovskite.deepmd.train",
    ).store()


@pytest.fixture(scope="module")
def training_set(aiida_profile) -> TrainingSetData:
    return TrainingSetData([lj_frames(nframes=4)]).store()


def training(code, data, steps: int, walltime: int, max_iterations: int = 3):
    builder = DeepmdTrainBaseWorkChain.get_builder_from_protocol(
        code,
        data,
        protocol="fast",
        overrides={"parameters": {"training": {"numb_steps": steps, "disp_freq": 50, "save_freq": 50}}},
        seed=7,
    )
    builder.train.metadata.options.max_wallclock_seconds = walltime
    builder.max_iterations = orm.Int(max_iterations)
    return submit(builder)


def calculations(workchain) -> list[orm.CalcJobNode]:
    return sorted((c for c in workchain.called if c.process_label == "DeepmdTrainCalculation"), key=lambda c: c.pk)


def _slurm_job_script(calc: orm.CalcJobNode) -> str:
    return (pathlib.Path(calc.get_remote_workdir()) / "_aiidasubmit.sh").read_text()


def test_a_training_and_a_teacher_labeling_run_through_sbatch(daemon, slurm, slurm_dp, training_set):
    from aiida_perovskite.calculations.teacher_label import TeacherLabelCalculation
    from aiida_perovskite.engines.teacher import teacher_inputs
    from tests.helpers import cubic_batio3

    node = await_process(training(slurm_dp, training_set, steps=100, walltime=600), timeout=600)
    assert node.is_finished_ok, node.exit_message
    (calc,) = calculations(node)
    assert calc.computer.scheduler_type == "core.slurm" and calc.get_job_id().isdigit()
    assert "#SBATCH --time=00:10:00" in _slurm_job_script(calc)
    assert node.outputs.model.metrics["numb_steps"] == 100

    builder = TeacherLabelCalculation.get_builder()
    builder.code = orm.InstalledCode(
        label="teacher-slurm",
        computer=slurm,
        filepath_executable=str(executable("perovskite-teacher")),
        default_calc_job_plugin="perovskite.teacher.label",
    ).store()
    inputs = teacher_inputs({"kind": "sevenn", "model": "7net-mf-0", "modal": "R2SCAN"})
    builder.teacher = inputs["teacher"]
    builder.structures = {"bto": orm.StructureData(ase=cubic_batio3())}
    builder.settings = orm.Dict(
        {"threads": 1, "checks": {"min_distance": 0.5, "max_force": 50.0, "max_energy_deviation": 5.0}}
    )
    builder.metadata.options = {"resources": {"num_machines": 1}, "withmpi": False, "max_wallclock_seconds": 600}
    label = await_process(submit(builder), timeout=600)
    assert label.is_finished_ok, label.exit_message
    assert label.get_job_id().isdigit() and "#SBATCH" in _slurm_job_script(label)
    assert label.outputs.labels.get_array("energies").shape == (1,)


def test_a_training_past_its_time_limit_is_killed_by_slurm_and_continued_from_its_checkpoint(
    daemon, slurm_dp, training_set
):
    """A 1-minute --time: Slurm kills each job (~60-90 s); each restart continues from the last checkpoint."""
    node = await_process(training(slurm_dp, training_set, steps=10**7, walltime=60, max_iterations=2), timeout=900)
    assert node.exit_status == DeepmdTrainBaseWorkChain.exit_codes.ERROR_MAXIMUM_ITERATIONS_EXCEEDED.status
    first, second = calculations(node)
    for calc in (first, second):
        assert calc.exit_status == DeepmdTrainCalculation.exit_codes.ERROR_OUT_OF_WALLTIME.status, calc.exit_message
        stderr = calc.outputs.retrieved.base.repository.get_object_content("_scheduler-stderr.txt")
        assert "DUE TO TIME LIMIT" in stderr
    assert second.inputs.init_mode.value == "restart"
    assert second.inputs.parent_folder.uuid == first.outputs.remote_folder.uuid
    reached = first.outputs.learning_curve.get_array("step")[-1]
    continued = second.outputs.learning_curve.get_array("step")
    assert reached > 0 and continued[0] >= reached - 50  # from the last checkpoint, not from step 0
    assert continued[-1] > reached


def _wait_until_training(node, index: int, ready) -> orm.CalcJobNode:
    """The ``index``-th training job of ``node`` once it runs under Slurm and ``ready(job folder)`` is true."""
    deadline = time.monotonic() + 300
    while True:
        jobs = calculations(node)
        job = jobs[index] if len(jobs) > index else None
        folder = job.get_remote_workdir() if job is not None else None
        if job is not None and job.get_job_id() and folder and ready(pathlib.Path(folder)):
            return job
        assert time.monotonic() < deadline and not node.is_terminated, node.exit_message
        time.sleep(1)


def _training(folder: pathlib.Path) -> bool:
    return (folder / "lcurve.out").exists()


def _checkpoint_saved(folder: pathlib.Path) -> bool:
    """TensorFlow logs that it saved a checkpoint once the files a restart reads are complete (the pointer file
    comes earlier)."""
    log = folder / TRAIN_LOG
    return _training(folder) and log.exists() and BACKENDS["tensorflow"]["checkpoint_logged"] in log.read_text()


def test_a_job_cancelled_with_scancel_is_reported_and_restarted(daemon, slurm_dp, training_set):
    node = training(slurm_dp, training_set, steps=10**7, walltime=3600, max_iterations=2)
    first = _wait_until_training(node, 0, _checkpoint_saved)
    subprocess.run(["scancel", first.get_job_id()], check=True)
    restarted = _wait_until_training(node, 1, _training)  # running, not only queued
    first = orm.load_node(first.pk)
    assert first.exit_status == DeepmdTrainCalculation.exit_codes.ERROR_CANCELLED_BY_SCHEDULER.status
    assert "the scheduler cancelled the job" in first.exit_message
    assert restarted.inputs.init_mode.value == "restart"  # continued from the checkpoint it had written
    assert restarted.inputs.parent_folder.uuid == first.outputs.remote_folder.uuid
    subprocess.run(["scancel", restarted.get_job_id()], check=True)  # the last attempt: cancelled as well
    node = await_process(node, timeout=300)
    assert orm.load_node(restarted.pk).exit_status == first.exit_status  # reported the same way
    assert node.exit_status == DeepmdTrainBaseWorkChain.exit_codes.ERROR_MAXIMUM_ITERATIONS_EXCEEDED.status
