"""Re-run the failed labeling jobs of a LabelWorkChain and merge what they recover into its training set."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from aiida import orm
from aiida.engine import submit

from aiida_perovskite.calcfunctions.training_sets import assemble_training_set, merge_training_sets
from aiida_perovskite.data import TrainingSetData
from aiida_perovskite.engines import get_engine

__all__ = ("apply_overrides", "failed_labeling_jobs", "relabel")


def failed_labeling_jobs(label: orm.WorkChainNode) -> dict[str, orm.ProcessNode]:
    """The labeling processes of ``label`` that did not finish ok, by frame name (the newest attempt only)."""
    latest: dict[str, orm.ProcessNode] = {}
    for node in sorted(_labeling_jobs(label), key=lambda n: n.ctime):
        latest[node.base.extras.get("frame")] = node
    return {name: node for name, node in latest.items() if not node.is_finished_ok}


def _labeling_jobs(label: orm.WorkChainNode) -> list[orm.ProcessNode]:
    query = orm.QueryBuilder().append(orm.ProcessNode, filters={"extras.relabel_of_workflow": label.uuid})
    return [node for node in label.called if node.base.extras.get("stage", None) == "label"] + query.all(flat=True)


def apply_overrides(builder, overrides: Mapping[str, Any] | None) -> None:
    """Update ``builder`` in place: nested namespaces recursively, Dict inputs merged key by key."""
    from aiida_perovskite.protocols import recursive_merge

    for key, value in (overrides or {}).items():
        current = builder.get(key)
        if isinstance(current, orm.Dict) and isinstance(value, Mapping):
            builder[key] = orm.Dict(recursive_merge(current.get_dict(), value))
        elif isinstance(value, Mapping) and current is not None and not isinstance(current, orm.Data):
            apply_overrides(current, value)
        else:
            builder[key] = value


def relabel(
    label: orm.WorkChainNode,
    overrides: Mapping[str, Any] | None = None,
    timeout: float = 24 * 3600,
    poll: float = 2.0,
) -> tuple[TrainingSetData | None, dict[str, orm.ProcessNode]]:
    """Re-run every failed labeling job of ``label`` from ``get_builder_restart()`` with ``overrides`` (through
    the daemon), wait for them, and merge the recovered frames with the earlier successes.

    Returns the merged TrainingSetData (None if nothing was ever labeled) and the jobs that failed again.
    """
    engine = get_engine(label.inputs.engine.value)
    failed = failed_labeling_jobs(label)
    retries = {}
    for name, node in failed.items():
        builder = node.get_builder_restart()
        apply_overrides(builder, overrides)
        retry = submit(builder)
        retry.base.extras.set_many({**node.base.extras.all, "relabel_of": node.uuid, "relabel_of_workflow": label.uuid})
        retries[name] = retry
    deadline = time.monotonic() + timeout
    while not all(node.is_terminated for node in retries.values()):
        if time.monotonic() > deadline:
            raise TimeoutError(f"relabeling jobs still running after {timeout} s: {list(retries)}")
        time.sleep(poll)

    recovered = {name: node for name, node in retries.items() if node.is_finished_ok}
    still_failed = {name: node for name, node in retries.items() if not node.is_finished_ok}
    sets: dict[str, TrainingSetData] = {}
    if "training_set" in label.outputs:
        sets["previous"] = label.outputs.training_set
    if recovered:
        labels: dict[str, orm.Data] = {}
        for name, node in recovered.items():
            labels[f"structure__{name}"] = _labeled_structure(node)
            labels.update({f"{key}__{name}": value for key, value in engine.label_outputs(node).items()})
        sets["recovered"] = assemble_training_set(engine=label.inputs.engine, **labels)
    if not sets:
        return None, still_failed
    merged = merge_training_sets(**sets) if len(sets) > 1 else next(iter(sets.values()))
    return merged, still_failed


def _labeled_structure(node: orm.ProcessNode) -> orm.StructureData:
    """The structure a labeling process was given (the first StructureData among its inputs)."""
    for link in node.base.links.get_incoming(node_class=orm.StructureData).all():
        return link.node
    raise ValueError(f"process <{node.pk}> has no structure input")
