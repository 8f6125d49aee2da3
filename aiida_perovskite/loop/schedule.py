"""The exploration schedule of a campaign: each system walks through its own list of stages.

A stage ends when the system's accurate fraction reaches the threshold -- and, where a force-error target is
set, the held-out force RMSE of the models is at most that target -- ("converged") or after the stage's
``max_iterations`` ("limit"). A system is done after its last stage; the campaign is converged when every
stage of every system ended converged. Plain dictionaries in and out, so that the decision can be a
calcfunction and the state can live in a WorkChain's context.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from aiida_perovskite.loop.convergence import stage_converged

__all__ = (
    "ERROR_KEYS",
    "STAGE_KEYS",
    "STAGE_MD_KEYS",
    "advance",
    "campaign_state",
    "current_stage",
    "ensemble_errors",
    "gating_force_rmse",
    "initial_progress",
    "labels_behind",
)

STAGE_MD_KEYS = ("temperatures", "pressures", "ensemble", "steps", "sampling_interval", "timestep", "tdamp", "pdamp")
STAGE_KEYS = (*STAGE_MD_KEYS, "max_iterations", "accurate_fraction", "max_force_rmse")


ERROR_KEYS = (
    "energy_rmse_per_atom",
    "energy_mae_per_atom",
    "force_rmse",
    "force_mae",
    "virial_rmse_per_atom",
    "virial_mae_per_atom",
)


def ensemble_errors(metrics: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """Errors of an ensemble on one labeled set (``dp test`` metrics by model): each metric averaged over the
    models (eV/atom, eV/Å), the number of frames and the force RMSE of each model."""
    values = [dict(m) for _, m in sorted(metrics.items())]
    summary: dict[str, Any] = {"nframes": int(values[0]["nframes"])}
    for key in ERROR_KEYS:
        found = [m[key] for m in values if key in m]
        if found:
            summary[key] = float(sum(found) / len(found))
    summary["force_rmse_by_model"] = {name: float(m["force_rmse"]) for name, m in sorted(metrics.items())}
    return summary


def gating_force_rmse(errors: Mapping[str, Mapping[str, Any]]) -> float | None:
    """The force RMSE that an accuracy target is checked against: the user's fixed validation set when there is
    one (comparable across iterations), else the frames held out of the campaign's labels; None if neither."""
    for kind in ("validation", "held_out"):
        if kind in errors:
            return float(errors[kind]["force_rmse"])
    return None


def initial_progress(stages: Mapping[str, list]) -> dict[str, dict[str, Any]]:
    """Every system at the start of its first stage."""
    return {system: {"stage": 0, "stage_iterations": 0, "done": False, "stage_results": []} for system in stages}


def current_stage(stages: Mapping[str, list], progress: Mapping[str, Mapping], system: str) -> dict[str, Any]:
    """The stage ``system`` explores in now (its MD settings, max_iterations, optional accurate_fraction)."""
    return dict(stages[system][progress[system]["stage"]])


def advance(
    stages: Mapping[str, list],
    progress: Mapping[str, Mapping],
    accurate_fractions: Mapping[str, float],
    threshold: float,
    force_rmse: float | None = None,
    max_force_rmse: float | None = None,
) -> dict[str, dict[str, Any]]:
    """The progress after one iteration in which each active system reached ``accurate_fractions[system]``
    and the models had the held-out force RMSE ``force_rmse`` (eV/Å; None when not measured).

    A stage may set its own ``accurate_fraction`` and ``max_force_rmse``; otherwise ``threshold`` and
    ``max_force_rmse`` apply; the criteria are ``loop.convergence.CRITERIA`` (a force target is met only when
    the error is measured: deviations alone do not say the models are right).
    """
    targets = {"accurate_fraction": threshold, "max_force_rmse": max_force_rmse}
    updated = {}
    for system, state in progress.items():
        state = {**state, "stage_results": list(state["stage_results"])}
        if not state["done"]:
            stage = stages[system][state["stage"]]
            state["stage_iterations"] += 1
            result = None
            measured = {"accurate_fraction": accurate_fractions[system], "force_rmse": force_rmse}
            if stage_converged(stage, targets, measured):
                result = "converged"
            elif state["stage_iterations"] >= stage["max_iterations"]:
                result = "limit"
            if result:
                state["stage_results"].append(result)
                state["stage"] += 1
                state["stage_iterations"] = 0
                state["done"] = state["stage"] >= len(stages[system])
                if state["done"]:
                    state["stage"] = len(stages[system]) - 1
        updated[system] = state
    return updated


def campaign_state(progress: Mapping[str, Mapping]) -> dict[str, bool]:
    """``finished``: every system is past its last stage; ``converged``: and every stage ended converged."""
    finished = all(state["done"] for state in progress.values())
    converged = finished and all(
        result == "converged" for state in progress.values() for result in state["stage_results"]
    )
    return {"finished": finished, "converged": converged}


def labels_behind(record: Mapping[str, Any]) -> int:
    """Labeled frames behind one iteration's models (a history record): those trained on plus those held out."""
    return int(record["training_frames"] + record.get("held_out_frames", 0))
