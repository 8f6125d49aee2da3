"""``perovskite.deepmd.test``: ``dp test`` of a frozen model on labeled frames (energy, force, virial errors)."""

from __future__ import annotations

from aiida import orm
from aiida.common import CalcInfo, CodeInfo
from aiida.engine import CalcJob

from aiida_perovskite.calculations.deepmd_common import BACKENDS, validate_type_map_covers
from aiida_perovskite.calculations.defaults import set_serial_defaults
from aiida_perovskite.data import DeepPotentialData, TrainingSetData
from aiida_perovskite.exit_codes import declare

__all__ = ("DeepmdTestCalculation",)


def validate_inputs(inputs, _) -> str | None:
    model, dataset = inputs["model"], inputs["dataset"]
    if dataset.nframes == 0:
        return "the dataset is empty"
    return validate_type_map_covers(model.type_map, dataset.type_map, "the dataset")


class DeepmdTestCalculation(CalcJob):
    """Evaluate a DeepPotentialData on a TrainingSetData: per-system and pooled MAE/RMSE."""

    DATA_DIR = "data"
    DETAIL_PREFIX = "detail"

    @classmethod
    def define(cls, spec):
        super().define(spec)
        spec.input("model", valid_type=DeepPotentialData, help="The frozen model to evaluate.")
        spec.input("dataset", valid_type=TrainingSetData, help="Labeled frames to compare with.")
        spec.inputs.validator = validate_inputs
        set_serial_defaults(spec, "perovskite.deepmd.test")

        spec.output(
            "metrics",
            valid_type=orm.Dict,
            help="Errors: energy per atom (eV/atom), force (eV/Å), virial "
            "per atom (eV/atom); pooled over all systems and per system.",
        )
        spec.output("predictions", valid_type=orm.ArrayData, help="Reference and predicted values per system.")
        spec.default_output_node = "metrics"
        declare(
            spec, "ERROR_EXECUTABLE_NOT_RUN", "ERROR_DISK_FULL", "ERROR_MISSING_OUTPUT_FILE", "ERROR_INCOMPLETE_OUTPUT"
        )

    def prepare_for_submission(self, folder):
        model: DeepPotentialData = self.inputs.model
        dataset: TrainingSetData = self.inputs.dataset
        backend = BACKENDS[model.dp_backend]
        model_file = f"model{backend['suffix']}"
        folder.get_subfolder(self.DATA_DIR, create=True)

        codeinfo = CodeInfo()
        codeinfo.code_uuid = self.inputs.code.uuid
        codeinfo.cmdline_params = [
            backend["flag"],
            "test",
            "-m",
            model_file,
            "-s",
            self.DATA_DIR,
            "-d",
            self.DETAIL_PREFIX,
        ]
        codeinfo.stdout_name = "test.log"
        codeinfo.join_files = True

        calcinfo = CalcInfo()
        calcinfo.codes_info = [codeinfo]
        calcinfo.local_copy_list = [(model.uuid, model.filename, model_file)] + [
            (dataset.uuid, name, f"{self.DATA_DIR}/{name}") for name in dataset.system_names
        ]
        calcinfo.retrieve_list = ["test.log", f"{self.DETAIL_PREFIX}.*.out"]
        return calcinfo
