"""Bad training inputs are rejected at submission with a message naming the problem."""

from __future__ import annotations

import pytest
from aiida import orm
from aiida.engine.utils import instantiate_process
from aiida.manage import get_manager

from aiida_perovskite.data import TrainingSetData, TrainingSetValidationError
from aiida_perovskite.workflows.deepmd_train_base import DeepmdTrainBaseWorkChain
from aiida_perovskite.workflows.train_ensemble import TrainEnsembleWorkChain
from tests.helpers import lj_frames


@pytest.fixture
def training_set():
    return TrainingSetData([lj_frames(nframes=2)]).store()


def submit_check(builder):
    """What `submit` does before anything runs: instantiate the process, which validates its inputs."""
    return instantiate_process(get_manager().get_runner(), builder)


def base_builder(dp_code, training_set, **overrides):
    return DeepmdTrainBaseWorkChain.get_builder_from_protocol(dp_code, training_set, "fast", overrides=overrides)


def test_protocol_builder_is_valid(dp_code, training_set):
    submit_check(base_builder(dp_code, training_set))


def test_empty_training_set_cannot_exist():
    with pytest.raises(TrainingSetValidationError, match="at least one system"):
        TrainingSetData([])


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"parameters": {"model": {"type_map": ["Ba", "Ti"]}}}, r"element\(s\) \['O'\] that the model's type_map"),
        ({"parameters": {"training": {"numb_steps": -5}}}, "numb_steps must be a positive integer, got -5"),
        ({"backend": "jax"}, "unknown backend 'jax'; choose one of tensorflow, pytorch"),
        ({"parameters": {"model": {"descriptor": {"rcutt": 6.0}}}}, "DeePMD-kit rejects the input parameters"),
        ({"parameters": {"training": {"training_data": {"systems": ["x"]}}}}, "is filled in from the training_set"),
    ],
)
def test_bad_training_inputs(dp_code, training_set, overrides, message):
    with pytest.raises(ValueError, match=message):
        submit_check(base_builder(dp_code, training_set, **overrides))


def test_checkpoint_modes_need_their_source(dp_code, training_set):
    builder = base_builder(dp_code, training_set)
    builder.train.init_mode = orm.Str("restart")
    with pytest.raises(ValueError, match="give parent_folder"):
        submit_check(builder)
    builder.train.init_mode = orm.Str("warm-start")
    with pytest.raises(ValueError, match="init_mode 'warm-start' is unknown"):
        submit_check(builder)


def test_ensemble_needs_at_least_one_model(dp_code, training_set):
    with pytest.raises(ValueError, match="num_models: must be at least 1, got 0"):
        submit_check(TrainEnsembleWorkChain.get_builder_from_protocol(dp_code, training_set, "fast", num_models=0))


def test_a_warm_start_is_checked_as_the_campaign_checks_it(dp_code, training_set):
    builder = TrainEnsembleWorkChain.get_builder_from_protocol(dp_code, training_set, "fast")
    builder.reuse.numb_steps = orm.Int(0)
    with pytest.raises(ValueError, match=r"reuse\.numb_steps: must be at least 1, got 0"):
        submit_check(builder)


def test_ensemble_checks_the_type_map_at_submission(dp_code, training_set):
    overrides = {"parameters": {"model": {"type_map": ["Ti", "O"]}}}
    builder = TrainEnsembleWorkChain.get_builder_from_protocol(dp_code, training_set, "fast", overrides=overrides)
    with pytest.raises(ValueError, match=r"element\(s\) \['Ba'\]"):
        submit_check(builder)


def test_unknown_protocol_is_named(dp_code, training_set):
    with pytest.raises(ValueError, match="unknown protocol 'fastest'"):
        DeepmdTrainBaseWorkChain.get_builder_from_protocol(dp_code, training_set, "fastest")
