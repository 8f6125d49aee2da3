"""DeePMD teachers: any frozen Deep Potential (se_e2_a, se_atten/DPA-1, DPA-2/DPA-3), e.g. a user's
fine-tuned large model, as DPGEN2's ``fp.type: deepmd``. A multi-task model is frozen with the head to
use (``dp --pt freeze -c model.pt --head NAME``); ``head`` records which one."""

from __future__ import annotations

import pathlib
from collections.abc import Mapping
from typing import Any

import numpy as np

from aiida_perovskite.teachers import Evaluator, Teacher, TeacherError, file_sha256, package_version

__all__ = ("DeepmdTeacher",)


class DeepmdTeacher(Teacher):
    """``{"kind": "deepmd", "level_of_theory": "PBEsol", "head": "..."}`` with the model file given apart
    (stored as a DeepPotentialData node and copied into each job)."""

    kind = "deepmd"
    request_keys = ("model", "head", "level_of_theory")

    def describe(self, request: Mapping[str, Any], model_file: pathlib.Path | None = None) -> dict[str, Any]:
        from aiida_perovskite.analysis.model_files import ModelFileError, inspect_model_file

        if model_file is None or not pathlib.Path(model_file).is_file():
            raise TeacherError(
                f"a deepmd teacher needs its frozen model file (.pth or .pb), got {model_file!r}",
                reason="checkpoint_missing",
            )
        level = request.get("level_of_theory")
        if not level:
            raise TeacherError("say which level of theory the model reproduces: level_of_theory (e.g. 'PBEsol')")
        try:
            info = inspect_model_file(pathlib.Path(model_file))
        except ModelFileError as exc:
            raise TeacherError(str(exc), reason="checkpoint_corrupt") from exc
        return {
            "kind": self.kind,
            "package": "deepmd-kit",
            "version": package_version("deepmd-kit"),
            "model": pathlib.Path(model_file).name,
            "file": pathlib.Path(model_file).name,
            "sha256": file_sha256(pathlib.Path(model_file)),
            "head": request.get("head"),
            "descriptor": info.get("descriptor"),
            "elements": sorted(info.get("type_map") or []),
            "type_map": list(info.get("type_map") or []),
            "level_of_theory": level,
        }

    def load(self, identity: Mapping[str, Any], model_file: pathlib.Path | None, device: str) -> Evaluator:
        if model_file is None or not model_file.is_file():
            raise TeacherError("the deepmd teacher's model file was not copied into the job", "checkpoint_missing")
        digest = file_sha256(model_file)
        if digest != identity["sha256"]:
            raise TeacherError(
                f"the model file has sha256 {digest[:16]}..., not {identity['sha256'][:16]}...",
                reason="checkpoint_mismatch",
            )
        return _DeepmdEvaluator(model_file)


class _DeepmdEvaluator(Evaluator):
    def __init__(self, model_file: pathlib.Path):
        from deepmd.infer import DeepPot

        self.model = DeepPot(str(model_file))
        self.type_map = list(self.model.get_type_map())

    def __call__(self, atoms) -> tuple[float, np.ndarray, np.ndarray]:
        symbols = atoms.get_chemical_symbols()
        unknown = sorted(set(symbols) - set(self.type_map))
        if unknown:
            raise TeacherError(f"the model's type_map {self.type_map} has no {unknown}")
        types = np.array([self.type_map.index(symbol) for symbol in symbols])
        energy, forces, virial = self.model.eval(
            atoms.positions.reshape(1, -1), np.asarray(atoms.cell[:]).reshape(1, -1), types
        )[:3]
        return float(np.ravel(energy)[0]), np.asarray(forces).reshape(-1, 3), np.asarray(virial).reshape(3, 3)
