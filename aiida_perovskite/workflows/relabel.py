"""Re-run the failed labeling jobs of a LabelWorkChain and merge what they recover into its training set."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

from aiida import orm
from aiida.engine import submit

from aiida_perovskite.calcfunctions.training_sets import assemble_training_set, merge_training_sets
from aiida_perovskite.data import TrainingSetData
from aiida_perovskite.engines import get_engine

__all__ = ("apply_overrides", "failed_labeling_jobs", "relabel", "relabel_campaign", "rerun_failed")


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


def rerun_failed(
    label: orm.WorkChainNode,
    overrides: Mapping[str, Any] | None = None,
    timeout: float = 24 * 3600,
    poll: float = 2.0,
) -> tuple[TrainingSetData | None, dict[str, orm.ProcessNode]]:
    """Re-run every failed labeling job of ``label`` from ``get_builder_restart()`` with ``overrides`` (through
    the daemon) and wait for them. Returns the frames they recovered (None if none) and the jobs that failed
    again."""
    engine = get_engine(label.inputs.engine.value)
    retries = {}
    for name, node in failed_labeling_jobs(label).items():
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
    if not recovered:
        return None, still_failed
    labels: dict[str, orm.Data] = {}
    for name, node in recovered.items():
        labels[f"structure__{name}"] = _labeled_structure(node)
        labels.update({f"{key}__{name}": value for key, value in engine.label_outputs(node).items()})
    return assemble_training_set(engine=label.inputs.engine, **labels), still_failed


def relabel(
    label: orm.WorkChainNode,
    overrides: Mapping[str, Any] | None = None,
    timeout: float = 24 * 3600,
    poll: float = 2.0,
) -> tuple[TrainingSetData | None, dict[str, orm.ProcessNode]]:
    """``rerun_failed`` and merge the recovered frames with the earlier successes of ``label``.

    Returns the merged TrainingSetData (None if nothing was ever labeled) and the jobs that failed again.
    """
    recovered, still_failed = rerun_failed(label, overrides, timeout, poll)
    sets = {"previous": label.outputs.training_set} if "training_set" in label.outputs else {}
    if recovered is not None:
        sets["recovered"] = recovered
    if not sets:
        return None, still_failed
    merged = merge_training_sets(**sets) if len(sets) > 1 else next(iter(sets.values()))
    return merged, still_failed


def relabel_campaign(
    campaign: orm.WorkChainNode,
    overrides: Mapping[str, Any] | None = None,
    timeout: float = 24 * 3600,
    poll: float = 2.0,
    report: Callable[[str], None] = print,
) -> tuple[TrainingSetData | None, int, dict[str, orm.ProcessNode]]:
    """Re-run the failed labeling jobs of every labeling step of a campaign (jobs that finished are not run
    again) and merge the recovered frames into the campaign's training set.

    Returns the updated training set (None if nothing was recovered), the number of recovered frames and the
    jobs that failed again.
    """
    from aiida_perovskite.campaign.queries import campaign_processes

    recovered_sets: dict[str, TrainingSetData] = {}
    still_failed: dict[str, orm.ProcessNode] = {}
    for index, label in enumerate(campaign_processes(campaign)):
        if label.process_label != "LabelWorkChain":
            continue
        failed_jobs = failed_labeling_jobs(label)
        if not failed_jobs:
            continue
        report(
            f"LabelWorkChain<{label.pk}> (iteration {label.base.extras.get('iteration', '?')}): re-running "
            f"{len(failed_jobs)} failed job(s)"
        )
        recovered, failed = rerun_failed(label, overrides, timeout, poll)
        still_failed.update({f"{label.pk}:{name}": node for name, node in failed.items()})
        if recovered is not None:
            recovered_sets[f"recovered_{index:04d}"] = recovered
    if not recovered_sets:
        return None, 0, still_failed
    count = sum(data.nframes for data in recovered_sets.values())
    base = {"campaign": campaign.outputs.training_set} if "training_set" in campaign.outputs else {}
    return merge_training_sets(**base, **recovered_sets), count, still_failed


def _labeled_structure(node: orm.ProcessNode) -> orm.StructureData:
    """The structure a labeling process was given (the first StructureData among its inputs)."""
    for link in node.base.links.get_incoming(node_class=orm.StructureData).all():
        return link.node
    raise ValueError(f"process <{node.pk}> has no structure input")
