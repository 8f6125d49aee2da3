"""Real `dp` through a live daemon: a training and its restart, the 4-model ensemble, model evaluation."""

from __future__ import annotations

import re
import subprocess

import numpy as np
import pytest
from aiida import orm
from aiida.engine import submit
from aiida.plugins import CalculationFactory, WorkflowFactory

from aiida_perovskite.calculations.deepmd_common import BACKENDS
from aiida_perovskite.data import TrainingSetData
from tests.conftest import await_process, executable
from tests.helpers import lj_frames

DeepmdTrainCalculation = CalculationFactory("perovskite.deepmd.train")
DeepmdTestCalculation = CalculationFactory("perovskite.deepmd.test")
TrainEnsemble = WorkflowFactory("perovskite.train_ensemble")
TrainBase = WorkflowFactory("perovskite.deepmd.train.base")

pytestmark = [pytest.mark.slow, pytest.mark.daemon]


def test_training_and_restart_from_checkpoint(daemon, dp_code):
    """A short training with compression; a second job continues it from the first one's checkpoint."""
    training_set = TrainingSetData([lj_frames(nframes=8)]).store()
    overrides = {"compress": True, "parameters": {"training": {"numb_steps": 20, "disp_freq": 10, "save_freq": 10}}}
    builder = TrainBase.get_builder_from_protocol(dp_code, training_set, protocol="fast", overrides=overrides, seed=7)
    first = await_process(submit(builder))
    assert first.is_finished_ok, first.exit_status
    assert first.outputs.model.metrics["numb_steps"] == 20
    assert first.outputs.compressed_model.compressed
    assert first.outputs.learning_curve.get_array("step")[-1] == 20

    parameters = builder.train.parameters.get_dict()
    parameters["training"]["numb_steps"] = 40
    restart = DeepmdTrainCalculation.get_builder()
    restart.code = dp_code
    restart.training_set = training_set
    restart.seed = orm.Int(7)
    restart.parameters = orm.Dict(parameters)
    restart.parent_folder = first.outputs.remote_folder
    restart.init_mode = orm.Str("restart")
    restart.backend = builder.train.backend
    restart.metadata.options = builder.train.metadata.options
    second = await_process(submit(restart))
    assert second.is_finished_ok, second.exit_status
    steps = second.outputs.learning_curve.get_array("step")
    assert steps[0] >= 20 and steps[-1] == 40, steps  # continued, not started again


@pytest.fixture(scope="module")
def bt300k_ensemble(daemon, unipero_dir, session_computer):
    code = orm.InstalledCode(
        label="dp-ensemble", computer=session_computer, filepath_executable=str(executable("dp"))
    ).store()
    training_set = TrainingSetData.from_deepmd_npy(unipero_dir / "BT-300K").store()
    builder = TrainEnsemble.get_builder_from_protocol(code, training_set, protocol="fast", seed=2026)
    node = await_process(submit(builder), timeout=1500)
    assert node.is_finished_ok, node.exit_status
    return node, code, training_set


def evaluate(code, model, dataset):
    builder = DeepmdTestCalculation.get_builder()
    builder.code, builder.model, builder.dataset = code, model, dataset
    builder.metadata.options.environment_variables = {"OMP_NUM_THREADS": "1"}
    return submit(builder)


def test_ensemble_of_four_with_recorded_distinct_seeds_beats_constant_baseline(bt300k_ensemble, unipero_dir):
    node, code, training_set = bt300k_ensemble
    models = node.outputs.models
    assert sorted(models) == [f"model_{i}" for i in range(4)]
    trainings = sorted(node.called, key=lambda n: n.base.extras.get("model_index", -1))
    trainings = [n for n in trainings if n.process_label == "DeepmdTrainBaseWorkChain"]
    seeds = [t.inputs.train.seed.value for t in trainings]
    assert len(set(seeds)) == 4
    assert seeds == node.outputs.seeds.get_list()
    assert len({models[f"model_{i}"].sha256 for i in range(4)}) == 4

    reference = training_set.get_frames(training_set.system_names[0])
    per_atom = reference.energies / reference.natoms
    baseline_rmse = float(np.std(per_atom))  # a constant predictor at the mean energy
    evaluations = [evaluate(code, models[f"model_{i}"], training_set) for i in range(4)]
    for index, evaluation in enumerate(evaluations):
        await_process(evaluation)
        assert evaluation.is_finished_ok, evaluation.exit_status
        rmse = evaluation.outputs.metrics["energy_rmse_per_atom"]
        assert rmse < baseline_rmse, (index, rmse, baseline_rmse)


def test_evaluation_matches_dp_test_by_hand(bt300k_ensemble, unipero_dir, tmp_path):
    node, code, _ = bt300k_ensemble
    model = node.outputs.models.model_0
    dataset = TrainingSetData.from_deepmd_npy(unipero_dir / "BT-900K").store()
    evaluation = await_process(evaluate(code, model, dataset))
    assert evaluation.is_finished_ok, evaluation.exit_status
    metrics = evaluation.outputs.metrics.get_dict()
    assert metrics["nframes"] == 227

    model_file = model.write(tmp_path)
    result = subprocess.run(
        [
            str(executable("dp")),
            BACKENDS[model.dp_backend]["flag"],
            "test",
            "-m",
            str(model_file),
            "-s",
            str(unipero_dir / "BT-900K"),
        ],
        capture_output=True,
        text=True,
        check=True,
        cwd=tmp_path,
    )
    log = result.stdout + result.stderr

    def logged(label):
        return float(re.search(rf"{re.escape(label)}\s*:\s*(\S+)", log).group(1))

    assert metrics["force_mae"] == pytest.approx(logged("Force  MAE"), rel=1e-5)
    assert metrics["force_rmse"] == pytest.approx(logged("Force  RMSE"), rel=1e-5)
    assert metrics["energy_mae_per_atom"] == pytest.approx(logged("Energy MAE/Natoms"), rel=1e-5)
    assert metrics["virial_rmse_per_atom"] == pytest.approx(logged("Virial RMSE/Natoms"), rel=1e-5)
