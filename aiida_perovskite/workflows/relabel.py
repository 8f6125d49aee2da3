"""Re-run the failed labeling jobs of a LabelWorkChain and merge what they recover into its training set."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

from aiida import orm
from aiida.common.links import LinkType
from aiida.engine import submit

from aiida_perovskite.calcfunctions.training_sets import assemble_training_set, merge_training_sets
from aiida_perovskite.data import TrainingSetData
from aiida_perovskite.engines import get_engine
from aiida_perovskite.tags import campaign_processes
from aiida_perovskite.workflows.label import label_source_of

__all__ = ("apply_overrides", "failed_frames", "relabel", "relabel_campaign", "rerun_failed")


def failed_frames(label: orm.WorkChainNode) -> dict[str, orm.ProcessNode]:
    """The frames of ``label`` whose newest labeling attempt failed, with that attempt's process."""
    engine = get_engine(label.inputs.engine.value)
    latest: dict[str, orm.ProcessNode] = {}
    for node in sorted(_labeling_jobs(label), key=lambda n: n.ctime):
        latest.update({name: node for name in node.base.extras.get("frames", [])})
    failed = {}
    for node in {node.pk: node for node in latest.values()}.values():
        names = [name for name, job in latest.items() if job.pk == node.pk]
        if node.is_terminated:
            failed.update({name: node for name in engine.outcomes(node, names)[1]})
    return failed


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
    progress: Callable[[int, int], None] | None = None,
) -> tuple[TrainingSetData | None, dict[str, orm.ProcessNode]]:
    """Label again every failed frame of ``label``: one process per failed process (a teacher batch is re-run
    with its failed frames only), built from ``get_builder_restart()`` with ``overrides``, through the daemon.
    ``progress(finished, total)`` is told the number of finished retries while waiting.
    Returns the frames recovered (None if none) and, per frame that failed again, its process."""
    engine = get_engine(label.inputs.engine.value)
    by_job: dict[int, list[str]] = {}
    jobs = {}
    for name, node in failed_frames(label).items():
        by_job.setdefault(node.pk, []).append(name)
        jobs[node.pk] = node
    retries = []
    for pk, names in by_job.items():
        node = jobs[pk]
        builder = engine.restart_builder(node, names)
        apply_overrides(builder, overrides)
        retry = submit(builder)
        extras = {**node.base.extras.all, "frames": names, "relabel_of": node.uuid, "relabel_of_workflow": label.uuid}
        retry.base.extras.set_many(extras)
        retries.append((retry, names))
    deadline = time.monotonic() + timeout
    while True:
        finished = sum(node.is_terminated for node, _ in retries)
        if progress is not None:
            progress(finished, len(retries))
        if finished == len(retries):
            break
        if time.monotonic() > deadline:
            raise TimeoutError(f"relabeling jobs still running after {timeout} s: {[n.pk for n, _ in retries]}")
        time.sleep(poll)

    labels: dict[str, orm.Data] = {}
    still_failed: dict[str, orm.ProcessNode] = {}
    for node, names in retries:
        labeled, failed = engine.outcomes(node, names)
        still_failed.update({name: node for name in failed})
        for name, outputs in labeled.items():
            labels[f"structure__{name}"] = _labeled_structure(node, name)
            labels.update({f"{key}__{name}": value for key, value in outputs.items()})
    if not labels:
        return None, still_failed
    source = orm.Dict(label_source_of(label.base.links.get_incoming(link_type=LinkType.INPUT_WORK).nested()))
    return assemble_training_set(engine=label.inputs.engine, label_source=source, **labels), still_failed


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
    progress: Callable[[int, int], None] | None = None,
) -> tuple[TrainingSetData | None, int, dict[str, orm.ProcessNode]]:
    """Re-run the failed labeling jobs of every labeling step of a campaign (jobs that finished are not run
    again) and merge the recovered frames into the campaign's training set.

    Returns the updated training set (None if nothing was recovered), the number of recovered frames and the
    jobs that failed again. ``report`` gets a line per labeling step, ``progress`` as in ``rerun_failed``.
    """

    recovered_sets: dict[str, TrainingSetData] = {}
    still_failed: dict[str, orm.ProcessNode] = {}
    for index, label in enumerate(campaign_processes(campaign)):
        if label.process_label != "LabelWorkChain":
            continue
        failed = failed_frames(label)
        if not failed:
            continue
        report(
            f"LabelWorkChain<{label.pk}> (iteration {label.base.extras.get('iteration', '?')}): labeling "
            f"{len(failed)} failed frame(s) again"
        )
        recovered, failed = rerun_failed(label, overrides, timeout, poll, progress)
        still_failed.update({f"{label.pk}:{name}": node for name, node in failed.items()})
        if recovered is not None:
            recovered_sets[f"recovered_{index:04d}"] = recovered
    if not recovered_sets:
        return None, 0, still_failed
    count = sum(data.nframes for data in recovered_sets.values())
    base = {"campaign": campaign.outputs.training_set} if "training_set" in campaign.outputs else {}
    return merge_training_sets(**base, **recovered_sets), count, still_failed


def _labeled_structure(node: orm.ProcessNode, name: str) -> orm.StructureData:
    """The structure of frame ``name`` that a labeling process was given: its one StructureData input, or the
    one of a batch whose link label ends in the frame name."""
    links = node.base.links.get_incoming(node_class=orm.StructureData).all()
    if len(links) == 1:
        return links[0].node
    for link in links:
        if link.link_label.endswith(f"__{name}"):
            return link.node
    raise ValueError(f"process <{node.pk}> has no structure input for frame {name!r}")
