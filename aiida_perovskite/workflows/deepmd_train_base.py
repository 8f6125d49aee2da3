"""``perovskite.deepmd.train.base``: one training with restarts from its checkpoint when it runs out of time."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from aiida import orm
from aiida.common import AttributeDict
from aiida.engine import BaseRestartWorkChain, ProcessHandlerReport, process_handler, while_
from aiida.plugins import CalculationFactory

from aiida_perovskite.calculations.deepmd_train import restartable
from aiida_perovskite.exit_codes import declare
from aiida_perovskite.protocols import ProtocolMixin
from aiida_perovskite.tags import TagsSubmittedProcesses
from aiida_perovskite.workflows.disk_space import pause_until_space_is_freed

__all__ = ("DeepmdTrainBaseWorkChain",)

DeepmdTrainCalculation = CalculationFactory("perovskite.deepmd.train")


class DeepmdTrainBaseWorkChain(ProtocolMixin, TagsSubmittedProcesses, BaseRestartWorkChain):
    """Run a DeepmdTrainCalculation; continue a training cut by the walltime from its checkpoint, or run it
    again when it stopped before the first one; lower the learning rate of one that diverged."""

    _protocol_file = "deepmd_train"

    _process_class = DeepmdTrainCalculation
    MAX_LR_REDUCTIONS = 2

    @classmethod
    def define(cls, spec):
        super().define(spec)
        spec.expose_inputs(DeepmdTrainCalculation, namespace="train")
        spec.expose_outputs(DeepmdTrainCalculation)
        spec.outline(
            cls.setup,
            while_(cls.should_run_process)(cls.run_process, cls.inspect_process),
            cls.results,
        )
        declare(spec, "ERROR_TRAINING_UNRECOVERABLE")

    @classmethod
    def get_builder_from_protocol(
        cls,
        code: orm.AbstractCode,
        training_set,
        protocol: str | None = None,
        overrides: Mapping[str, Any] | None = None,
        seed: int = 0,
        **_,
    ):
        """A builder for ``training_set`` on ``code`` with the inputs of ``protocol`` (fast, balanced, precise,
        precise-se_atten) updated by ``overrides`` (keys: parameters, backend, compress, metadata)."""
        inputs = cls.get_protocol_inputs(protocol, overrides)
        builder = cls.get_builder()
        builder.train.code = code
        if training_set is not None:
            builder.train.training_set = training_set
        builder.train.parameters = orm.Dict(inputs["parameters"])
        builder.train.seed = orm.Int(seed)
        builder.train.backend = orm.Str(inputs["backend"])
        builder.train.compress = orm.Bool(inputs["compress"])
        builder.train.metadata = inputs["metadata"]
        if "max_iterations" in inputs:
            builder.max_iterations = orm.Int(inputs["max_iterations"])
        return builder

    def setup(self):
        super().setup()
        self.ctx.inputs = AttributeDict(self.exposed_inputs(DeepmdTrainCalculation, "train"))
        self.ctx.lr_reductions = 0

    def report_error_handled(self, calculation, action: str) -> None:
        self.report(
            f"{calculation.process_label}<{calculation.pk}> failed with exit status "
            f"{calculation.exit_status}: {calculation.exit_message}"
        )
        self.report(f"action taken: {action}")

    @process_handler(priority=700, exit_codes=[DeepmdTrainCalculation.exit_codes.ERROR_DISK_FULL])
    def handle_disk_full(self, calculation):
        """Pause until the disk has space, then run the job again."""
        return pause_until_space_is_freed(self, calculation)

    @process_handler(
        priority=600,
        exit_codes=[
            DeepmdTrainCalculation.exit_codes.ERROR_OUT_OF_WALLTIME,
            DeepmdTrainCalculation.exit_codes.ERROR_SCHEDULER_OUT_OF_WALLTIME,
        ],
    )
    def handle_out_of_walltime(self, calculation):
        """Continue from the checkpoint left in the remote folder (``dp train --restart``)."""
        return self._continue_from_checkpoint(calculation)

    def _continue_from_checkpoint(self, calculation) -> ProcessHandlerReport:
        self.ctx.inputs.parent_folder = calculation.outputs.remote_folder
        self.ctx.inputs.init_mode = orm.Str("restart")
        self.ctx.inputs.pop("init_model", None)
        self.report_error_handled(calculation, "restart from the checkpoint of the remote folder")
        return ProcessHandlerReport(do_break=True)

    @process_handler(priority=590, exit_codes=[DeepmdTrainCalculation.exit_codes.ERROR_STOPPED_BEFORE_CHECKPOINT])
    def handle_stopped_before_checkpoint(self, calculation):
        """Nothing to continue from (killed, or cut by the walltime, before the first checkpoint): run it again."""
        return self._run_again(calculation)

    def _run_again(self, calculation) -> ProcessHandlerReport:
        self.report_error_handled(calculation, "no checkpoint was written: run the same training again")
        return ProcessHandlerReport(do_break=True)

    @process_handler(priority=580, exit_codes=[DeepmdTrainCalculation.exit_codes.ERROR_CANCELLED_BY_SCHEDULER])
    def handle_cancelled(self, calculation):
        """A preempted or cancelled job: continue from its checkpoint if it wrote one, else run it again."""
        if restartable(calculation.outputs.retrieved, self.ctx.inputs.backend.value):
            return self._continue_from_checkpoint(calculation)
        return self._run_again(calculation)

    @process_handler(priority=500, exit_codes=[DeepmdTrainCalculation.exit_codes.ERROR_TRAINING_DIVERGED])
    def handle_diverged(self, calculation):
        """Start again with half the starting learning rate, at most MAX_LR_REDUCTIONS times."""
        if self.ctx.lr_reductions >= self.MAX_LR_REDUCTIONS:
            self.report_error_handled(calculation, "the learning rate was reduced twice already: give up")
            return ProcessHandlerReport(do_break=True, exit_code=self.exit_codes.ERROR_TRAINING_UNRECOVERABLE)
        parameters = self.ctx.inputs.parameters.get_dict()
        start_lr = parameters["learning_rate"].get("start_lr", 1e-3)
        parameters["learning_rate"]["start_lr"] = start_lr / 2
        self.ctx.inputs.parameters = orm.Dict(parameters)
        self.ctx.lr_reductions += 1
        self.report_error_handled(calculation, f"restart from scratch with start_lr {start_lr / 2:g}")
        return ProcessHandlerReport(do_break=True)
