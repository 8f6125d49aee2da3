"""``perovskite.train_ensemble``: N models on the same data that differ only in their seeds."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from aiida import orm
from aiida.common import AttributeDict
from aiida.engine import ToContext, WorkChain, if_

from aiida_perovskite.calcfunctions.seeds import derive_seeds
from aiida_perovskite.calculations.deepmd_common import DEFAULT_BACKEND
from aiida_perovskite.calculations.deepmd_train import check_data_against_model
from aiida_perovskite.data import DeepPotentialData, TrainingSetData
from aiida_perovskite.exit_codes import declare
from aiida_perovskite.loop.settings import AT_LEAST_ONE, ReuseTraining
from aiida_perovskite.protocols import ProtocolMixin, load_protocol
from aiida_perovskite.schema import validation_problem, value_validator
from aiida_perovskite.tags import tag_child
from aiida_perovskite.workflows.deepmd_train_base import DeepmdTrainBaseWorkChain

__all__ = ("TrainEnsembleWorkChain",)


def validate_reuse(value: Mapping, _) -> str | None:
    """A warm start (``ReuseTraining``): the models to start from, their steps and learning rate."""
    if not value or "numb_steps" not in value:
        return None
    settings = {key: value[key].value for key in ("numb_steps", "start_lr") if key in value}
    return validation_problem(ReuseTraining, settings, "reuse")


def validate_inputs(inputs, _) -> str | None:
    train = inputs["train"]["train"]
    if "parameters" in train and "training_set" in inputs:
        error = check_data_against_model(train["parameters"], inputs["training_set"], inputs.get("validation_set"))
        if error:
            return error
    models = inputs.get("reuse", {}).get("models", {})
    if models and len(models) != inputs["num_models"].value:
        return f"reuse.models has {len(models)} models but num_models is {inputs['num_models'].value}: give one each"
    train_inputs = inputs["train"]["train"]
    backend = train_inputs["backend"].value if "backend" in train_inputs else DEFAULT_BACKEND
    for key, model in models.items():
        if model.dp_backend != backend:
            return f"reuse.models.{key} is a {model.dp_backend} model but the ensemble trains with {backend!r}"
    return None


class TrainEnsembleWorkChain(ProtocolMixin, WorkChain):
    """Train ``num_models`` Deep Potentials in parallel; seeds come from ``seed`` through ``derive_seeds``."""

    _protocol_file = "deepmd_train"

    @classmethod
    def define(cls, spec):
        super().define(spec)
        spec.input("training_set", valid_type=TrainingSetData)
        spec.input("validation_set", valid_type=TrainingSetData, required=False)
        spec.input(
            "num_models",
            valid_type=orm.Int,
            default=lambda: orm.Int(load_protocol("deepmd_train")["num_models"]),
            validator=value_validator(AT_LEAST_ONE, "num_models"),
        )
        spec.input("seed", valid_type=orm.Int, help="Ensemble seed; each model's seed derives from it.")
        spec.input_namespace(
            "reuse",
            validator=validate_reuse,
            help="Start from the previous iteration's models "
            "(`--init-frz-model`) with fewer steps, as DP-GEN's training_reuse does.",
        )
        spec.input_namespace("reuse.models", valid_type=DeepPotentialData, dynamic=True, required=False)
        spec.input("reuse.numb_steps", valid_type=orm.Int, required=False, help="Steps of a reused training.")
        spec.input("reuse.start_lr", valid_type=orm.Float, required=False, help="Starting learning rate.")
        spec.expose_inputs(
            DeepmdTrainBaseWorkChain,
            namespace="train",
            exclude=("train.training_set", "train.validation_set", "train.seed"),
        )
        spec.inputs.validator = validate_inputs
        spec.outline(cls.make_seeds, cls.run_trainings, cls.collect, if_(cls.some_failed)(cls.report_failures))
        spec.output_namespace("models", valid_type=DeepPotentialData, dynamic=True)
        spec.output_namespace("compressed_models", valid_type=DeepPotentialData, dynamic=True, required=False)
        spec.output_namespace("learning_curves", valid_type=orm.ArrayData, dynamic=True)
        spec.output("seeds", valid_type=orm.List, help="The seed of each model, in model order.")
        declare(spec, "ERROR_TRAINING_FAILED")

    @classmethod
    def get_builder_from_protocol(
        cls,
        code: orm.AbstractCode,
        training_set: TrainingSetData | None,
        protocol: str | None = None,
        overrides: Mapping[str, Any] | None = None,
        seed: int = 0,
        num_models: int | None = None,
        **_,
    ):
        """An ensemble builder: the training inputs of ``protocol`` (see DeepmdTrainBaseWorkChain)."""
        inputs = cls.get_protocol_inputs(protocol, overrides)
        base = DeepmdTrainBaseWorkChain.get_builder_from_protocol(code, training_set, protocol, overrides, seed)
        builder = cls.get_builder()
        if training_set is not None:
            builder.training_set = training_set
        builder.seed = orm.Int(seed)
        builder.num_models = orm.Int(num_models if num_models is not None else inputs["num_models"])
        base.train.pop("training_set", None)
        base.train.pop("seed")
        builder.train = base
        return builder

    def make_seeds(self):
        seeds = derive_seeds(self.inputs.seed, self.inputs.num_models)
        self.ctx.seeds = [seeds[f"seed_{index}"] for index in range(self.inputs.num_models.value)]
        self.out("seeds", seeds["seeds"])

    def run_trainings(self):
        calls = {}
        for index, seed in enumerate(self.ctx.seeds):
            inputs = AttributeDict(self.exposed_inputs(DeepmdTrainBaseWorkChain, "train"))
            inputs.train = AttributeDict(inputs.train)
            inputs.train.training_set = self.inputs.training_set
            inputs.train.seed = seed
            if "validation_set" in self.inputs:
                inputs.train.validation_set = self.inputs.validation_set
            if "models" in self.inputs.get("reuse", {}):
                self._reuse(inputs.train, self.inputs.reuse.models[f"model_{index}"])
            inputs.metadata = {"call_link_label": f"train_model_{index}"}
            node = self.submit(DeepmdTrainBaseWorkChain, **inputs)
            # the campaign's stage of this ensemble (train, final_training), so its jobs are found by it
            tag_child(self.node, node, stage=self.node.base.extras.get("stage", "train"), model_index=index)
            self.report(f"launched training {index} <{node.pk}> with seed {seed.value}")
            calls[f"model_{index}"] = node
        return ToContext(**calls)

    def _reuse(self, train: AttributeDict, model: DeepPotentialData) -> None:
        parameters = train.parameters.get_dict()
        if "numb_steps" in self.inputs.reuse:
            parameters["training"]["numb_steps"] = self.inputs.reuse.numb_steps.value
        if "start_lr" in self.inputs.reuse:
            parameters["learning_rate"]["start_lr"] = self.inputs.reuse.start_lr.value
        train.parameters = orm.Dict(parameters)
        train.init_model = model
        train.init_mode = orm.Str("init-frz-model")

    def collect(self):
        self.ctx.failed = []
        for index in range(self.inputs.num_models.value):
            node = self.ctx[f"model_{index}"]
            if not node.is_finished_ok:
                self.ctx.failed.append(f"model_{index} <{node.pk}> exit {node.exit_status}")
                continue
            self.out(f"models.model_{index}", node.outputs.model)
            self.out(f"learning_curves.model_{index}", node.outputs.learning_curve)
            if "compressed_model" in node.outputs:
                self.out(f"compressed_models.model_{index}", node.outputs.compressed_model)

    def some_failed(self):
        return bool(self.ctx.failed)

    def report_failures(self):
        return self.exit_codes.ERROR_TRAINING_FAILED.format(
            message=f"{len(self.ctx.failed)} of {self.inputs.num_models.value} models: {'; '.join(self.ctx.failed)}"
        )
