"""``perovskite.deepmd.train``: ``dp train``, ``dp freeze`` and optionally ``dp compress`` in one job."""

from __future__ import annotations

import copy
import json
import pathlib

from aiida import orm
from aiida.common import CalcInfo, CodeInfo, CodeRunMode
from aiida.engine import CalcJob

from aiida_perovskite.calculations.deepmd_common import (
    BACKENDS,
    DEFAULT_BACKEND,
    validate_backend,
    validate_type_map_covers,
)
from aiida_perovskite.calculations.defaults import set_serial_defaults
from aiida_perovskite.data import DeepPotentialData, TrainingSetData
from aiida_perovskite.exit_codes import declare

__all__ = ("DeepmdTrainCalculation", "restartable")

INIT_MODES = ("restart", "init-model", "init-frz-model", "finetune")
CHECKPOINT_POINTER = "checkpoint"  # names the latest checkpoint; both backends write it with the checkpoint
CHECKPOINT_GLOBS = (CHECKPOINT_POINTER, "model.ckpt*")
TRAIN_LOG = "train.log"


def restartable(retrieved: orm.FolderData, backend: str) -> bool:
    """Whether a stopped training left a checkpoint that ``dp train --restart`` can read.

    A job killed while TensorFlow saves its first checkpoint has the pointer file but not yet the meta graph
    the restart imports (seen with ``scancel`` under load), so the pointer alone is not enough there.
    """
    names = retrieved.base.repository.list_object_names()
    if CHECKPOINT_POINTER not in names:
        return False
    logged = BACKENDS[backend]["checkpoint_logged"]
    return logged is None or (TRAIN_LOG in names and logged in retrieved.base.repository.get_object_content(TRAIN_LOG))


def validate_parameters(parameters: orm.Dict, _) -> str | None:
    params = parameters.get_dict()
    missing = [key for key in ("model", "learning_rate", "loss", "training") if key not in params]
    if missing:
        return f"the DeePMD input lacks the section(s) {missing}: give model, learning_rate, loss and training"
    steps = params["training"].get("numb_steps")
    if not isinstance(steps, int) or isinstance(steps, bool) or steps <= 0:
        return f"training.numb_steps must be a positive integer, got {steps!r}"
    for key in ("training_data", "validation_data"):
        if "systems" in params["training"].get(key, {}):
            return f"training.{key}.systems is filled in from the training_set/validation_set inputs: remove it"
    return check_with_deepmd(params)


def check_with_deepmd(params: dict) -> str | None:
    """Run DeePMD-kit's own argument check (dargs) so that a typo fails at submission, not on the cluster."""
    try:
        from deepmd.utils.argcheck import normalize
    except ImportError:  # deepmd-kit only on the remote machine: it will check there
        return None
    trial = copy.deepcopy(params)
    trial["model"].setdefault("type_map", ["X"])
    trial["training"].setdefault("training_data", {})["systems"] = ["placeholder"]
    try:
        normalize(trial)
    except Exception as exc:  # dargs raises several exception types, all meaning "invalid input"
        return f"DeePMD-kit rejects the input parameters: {exc}"
    return None


def check_data_against_model(parameters: orm.Dict, training_set, validation_set=None) -> str | None:
    """The model's type_map (when given) must cover every element of the data."""
    if training_set.nframes == 0:
        return "the training set is empty"
    type_map = parameters.get_dict().get("model", {}).get("type_map")
    if type_map is None:
        return None
    for data, what in ((training_set, "the training set"), (validation_set, "the validation set")):
        error = validate_type_map_covers(type_map, data.type_map, what) if data is not None else None
        if error:
            return error
    return None


def validate_inputs(inputs, _) -> str | None:
    """Cross-checks that need several inputs (a wrapper may exclude the data ports and check them itself)."""
    if "training_set" in inputs and "parameters" in inputs:
        error = check_data_against_model(inputs["parameters"], inputs["training_set"], inputs.get("validation_set"))
        if error:
            return error
    mode = inputs.get("init_mode")
    mode = mode.value if mode is not None else None
    if mode is not None and mode not in INIT_MODES:
        return f"init_mode {mode!r} is unknown; choose one of {', '.join(INIT_MODES)}"
    if mode in ("restart", "init-model") and "parent_folder" not in inputs:
        return f"init_mode {mode!r} continues from a checkpoint: give parent_folder (the remote_folder of a training)"
    if mode in ("init-frz-model", "finetune") and "init_model" not in inputs:
        return f"init_mode {mode!r} starts from a frozen model: give init_model"
    if mode is None and ("parent_folder" in inputs or "init_model" in inputs):
        return "parent_folder/init_model given without init_mode: say how to use them (restart, init-model, ...)"
    init_model = inputs.get("init_model")
    if (
        init_model is not None
        and "backend" in inputs
        and init_model.dp_backend != BACKENDS[inputs["backend"].value]["name"]
    ):
        return f"init_model is a {init_model.dp_backend} model but backend is {inputs['backend'].value!r}"
    return None


class DeepmdTrainCalculation(CalcJob):
    """Train one Deep Potential on a TrainingSetData and freeze it (and compress it, if asked)."""

    _INPUT_FILE = "input.json"
    _TRAIN_DIR = "data/train"
    _VALID_DIR = "data/valid"
    _LCURVE = "lcurve.out"

    @classmethod
    def define(cls, spec):
        super().define(spec)
        spec.input("training_set", valid_type=TrainingSetData, help="Labeled frames to train on.")
        spec.input("validation_set", valid_type=TrainingSetData, required=False, help="Frames for validation RMSE.")
        spec.input(
            "parameters",
            valid_type=orm.Dict,
            validator=validate_parameters,
            help="DeePMD input (model, learning_rate, loss, training); data paths and seeds are filled in.",
        )
        spec.input("seed", valid_type=orm.Int, help="Seed of the descriptor, fitting net and data shuffling.")
        spec.input(
            "backend",
            valid_type=orm.Str,
            default=lambda: orm.Str(DEFAULT_BACKEND),
            validator=validate_backend,
            help="tensorflow (.pb models; fastest MD on CPU, docs/benchmarks.md) or pytorch (.pth models).",
        )
        spec.input("compress", valid_type=orm.Bool, default=lambda: orm.Bool(False), help="Also run `dp compress`.")
        spec.input("init_model", valid_type=DeepPotentialData, required=False, help="Frozen model to start from.")
        spec.input("parent_folder", valid_type=orm.RemoteData, required=False, help="A training's checkpoint.")
        spec.input(
            "init_mode",
            valid_type=orm.Str,
            required=False,
            help="restart | init-model (checkpoint in parent_folder) | init-frz-model | finetune (init_model).",
        )
        spec.inputs.validator = validate_inputs
        set_serial_defaults(spec, "perovskite.deepmd.train")

        spec.output("model", valid_type=DeepPotentialData, help="The frozen model, with its final errors.")
        spec.output("compressed_model", valid_type=DeepPotentialData, required=False, help="`dp compress` result.")
        spec.output("learning_curve", valid_type=orm.ArrayData, help="lcurve.out columns; final RMSEs as attributes.")

        declare(
            spec,
            "ERROR_EXECUTABLE_NOT_RUN",
            "ERROR_DISK_FULL",
            "ERROR_MISSING_LEARNING_CURVE",
            "ERROR_MISSING_MODEL",
            "ERROR_MISSING_COMPRESSED_MODEL",
            "ERROR_INVALID_MODEL",
            "ERROR_UNREADABLE_LEARNING_CURVE",
            "ERROR_OUT_OF_WALLTIME",
            "ERROR_STOPPED_BEFORE_CHECKPOINT",
            "ERROR_CANCELLED_BY_SCHEDULER",
            "ERROR_TRAINING_DIVERGED",
        )

    def prepare_for_submission(self, folder):
        backend = BACKENDS[self.inputs.backend.value]
        training_set: TrainingSetData = self.inputs.training_set
        params = copy.deepcopy(self.inputs.parameters.get_dict())
        model = params["model"]
        model.setdefault("type_map", training_set.type_map)
        seed = self.inputs.seed.value
        model.setdefault("descriptor", {})["seed"] = seed
        model.setdefault("fitting_net", {})["seed"] = seed
        training = params["training"]
        training["seed"] = seed
        training.setdefault("training_data", {})["systems"] = [
            f"{self._TRAIN_DIR}/{name}" for name in training_set.system_names
        ]
        local_copy_list = [(training_set.uuid, name, f"{self._TRAIN_DIR}/{name}") for name in training_set.system_names]
        if "validation_set" in self.inputs:
            validation_set: TrainingSetData = self.inputs.validation_set
            training.setdefault("validation_data", {})["systems"] = [
                f"{self._VALID_DIR}/{name}" for name in validation_set.system_names
            ]
            training["validation_data"].setdefault("batch_size", 1)
            local_copy_list += [
                (validation_set.uuid, name, f"{self._VALID_DIR}/{name}") for name in validation_set.system_names
            ]
        folder.create_file_from_filelike(_json_bytes(params), self._INPUT_FILE, mode="wb")
        for directory in (self._TRAIN_DIR, self._VALID_DIR):
            folder.get_subfolder(directory, create=True)

        train_args = [backend["flag"], "train", self._INPUT_FILE]
        remote_copy_list = []
        mode = self.inputs.init_mode.value if "init_mode" in self.inputs else None
        if mode in ("restart", "init-model"):
            parent: orm.RemoteData = self.inputs.parent_folder
            remote_copy_list = [
                (parent.computer.uuid, str(pathlib.PurePosixPath(parent.get_remote_path()) / pattern), ".")
                for pattern in CHECKPOINT_GLOBS
            ]
            train_args += [f"--{mode}", backend["checkpoint"]]
        elif mode in ("init-frz-model", "finetune"):
            init_name = f"init{backend['suffix']}"
            local_copy_list.append((self.inputs.init_model.uuid, self.inputs.init_model.filename, init_name))
            train_args += [f"--{mode}", init_name]

        model_file = f"model{backend['suffix']}"
        commands = [
            (train_args, TRAIN_LOG),
            ([backend["flag"], "freeze", "-o", model_file], "freeze.log"),
        ]
        retrieve = [self._LCURVE, TRAIN_LOG, "freeze.log", model_file, self._INPUT_FILE, CHECKPOINT_POINTER]
        if self.inputs.compress.value:
            compressed_file = f"compressed{backend['suffix']}"
            commands.append(
                (
                    [backend["flag"], "compress", "-i", model_file, "-o", compressed_file, "-t", self._INPUT_FILE],
                    "compress.log",
                )
            )
            retrieve += [compressed_file, "compress.log"]

        calcinfo = CalcInfo()
        calcinfo.codes_info = [self._codeinfo(args, log) for args, log in commands]
        calcinfo.codes_run_mode = CodeRunMode.SERIAL
        calcinfo.local_copy_list = local_copy_list
        calcinfo.remote_copy_list = remote_copy_list
        calcinfo.retrieve_list = retrieve
        return calcinfo

    def _codeinfo(self, args: list[str], log: str) -> CodeInfo:
        codeinfo = CodeInfo()
        codeinfo.code_uuid = self.inputs.code.uuid
        codeinfo.cmdline_params = args
        codeinfo.stdout_name = log
        codeinfo.join_files = True
        return codeinfo


def _json_bytes(data: dict):
    import io

    return io.BytesIO(json.dumps(data, indent=2).encode())
