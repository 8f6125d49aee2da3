"""SevenNet teachers: the checkpoints shipped inside the ``sevenn`` wheel, or a local checkpoint file.

Names are resolved to files without ever calling sevenn's downloader: a checkpoint that is not on disk (e.g.
``7net-omat``, which sevenn fetches from GitHub) is refused with the path where it would have to be.
"""

from __future__ import annotations

import pathlib
from collections.abc import Mapping
from typing import Any

import numpy as np

from aiida_perovskite.teachers import Evaluator, Teacher, TeacherError, file_sha256, package_version

__all__ = ("SevenNetTeacher",)

# The level of theory of each shipped checkpoint's training data (per modal for multi-fidelity models).
LEVELS_OF_THEORY = {
    "7net-0": "PBE/PBE+U (MPtrj)",
    "7net-0_22may2024": "PBE/PBE+U (MPtrj)",
    "7net-l3i5": "PBE/PBE+U (MPtrj)",
    "7net-mf-0": {"R2SCAN": "r2SCAN (MP r2SCAN)", "PBE": "PBE/PBE+U (MPtrj)"},
}
ALIASES = {
    "sevennet-0": "7net-0",
    "7net-0_11jul2024": "7net-0",
    "sevennet-l3i5": "7net-l3i5",
    "sevennet-mf-0": "7net-mf-0",
}


def _shipped_checkpoint(name: str) -> pathlib.Path:
    """The file of a named pretrained checkpoint as sevenn would look it up, without downloading it."""
    import sevenn._const as const
    from sevenn.util import get_available_pretrained_models

    name = ALIASES.get(name.lower(), name.lower())
    constants = {
        "7net-0": "SEVENNET_0_11Jul2024",
        "7net-0_22may2024": "SEVENNET_0_22May2024",
        "7net-l3i5": "SEVENNET_l3i5",
        "7net-mf-0": "SEVENNET_MF_0",
        "7net-mf-ompa": "SEVENNET_MF_ompa",
        "7net-omat": "SEVENNET_omat",
        "7net-omni": "SEVENNET_omni",
    }
    if name not in constants or not hasattr(const, constants[name]):
        raise TeacherError(
            f"unknown SevenNet checkpoint {name!r}; the sevenn package knows "
            f"{', '.join(get_available_pretrained_models())} (or give the path of a checkpoint file)",
            reason="checkpoint_missing",
        )
    shipped = pathlib.Path(getattr(const, constants[name]))
    cached = pathlib.Path(str(shipped).replace(const._prefix, str(pathlib.Path("~/.cache/sevennet").expanduser())))
    for path in (shipped, cached):
        if path.is_file():
            return path
    raise TeacherError(
        f"the SevenNet checkpoint {name!r} is not on this machine ({shipped} or {cached}); sevenn would download "
        "it at run time, which this engine refuses: place the file there once, or use a checkpoint shipped in "
        "the wheel (7net-0, 7net-l3i5, 7net-mf-0)",
        reason="download_needed",
    )


def _checkpoint_config(path: pathlib.Path) -> dict[str, Any]:
    import torch

    try:
        return torch.load(path, weights_only=False, map_location="cpu")["config"]
    except Exception as exc:
        raise TeacherError(f"{path} is not a readable SevenNet checkpoint: {exc}", reason="checkpoint_corrupt") from exc


class SevenNetTeacher(Teacher):
    """``{"kind": "sevenn", "model": "7net-mf-0", "modal": "R2SCAN"}``; ``model`` may be a checkpoint path,
    then ``level_of_theory`` is required."""

    kind = "sevenn"
    request_keys = ("model", "modal", "level_of_theory")

    def describe(self, request: Mapping[str, Any], model_file: pathlib.Path | None = None) -> dict[str, Any]:
        version = package_version("sevenn")
        model = str(request.get("model", ""))
        if not model:
            raise TeacherError("a sevenn teacher needs 'model': a checkpoint name (7net-mf-0, ...) or a file path")
        path = pathlib.Path(model).expanduser()
        shipped = not path.suffix
        if shipped:
            path = _shipped_checkpoint(model)
            model = ALIASES.get(model.lower(), model.lower())
        elif not path.is_file():
            raise TeacherError(f"no SevenNet checkpoint file at {path}", reason="checkpoint_missing")
        config = _checkpoint_config(path)
        modals = list(config.get("modal_list") or config.get("_modal_map") or [])
        modal = request.get("modal")
        if modals and modal not in modals:
            raise TeacherError(
                f"{model} is a multi-fidelity model: give modal, one of {', '.join(modals)} (case sensitive)"
                + (f"; got {modal!r}" if modal is not None else ""),
                reason="invalid",
            )
        if not modals and modal is not None:
            raise TeacherError(f"{model} has a single fidelity: remove modal ({modal!r})")
        level = request.get("level_of_theory")
        if level is None and shipped:
            known = LEVELS_OF_THEORY.get(model)
            level = known.get(modal) if isinstance(known, dict) else known
        if not level:
            raise TeacherError(
                f"say which level of theory the checkpoint {model} reproduces: level_of_theory (e.g. 'PBEsol')"
            )
        return {
            "kind": self.kind,
            "package": "sevenn",
            "version": version,
            "model": model if shipped else str(path.resolve()),
            "shipped": shipped,
            "file": path.name,
            "sha256": file_sha256(path),
            "modal": modal,
            "elements": sorted(config.get("chemical_species") or []),
            "cutoff": float(config.get("cutoff", 0.0)),
            "level_of_theory": level,
        }

    def load(self, identity: Mapping[str, Any], model_file: pathlib.Path | None, device: str) -> Evaluator:
        path = _shipped_checkpoint(identity["model"]) if identity["shipped"] else pathlib.Path(identity["model"])
        if not path.is_file():
            raise TeacherError(f"no SevenNet checkpoint at {path} on this machine", reason="checkpoint_missing")
        digest = file_sha256(path)
        if digest != identity["sha256"]:
            raise TeacherError(
                f"the checkpoint {path} here has sha256 {digest[:16]}..., not the {identity['sha256'][:16]}... the "
                f"labels were requested with (sevenn {package_version('sevenn')} here, {identity['version']} there)",
                reason="checkpoint_mismatch",
            )
        return _SevenNetEvaluator(path, identity.get("modal"), device)


class _SevenNetEvaluator(Evaluator):
    def __init__(self, path: pathlib.Path, modal: str | None, device: str):
        import warnings

        from sevenn.calculator import SevenNetCalculator

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "no tensor-product accelerator": expected on CPU
            self.calculator = SevenNetCalculator(str(path), modal=modal, device=device)

    def __call__(self, atoms) -> tuple[float, np.ndarray, np.ndarray]:
        from ase.stress import voigt_6_to_full_3x3_stress

        atoms = atoms.copy()
        atoms.calc = self.calculator
        energy = float(atoms.get_potential_energy())
        forces = np.array(atoms.get_forces(), dtype=float)
        stress = voigt_6_to_full_3x3_stress(np.array(atoms.get_stress(), dtype=float))
        return energy, forces, -stress * atoms.get_volume()
