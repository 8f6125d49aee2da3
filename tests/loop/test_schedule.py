"""The exploration schedule and the convergence decision: stages end when converged or at their limit."""

from __future__ import annotations

from aiida import orm

from aiida_perovskite.calcfunctions.convergence import check_convergence, collect_history, start_schedule
from aiida_perovskite.loop.schedule import advance, campaign_state, current_stage, initial_progress

STAGE = {"temperatures": [100], "ensemble": "nvt", "steps": 10, "sampling_interval": 5}
STAGES = {
    "A": [{**STAGE, "max_iterations": 2}, {**STAGE, "temperatures": [300], "max_iterations": 1}],
    "B": [{**STAGE, "max_iterations": 1, "accurate_fraction": 0.5}],
}


def test_a_converged_stage_moves_on_and_a_stage_at_its_limit_ends_unconverged():
    progress = initial_progress(STAGES)
    progress = advance(STAGES, progress, {"A": 0.995, "B": 0.4}, threshold=0.99)
    assert progress["A"] == {"stage": 1, "stage_iterations": 0, "done": False, "stage_results": ["converged"]}
    assert progress["B"]["done"] and progress["B"]["stage_results"] == ["limit"]
    assert current_stage(STAGES, progress, "A")["temperatures"] == [300]
    assert campaign_state(progress) == {"finished": False, "converged": False}
    progress = advance(STAGES, progress, {"A": 0.999}, threshold=0.99)
    assert progress["A"]["done"] and progress["A"]["stage_results"] == ["converged", "converged"]
    assert campaign_state(progress) == {"finished": True, "converged": False}  # B ended at its limit


def test_stage_threshold_overrides_the_campaign_threshold_and_limits_count_iterations():
    progress = advance(STAGES, initial_progress(STAGES), {"A": 0.9, "B": 0.6}, threshold=0.99)
    assert progress["B"]["stage_results"] == ["converged"]  # 0.6 >= the stage's own 0.5
    assert progress["A"] == {"stage": 0, "stage_iterations": 1, "done": False, "stage_results": []}
    progress = advance(STAGES, progress, {"A": 0.9}, threshold=0.99)
    assert progress["A"]["stage"] == 1 and progress["A"]["stage_results"] == ["limit"]


def test_done_systems_are_left_alone():
    progress = advance(STAGES, initial_progress(STAGES), {"A": 0.0, "B": 1.0}, threshold=0.99)
    again = advance(STAGES, progress, {"A": 0.0}, threshold=0.99)
    assert again["B"] == progress["B"]


def test_check_convergence_records_the_decision(aiida_profile):
    schedule = orm.Dict(STAGES)
    progress = start_schedule(schedule)
    statistics = orm.Dict({"A": {"accurate_fraction": 1.0}, "B": {"accurate_fraction": 1.0}})
    result = check_convergence(schedule, progress, orm.Float(0.99), statistics_0=statistics)
    decision = result["decision"].get_dict()
    assert decision["finished"] is False and decision["accurate_fractions"] == {"A": 1.0, "B": 1.0}
    assert result["decision"].creator.process_label == "check_convergence"
    second = check_convergence(
        schedule, result["progress"], orm.Float(0.99), statistics_0=orm.Dict({"A": {"accurate_fraction": 1.0}})
    )
    assert second["decision"]["converged"] is True


def test_check_convergence_refuses_missing_statistics(aiida_profile):
    import pytest

    schedule = orm.Dict(STAGES)
    with pytest.raises(ValueError, match="no exploration statistics for active system"):
        check_convergence(
            schedule, start_schedule(schedule), orm.Float(0.99), statistics_0=orm.Dict({"A": {"accurate_fraction": 1}})
        )


def test_history_is_in_iteration_order(aiida_profile):
    records = {f"iteration_{i}": orm.Dict({"iteration": i}) for i in (10, 2, 0, 1)}
    assert [row["iteration"] for row in collect_history(**records).get_list()] == [0, 1, 2, 10]


GATED = {"A": [{**STAGE, "max_iterations": 3, "max_force_rmse": 0.1}]}


def test_a_force_target_keeps_a_stage_open_until_the_error_is_measured_and_low_enough():
    progress = initial_progress(GATED)
    unmeasured = advance(GATED, progress, {"A": 1.0}, threshold=0.99, force_rmse=None)
    assert unmeasured["A"]["stage_results"] == []  # accurate, but nobody measured the error
    too_high = advance(GATED, progress, {"A": 1.0}, threshold=0.99, force_rmse=0.15)
    assert too_high["A"]["stage_results"] == []
    met = advance(GATED, progress, {"A": 1.0}, threshold=0.99, force_rmse=0.08)
    assert met["A"]["stage_results"] == ["converged"]
    campaign_wide = advance(STAGES, initial_progress(STAGES), {"A": 1.0, "B": 1.0}, 0.99, 0.2, max_force_rmse=0.1)
    assert campaign_wide["A"]["stage_results"] == [] and campaign_wide["B"]["stage_results"] == ["limit"]


def test_ensemble_errors_average_the_models_and_prefer_the_fixed_validation_set():
    from aiida_perovskite.loop.schedule import ensemble_errors, gating_force_rmse

    metrics = {
        "model_1": {"nframes": 4, "force_rmse": 0.3, "energy_rmse_per_atom": 0.002},
        "model_0": {"nframes": 4, "force_rmse": 0.1, "energy_rmse_per_atom": 0.004},
    }
    errors = ensemble_errors(metrics)
    assert errors["nframes"] == 4 and errors["force_rmse"] == 0.2 and errors["energy_rmse_per_atom"] == 0.003
    assert errors["force_rmse_by_model"] == {"model_0": 0.1, "model_1": 0.3}
    assert gating_force_rmse({"held_out": errors}) == 0.2
    assert gating_force_rmse({"held_out": errors, "validation": {**errors, "force_rmse": 0.05}}) == 0.05
    assert gating_force_rmse({}) is None


def test_check_convergence_records_the_gate_with_the_test_metrics(aiida_profile):
    schedule = orm.Dict(GATED)
    progress = start_schedule(schedule)
    statistics = orm.Dict({"A": {"accurate_fraction": 1.0}})
    tests = {f"held_out_model_{i}": orm.Dict({"nframes": 3, "force_rmse": 0.05 + 0.1 * i}) for i in range(2)}
    result = check_convergence(schedule, progress, orm.Float(0.99), orm.Float(0.2), statistics_0=statistics, **tests)
    decision = result["decision"].get_dict()
    assert decision["force_rmse"] == 0.1 and decision["max_force_rmse"] == 0.2  # stage target 0.1 wins: 0.1 <= 0.1
    assert decision["converged"] and result["progress"]["A"]["stage_results"] == ["converged"]


def test_a_new_convergence_criterion_is_one_class_and_one_entry(monkeypatch):
    from aiida_perovskite.loop import convergence

    class EnergyRmse(convergence.Criterion):
        key = "max_energy_rmse"
        measured = "accurate_fraction"  # stands in for a measurement the iteration would record

        def met(self, value, target):
            return value is not None and value >= target + 0.005

    monkeypatch.setitem(convergence.CRITERIA, EnergyRmse.key, EnergyRmse())
    stages = {"A": [{**STAGE, "max_iterations": 3, "max_energy_rmse": 0.99}]}
    assert advance(stages, initial_progress(stages), {"A": 0.992}, threshold=0.9)["A"]["stage_results"] == []
    assert advance(stages, initial_progress(stages), {"A": 0.996}, threshold=0.9)["A"]["stage_results"] == ["converged"]
