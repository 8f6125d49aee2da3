"""ConcurrentLearningWorkChain.get_builder_from_protocol: a campaign from Python without a file, its settings
checked key by key before anything is stored, and what the campaign-file path builds through it."""

from __future__ import annotations

import pytest
from aiida import orm

from aiida_perovskite.campaign.builder import build_campaign
from aiida_perovskite.campaign.spec import parse_campaign
from aiida_perovskite.protocols import load_protocol
from aiida_perovskite.schema import SettingError
from aiida_perovskite.structures import parent_cell
from aiida_perovskite.workflows.concurrent_learning import ConcurrentLearningWorkChain
from tests.campaign.test_campaign_spec import VALID, unit_codes  # noqa: F401  (a fixture)


@pytest.fixture
def inputs(unit_codes):  # noqa: F811
    codes = {
        "training": orm.load_code("dp-unit@localhost"),
        "exploration": orm.load_code("lmp-unit@localhost"),
        "labeling": orm.load_code("teacher-unit@localhost"),
    }
    structures = {"BTO_T": orm.StructureData(ase=parent_cell("BaTiO3", "tetragonal").repeat((2, 2, 2)))}
    return codes, structures


def validate(builder) -> None:
    error = builder.process_class.spec().inputs.validate(builder._inputs(prune=True))
    assert error is None, error


def test_the_fast_protocol_builds_a_campaign_the_ports_accept(inputs):
    codes, structures = inputs
    before = orm.QueryBuilder().append(orm.Node).count()
    builder = ConcurrentLearningWorkChain.get_builder_from_protocol(codes, structures, 7, "fast")
    validate(builder)
    fast = load_protocol("concurrent_learning", "fast")
    assert builder.schedule.get_dict()["BTO_T"][0]["temperatures"] == fast["stages"][0]["temperatures"]
    assert builder.trust.get_dict() == fast["trust"] and builder.max_labels.value == fast["max_labels"]
    assert builder.accurate_fraction.value == fast["convergence"]["accurate_fraction"]
    assert builder.init_data.perturbation.get_dict() == fast["perturbation"]  # no training set: perturb first
    assert builder.train.num_models.value == 2 and builder.label.engine.value == "teacher"
    assert builder.seed.value == 7 and orm.QueryBuilder().append(orm.Node).count() == before


def test_overrides_update_the_protocol_key_by_key(inputs):
    codes, structures = inputs
    overrides = {"trust": {"force_lo": 0.1}, "convergence": {"max_force_rmse": 0.05}, "training": {"num_models": 3}}
    builder = ConcurrentLearningWorkChain.get_builder_from_protocol(codes, structures, 1, "fast", overrides)
    validate(builder)
    assert builder.trust.get_dict() == {"force_lo": 0.1, "force_hi": 0.6}
    assert builder.max_force_rmse.value == 0.05 and builder.train.num_models.value == 3


@pytest.mark.parametrize(
    ("overrides", "key", "words"),
    [
        ({"trsut": {}}, "overrides", "did you mean 'trust'"),
        ({"trust": {"force_lo": 0.9}}, "trust.force_lo", "must be below force_hi"),
        ({"convergence": {"accurate_fraction": 2}}, "convergence.accurate_fraction", "(0, 1]"),
        (
            {"stages": [{"temperatures": [100], "ensemble": "nvt", "steps": 10}]},
            "stages[0].sampling_interval",
            "missing",
        ),
        ({"training": {"num_models": 1}}, "training.num_models", "at least 2 models"),
        ({"labeling": {"engine": "gaussian"}}, "labeling.engine", "choose one of"),
    ],
)
def test_a_bad_override_names_its_key(inputs, overrides, key, words):
    codes, structures = inputs
    with pytest.raises(SettingError) as info:
        ConcurrentLearningWorkChain.get_builder_from_protocol(codes, structures, 1, "fast", overrides)
    assert info.value.key == key and words in info.value.message


def test_the_campaign_file_builds_through_the_protocol_method(unit_codes, tmp_path):  # noqa: F811
    built = build_campaign(parse_campaign(VALID, base_dir=tmp_path), store=False)
    validate(built)
    assert built.schedule.get_dict()["BaTiO3"][0]["temperatures"] == VALID["stages"][0]["temperatures"]
    assert built.label.code.label == "cp2k-unit" and built.metadata.label == VALID["name"]
