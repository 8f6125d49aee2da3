"""``perovskite.teacher.label``: a pretrained teacher labels a batch of structures in one job.

The job runs ``perovskite-teacher`` (installed with this package) on any computer and scheduler; the
teacher's identity (package, version, checkpoint and its sha256, modal or head, level of theory) is the
``teacher`` input node, so every label links back to the exact model that produced it.
"""

from __future__ import annotations

import io
import json

from aiida import orm
from aiida.common import CalcInfo, CodeInfo
from aiida.engine import CalcJob

from aiida_perovskite.calculations.defaults import set_serial_defaults
from aiida_perovskite.data import DeepPotentialData
from aiida_perovskite.exit_codes import declare
from aiida_perovskite.teachers.batch import (
    FAILURES_FILE,
    FRAMES_FILE,
    INPUT_FILE,
    LABELS_FILE,
    STATUS_FILE,
    write_frames,
)

__all__ = ("IDENTITY_KEYS", "TeacherLabelCalculation", "validate_teacher")

IDENTITY_KEYS = ("kind", "package", "version", "model", "file", "sha256", "elements", "level_of_theory")
SETTINGS_KEYS = {"checks", "device", "threads", "checkpoint_seconds"}
CHECK_KEYS = {"min_distance", "max_force", "max_energy_deviation"}
MODEL_FILE = "teacher_model"
LOG_FILE = "teacher.log"


def validate_teacher(teacher: orm.Dict, _) -> str | None:
    values = teacher.get_dict()
    missing = [key for key in IDENTITY_KEYS if key not in values]
    if missing:
        return f"the teacher identity lacks {missing}: build it with aiida_perovskite.engines.teacher.teacher_inputs"
    return None


def validate_settings(settings: orm.Dict, _) -> str | None:
    values = settings.get_dict()
    unknown = sorted(set(values) - SETTINGS_KEYS)
    if unknown:
        return f"unknown settings {unknown}; use {', '.join(sorted(SETTINGS_KEYS))}"
    checks = values.get("checks", {})
    if set(checks) != CHECK_KEYS:
        return f"settings.checks must give exactly {', '.join(sorted(CHECK_KEYS))}, got {sorted(checks)}"
    bad = {key: value for key, value in checks.items() if not isinstance(value, int | float) or value <= 0}
    if bad:
        return f"settings.checks must be positive numbers, got {bad}"
    return None


def validate_inputs(inputs, _) -> str | None:
    structures, teacher = inputs.get("structures", {}), inputs.get("teacher")
    if not structures:
        return "give at least one structure to label"
    if teacher is None:
        return None
    identity = teacher.get_dict()
    model = inputs.get("model")
    if identity.get("kind") == "deepmd":
        if model is None:
            return "a deepmd teacher needs its model (the DeepPotentialData whose sha256 the identity holds)"
        if model.sha256 != identity.get("sha256"):
            return f"the model node's sha256 {model.sha256[:16]}... is not the teacher's {identity['sha256'][:16]}..."
    elif model is not None:
        return f"a {identity.get('kind')!r} teacher takes no model input (its checkpoint is named in the identity)"
    known = set(identity.get("elements") or [])
    for name, structure in structures.items():
        unknown = sorted(set(structure.get_symbols_set()) - known)
        if known and unknown:
            return f"structures.{name} has element(s) {unknown} that the teacher {identity.get('model')} does not know"
    return None


class TeacherLabelCalculation(CalcJob):
    """Label every input structure with the teacher; failures are per frame, with the reason."""

    @classmethod
    def define(cls, spec):
        super().define(spec)
        spec.input_namespace(
            "structures", valid_type=orm.StructureData, dynamic=True, help="The frames to label, by name."
        )
        spec.input(
            "teacher",
            valid_type=orm.Dict,
            validator=validate_teacher,
            help="The teacher's identity (kind, package, version, model, sha256, modal/head, level_of_theory).",
        )
        spec.input("model", valid_type=DeepPotentialData, required=False, help="The model of a deepmd teacher.")
        spec.input(
            "settings",
            valid_type=orm.Dict,
            validator=validate_settings,
            help="checks (min_distance Å, max_force eV/Å, max_energy_deviation eV/atom), device, threads, "
            "checkpoint_seconds.",
        )
        spec.inputs.validator = validate_inputs
        set_serial_defaults(spec, "perovskite.teacher.label")
        spec.output(
            "labels",
            valid_type=orm.ArrayData,
            required=False,
            help="Per labeled frame: names, structure uuids, energies (eV), natoms, forces (eV/Å, concatenated), "
            "virials (eV).",
        )
        spec.output("failures", valid_type=orm.Dict, help="Per failed frame, the reason.")
        spec.output("timings", valid_type=orm.Dict, required=False, help="Teacher load and labeling seconds.")
        declare(
            spec,
            "ERROR_EXECUTABLE_NOT_RUN",
            "ERROR_DISK_FULL",
            "ERROR_MISSING_OUTPUT_FILE",
            "ERROR_UNREADABLE_OUTPUT",
            "ERROR_TEACHER_NOT_INSTALLED",
            "ERROR_CHECKPOINT_MISSING",
            "ERROR_CHECKPOINT_MISMATCH",
            "ERROR_CHECKPOINT_CORRUPT",
            "ERROR_FRAMES_FAILED",
        )

    def prepare_for_submission(self, folder):
        names = sorted(self.inputs.structures)
        with folder.open(FRAMES_FILE, "wb") as handle:
            write_frames(handle, names, [self.inputs.structures[name].get_ase() for name in names])
        settings = self.inputs.settings.get_dict()
        job = {"teacher": self.inputs.teacher.get_dict(), **settings}
        calcinfo = CalcInfo()
        calcinfo.local_copy_list = []
        if "model" in self.inputs:
            model = self.inputs.model
            job["model_file"] = MODEL_FILE + "." + model.filename.rsplit(".", 1)[-1]
            calcinfo.local_copy_list.append((model.uuid, model.filename, job["model_file"]))
        folder.create_file_from_filelike(io.StringIO(json.dumps(job, indent=1)), INPUT_FILE, "w")

        codeinfo = CodeInfo()
        codeinfo.code_uuid = self.inputs.code.uuid
        codeinfo.cmdline_params = [INPUT_FILE]
        codeinfo.stdout_name = LOG_FILE
        codeinfo.join_files = True
        calcinfo.codes_info = [codeinfo]
        calcinfo.retrieve_list = [LABELS_FILE, FAILURES_FILE, STATUS_FILE, LOG_FILE]
        return calcinfo
