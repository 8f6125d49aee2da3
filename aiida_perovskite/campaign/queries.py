"""What a campaign has done so far, read from the provenance graph (also while it runs)."""

from __future__ import annotations

import numpy as np
from aiida import orm

from aiida_perovskite.loop.schedule import labels_behind
from aiida_perovskite.tags import campaign_processes

__all__ = (
    "deviations_by_iteration",
    "final_model",
    "iteration_records",
    "learning_curves_by_iteration",
    "provenance_summary",
    "running_processes",
    "status_rows",
    "test_errors",
)


def iteration_records(campaign: orm.WorkChainNode) -> list[dict]:
    """The history rows written so far by ``summarise_iteration`` (the ``history`` output once finished)."""
    if "history" in campaign.outputs:
        return campaign.outputs.history.get_list()
    records = [
        node.outputs.result.get_dict()
        for node in campaign.called
        if node.process_label == "summarise_iteration" and node.is_finished_ok
    ]
    return sorted(records, key=lambda record: record["iteration"])


def status_rows(records: list[dict]) -> list[dict]:
    """One row per iteration and system: the counts of the history with the system's accurate fraction."""
    rows = []
    for record in records:
        errors = [values.get("rmse_f_trn") for values in record["training_errors"].values()]
        errors = [value for value in errors if value is not None]
        test = test_errors(record)
        for system, values in sorted(record["systems"].items()):
            rows.append(
                {
                    "iteration": record["iteration"],
                    "system": system,
                    "stage": values["stage"],
                    "frames": record["training_frames"],
                    "labels": labels_behind(record),
                    "rmse_f": float(np.mean(errors)) if errors else float("nan"),
                    "rmse_e_test": 1000 * test.get("energy_rmse_per_atom", float("nan")),
                    "rmse_f_test": test.get("force_rmse", float("nan")),
                    **{
                        key: values[key]
                        for key in ("explored", "accurate", "candidate", "failed", "selected", "labeled")
                    },
                    "failed_labels": values["failed_labels"],
                    "accurate_fraction": values["accurate_fraction"],
                }
            )
    return rows


def test_errors(record: dict) -> dict:
    """The ensemble's errors of one history row on the validation set, else on the held-out frames ({} if
    the campaign measured neither)."""
    from aiida_perovskite.loop.schedule import gating_force_rmse

    if gating_force_rmse(record) is None:
        return {}
    return record["validation"] if "validation" in record else record["held_out"]


def running_processes(campaign: orm.WorkChainNode) -> list[orm.ProcessNode]:
    """The campaign's processes that have not terminated yet."""
    return [node for node in campaign_processes(campaign) if not node.is_terminated]


def deviations_by_iteration(campaign: orm.WorkChainNode) -> dict[int, dict[str, np.ndarray]]:
    """``max_devi_f`` of every explored frame, by iteration and system."""
    found: dict[int, dict[str, list]] = {}
    for node in campaign_processes(campaign, stage="explore"):
        if node.process_label != "ExploreWorkChain":
            continue
        iteration, system = node.base.extras.get("iteration"), node.base.extras.get("system")
        for table in _leaves(getattr(node.outputs, "deviations", {})):
            found.setdefault(iteration, {}).setdefault(system, []).append(table.get_array("max_devi_f"))
    return {
        iteration: {system: np.concatenate(arrays) for system, arrays in systems.items()}
        for iteration, systems in found.items()
    }


def _leaves(namespace) -> list[orm.Data]:
    """The nodes of an output namespace, at any depth (link labels with ``__`` read back as nested)."""
    if isinstance(namespace, orm.Data):
        return [namespace]
    return [leaf for key in sorted(namespace) for leaf in _leaves(namespace[key])]


def learning_curves_by_iteration(campaign: orm.WorkChainNode) -> dict[int, dict[str, orm.ArrayData]]:
    """The learning curves of each iteration's ensemble, by model."""
    curves = {}
    for node in campaign_processes(campaign, stage="train"):
        if node.process_label == "TrainEnsembleWorkChain" and node.is_finished_ok:
            curves[node.base.extras.get("iteration")] = dict(node.outputs.learning_curves)
    return curves


def final_model(campaign: orm.WorkChainNode):
    """The model downstream MD runs with: the compressed model_0 when there is one (fastest), else model_0; None
    before the campaign has models."""
    outputs = campaign.outputs
    for namespace in ("compressed_models", "models"):
        if namespace in outputs and "model_0" in outputs[namespace]:
            return outputs[namespace]["model_0"]
    return None


def _model_record(model) -> dict:
    return {
        "uuid": model.uuid,
        "sha256": model.base.attributes.get("sha256"),
        "backend": model.dp_backend,
        "descriptor": model.descriptor,
        "rcut": model.base.attributes.get("rcut"),
        "type_map": model.type_map,
        "compressed": bool(model.base.attributes.get("compressed")),
    }


def provenance_summary(campaign: orm.WorkChainNode) -> dict:
    """Where a campaign's outputs come from, for readers without its database: the campaign (UUID, state,
    file), the teacher or engine and level of theory of its labels, the settings that decided the loop, the
    outputs' content hashes and model hashes, and its learning curve."""
    inputs, outputs = campaign.inputs, campaign.outputs
    label = inputs.label
    summary = {
        "campaign": {
            "uuid": campaign.uuid,
            "label": campaign.label,
            "description": campaign.description,
            "exit_status": campaign.exit_status,
            "ctime": campaign.ctime.isoformat(),
            "campaign_file": campaign.base.extras.get("campaign_file", None),
            "iterations": len(iteration_records(campaign)),
        },
        "labels": {
            "engine": label.engine.value,
            "engine_inputs": {
                key: node.get_dict() for key, node in label.engine_inputs.items() if isinstance(node, orm.Dict)
            }
            if "engine_inputs" in label
            else {},
        },
        "settings": {
            key: inputs[key].get_dict()
            for key in ("trust", "schedule", "final_training", "train_reuse")
            if key in inputs
        }
        | {
            "seed": inputs.seed.value,
            "max_labels": inputs.max_labels.value,
            "accurate_fraction": inputs.accurate_fraction.value,
            "training_parameters": inputs.train.train.train.parameters.get_dict(),
            "num_models": inputs.train.num_models.value,
        },
        "outputs": {},
    }
    for name in ("training_set", "held_out_set"):
        if name in outputs:
            data = outputs[name]
            summary["outputs"][name] = {
                "uuid": data.uuid,
                "frames": data.nframes,
                "content_hash": data.content_hash(),
                "label_sources": data.label_sources,
            }
    for namespace in ("models", "compressed_models"):
        if namespace in outputs:
            summary["outputs"][namespace] = {name: _model_record(model) for name, model in outputs[namespace].items()}
    if "learning_curve" in outputs:
        summary["learning_curve"] = outputs.learning_curve.get_dict()
    return summary
