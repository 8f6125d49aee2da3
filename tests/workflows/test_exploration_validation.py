"""Bad exploration inputs are rejected at submission with a clear message."""

from __future__ import annotations

import pytest
from aiida import orm
from aiida.engine.utils import instantiate_process
from aiida.manage import get_manager
from ase import Atoms

from aiida_perovskite.data import DeepPotentialData
from aiida_perovskite.workflows.explore import ExploreWorkChain
from tests.conftest import executable
from tests.helpers import cubic_batio3, train_tiny_model


@pytest.fixture(scope="session")
def ca_model_file(tmp_path_factory):
    """A model whose type_map differs from the others' (Ca added)."""
    return train_tiny_model(tmp_path_factory.mktemp("ca"), executable("dp"), "pt", type_map=["Ba", "Ti", "O", "Ca"])


@pytest.fixture
def builder(aiida_localhost, tiny_pytorch_model):
    code = orm.InstalledCode(label="lmp", computer=aiida_localhost, filepath_executable=str(executable("lmp")))
    model = DeepPotentialData(tiny_pytorch_model).store()
    builder = ExploreWorkChain.get_builder()
    builder.code = code.store()
    builder.models = {"model_0": model, "model_1": model}
    builder.structures = {"BaTiO3": orm.StructureData(ase=cubic_batio3())}
    builder.conditions = orm.Dict({"temperatures": [300.0], "ensemble": "nvt", "steps": 100, "sampling_interval": 10})
    builder.trust = orm.Dict({"force_lo": 0.05, "force_hi": 0.15})
    builder.seed = orm.Int(1)
    return builder


def submit_check(builder):
    return instantiate_process(get_manager().get_runner(), builder)


def test_valid_inputs_pass(builder):
    submit_check(builder)


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("trust", {"force_lo": 0.2, "force_hi": 0.1}, "trust.force_lo: must be below force_hi"),
        (
            "trust",
            {"force_lo": 0.05, "force_hi": 0.15, "per_system": {"BaTiO3": {"force_hi": 0.01}}},
            "trust.per_system.BaTiO3.force_lo: must be below force_hi",
        ),
        (
            "conditions",
            {"temperatures": [300.0, -5.0], "ensemble": "nvt", "steps": 10, "sampling_interval": 5},
            r"conditions.temperatures\[1\]: temperature must be a positive number, got -5.0",
        ),
        (
            "conditions",
            {"temperatures": [], "ensemble": "nvt", "steps": 10, "sampling_interval": 5},
            r"conditions.temperatures: give a non-empty list",
        ),
        (
            "conditions",
            {"temperatures": [300.0], "ensemble": "npt-xyz", "steps": 10, "sampling_interval": 5},
            "unknown ensemble 'npt-xyz'",
        ),
        ("selection_mode", "best", "unknown selection_mode 'best'"),
    ],
)
def test_bad_values(builder, field, value, message):
    with pytest.raises(ValueError, match=message):
        setattr(builder, field, orm.Dict(value) if isinstance(value, dict) else orm.Str(value))
        submit_check(builder)


def test_models_with_different_type_maps(builder, ca_model_file):
    other = DeepPotentialData(ca_model_file).store()
    with pytest.raises(ValueError, match="the models have different type_maps"):
        builder.models = {"model_0": builder.models["model_0"], "model_1": other}
        submit_check(builder)


def test_single_model_cannot_give_a_deviation(builder):
    with pytest.raises(ValueError, match="model deviation needs at least 2 models"):
        builder.models = {"model_0": builder.models["model_0"]}
        submit_check(builder)


def test_structure_with_an_element_the_models_do_not_know(builder):
    strontium = Atoms("SrTiO3", scaled_positions=cubic_batio3().get_scaled_positions(), cell=[3.9] * 3, pbc=True)
    with pytest.raises(ValueError, match=r"structure 'SrTiO3' contains element\(s\) \['Sr'\]"):
        builder.structures = {"SrTiO3": orm.StructureData(ase=strontium)}
        submit_check(builder)
