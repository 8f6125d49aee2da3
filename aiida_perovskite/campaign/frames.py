"""One row per frame a campaign sent to labeling: where it came from (exploration job, conditions, MD step,
deviation, selection), who labeled it (job, engine, exit status, message) and where it went (trained on, held
out, or failed). Read from the provenance graph alone, also while the campaign runs."""

from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd
from aiida import orm
from aiida.common.links import LinkType

from aiida_perovskite.tags import campaign_processes

__all__ = ("FRAME_COLUMNS", "labeled_frames")

FRAME_COLUMNS = (
    "iteration",
    "system",
    "frame",
    "origin",
    "exploration_pk",
    "temperature",
    "pressure",
    "ensemble",
    "md_step",
    "force_deviation",
    "selection_pk",
    "label_pk",
    "label_process",
    "engine",
    "exit_status",
    "message",
    "destination",
    "training_set_pk",
)


def labeled_frames(campaign: orm.WorkChainNode, iteration: int | None = None, failed: bool = False) -> pd.DataFrame:
    """The frames of every labeling step of ``campaign`` (of ``iteration`` only, and only failed ones, if asked).

    ``origin`` is ``perturbation`` for the initial data and ``exploration`` for selected frames, which carry the
    exploration job, its temperature (K), pressure (bar) and ensemble, the MD step and the max force deviation
    (eV/Å). ``destination`` is ``training``, ``held_out`` or ``failed``; ``training_set_pk`` the set it entered.
    """
    rows = []
    for label in campaign_processes(campaign):
        if label.process_label != "LabelWorkChain":
            continue
        label_iteration = label.base.extras.get("iteration", 0)
        if iteration is not None and label_iteration != iteration:
            continue
        rows.extend(_rows_of_labeling(label, label_iteration))
    table = pd.DataFrame(rows, columns=list(FRAME_COLUMNS))
    if failed:
        table = table[table["destination"] == "failed"]
    order = pd.DataFrame(
        {
            "iteration": table["iteration"],
            "initial": table["origin"] != "perturbation",  # the initial data first
            "system": table["system"],
            "index": table["frame"].str.rpartition("_")[2].astype(int),
        }
    )
    return table.loc[order.sort_values(list(order.columns), kind="stable").index].reset_index(drop=True)


def _rows_of_labeling(label: orm.WorkflowNode, iteration: int) -> list[dict]:
    failures = label.outputs.failures.get_dict() if "failures" in label.outputs else {}
    held_out, training_pk = _destinations(label)
    origins = _exploration_origins(label)
    structures = _structures_by_name(label)
    rows = []
    for job in label.called:
        names = job.base.extras.get("frames", None)
        if not names:
            continue
        for name in names:
            system = name.rpartition("_")[0]
            failure = failures.get(name)
            if failure is not None:
                destination, set_pk = "failed", None
            elif job.is_terminated:
                held_pk = held_out.get(_fingerprint(structures[name]))
                destination, set_pk = ("held_out", held_pk) if held_pk else ("training", training_pk)
            else:
                destination, set_pk = "running", None
            rows.append(
                {
                    "iteration": iteration,
                    "system": system,
                    "frame": name,
                    "origin": "exploration" if name in origins else "perturbation",
                    **origins.get(name, {}),
                    "label_pk": job.pk,
                    "label_process": job.process_label,
                    "engine": job.base.extras.get("engine", None),
                    "exit_status": job.exit_status,
                    "message": failure["message"] if failure else (job.exit_message or ""),
                    "destination": destination,
                    "training_set_pk": set_pk,
                }
            )
    return rows


def _structures_by_name(label: orm.WorkflowNode) -> dict[str, orm.StructureData]:
    """The StructureData of every frame name the labeling launched (given, or made from the trajectories)."""
    structures = dict(_namespace(label, "structures"))
    for trajectory_name, trajectory in _namespace(label, "trajectories").items():
        for call in trajectory.base.links.get_outgoing(link_label_filter="trajectory").all():
            if call.node.process_label != "frames_to_structures":
                continue
            for link in call.node.base.links.get_outgoing(link_type=LinkType.CREATE).all():
                structures[f"{trajectory_name}_{link.link_label.rsplit('_', 1)[-1]}"] = link.node
    return structures


def _exploration_origins(label: orm.WorkflowNode) -> dict[str, dict]:
    """Per frame name of a selected frame: the exploration job and conditions, MD step, deviation, selection."""
    origins = {}
    for system, candidates in _namespace(label, "trajectories").items():
        selection = candidates.creator
        if selection is None or selection.process_label != "select_candidates":  # e.g. perturbed copies
            continue
        tables = {
            link.link_label.split("__", 1)[1]: link.node
            for link in selection.base.links.get_incoming().all()
            if link.link_label.startswith("devi__")
        }
        jobs = selection.outputs.indices[system].get_array("jobs")
        runs = {}
        for job_index in np.unique(candidates.get_array("source")[:, 0]):
            deviations = tables[str(jobs[job_index])]
            md = deviations.creator
            parameters = md.inputs.parameters.get_dict() if md is not None and "parameters" in md.inputs else {}
            runs[job_index] = (md, parameters, deviations.get_array("step"), deviations.get_array("max_devi_f"))
        for index, (job_index, frame) in enumerate(candidates.get_array("source")):
            md, parameters, steps, force = runs[job_index]
            origins[f"{system}_{index}"] = {
                "exploration_pk": md.pk if md is not None else None,
                "temperature": parameters.get("temperature"),
                "pressure": parameters.get("pressure"),
                "ensemble": parameters.get("ensemble"),
                "md_step": int(steps[frame]),
                "force_deviation": float(force[frame]),
                "selection_pk": selection.pk,
            }
    return origins


def _destinations(label: orm.WorkflowNode) -> tuple[dict[str, int], int | None]:
    """Where the labeled frames went: fingerprints of the held-out ones -> pk of the held-out part, and the pk of
    the set the others were trained on (the labeling's own set when nothing was split off)."""
    if "training_set" not in label.outputs:
        return {}, None
    labeled = label.outputs.training_set
    for link in labeled.base.links.get_outgoing(link_label_filter="training_set").all():
        split = link.node
        if split.process_label != "split_training_set" or "training" not in split.outputs:
            continue
        held = split.outputs.held_out if "held_out" in split.outputs else None
        fingerprints = (
            {_fingerprint_frames(b, i): held.pk for b in _blocks(held) for i in range(b.nframes)} if held else {}
        )
        return fingerprints, split.outputs.training.pk
    return {}, labeled.pk


def _namespace(process: orm.ProcessNode, name: str) -> dict:
    return dict(process.inputs[name]) if name in process.inputs else {}


def _blocks(training_set) -> list:
    return [block for _, block in training_set.iter_frames()]


def _fingerprint(structure: orm.StructureData) -> str:
    symbols = np.array(structure.get_site_kindnames())
    return _digest(np.array(structure.cell), np.array([site.position for site in structure.sites]), symbols)


def _fingerprint_frames(block, index: int) -> str:
    return _digest(block.cells[index], block.coords[index], np.array(block.symbols()))


def _digest(cell: np.ndarray, positions: np.ndarray, symbols: np.ndarray) -> str:
    """The same frame whatever the atom order (engines may reorder atoms): sorted rows of symbol and position."""
    rounded = np.round(np.asarray(positions, float), 4) + 0.0  # + 0.0: no negative zeros
    order = np.lexsort((*rounded.T[::-1], symbols))
    digest = hashlib.sha256((np.round(np.asarray(cell, float), 4) + 0.0).tobytes())
    digest.update("".join(symbols[order]).encode())
    digest.update(rounded[order].tobytes())
    return digest.hexdigest()
