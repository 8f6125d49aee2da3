"""Re-run the failed labeling jobs of a LabelWorkChain and merge what they recover into its training set."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

from aiida import orm
from aiida.common.links import LinkType
from aiida.engine import WorkChain, submit

from aiida_perovskite.calcfunctions.training_sets import assemble_training_set, merge_training_sets
from aiida_perovskite.data import TrainingSetData
from aiida_perovskite.engines import get_engine
from aiida_perovskite.tags import campaign_processes
from aiida_perovskite.workflows.label import label_source_of

__all__ = (
    "RelabelWorkChain",
    "apply_overrides",
    "failed_frames",
    "failed_jobs",
    "relabel",
    "relabel_campaign",
    "run_relabel",
)


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


class RelabelWorkChain(WorkChain):
    """Label again the failed frames of labeling steps -- one retry per failed job, built from its
    ``get_builder_restart()`` with ``overrides``; jobs that finished are not run again -- and merge what they
    recover into ``training_set``. The relabel is itself a process, so the recovered frames trace back to it."""

    @classmethod
    def define(cls, spec):
        super().define(spec)
        spec.input(
            "failed",
            valid_type=orm.Dict,
            help="{LabelWorkChain UUID: {failed job UUID: [frame names]}}, as failed_jobs() finds them.",
        )
        spec.input("training_set", valid_type=TrainingSetData, required=False, help="The set the frames join.")
        spec.input("overrides", valid_type=orm.Dict, required=False, help="Input overrides of the retries.")
        spec.outline(cls.submit_retries, cls.collect)
        spec.output(
            "training_set",
            valid_type=TrainingSetData,
            required=False,
            help="training_set with the recovered frames (absent if neither has a frame).",
        )

    def submit_retries(self):
        overrides = self.inputs.overrides.get_dict() if "overrides" in self.inputs else None
        self.ctx.retries = []
        for label_uuid, jobs in sorted(self.inputs.failed.get_dict().items()):
            engine = get_engine(orm.load_node(label_uuid).inputs.engine.value)
            for job_uuid, names in sorted(jobs.items()):
                node = orm.load_node(job_uuid)
                builder = engine.restart_builder(node, names)
                apply_overrides(builder, overrides)
                retry = self.submit(builder)
                retry.base.extras.set_many(
                    {
                        **node.base.extras.all,
                        "frames": names,
                        "relabel_of": node.uuid,
                        "relabel_of_workflow": label_uuid,
                    }
                )
                key = f"retry_{len(self.ctx.retries)}"
                self.to_context(**{key: retry})
                self.ctx.retries.append((key, label_uuid, names))
        self.report(f"labeling {sum(len(names) for *_, names in self.ctx.retries)} frame(s) again")

    def collect(self):
        recovered = []
        for label_uuid in dict.fromkeys(uuid for _, uuid, _ in self.ctx.retries):
            label = orm.load_node(label_uuid)
            engine = get_engine(label.inputs.engine.value)
            labels: dict[str, orm.Data] = {}
            for key, _, names in (retry for retry in self.ctx.retries if retry[1] == label_uuid):
                node = self.ctx[key]
                labeled, failed = engine.outcomes(node, names)
                if failed:
                    self.report(f"{node.process_label}<{node.pk}> failed again for {', '.join(failed)}")
                for name, outputs in labeled.items():
                    labels[f"structure__{name}"] = _labeled_structure(node, name)
                    labels.update({f"{output}__{name}": value for output, value in outputs.items()})
            if labels:
                source = label_source_of(label.base.links.get_incoming(link_type=LinkType.INPUT_WORK).nested())
                recovered.append(
                    assemble_training_set(engine=label.inputs.engine, label_source=orm.Dict(source), **labels)
                )
        sets = {"previous": self.inputs.training_set} if "training_set" in self.inputs else {}
        if len(recovered) == 1:
            sets["recovered"] = recovered[0]
        else:
            sets.update({f"recovered_{index:04d}": data for index, data in enumerate(recovered)})
        if len(sets) > 1:
            self.out("training_set", merge_training_sets(**sets))
        elif sets:
            self.out("training_set", next(iter(sets.values())))


def failed_jobs(labels: list[orm.WorkChainNode]) -> dict[str, dict[str, list[str]]]:
    """The ``failed`` input of a RelabelWorkChain for these LabelWorkChains: their failed frames by job."""
    found: dict[str, dict[str, list[str]]] = {}
    for label in labels:
        for name, node in sorted(failed_frames(label).items()):
            found.setdefault(label.uuid, {}).setdefault(node.uuid, []).append(name)
    return found


def run_relabel(
    failed: dict[str, dict[str, list[str]]],
    training_set: TrainingSetData | None,
    overrides: Mapping[str, Any] | None = None,
    timeout: float = 24 * 3600,
    poll: float = 2.0,
    progress: Callable[[int, int], None] | None = None,
    extras: Mapping[str, Any] | None = None,
) -> orm.WorkChainNode:
    """Submit a RelabelWorkChain to the daemon and wait for it; ``progress(finished, total)`` hears of the
    retries."""
    builder = RelabelWorkChain.get_builder()
    builder.failed = orm.Dict(failed)
    if training_set is not None:
        builder.training_set = training_set
    if overrides:
        builder.overrides = orm.Dict(dict(overrides))
    node = submit(builder)
    node.base.extras.set_many({**(extras or {}), "stage": "relabel"})
    total = sum(len(jobs) for jobs in failed.values())
    deadline = time.monotonic() + timeout
    while not node.is_terminated:
        if progress is not None:
            retries = [child for child in node.called if isinstance(child, orm.CalcJobNode | orm.WorkflowNode)]
            progress(sum(child.is_terminated for child in retries), total)
        if time.monotonic() > deadline:
            raise TimeoutError(f"RelabelWorkChain<{node.pk}> still running after {timeout} s")
        time.sleep(poll)
    if not node.is_finished_ok:
        raise RuntimeError(f"RelabelWorkChain<{node.pk}> failed: {node.exit_status} {node.exit_message or ''}")
    return node


def relabel(
    label: orm.WorkChainNode,
    overrides: Mapping[str, Any] | None = None,
    timeout: float = 24 * 3600,
    poll: float = 2.0,
) -> tuple[TrainingSetData | None, dict[str, orm.ProcessNode]]:
    """Label the failed frames of ``label`` again (a RelabelWorkChain) and merge them with its earlier successes.

    Returns the merged TrainingSetData (None if nothing was ever labeled) and, per frame that failed again, the
    retry that failed.
    """
    previous = label.outputs.training_set if "training_set" in label.outputs else None
    failed = failed_jobs([label])
    if not failed:
        return previous, {}
    node = run_relabel(failed, previous, overrides, timeout, poll, extras=_campaign_tags(label))
    return node.outputs.training_set if "training_set" in node.outputs else None, failed_frames(label)


def relabel_campaign(
    campaign: orm.WorkChainNode,
    overrides: Mapping[str, Any] | None = None,
    timeout: float = 24 * 3600,
    poll: float = 2.0,
    report: Callable[[str], None] = print,
    progress: Callable[[int, int], None] | None = None,
) -> tuple[TrainingSetData | None, int, dict[str, orm.ProcessNode]]:
    """Label again the failed frames of every labeling step of a campaign (one RelabelWorkChain) and merge the
    recovered frames into the campaign's training set.

    Returns the updated training set (None if nothing was recovered), the number of recovered frames and, per
    ``"<label PK>:<frame>"``, the retry that failed again. ``report`` gets a line per labeling step.
    """
    labels = [node for node in campaign_processes(campaign) if node.process_label == "LabelWorkChain"]
    failed = failed_jobs(labels)
    for label in labels:
        if label.uuid in failed:
            count = sum(len(names) for names in failed[label.uuid].values())
            report(
                f"LabelWorkChain<{label.pk}> (iteration {label.base.extras.get('iteration', '?')}): labeling "
                f"{count} failed frame(s) again"
            )
    if not failed:
        return None, 0, {}
    base = campaign.outputs.training_set if "training_set" in campaign.outputs else None
    node = run_relabel(failed, base, overrides, timeout, poll, progress, extras=_campaign_tags(campaign))
    still_failed = {
        f"{label.pk}:{name}": job
        for label in labels
        if label.uuid in failed
        for name, job in failed_frames(label).items()
    }
    if "training_set" not in node.outputs or (base is not None and node.outputs.training_set.uuid == base.uuid):
        return None, 0, still_failed
    updated = node.outputs.training_set
    return updated, updated.nframes - (base.nframes if base is not None else 0), still_failed


def _campaign_tags(node: orm.ProcessNode) -> dict[str, Any]:
    return {key: value for key, value in node.base.extras.all.items() if key == "campaign"}


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
