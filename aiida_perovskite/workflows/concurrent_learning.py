"""``perovskite.concurrent_learning``: train → explore → select → label → merge, until every system is
converged through its exploration schedule (DP-GEN's loop as one WorkChain with full provenance)."""

from __future__ import annotations

import pathlib
from collections.abc import Mapping
from typing import Any

from aiida import orm
from aiida.common import AttributeDict
from aiida.engine import ToContext, WorkChain, if_, while_

from aiida_perovskite.analysis.model_deviation import SANITY_DEFAULTS
from aiida_perovskite.calcfunctions.convergence import (
    check_convergence,
    collect_history,
    start_schedule,
    summarise_iteration,
    summarise_learning_curve,
)
from aiida_perovskite.calcfunctions.seeds import derive_seeds
from aiida_perovskite.calcfunctions.training_sets import merge_training_sets, split_training_set
from aiida_perovskite.calculations.deepmd_common import structure_elements_missing
from aiida_perovskite.calculations.deepmd_test import DeepmdTestCalculation
from aiida_perovskite.data import DeepPotentialData, TrainingSetData
from aiida_perovskite.data.training_set import label_source_conflict
from aiida_perovskite.engines import get_engine
from aiida_perovskite.exit_codes import declare
from aiida_perovskite.loop.schedule import current_stage
from aiida_perovskite.loop.settings import (
    AT_LEAST_ONE,
    FORCE_TARGET,
    FRACTION,
    HELD_OUT_FRACTION,
    FinalTraining,
    Labeling,
    LoopSettings,
    ReuseTraining,
    Stage,
    names_problem,
    protocol_default,
)
from aiida_perovskite.protocols import ProtocolMixin, recursive_merge
from aiida_perovskite.schema import (
    SettingError,
    port_validator,
    raise_first_problem,
    validation_problem,
    value_validator,
)
from aiida_perovskite.tags import tag_child
from aiida_perovskite.workflows.deepmd_train_base import DeepmdTrainBaseWorkChain
from aiida_perovskite.workflows.explore import ExploreWorkChain, validate_trust
from aiida_perovskite.workflows.init_data import InitDataWorkChain
from aiida_perovskite.workflows.label import LabelWorkChain, check_engine_inputs, label_source_of
from aiida_perovskite.workflows.phase_diagram import PhaseDiagramWorkChain, runs_by_temperature
from aiida_perovskite.workflows.polarization import PolarizationWorkChain
from aiida_perovskite.workflows.train_ensemble import TrainEnsembleWorkChain

__all__ = ("ConcurrentLearningWorkChain",)

EXPLORE_EXCLUDED = ("models", "structures", "conditions", "trust", "seed", "max_labels", "reference")


def validate_schedule(schedule: orm.Dict, _) -> str | None:
    for system, stages in schedule.get_dict().items():
        if not isinstance(stages, list) or not stages:
            return f"schedule.{system}: give a non-empty list of stages"
        for index, stage in enumerate(stages):
            if error := validation_problem(Stage, stage, f"schedule.{system}[{index}]"):
                return error
    return None


def validate_inputs(inputs, _) -> str | None:
    structures = inputs.get("structures", {})
    if not structures:
        return "give at least one system to explore (structures)"
    if error := names_problem(structures):
        return f"structures: {error}"
    schedule = inputs["schedule"].get_dict()
    if set(schedule) != set(structures):
        return (
            f"schedule has systems {sorted(schedule)} but structures has {sorted(structures)}: give every system "
            "its list of stages"
        )
    unknown = sorted(set(inputs["trust"].get_dict().get("per_system", {})) - set(structures))
    if unknown:
        return f"trust.per_system names unknown system(s) {unknown}; systems are {sorted(structures)}"
    has_data, has_init = "training_set" in inputs, bool(inputs.get("init_data", {}).get("structures"))
    if not (has_data or has_init):
        return "give training_set (existing labeled data), init_data (perturb and label), or both"
    type_map = set(inputs["training_set"].type_map) if has_data else set()
    if has_init:
        type_map |= {s for structure in inputs["init_data"]["structures"].values() for s in structure.get_kind_names()}
    type_map, source = sorted(type_map), "the initial data's"
    for name, structure in structures.items():
        error = structure_elements_missing(structure, type_map, f"system {name!r}", source)
        if error:
            return error
    elements = {symbol for structure in structures.values() for symbol in structure.get_symbols_set()}
    if error := check_engine_inputs(inputs["label"], elements):
        return error
    if inputs.get("polarization") and not inputs.get("phase_diagram"):
        return "polarization analyses MD runs of the phase diagram: give phase_diagram too"
    chosen = inputs["polarization_temperatures"].get_list() if "polarization_temperatures" in inputs else []
    if chosen and inputs.get("phase_diagram", {}).get("temperatures") is not None:
        missing = sorted(set(chosen) - set(inputs["phase_diagram"]["temperatures"].get_list()))
        if missing:
            return f"polarization_temperatures {missing} are not on the phase-diagram ladder"
    if has_data and not inputs["allow_mixed_levels"].value:
        sources = [*inputs["training_set"].label_sources, label_source_of(inputs["label"])]
        if conflict := label_source_conflict(sources):
            return f"the initial training set and the labeling engine disagree: {conflict} (allow_mixed_levels)"
    return None


class ConcurrentLearningWorkChain(ProtocolMixin, WorkChain):
    """The concurrent-learning loop over several systems, each with its own exploration schedule."""

    _protocol_file = "concurrent_learning"

    @classmethod
    def define(cls, spec):
        super().define(spec)
        spec.input_namespace("structures", valid_type=orm.StructureData, dynamic=True, help="Systems by name.")
        spec.input(
            "schedule",
            valid_type=orm.Dict,
            validator=validate_schedule,
            help="Per system, its exploration stages: temperatures, pressures, ensemble, steps, sampling_interval "
            "(and timestep, tdamp, pdamp), max_iterations, optional accurate_fraction.",
        )
        spec.input("trust", valid_type=orm.Dict, validator=validate_trust, help="force_lo/hi, per_system overrides.")
        spec.input(
            "max_labels",
            valid_type=orm.Int,
            default=lambda: orm.Int(protocol_default("max_labels")),
            validator=value_validator(AT_LEAST_ONE, "max_labels"),
            help="Per system and iteration.",
        )
        spec.input(
            "accurate_fraction",
            valid_type=orm.Float,
            default=lambda: orm.Float(protocol_default("convergence", "accurate_fraction")),
            validator=value_validator(FRACTION, "accurate_fraction"),
            help="A stage is converged when this fraction of the explored frames is accurate.",
        )
        spec.input(
            "max_iterations",
            valid_type=orm.Int,
            validator=value_validator(AT_LEAST_ONE, "max_iterations"),
            help="Of the whole campaign.",
        )
        spec.input("seed", valid_type=orm.Int, help="The campaign seed: every other seed derives from it.")
        spec.input("training_set", valid_type=TrainingSetData, required=False, help="Initial labeled data.")
        spec.input(
            "validation_set",
            valid_type=TrainingSetData,
            required=False,
            help="A fixed labeled set every iteration's models are tested on (dp test), comparable across iterations.",
        )
        spec.input(
            "held_out_fraction",
            valid_type=orm.Float,
            default=lambda: orm.Float(0.0),
            validator=value_validator(HELD_OUT_FRACTION, "held_out_fraction"),
            help="Seeded fraction of the frames the campaign labels that is kept out of training; every "
            "iteration's models are tested on the frames held out so far.",
        )
        spec.input(
            "max_force_rmse",
            valid_type=orm.Float,
            required=False,
            validator=value_validator(FORCE_TARGET, "max_force_rmse"),
            help="Accuracy gate (eV/Å): a stage converges only when the ensemble's force RMSE on the validation "
            "set (else the held-out frames) is at most this, besides the accurate fraction.",
        )
        spec.input(
            "allow_mixed_levels",
            valid_type=orm.Bool,
            default=lambda: orm.Bool(Labeling.model_fields["allow_mixed_levels"].default),
            help="Allow training on labels of different levels of theory (e.g. teacher + DFT): their energies are "
            "not comparable, so this is refused unless asked for.",
        )
        spec.expose_inputs(
            InitDataWorkChain,
            namespace="init_data",
            exclude=("seed", "label"),
            namespace_options={"required": False, "populate_defaults": False, "help": "Perturb and label."},
        )
        spec.expose_inputs(
            TrainEnsembleWorkChain, namespace="train", exclude=("training_set", "validation_set", "seed", "reuse")
        )
        spec.input(
            "train_reuse",
            valid_type=orm.Dict,
            required=False,
            validator=port_validator(ReuseTraining, "train_reuse"),
            help="From iteration 1 on, start from the previous models: numb_steps, optional start_lr.",
        )
        spec.input(
            "final_training",
            valid_type=orm.Dict,
            required=False,
            validator=port_validator(FinalTraining, "final_training"),
            help="Retrain the ensemble on the final data with numb_steps steps (optionally compress: true).",
        )
        spec.expose_inputs(ExploreWorkChain, namespace="explore", exclude=EXPLORE_EXCLUDED)
        spec.expose_inputs(LabelWorkChain, namespace="label", exclude=("structures", "trajectories"))
        spec.expose_inputs(
            PhaseDiagramWorkChain,
            namespace="phase_diagram",
            exclude=("code", "model", "seed"),
            namespace_options={
                "required": False,
                "populate_defaults": False,
                "help": "After convergence: a phase diagram with the final (compressed) model_0.",
            },
        )
        spec.expose_inputs(
            PolarizationWorkChain,
            namespace="polarization",
            exclude=("trajectory",),
            namespace_options={
                "required": False,
                "populate_defaults": False,
                "help": "The local-polarization analysis of phase-diagram runs (needs phase_diagram).",
            },
        )
        spec.input(
            "polarization_temperatures",
            valid_type=orm.List,
            required=False,
            help="Temperatures of the phase-diagram ladder whose MD runs are analysed (default: the lowest).",
        )
        spec.inputs.validator = validate_inputs
        spec.outline(
            cls.setup,
            if_(cls.needs_init_data)(cls.run_init_data, cls.inspect_init_data),
            while_(cls.should_iterate)(
                cls.run_training,
                cls.inspect_training,
                cls.run_exploration,
                cls.inspect_exploration,
                if_(cls.has_candidates)(cls.run_labeling, cls.inspect_labeling),
                cls.merge_and_decide,
            ),
            if_(cls.final_training_requested)(cls.run_final_training, cls.inspect_final_training),
            cls.run_downstream,
            cls.run_polarization,
            cls.inspect_downstream,
            cls.results,
        )
        spec.output_namespace("models", valid_type=DeepPotentialData, dynamic=True, required=False)
        spec.output_namespace("compressed_models", valid_type=DeepPotentialData, dynamic=True, required=False)
        spec.output("training_set", valid_type=TrainingSetData, required=False, help="All labeled data.")
        spec.output("history", valid_type=orm.List, required=False, help="One record per iteration.")
        spec.output("progress", valid_type=orm.Dict, required=False, help="Where each system is in its schedule.")
        spec.output("held_out_set", valid_type=TrainingSetData, required=False, help="Labels kept out of training.")
        spec.expose_outputs(PhaseDiagramWorkChain, namespace="phase_diagram", namespace_options={"required": False})
        spec.output_namespace(
            "polarization", valid_type=orm.Dict, dynamic=True, required=False, help="Statistics per analysed run."
        )
        spec.output(
            "learning_curve",
            valid_type=orm.Dict,
            required=False,
            help="Every iteration's ensemble tested on the final held-out set: errors against labels, on one set.",
        )
        declare(
            spec,
            "ERROR_INIT_DATA_FAILED",
            "ERROR_TRAINING_FAILED",
            "ERROR_EXPLORATION_FAILED",
            "ERROR_ALL_FRAMES_FAILED",
            "ERROR_LABELING_FAILED",
            "ERROR_FINAL_TRAINING_FAILED",
            "ERROR_ANALYSIS_FAILED",
            "ERROR_VALIDATION_FAILED",
            "ERROR_NOT_CONVERGED",
        )

    @classmethod
    def get_builder_from_protocol(
        cls,
        codes: Mapping[str, orm.AbstractCode],
        structures: Mapping[str, orm.StructureData],
        seed: int,
        protocol: str | None = None,
        overrides: Mapping[str, Any] | None = None,
        *,
        schedule: Mapping[str, list] | None = None,
        training_set: TrainingSetData | None = None,
        validation_set: TrainingSetData | None = None,
        perturb: bool | None = None,
        base_dir: pathlib.Path | None = None,
    ):
        """A campaign: ``protocol`` of ``concurrent_learning.yaml`` (fast, balanced, precise) updated by
        ``overrides`` in the campaign file's shape (stages, trust, max_labels, convergence, perturbation,
        validation, training, exploration, labeling), every key checked (``LoopSettings``) before anything is
        stored; a problem raises ``SettingError`` naming the key.

        ``codes``: the ``training`` (dp), ``exploration`` (lmp) and ``labeling`` codes. ``schedule``: stages by
        system instead of the same ``stages`` for all. ``perturb``: label perturbed copies of the structures
        first (default: when no ``training_set`` is given). ``base_dir``: where the labeling section's files are.
        """
        try:
            merged = cls.get_protocol_inputs(protocol, overrides)
        except ValueError as error:
            raise SettingError("overrides" if overrides else "protocol", str(error)) from None
        settings = raise_first_problem(LoopSettings, merged)
        if schedule is None:
            schedule = {name: merged["stages"] for name in structures}
        checked = {
            system: [
                raise_first_problem(Stage, stage, f"stages.{system}[{index}]").model_dump(exclude_none=True)
                for index, stage in enumerate(stages)
            ]
            for system, stages in schedule.items()
        }
        builder = cls.get_builder()
        builder.structures = dict(structures)
        builder.schedule = orm.Dict(checked)
        builder.trust = orm.Dict(merged["trust"])
        builder.max_labels = orm.Int(settings.max_labels)
        builder.accurate_fraction = orm.Float(settings.convergence.accurate_fraction)
        builder.max_iterations = orm.Int(settings.convergence.max_iterations)
        if settings.convergence.max_force_rmse is not None:
            builder.max_force_rmse = orm.Float(settings.convergence.max_force_rmse)
        builder.held_out_fraction = orm.Float(settings.validation.held_out_fraction)
        builder.seed = orm.Int(seed)
        if training_set is not None:
            builder.training_set = training_set
        if validation_set is not None:
            builder.validation_set = validation_set
        if perturb if perturb is not None else training_set is None:
            builder.init_data.structures = dict(structures)
            builder.init_data.perturbation = orm.Dict(merged["perturbation"])
        cls._builder_training(builder, codes["training"], merged["training"])
        cls._builder_exploration(builder, codes["exploration"], merged["exploration"])
        cls._builder_labeling(builder, codes["labeling"], merged["labeling"], base_dir or pathlib.Path("."))
        return builder

    @staticmethod
    def _builder_training(builder, code: orm.AbstractCode, training: Mapping[str, Any]) -> None:
        overrides: dict[str, Any] = dict(training.get("overrides", {}))
        if "backend" in training:
            overrides["backend"] = training["backend"]
        if training.get("options"):
            overrides = recursive_merge(overrides, {"metadata": {"options": training["options"]}})
        base = DeepmdTrainBaseWorkChain.get_builder_from_protocol(code, None, training.get("protocol"), overrides)
        base.train.pop("seed")
        builder.train.train = base
        if "num_models" in training:
            builder.train.num_models = orm.Int(training["num_models"])
        if "reuse" in training:
            builder.train_reuse = orm.Dict(training["reuse"])
        if "final" in training:
            builder.final_training = orm.Dict(training["final"])

    @staticmethod
    def _builder_exploration(builder, code: orm.AbstractCode, exploration: Mapping[str, Any]) -> None:
        builder.explore.code = code
        builder.explore.selection_mode = orm.Str(exploration["selection_mode"])
        builder.explore.skip_frames = orm.Int(exploration["skip_frames"])
        if exploration.get("sanity"):  # the keys left out keep their defaults
            builder.explore.sanity = orm.Dict({**SANITY_DEFAULTS, **exploration["sanity"]})
        builder.explore.options = dict(exploration.get("options", {}))

    @staticmethod
    def _builder_labeling(builder, code: orm.AbstractCode, labeling: Mapping[str, Any], base_dir: pathlib.Path) -> None:
        try:
            engine = get_engine(labeling["engine"])
        except ValueError as error:
            raise SettingError("labeling.engine", str(error)) from None
        builder.label.engine = orm.Str(labeling["engine"])
        builder.label.code = code
        if labeling.get("protocol"):
            builder.label.protocol = orm.Str(labeling["protocol"])
        if labeling.get("overrides"):
            builder.label.overrides = orm.Dict(labeling["overrides"])
        builder.label.options = dict(labeling.get("options", {}))
        try:
            builder.label.engine_inputs = engine.engine_inputs_from_section(labeling, base_dir)
        except ValueError as exc:
            raise SettingError(
                f"labeling.{engine.section_keys[0] if engine.section_keys else 'engine'}", str(exc)
            ) from exc
        builder.allow_mixed_levels = orm.Bool(Labeling.model_validate(labeling).allow_mixed_levels)
        builder.label.max_concurrent = orm.Int(labeling["max_concurrent"])  # the protocol always gives both
        builder.label.tolerated_failed_fraction = orm.Float(labeling["tolerated_failed_fraction"])

    def setup(self):
        if "campaign" not in self.node.base.extras.all:
            self.node.base.extras.set("campaign", self.node.uuid)
        self.ctx.iteration = 0
        self.ctx.finished = False
        self.ctx.converged = False
        self.ctx.records = {}
        self.ctx.models = {}
        self.ctx.compressed_models = {}
        self.ctx.progress = start_schedule(self.inputs.schedule)
        # seed 0: initial data; 1..max_iterations: the iterations; then the final training and the held-out split of
        # the initial data
        count = self.inputs.max_iterations.value + 3
        seeds = derive_seeds(self.inputs.seed, orm.Int(count))
        self.ctx.seeds = [seeds[f"seed_{index}"] for index in range(count)]
        self.ctx.training_set = self.inputs.get("training_set")
        self.ctx.held_out = None
        self.ctx.ensembles = {}

    def needs_init_data(self):
        return bool(self.inputs.get("init_data", {}).get("structures"))

    def run_init_data(self):
        inputs = AttributeDict(self.exposed_inputs(InitDataWorkChain, "init_data"))
        inputs.label = self.exposed_inputs(LabelWorkChain, "label")
        inputs.seed = self.ctx.seeds[0]
        inputs.metadata = {"call_link_label": "init_data"}
        node = self.submit(InitDataWorkChain, **inputs)
        tag_child(self.node, node, iteration=0, stage="init_data")
        self.report(f"labeling the initial data: {node.process_label}<{node.pk}>")
        return ToContext(init_data=node)

    def inspect_init_data(self):
        node = self.ctx.init_data
        if not node.is_finished_ok or "training_set" not in node.outputs:
            return self.exit_codes.ERROR_INIT_DATA_FAILED.format(message=_failure(node))
        self.ctx.training_set = self._merged(
            self.ctx.training_set, self._hold_out(node.outputs.training_set, self.ctx.seeds[-1])
        )
        return None

    def _merged(self, existing: TrainingSetData | None, labeled: TrainingSetData) -> TrainingSetData:
        """``labeled`` added to ``existing`` (a new set, by merge_training_sets), or ``labeled`` if there is none."""
        if existing is None:
            return labeled
        mixed = self.inputs.allow_mixed_levels
        return merge_training_sets(existing=existing, labeled=labeled, allow_mixed_levels=mixed)

    def _hold_out(self, labeled: TrainingSetData, seed: orm.Int) -> TrainingSetData:
        """The part of freshly labeled frames that is trained on; the rest joins the held-out set."""
        if self.inputs.held_out_fraction.value <= 0:
            return labeled
        split = split_training_set(labeled, self.inputs.held_out_fraction, seed)
        if "held_out" in split:
            self.ctx.held_out = self._merged(self.ctx.held_out, split["held_out"])
        return split["training"]

    def should_iterate(self):
        return not self.ctx.finished and self.ctx.iteration < self.inputs.max_iterations.value

    def _iteration_seed(self, index: int) -> orm.Int:
        """Seed ``index`` of this iteration: 0 for the training, 1.. for the systems in name order, then the
        held-out split of the iteration's labels."""
        if "iteration_seeds" not in self.ctx or self.ctx.iteration_seeds_of != self.ctx.iteration:
            count = 2 + len(self.inputs.structures)
            seeds = derive_seeds(self.ctx.seeds[self.ctx.iteration + 1], orm.Int(count))
            self.ctx.iteration_seeds = [seeds[f"seed_{i}"] for i in range(count)]
            self.ctx.iteration_seeds_of = self.ctx.iteration
        return self.ctx.iteration_seeds[index]

    def _training_inputs(self, seed: orm.Int, label: str) -> AttributeDict:
        inputs = AttributeDict(self.exposed_inputs(TrainEnsembleWorkChain, "train"))
        inputs.training_set = self.ctx.training_set
        inputs.seed = seed
        inputs.metadata = {"call_link_label": label}
        return inputs

    def run_training(self):
        iteration = self.ctx.iteration
        inputs = self._training_inputs(self._iteration_seed(0), f"train_{iteration}")
        if "train_reuse" in self.inputs and self.ctx.models:
            reuse = self.inputs.train_reuse.get_dict()
            inputs.reuse = {"models": dict(self.ctx.models), "numb_steps": orm.Int(reuse["numb_steps"])}
            if "start_lr" in reuse:
                inputs.reuse["start_lr"] = orm.Float(reuse["start_lr"])
        node = self.submit(TrainEnsembleWorkChain, **inputs)
        tag_child(self.node, node, iteration=iteration, stage="train")
        self.report(
            f"iteration {iteration}: training {node.process_label}<{node.pk}> on {self.ctx.training_set.nframes} frames"
        )
        return ToContext(training=node)

    def inspect_training(self):
        node = self.ctx.training
        if not node.is_finished_ok:
            self._expose_outputs()
            return self.exit_codes.ERROR_TRAINING_FAILED.format(
                message=f"iteration {self.ctx.iteration}: {_failure(node)}"
            )
        self.ctx.trained_on = self.ctx.training_set
        self.ctx.models = dict(node.outputs.models)
        self.ctx.ensembles[f"iteration_{self.ctx.iteration}"] = dict(self.ctx.models)
        self.ctx.compressed_models = dict(getattr(node.outputs, "compressed_models", {}))
        return None

    def run_exploration(self):
        iteration = self.ctx.iteration
        schedule, progress = self.inputs.schedule.get_dict(), self.ctx.progress.get_dict()
        models = self.ctx.compressed_models or self.ctx.models
        calls = {}
        for index, system in enumerate(sorted(self.inputs.structures), start=1):
            if progress[system]["done"]:
                continue
            stage = current_stage(schedule, progress, system)
            inputs = AttributeDict(self.exposed_inputs(ExploreWorkChain, "explore"))
            inputs.models = models
            inputs.structures = {system: self.inputs.structures[system]}
            inputs.conditions = orm.Dict(Stage.model_validate(stage).md_settings())
            inputs.trust = self.inputs.trust
            inputs.max_labels = self.inputs.max_labels
            inputs.reference = self.ctx.trained_on
            inputs.seed = self._iteration_seed(index)
            inputs.metadata = {"call_link_label": f"explore_{iteration}_{system}"}
            node = self.submit(ExploreWorkChain, **inputs)
            tag_child(
                self.node,
                node,
                iteration=iteration,
                stage="explore",
                system=system,
                schedule_stage=progress[system]["stage"],
            )
            calls[f"explore__{system}"] = node
        self.ctx.explored = sorted(key.split("__", 1)[1] for key in calls)
        self.report(f"iteration {iteration}: exploring {', '.join(self.ctx.explored)}")
        return ToContext(**calls, **self._submit_tests())

    def _test_sets(self) -> dict[str, TrainingSetData]:
        sets = {"validation": self.inputs.get("validation_set"), "held_out": self.ctx.held_out}
        return {name: data for name, data in sets.items() if data is not None}

    def _submit_tests(self) -> dict[str, orm.ProcessNode]:
        """``dp test`` of every model of this iteration on the validation set and on the held-out frames."""
        calls = {}
        for kind, dataset in self._test_sets().items():
            for name, model in sorted(self.ctx.models.items()):
                calls[f"test__{kind}__{name}"] = self._submit_test(kind, self.ctx.iteration, name, model, dataset)
        return calls

    def _submit_test(self, kind: str, ensemble, name: str, model, dataset) -> orm.ProcessNode:
        train = self.exposed_inputs(TrainEnsembleWorkChain, "train")["train"]["train"]
        builder = DeepmdTestCalculation.get_builder()
        builder.code, builder.model, builder.dataset = train["code"], model, dataset
        builder.metadata.options = {k: v for k, v in train["metadata"]["options"].items() if k != "parser_name"}
        builder.metadata.call_link_label = f"test_{kind}_{ensemble}_{name}"
        node = self.submit(builder)
        tags = {"test_set": kind, "ensemble": str(ensemble), "model": name}
        tag_child(self.node, node, iteration=self.ctx.iteration, stage="validate", **tags)
        return node

    def inspect_exploration(self):
        self.ctx.test_metrics = {}
        for kind in self._test_sets():
            for name in sorted(self.ctx.models):
                node = self.ctx[f"test__{kind}__{name}"]
                if not node.is_finished_ok:
                    self._expose_outputs()
                    return self.exit_codes.ERROR_VALIDATION_FAILED.format(
                        iteration=self.ctx.iteration, message=_failure(node)
                    )
                self.ctx.test_metrics[f"{kind}_{name}"] = node.outputs.metrics
        self.ctx.statistics, self.ctx.candidates, self.ctx.labeling, blown = {}, {}, None, []
        for system in self.ctx.explored:
            node = self.ctx[f"explore__{system}"]
            if node.exit_status == ExploreWorkChain.exit_codes.ERROR_ALL_FRAMES_FAILED.status:
                blown.append(system)
            elif not node.is_finished_ok:
                self._expose_outputs()
                return self.exit_codes.ERROR_EXPLORATION_FAILED.format(
                    iteration=self.ctx.iteration, message=f"{system}: {_failure(node)}"
                )
            self.ctx.statistics[system] = node.outputs.statistics
            if system in getattr(node.outputs, "candidates", {}):
                self.ctx.candidates[system] = node.outputs.candidates[system]
        if blown:
            self._expose_outputs()
            return self.exit_codes.ERROR_ALL_FRAMES_FAILED.format(
                systems=f"{', '.join(blown)} in iteration {self.ctx.iteration}"
            )
        return None

    def has_candidates(self):
        return bool(self.ctx.candidates)

    def run_labeling(self):
        inputs = AttributeDict(self.exposed_inputs(LabelWorkChain, "label"))
        inputs.trajectories = dict(self.ctx.candidates)
        inputs.metadata = {"call_link_label": f"label_{self.ctx.iteration}"}
        node = self.submit(LabelWorkChain, **inputs)
        tag_child(self.node, node, iteration=self.ctx.iteration, stage="label")
        frames = sum(trajectory.numsteps for trajectory in self.ctx.candidates.values())
        self.report(f"iteration {self.ctx.iteration}: labeling {frames} frame(s) with {node.process_label}<{node.pk}>")
        return ToContext(labeling=node)

    def inspect_labeling(self):
        node = self.ctx.labeling
        if "failures" not in node.outputs:
            self._expose_outputs()
            return self.exit_codes.ERROR_LABELING_FAILED.format(iteration=self.ctx.iteration, message=_failure(node))
        return None

    def merge_and_decide(self):
        iteration, labeling = self.ctx.iteration, self.ctx.labeling
        nodes = {f"statistics_{system}": node for system, node in self.ctx.statistics.items()}
        nodes.update({f"curve_{name}": curve for name, curve in self.ctx.training.outputs.learning_curves.items()})
        nodes.update(self.ctx.test_metrics)
        held_out_frames = self.ctx.held_out.nframes if self.ctx.held_out is not None else 0
        if labeling is not None:
            nodes["failures"] = labeling.outputs.failures
            if "training_set" in labeling.outputs:
                nodes["labeled"] = labeling.outputs.training_set
                trained_on = self._hold_out(nodes["labeled"], self._iteration_seed(1 + len(self.inputs.structures)))
                self.ctx.training_set = self._merged(self.ctx.training_set, trained_on)
        gate = {"max_force_rmse": self.inputs.max_force_rmse} if "max_force_rmse" in self.inputs else {}
        decided = check_convergence(
            schedule=self.inputs.schedule,
            progress=self.ctx.progress,
            threshold=self.inputs.accurate_fraction,
            **gate,
            **{key: node for key, node in nodes.items() if key.startswith(("statistics_", "validation_", "held_out_"))},
        )
        record = summarise_iteration(
            iteration=orm.Int(iteration),
            training_set=self.ctx.trained_on,
            held_out_frames=orm.Int(held_out_frames),
            decision=decided["decision"],
            progress=self.ctx.progress,
            **nodes,
        )
        self.ctx.records[f"iteration_{iteration}"] = record
        self.ctx.progress = decided["progress"]
        self.ctx.finished = decided["decision"]["finished"]
        self.ctx.converged = decided["decision"]["converged"]
        self.ctx.iteration += 1
        for system, values in record["systems"].items():
            self.report(
                f"iteration {iteration} {system}: accurate {values['accurate']}, candidate {values['candidate']}, "
                f"failed {values['failed']} of {values['explored']}; labeled {values['labeled']}"
            )
        if labeling is not None and not labeling.is_finished_ok:
            self._expose_outputs()
            return self.exit_codes.ERROR_LABELING_FAILED.format(iteration=iteration, message=_failure(labeling))
        return None

    def final_training_requested(self):
        return "final_training" in self.inputs

    def run_final_training(self):
        inputs = self._training_inputs(self.ctx.seeds[self.inputs.max_iterations.value + 1], "train_final")
        inputs.train = AttributeDict(inputs.train)
        inputs.train.train = AttributeDict(inputs.train.train)
        parameters = inputs.train.train.parameters.get_dict()
        parameters["training"]["numb_steps"] = self.inputs.final_training["numb_steps"]
        inputs.train.train.parameters = orm.Dict(parameters)
        if "compress" in self.inputs.final_training.get_dict():  # a compressed model for the downstream MD
            inputs.train.train.compress = orm.Bool(self.inputs.final_training["compress"])
        node = self.submit(TrainEnsembleWorkChain, **inputs)
        tag_child(self.node, node, iteration=self.ctx.iteration, stage="final_training")
        self.report(f"final training {node.process_label}<{node.pk}> on {self.ctx.training_set.nframes} frames")
        return ToContext(final_training=node, **self._submit_learning_curve_tests())

    def inspect_final_training(self):
        node = self.ctx.final_training
        if not node.is_finished_ok:
            self._expose_outputs()
            return self.exit_codes.ERROR_FINAL_TRAINING_FAILED.format(message=_failure(node))
        self.ctx.models = dict(node.outputs.models)
        self.ctx.ensembles["final"] = dict(self.ctx.models)
        self.ctx.compressed_models = dict(getattr(node.outputs, "compressed_models", {}))
        return None

    def analysis_requested(self) -> bool:
        if "phase_diagram" not in self.inputs or not self.inputs.phase_diagram:
            return False
        if not self.ctx.converged:
            self.report("not converged: the phase diagram and polarization analysis are not run on these models")
            return False
        return True

    def _final_model(self) -> DeepPotentialData:
        """The model the downstream MD runs with: the compressed model_0 when there is one (fastest)."""
        return (self.ctx.compressed_models or self.ctx.models)["model_0"]

    def _submit_learning_curve_tests(self) -> dict[str, orm.ProcessNode]:
        """Every ensemble not yet tested on the final held-out set, tested on it (one learning curve on one
        set). The iterations' ensembles are tested while the final ensemble trains, not after it."""
        calls = {}
        if self.ctx.held_out is None:
            return calls
        for key, models in self.ctx.ensembles.items():
            for name, model in sorted(models.items()):
                if f"final_test__{key}__{name}" not in self.ctx:
                    calls[f"final_test__{key}__{name}"] = self._submit_test(
                        "final", key, name, model, self.ctx.held_out
                    )
        return calls

    def run_downstream(self):
        """At the same time: the learning-curve tests still to run (the final ensemble's) and the phase
        diagram of the final model."""
        calls = self._submit_learning_curve_tests()
        if self.analysis_requested():
            inputs = AttributeDict(self.exposed_inputs(PhaseDiagramWorkChain, "phase_diagram"))
            inputs.code = self.inputs.explore.code
            inputs.model = self._final_model()
            inputs.seed = self.ctx.seeds[self.inputs.max_iterations.value + 1]
            inputs.metadata = {"call_link_label": "phase_diagram"}
            node = self.submit(PhaseDiagramWorkChain, **inputs)
            tag_child(self.node, node, iteration=self.ctx.iteration, stage="phase_diagram")
            self.report(f"phase diagram with the final model: {node.process_label}<{node.pk}>")
            calls["phase_diagram"] = node
        return ToContext(**calls)

    def run_polarization(self):
        node = self.ctx.get("phase_diagram")
        if node is None:
            return None
        if not node.is_finished_ok:
            return self.exit_codes.ERROR_ANALYSIS_FAILED.format(message=_failure(node))
        self.out_many(self.exposed_outputs(node, PhaseDiagramWorkChain, namespace="phase_diagram"))
        if "polarization" not in self.inputs or not self.inputs.polarization:
            return None
        ladder = self.inputs.phase_diagram.temperatures.get_list()
        chosen = self.inputs.polarization_temperatures.get_list() if "polarization_temperatures" in self.inputs else []
        runs = runs_by_temperature(node)
        calls = {}
        for temperature in chosen or [min(ladder)]:
            label = f"{temperature:g}".replace(".", "p")
            inputs = AttributeDict(self.exposed_inputs(PolarizationWorkChain, "polarization"))
            inputs.trajectory = runs[temperature].outputs.trajectory
            inputs.metadata = {"call_link_label": f"polarization_{label}K"}
            child = self.submit(PolarizationWorkChain, **inputs)
            tag_child(self.node, child, iteration=self.ctx.iteration, stage="polarization", temperature=temperature)
            calls[f"polarization__{label}"] = child
        return ToContext(**calls)

    def inspect_downstream(self):
        metrics = {}
        for key, node in sorted(self.ctx.items()):
            if key.startswith("final_test__"):
                if not node.is_finished_ok:
                    return self.exit_codes.ERROR_VALIDATION_FAILED.format(iteration="final", message=_failure(node))
                _, ensemble, model = key.split("__")
                metrics[f"{ensemble}__{model}"] = node.outputs.metrics
            elif key.startswith("polarization__"):
                if not node.is_finished_ok:
                    return self.exit_codes.ERROR_ANALYSIS_FAILED.format(message=_failure(node))
                self.out(f"polarization.T{key.split('__', 1)[1]}K", node.outputs.statistics)
        if metrics:
            labels = orm.Int(self.ctx.training_set.nframes + self.ctx.held_out.nframes)
            curve = summarise_learning_curve(history=self._history(), final_labels=labels, **metrics)
            self.out("learning_curve", curve)
        return None

    def results(self):
        self._expose_outputs()
        if not self.ctx.converged:
            return self.exit_codes.ERROR_NOT_CONVERGED.format(iterations=self.ctx.iteration)
        self.report(f"converged after {self.ctx.iteration} iteration(s)")
        return None

    def _expose_outputs(self) -> None:
        """Everything the campaign has so far, also when it stops early."""
        for name, model in self.ctx.models.items():
            self.out(f"models.{name}", model)
        for name, model in self.ctx.compressed_models.items():
            self.out(f"compressed_models.{name}", model)
        if self.ctx.training_set is not None:
            self.out("training_set", self.ctx.training_set)
        if self.ctx.held_out is not None:
            self.out("held_out_set", self.ctx.held_out)
        if self.ctx.records:
            self.out("history", self._history())
        self.out("progress", self.ctx.progress)

    def _history(self) -> orm.List:
        """The iteration records as one List (collected once)."""
        if self.ctx.get("history_of") != len(self.ctx.records):
            self.ctx.history = collect_history(**self.ctx.records)
            self.ctx.history_of = len(self.ctx.records)
        return self.ctx.history


def _failure(node: orm.ProcessNode) -> str:
    state = "excepted" if node.is_excepted else "killed" if node.is_killed else f"exit {node.exit_status}"
    return f"{node.process_label}<{node.pk}> {state}: {node.exit_message or ''}".rstrip(": ")
