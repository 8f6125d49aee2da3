"""Parser of ``perovskite.teacher.label``: the labels of the frames that passed, the reason for each other.

A frame that the job neither labeled nor rejected (it ended first, e.g. at its walltime) is a failure too:
no frame is dropped without a reason.
"""

from __future__ import annotations

import json
import zipfile

import numpy as np
from aiida import orm
from aiida.parsers import Parser

from aiida_perovskite.parsers.job_logs import disk_full, failure_in_logs
from aiida_perovskite.teachers.batch import FAILURES_FILE, LABELS_FILE, STATUS_FILE, label_problem, read_labels

__all__ = ("TeacherLabelParser",)

FATAL_REASONS = {
    "package_missing": "ERROR_TEACHER_NOT_INSTALLED",
    "unknown_kind": "ERROR_TEACHER_NOT_INSTALLED",
    "checkpoint_missing": "ERROR_CHECKPOINT_MISSING",
    "download_needed": "ERROR_CHECKPOINT_MISSING",
    "checkpoint_mismatch": "ERROR_CHECKPOINT_MISMATCH",
    "checkpoint_corrupt": "ERROR_CHECKPOINT_CORRUPT",
}
NOT_REACHED = "not labeled before the job ended (walltime or crash): relabel it"


class TeacherLabelParser(Parser):
    def parse(self, **kwargs):
        files = set(self.retrieved.base.repository.list_object_names())
        read = self.retrieved.base.repository.get_object_content
        status = json.loads(read(STATUS_FILE)) if STATUS_FILE in files else {}
        if status and not status.get("ok", False):
            name = FATAL_REASONS.get(status.get("reason"), "ERROR_TEACHER_NOT_INSTALLED")
            return self.exit_codes[name].format(message=status.get("message", ""))
        if LABELS_FILE not in files or FAILURES_FILE not in files:
            return failure_in_logs(self, "teacher.log") or self.exit_codes.ERROR_MISSING_OUTPUT_FILE.format(
                filename=LABELS_FILE, log="teacher.log"
            )
        try:
            batch = read_labels(read(LABELS_FILE, mode="rb"), read(FAILURES_FILE))
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as exc:
            return disk_full(self, "teacher.log") or self.exit_codes.ERROR_UNREADABLE_OUTPUT.format(
                filename=LABELS_FILE, error=str(exc)
            )

        structures = self.node.inputs.structures
        failures = dict(batch.failures)
        kept = []
        for index, name in enumerate(batch.names):
            if name not in structures:
                return self.exit_codes.ERROR_UNREADABLE_OUTPUT.format(
                    filename=LABELS_FILE, error=f"it labels a frame {name!r} the job was not given"
                )
            problem = label_problem(
                batch.energies[index], batch.forces[index], batch.virials[index], len(structures[name].sites)
            )
            if problem:
                failures[name] = f"{LABELS_FILE}: {problem}"
            else:
                kept.append(index)
        for name in sorted(set(structures) - set(batch.names) - set(failures)):
            failures[name] = NOT_REACHED
        if kept:
            labels = orm.ArrayData()
            labels.set_array("names", np.array([batch.names[i] for i in kept]))
            labels.set_array("uuids", np.array([structures[batch.names[i]].uuid for i in kept]))
            labels.set_array("energies", np.array([batch.energies[i] for i in kept]))
            labels.set_array("natoms", np.array([len(batch.forces[i]) for i in kept]))
            labels.set_array("forces", np.concatenate([batch.forces[i] for i in kept]))
            labels.set_array("virials", np.array([batch.virials[i] for i in kept]).reshape(-1, 3, 3))
            self.out("labels", labels)
        self.out("failures", orm.Dict(failures))
        if "load_seconds" in status:
            self.out("timings", orm.Dict({key: status[key] for key in ("load_seconds", "label_seconds")}))
        if failures:
            first = next(iter(sorted(failures.items())))
            return self.exit_codes.ERROR_FRAMES_FAILED.format(
                failed=len(failures), total=len(structures), first=f"{first[0]}: {first[1]}"
            )
        return None
