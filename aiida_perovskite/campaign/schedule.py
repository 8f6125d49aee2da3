"""The exploration schedule of a campaign: each system walks through its own list of stages.

A stage ends when the system's accurate fraction reaches the threshold ("converged") or after the stage's
``max_iterations`` ("limit"). A system is done after its last stage; the campaign is converged when every
stage of every system ended converged. Plain dictionaries in and out, so that the decision can be a
calcfunction and the state can live in a WorkChain's context.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ("STAGE_KEYS", "STAGE_MD_KEYS", "advance", "campaign_state", "current_stage", "initial_progress")

STAGE_MD_KEYS = ("temperatures", "pressures", "ensemble", "steps", "sampling_interval", "timestep", "tdamp", "pdamp")
STAGE_KEYS = (*STAGE_MD_KEYS, "max_iterations", "accurate_fraction")


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
) -> dict[str, dict[str, Any]]:
    """The progress after one iteration in which each active system reached ``accurate_fractions[system]``.

    A stage may set its own ``accurate_fraction``; otherwise ``threshold`` applies.
    """
    updated = {}
    for system, state in progress.items():
        state = {**state, "stage_results": list(state["stage_results"])}
        if not state["done"]:
            stage = stages[system][state["stage"]]
            state["stage_iterations"] += 1
            result = None
            if accurate_fractions[system] >= stage.get("accurate_fraction", threshold):
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
