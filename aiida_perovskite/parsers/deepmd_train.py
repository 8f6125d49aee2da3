"""Parser of ``perovskite.deepmd.train``: learning curve, frozen (and compressed) model, failure modes."""

from __future__ import annotations

import json
import pathlib
import tempfile

from aiida import orm
from aiida.engine import ExitCode
from aiida.parsers import Parser

from aiida_perovskite.analysis.deepmd_outputs import parse_learning_curve
from aiida_perovskite.calculations.deepmd_common import BACKENDS
from aiida_perovskite.calculations.deepmd_train import TRAIN_LOG, restartable
from aiida_perovskite.data import DeepPotentialData
from aiida_perovskite.parsers.job_logs import disk_full, failure_in_logs

__all__ = ("DeepmdTrainParser",)


class DeepmdTrainParser(Parser):
    """Attach the learning curve and the model(s); tell walltime, divergence and missing files apart."""

    def parse(self, **kwargs):
        retrieved = self.retrieved
        names = set(retrieved.base.repository.list_object_names())
        backend = BACKENDS[self.node.inputs.backend.value]
        exit_codes = self.exit_codes

        cancelled = self._cancelled_by_scheduler(names)
        if "lcurve.out" not in names:
            if cancelled:
                return exit_codes.ERROR_CANCELLED_BY_SCHEDULER.format(step=0, total=self._numb_steps())
            return failure_in_logs(self, TRAIN_LOG) or exit_codes.ERROR_MISSING_LEARNING_CURVE.format(log=TRAIN_LOG)
        try:
            curve = parse_learning_curve(retrieved.base.repository.get_object_content("lcurve.out"))
        except ValueError as exc:
            if cancelled:  # cancelled before dp wrote the header: not a broken file
                return exit_codes.ERROR_CANCELLED_BY_SCHEDULER.format(step=0, total=self._numb_steps())
            return disk_full(self, TRAIN_LOG) or exit_codes.ERROR_UNREADABLE_LEARNING_CURVE.format(error=str(exc))
        self.out("learning_curve", _curve_node(curve))

        divergence = curve.divergence_step()
        if divergence is not None:
            return exit_codes.ERROR_TRAINING_DIVERGED.format(step=divergence)

        total = self._numb_steps()
        model_file = f"model{backend['suffix']}"
        if curve.last_step < total:
            if cancelled:
                return exit_codes.ERROR_CANCELLED_BY_SCHEDULER.format(step=curve.last_step, total=total)
            full = disk_full(self, TRAIN_LOG)
            if full:  # a checkpoint or the log could not be written: a restart would fail the same way
                return full
            if not restartable(retrieved, backend["name"]):
                return exit_codes.ERROR_STOPPED_BEFORE_CHECKPOINT.format(step=curve.last_step, total=total)
            return exit_codes.ERROR_OUT_OF_WALLTIME.format(step=curve.last_step, total=total)
        if model_file not in names:
            return disk_full(self, "freeze.log") or exit_codes.ERROR_MISSING_MODEL.format(
                filename=model_file, log="freeze.log"
            )

        metrics = {**curve.final(), "numb_steps": curve.last_step}
        with tempfile.TemporaryDirectory() as tmp:
            model = self._model_node(pathlib.Path(tmp), model_file, metrics, compressed=False)
            if isinstance(model, ExitCode):
                return model
            self.out("model", model)
            if self.node.inputs.compress.value:
                compressed_file = f"compressed{backend['suffix']}"
                if compressed_file not in names:
                    return exit_codes.ERROR_MISSING_COMPRESSED_MODEL.format(
                        filename=compressed_file, log="compress.log"
                    )
                compressed = self._model_node(pathlib.Path(tmp), compressed_file, metrics, compressed=True)
                if isinstance(compressed, ExitCode):
                    return compressed
                self.out("compressed_model", compressed)
        return None

    def _cancelled_by_scheduler(self, names: set[str]) -> bool:
        """Slurm writes ``*** JOB n ON host CANCELLED AT time ***`` (without ``DUE TO TIME LIMIT``, which is
        the walltime) to the job's stderr when the job is cancelled."""
        stderr_name = self.node.get_option("scheduler_stderr")
        if stderr_name not in names:
            return False
        stderr = self.retrieved.base.repository.get_object_content(stderr_name).lower()
        return "cancelled at" in stderr and "due to time limit" not in stderr

    def _numb_steps(self) -> int:
        """Steps the training had to reach (the input as written, so restarts count from the same total)."""
        written = json.loads(self.retrieved.base.repository.get_object_content("input.json"))
        return int(written["training"]["numb_steps"])

    def _model_node(self, tmp: pathlib.Path, filename: str, metrics: dict, compressed: bool):
        path = tmp / filename
        path.write_bytes(self.retrieved.base.repository.get_object_content(filename, mode="rb"))
        try:
            return DeepPotentialData(path, compressed=compressed, metrics=metrics)
        except ValueError as exc:
            return self.exit_codes.ERROR_INVALID_MODEL.format(filename=filename, error=str(exc))


def _curve_node(curve) -> orm.ArrayData:
    node = orm.ArrayData()
    for name, values in curve.columns.items():
        node.set_array(name, values)
    node.base.attributes.set("final", curve.final())
    node.base.attributes.set("last_step", curve.last_step)
    return node
