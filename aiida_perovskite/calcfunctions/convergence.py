"""The decisions and records of the concurrent-learning loop, as provenance-tracked steps."""

from __future__ import annotations

from aiida import orm
from aiida.engine import calcfunction

from aiida_perovskite.campaign.schedule import advance, campaign_state, initial_progress

__all__ = ("check_convergence", "collect_history", "start_schedule", "summarise_iteration")


@calcfunction
def start_schedule(schedule: orm.Dict) -> orm.Dict:
    """Every system at the start of its first stage: the progress the first iteration explores with."""
    return orm.Dict(initial_progress(schedule.get_dict()))


@calcfunction
def check_convergence(schedule: orm.Dict, progress: orm.Dict, threshold: orm.Float, **statistics: orm.Dict) -> dict:
    """Advance each explored system through its stages from its accurate fraction of this iteration.

    ``statistics``: the selection statistics of this iteration (``statistics_<n>``: Dict by system).
    Outputs ``progress`` (the new schedule state) and ``decision`` (converged, finished, the fractions and
    the stage each system moved to).
    """
    fractions = {
        system: values["accurate_fraction"]
        for node in statistics.values()
        for system, values in node.get_dict().items()
    }
    active = {system for system, state in progress.get_dict().items() if not state["done"]}
    missing = sorted(active - set(fractions))
    if missing:
        raise ValueError(f"no exploration statistics for active system(s) {missing}")
    updated = advance(schedule.get_dict(), progress.get_dict(), fractions, threshold.value)
    decision = {**campaign_state(updated), "threshold": threshold.value, "accurate_fractions": fractions}
    decision["stage_results"] = {system: state["stage_results"] for system, state in updated.items()}
    return {"progress": orm.Dict(updated), "decision": orm.Dict(decision)}


@calcfunction
def summarise_iteration(
    iteration: orm.Int,
    training_set: orm.Data,
    decision: orm.Dict,
    progress: orm.Dict,
    **nodes: orm.Data,
) -> orm.Dict:
    """One row of the iteration history.

    ``training_set``: the data the models of this iteration were trained on; ``progress``: the schedule
    state the iteration explored with; ``nodes``: ``curve_<model>`` (learning curves), ``statistics_<n>``
    (selection statistics by system), optional ``failures`` (the labeling failures, with the system each
    frame came from) and optional ``labeled`` (the TrainingSetData of the new labels).
    """
    failures = nodes["failures"].get_dict() if "failures" in nodes else {}
    systems = {}
    for key in sorted(nodes):
        if not key.startswith("statistics_"):
            continue
        for system, stats in nodes[key].get_dict().items():
            failed_labels = sum(1 for failure in failures.values() if failure.get("system") == system)
            systems[system] = {
                **stats,
                "stage": progress[system]["stage"],
                "failed_labels": failed_labels,
                "labeled": stats["selected"] - failed_labels,
            }
    curves = {key.split("_", 1)[1]: node for key, node in nodes.items() if key.startswith("curve_")}
    training = {name: curve.base.attributes.get("final", {}) for name, curve in sorted(curves.items())}
    return orm.Dict(
        {
            "iteration": iteration.value,
            "training_frames": training_set.nframes,
            "training_errors": training,
            "systems": systems,
            "labeled": nodes["labeled"].nframes if "labeled" in nodes else 0,
            "failed_labels": len(failures),
            "converged": decision["converged"],
            "finished": decision["finished"],
        }
    )


@calcfunction
def collect_history(**records: orm.Dict) -> orm.List:
    """The iteration records (``iteration_<i>``) in iteration order."""
    return orm.List([records[key].get_dict() for key in sorted(records, key=lambda k: int(k.rsplit("_", 1)[1]))])
