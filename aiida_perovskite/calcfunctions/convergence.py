"""The decisions and records of the concurrent-learning loop, as provenance-tracked steps."""

from __future__ import annotations

from aiida import orm
from aiida.engine import calcfunction

from aiida_perovskite.loop.schedule import (
    advance,
    campaign_state,
    ensemble_errors,
    gating_force_rmse,
    initial_progress,
    labels_behind,
)

ERROR_SETS = ("validation", "held_out")  # a fixed set given by the user; frames held out of the labels

__all__ = (
    "check_convergence",
    "collect_history",
    "start_schedule",
    "summarise_iteration",
    "summarise_learning_curve",
)


@calcfunction
def start_schedule(schedule: orm.Dict) -> orm.Dict:
    """Every system at the start of its first stage: the progress the first iteration explores with."""
    return orm.Dict(initial_progress(schedule.get_dict()))


def errors_by_set(nodes: dict[str, orm.Data]) -> dict[str, dict]:
    """``validation_<model>`` / ``held_out_<model>`` test metrics -> the ensemble's errors per set."""
    found = {}
    for kind in ERROR_SETS:
        metrics = {key[len(kind) + 1 :]: node.get_dict() for key, node in nodes.items() if key.startswith(f"{kind}_")}
        if metrics:
            found[kind] = ensemble_errors(metrics)
    return found


@calcfunction
def check_convergence(
    schedule: orm.Dict,
    progress: orm.Dict,
    threshold: orm.Float,
    max_force_rmse: orm.Float | None = None,
    **nodes: orm.Dict,
) -> dict:
    """Advance each explored system through its stages from its accurate fraction of this iteration and, where
    a force-error target is set, the ensemble's held-out force RMSE.

    ``nodes``: the selection statistics of this iteration (``statistics_<n>``: Dict by system) and the test
    metrics of each model (``validation_<model>`` on the user's fixed set, ``held_out_<model>`` on the frames
    held out of the labels). Outputs ``progress`` (the new schedule state) and ``decision`` (converged,
    finished, the fractions, the force RMSE and target, the stage each system moved to).
    """
    statistics = {key: node for key, node in nodes.items() if key.startswith("statistics_")}
    fractions = {
        system: values["accurate_fraction"]
        for node in statistics.values()
        for system, values in node.get_dict().items()
    }
    force_rmse = gating_force_rmse(errors_by_set(nodes))
    target = max_force_rmse.value if max_force_rmse is not None else None
    active = {system for system, state in progress.get_dict().items() if not state["done"]}
    missing = sorted(active - set(fractions))
    if missing:
        raise ValueError(f"no exploration statistics for active system(s) {missing}")
    updated = advance(schedule.get_dict(), progress.get_dict(), fractions, threshold.value, force_rmse, target)
    decision = {
        **campaign_state(updated),
        "threshold": threshold.value,
        "accurate_fractions": fractions,
        "force_rmse": force_rmse,
        "max_force_rmse": target,
    }
    decision["stage_results"] = {system: state["stage_results"] for system, state in updated.items()}
    return {"progress": orm.Dict(updated), "decision": orm.Dict(decision)}


@calcfunction
def summarise_iteration(
    iteration: orm.Int,
    training_set: orm.Data,
    held_out_frames: orm.Int,
    decision: orm.Dict,
    progress: orm.Dict,
    **nodes: orm.Data,
) -> orm.Dict:
    """One row of the iteration history.

    ``training_set``: the data the models of this iteration were trained on; ``held_out_frames``: the frames
    kept out of it so far (their sum is the number of labels behind the models); ``progress``: the schedule
    state the iteration explored with; ``nodes``: ``curve_<model>`` (learning curves), ``statistics_<n>``
    (selection statistics by system), optional ``failures`` (the labeling failures, with the system each
    frame came from), optional ``labeled`` (the TrainingSetData of the new labels, held-out part included)
    and the test metrics ``validation_<model>`` / ``held_out_<model>``.
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
            "held_out_frames": held_out_frames.value,
            "training_errors": training,
            "systems": systems,
            "labeled": nodes["labeled"].nframes if "labeled" in nodes else 0,
            **errors_by_set(nodes),
            "failed_labels": len(failures),
            "converged": decision["converged"],
            "finished": decision["finished"],
        }
    )


@calcfunction
def collect_history(**records: orm.Dict) -> orm.List:
    """The iteration records (``iteration_<i>``) in iteration order."""
    return orm.List([records[key].get_dict() for key in sorted(records, key=lambda k: int(k.rsplit("_", 1)[1]))])


@calcfunction
def summarise_learning_curve(history: orm.List, final_labels: orm.Int, **metrics: orm.Dict) -> orm.Dict:
    """The errors of every iteration's ensemble (``iteration_<i>__<model>``, and ``final__<model>`` for the final
    training) on one set -- the frames held out over the whole campaign -- against the labels behind each
    ensemble: a learning curve whose points are comparable, unlike tests on a held-out set that grows."""

    labels = {f"iteration_{record['iteration']}": labels_behind(record) for record in history.get_list()}
    labels["final"] = final_labels.value
    ensembles: dict[str, dict] = {}
    for key, node in metrics.items():
        ensemble, model = key.split("__")
        ensembles.setdefault(ensemble, {})[model] = node.get_dict()
    order = sorted(ensembles, key=lambda name: (name == "final", int(name.split("_")[-1]) if name != "final" else 0))
    points = [{"ensemble": name, "labels": labels[name], **ensemble_errors(ensembles[name])} for name in order]
    return orm.Dict({"points": points})
