"""``perovskite.label``: label structures with an engine (DFT, or a teacher that labels batches); report every
failure, never drop one silently."""

from __future__ import annotations

from aiida import orm
from aiida.engine import ProcessState, ToContext, WorkChain, if_, while_

from aiida_perovskite.calcfunctions.training_sets import (
    assemble_training_set,
    frames_to_structures,
    merge_training_sets,
)
from aiida_perovskite.data import TrainingSetData
from aiida_perovskite.engines import get_engine, registered_engines
from aiida_perovskite.exit_codes import declare
from aiida_perovskite.loop.settings import names_problem
from aiida_perovskite.protocols import load_protocol
from aiida_perovskite.tags import tag_child

__all__ = ("LabelWorkChain",)

AWAITED = "awaited_"  # context keys of the running jobs a step waits for
# Labels are assembled in parts of this many frames (in launch order) as soon as a part's jobs have ended, and
# the parts merged at the end: assembling costs ~0.1 s per frame on PostgreSQL (hashing and linking every
# input), which for 1,000 frames is minutes after the last job; a part's cost is hidden behind running jobs.
FRAMES_PER_PART = 50


def validate_engine(engine: orm.Str, _) -> str | None:
    if engine.value not in registered_engines():
        return f"unknown engine {engine.value!r}; choose one of {', '.join(registered_engines())}"
    return get_engine(engine.value).missing_plugin()


def validate_fraction(value: orm.Float, _) -> str | None:
    if not 0.0 <= value.value <= 1.0:
        return f"tolerated_failed_fraction must be in [0, 1], got {value.value}"
    return None


def validate_inputs(inputs, ctx) -> str | None:
    if "structures" not in ctx and "trajectories" not in ctx:
        return None  # a wrapper (e.g. init_data) provides the structures and checks them itself
    structures, trajectories = inputs.get("structures", {}), inputs.get("trajectories", {})
    if not structures and not trajectories:
        return "nothing to label: give structures or trajectories"
    if error := names_problem([*structures, *trajectories]):
        return f"structures/trajectories: {error}"
    elements = {s for structure in structures.values() for s in structure.get_symbols_set()}
    elements |= {s for trajectory in trajectories.values() for s in trajectory.symbols}
    return check_engine_inputs(inputs, elements)


def check_engine_inputs(inputs, elements: set[str]) -> str | None:
    """The engine's code, protocol, overrides and engine inputs can label ``elements`` (shared with the
    wrappers)."""
    name, engines = inputs.get("engine"), registered_engines()
    engine = engines.get(name.value) if name is not None else None
    if engine is None or engine.missing_plugin():
        return None  # the engine port's validator reports these
    if "code" in inputs and (error := engine.check_code(inputs["code"])):
        return error
    engine_inputs = dict(inputs.get("engine_inputs", {}))
    if error := engine.check_engine_inputs(engine_inputs):
        return error
    protocol, overrides = engine_settings(inputs)
    try:
        return engine.check_elements(elements, protocol, overrides, engine_inputs)
    except ValueError as exc:  # an unknown protocol
        return str(exc)


def engine_settings(inputs) -> tuple[str | None, dict | None]:
    """The protocol name and overrides of a LabelWorkChain's inputs (or of a wrapper's ``label`` namespace)."""
    protocol = inputs["protocol"].value if "protocol" in inputs else None
    overrides = inputs["overrides"].get_dict() if "overrides" in inputs else None
    return protocol, overrides


def label_source_of(inputs) -> dict[str, str]:
    """Where the labels of a LabelWorkChain with these inputs come from (engine, method, details)."""
    protocol, overrides = engine_settings(inputs)
    return get_engine(inputs["engine"].value).label_source(protocol, overrides, dict(inputs.get("engine_inputs", {})))


def labeling_default(key: str) -> object:
    """A labeling default: the campaign protocol's, so a LabelWorkChain alone behaves as in a campaign."""
    return load_protocol("concurrent_learning")["labeling"][key]


class LabelWorkChain(WorkChain):
    """Label every structure with one engine in batches of the engine's size (1 for DFT), at most
    ``max_concurrent`` processes at a time.

    Jobs stream: as soon as any running job ends, the next step refills its slot, so no slot waits for a slower
    job, and the labels of every ``FRAMES_PER_PART`` frames are assembled while later jobs run
    (docs/benchmarks.md, "Orchestration overhead and scale"). The output is the same set, frames in the same
    order, as one assembly of all labels."""

    @classmethod
    def define(cls, spec):
        super().define(spec)
        spec.input_namespace("structures", valid_type=orm.StructureData, dynamic=True, required=False)
        spec.input_namespace(
            "trajectories",
            valid_type=orm.TrajectoryData,
            dynamic=True,
            required=False,
            help="Every frame of each trajectory is labeled (e.g. the selected candidates).",
        )
        spec.input(
            "engine", valid_type=orm.Str, default=lambda: orm.Str(labeling_default("engine")), validator=validate_engine
        )
        spec.input("code", valid_type=orm.AbstractCode, help="The engine's code.")
        spec.input("protocol", valid_type=orm.Str, required=False, help="The engine's protocol.")
        spec.input("overrides", valid_type=orm.Dict, required=False, help="Overrides of the engine's protocol.")
        spec.input_namespace(
            "engine_inputs",
            valid_type=orm.Data,
            dynamic=True,
            required=False,
            help="Nodes every job of the engine takes (the teacher's identity and model).",
        )
        spec.input("options", valid_type=dict, non_db=True, default=lambda: {}, help="metadata.options of the jobs.")
        spec.input(
            "max_concurrent",
            valid_type=orm.Int,
            default=lambda: orm.Int(labeling_default("max_concurrent")),
            help="Jobs running at once.",
        )
        spec.input(
            "tolerated_failed_fraction",
            valid_type=orm.Float,
            default=lambda: orm.Float(labeling_default("tolerated_failed_fraction")),
            validator=validate_fraction,
            help="Above this fraction of failed frames the workchain fails (the labeled frames are still output).",
        )
        spec.inputs.validator = validate_inputs
        spec.outline(
            cls.setup,
            while_(cls.jobs_remaining)(cls.launch_and_wait),
            cls.collect,
            if_(cls.too_many_failures)(cls.fail),
        )
        spec.output("training_set", valid_type=TrainingSetData, required=False, help="All labeled frames.")
        spec.output("failures", valid_type=orm.Dict, help="Per failed frame: pk, exit status and message.")
        declare(spec, "ERROR_TOO_MANY_FAILURES")

    def setup(self):
        # per frame the pk of its StructureData (pks, not nodes: the context is checkpointed after every step, and
        # 1,000 node references made it 113 KB); a trajectory's frames get theirs just before they are launched
        self.ctx.structures = {name: node.pk for name, node in self.inputs.get("structures", {}).items()}
        self.ctx.sources = {}
        for name, trajectory in self.inputs.get("trajectories", {}).items():
            for index in range(trajectory.numsteps):
                self.ctx.structures[f"{name}_{index}"] = None
                self.ctx.sources[f"{name}_{index}"] = name
        protocol, overrides = engine_settings(self.inputs)
        size = get_engine(self.inputs.engine.value).batch_size(protocol, overrides)
        names = sorted(self.ctx.structures)
        self.ctx.pending = [names[start : start + size] for start in range(0, len(names), size)]
        # per part not yet assembled, its batches (by their first frame; consecutive, as self.ctx.jobs will be);
        # per assembled part, the pk of its set (None: no labels) and its failed frames
        self.ctx.unassembled = {}
        for batch, start in enumerate(range(0, len(names), size)):
            self.ctx.unassembled.setdefault(str(start // FRAMES_PER_PART), []).append(batch)
        self.ctx.parts, self.ctx.part_failures = {}, {}
        self.ctx.jobs, self.ctx.running = [], []

    def jobs_remaining(self):
        return bool(self.ctx.pending or self.ctx.running)

    def launch_and_wait(self):
        """Fill the free slots, then wait until any running job ends (see ``_on_awaitable_finished``)."""
        self.ctx.running = [pk for pk in self.ctx.running if not orm.load_node(pk).is_terminated]
        engine = get_engine(self.inputs.engine.value)
        protocol, overrides = engine_settings(self.inputs)
        free = self.inputs.max_concurrent.value - len(self.ctx.running)
        launching, self.ctx.pending = self.ctx.pending[:free], self.ctx.pending[free:]
        self._make_structures(launching)
        for names in launching:
            builder = engine.get_batch_builder(
                self.inputs.code,
                {name: orm.load_node(self.ctx.structures[name]) for name in names},
                protocol,
                overrides,
                dict(self.inputs.options),
                dict(self.inputs.get("engine_inputs", {})),
            )
            builder.metadata.call_link_label = f"label_{names[0]}"
            node = self.submit(builder)
            systems = sorted({self.ctx.sources[name] for name in names if name in self.ctx.sources})
            source = {"system": systems[0]} if len(systems) == 1 else {}
            tag_child(self.node, node, stage="label", frames=names, engine=engine.name, **source)
            self.ctx.jobs.append(node.pk)
            self.ctx.running.append(node.pk)
        self._assemble_ended_parts()  # after the refill, so that the new jobs run meanwhile
        for key in [key for key in self.ctx if key.startswith(AWAITED)]:
            del self.ctx[key]
        if not self.ctx.running:
            return None
        return ToContext(**{f"{AWAITED}{pk}": orm.load_node(pk) for pk in self.ctx.running})

    def _on_awaitable_finished(self, awaitable) -> None:
        """Go on as soon as any awaited job ends, not when all have. AiiDA resumes a WorkChain once every child
        it waits for is done; here the other jobs are dropped from the wait (the next step waits for them again,
        after refilling the freed slot), and the callback of a dropped wait, arriving later, is ignored."""
        if awaitable not in self._awaitables:
            return
        super()._on_awaitable_finished(awaitable)
        if self._awaitables and self.state == ProcessState.WAITING:
            self._awaitables.clear()
            self.resume()

    def _make_structures(self, launching: list[list[str]]) -> None:
        """StructureData for the trajectory frames about to be launched and, with them, the next ones in launch
        order up to ``FRAMES_PER_PART``: converted in parts while earlier jobs run, not all before the first."""
        made = self.ctx.structures
        upcoming = [name for batch in launching + self.ctx.pending for name in batch if made[name] is None]
        needed = sum(made[name] is None for batch in launching for name in batch)
        if not needed:
            return
        indices: dict[str, list[int]] = {}
        for name in upcoming[: max(needed, FRAMES_PER_PART)]:
            indices.setdefault(self.ctx.sources[name], []).append(_index(name))
        for source, chosen in indices.items():
            trajectory = self.inputs.trajectories[source]
            whole = len(chosen) == trajectory.numsteps  # the usual case (selected candidates): no index list
            frames = frames_to_structures(trajectory, **({} if whole else {"indices": orm.List(sorted(chosen))}))
            for key, node in frames.items():
                self.ctx.structures[f"{source}_{_index(key)}"] = node.pk

    def _assemble_ended_parts(self) -> None:
        """Assemble the labels of every part whose jobs have all ended (launched and no longer running)."""
        running = set(self.ctx.running)
        for part, batches in list(self.ctx.unassembled.items()):
            if batches[-1] >= len(self.ctx.jobs) or running.intersection(self.ctx.jobs[i] for i in batches):
                continue
            labeled, failures = self._outcomes([self.ctx.jobs[index] for index in batches])
            assembled = None
            if labeled:
                source = orm.Dict(label_source_of(self.inputs))
                labels = self._assembly_inputs(labeled)
                assembled = assemble_training_set(engine=self.inputs.engine, label_source=source, **labels).pk
            self.ctx.parts[part] = assembled
            self.ctx.part_failures[part] = failures
            del self.ctx.unassembled[part]

    def _outcomes(self, jobs: list[int]) -> tuple[dict[str, dict[str, orm.Data]], dict[str, dict]]:
        """Per labeled frame of ``jobs`` its label outputs, and per failed frame its job, system and reason."""
        engine = get_engine(self.inputs.engine.value)
        labeled, failures = {}, {}
        for pk in jobs:
            node = orm.load_node(pk)
            done, failed = engine.outcomes(node, node.base.extras.get("frames"))
            labeled.update(done)
            for name, failure in failed.items():
                failures[name] = {"pk": node.pk, "system": self.ctx.sources.get(name, name), **failure}
        return labeled, failures

    def _assembly_inputs(self, labeled: dict[str, dict[str, orm.Data]]) -> dict[str, orm.Data]:
        """``assemble_training_set``'s inputs for the labeled frames: each one's structure and label outputs."""
        pks = [self.ctx.structures[name] for name in labeled]
        structures = {}
        for start in range(0, len(pks), 500):  # SQLite limits the variables of one statement
            query = orm.QueryBuilder().append(orm.StructureData, filters={"id": {"in": pks[start : start + 500]}})
            structures.update({node.pk: node for node in query.all(flat=True)})
        inputs = {}
        for name, outputs in labeled.items():
            inputs[f"structure__{name}"] = structures[self.ctx.structures[name]]
            inputs.update({f"{key}__{name}": value for key, value in outputs.items()})
        return inputs

    def collect(self):
        self._assemble_ended_parts()
        failures = {}
        for part in sorted(self.ctx.part_failures, key=int):  # launch order
            failures.update(self.ctx.part_failures[part])
        for name, failure in failures.items():
            process = orm.load_node(failure["pk"]).process_label
            self.report(f"frame {name}: {process}<{failure['pk']}> failed ({failure['message']})")
        parts = {f"part_{int(part):04d}": orm.load_node(pk) for part, pk in self.ctx.parts.items() if pk is not None}
        if len(parts) == 1:
            self.out("training_set", next(iter(parts.values())))
        elif parts:
            self.out("training_set", merge_training_sets(**parts))
        self.out("failures", orm.Dict(failures).store())
        self.ctx.failed = len(failures)
        self.ctx.total = len(self.ctx.structures)
        self.report(f"labeled {self.ctx.total - len(failures)} of {self.ctx.total} frames")

    def too_many_failures(self):
        return self.ctx.failed > self.inputs.tolerated_failed_fraction.value * self.ctx.total

    def fail(self):
        return self.exit_codes.ERROR_TOO_MANY_FAILURES.format(
            failed=self.ctx.failed, total=self.ctx.total, tolerated=self.inputs.tolerated_failed_fraction.value
        )


def _index(key: str) -> int:
    return int(key.rsplit("_", 1)[-1])
