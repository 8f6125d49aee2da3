"""The loop's settings models: one definition each, used by the campaign file and the WorkChain ports alike."""

from __future__ import annotations

import pytest
from aiida import orm

from aiida_perovskite.loop.settings import (
    FRACTION,
    Convergence,
    FinalTraining,
    Perturbation,
    Stage,
    StageConditions,
    name_problem,
    protocol_default,
)
from aiida_perovskite.protocols import load_protocol
from aiida_perovskite.schema import port_validator, validation_problem, value_validator

STAGE = {"temperatures": [100, 300], "ensemble": "nvt", "steps": 100, "sampling_interval": 10, "max_iterations": 2}


@pytest.mark.parametrize("name", ["BaTiO3", "BTO_T", "x1"])
def test_names_that_can_be_link_label_parts(name):
    assert name_problem(name) is None


@pytest.mark.parametrize(
    ("name", "words"), [("a__b", "single '_'"), ("BTO-T", "link labels"), ("B" * 65, "at most 64")]
)
def test_names_that_cannot(name, words):
    assert words in name_problem(name)


def test_model_defaults_are_the_default_protocols():
    protocol = load_protocol("concurrent_learning")
    assert Perturbation().model_dump(exclude={"volume_scale"}) == protocol["perturbation"]
    assert Convergence().accurate_fraction == protocol["convergence"]["accurate_fraction"]
    assert Convergence().max_iterations == protocol_default("convergence", "max_iterations")


def test_a_stage_is_checked_run_by_run_with_the_key_of_the_offending_value():
    assert validation_problem(Stage, STAGE) is None
    bad = {**STAGE, "pressures": [1.0, 5.0e7]}
    assert validation_problem(Stage, bad, "schedule.A[0]").startswith("schedule.A[0].pressures[1]: pressure")
    assert validation_problem(Stage, {**STAGE, "temperatures": "300"}) == "temperatures: expected a list, got '300'"
    missing = validation_problem(Stage, {key: value for key, value in STAGE.items() if key != "max_iterations"})
    assert missing == "max_iterations: missing; iterations after which the stage ends anyway"


def test_md_conditions_leave_unset_settings_to_the_md_definition():
    conditions = StageConditions.model_validate({key: STAGE[key] for key in STAGE if key != "max_iterations"})
    assert conditions.md_settings() == {**{k: v for k, v in STAGE.items() if k != "max_iterations"}, "pressures": [1.0]}


def test_port_validators_speak_the_same_language():
    assert port_validator(FinalTraining, "final_training")(orm.Dict({"numb_steps": 0}), None) == (
        "final_training.numb_steps: must be at least 1, got 0"
    )
    assert port_validator(FinalTraining, "final_training")(orm.Dict({"numb_steps": 10, "compress": "yes"}), None) == (
        "final_training.compress: give true or false, got 'yes'"
    )
    fraction = value_validator(FRACTION, "accurate_fraction")
    assert fraction(orm.Float(1.5), None) == "accurate_fraction: must be in (0, 1], got 1.5"
    assert fraction(orm.Float(0.5), None) is None
