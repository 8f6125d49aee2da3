"""A frozen Deep Potential model file with the metadata needed to use it safely."""

from __future__ import annotations

import hashlib
import pathlib
from collections.abc import Mapping, Sequence
from typing import Any

from aiida.orm import SinglefileData

from aiida_perovskite.analysis.frames import FrameValidationError, validate_type_map
from aiida_perovskite.analysis.model_files import ModelFileError, inspect_model_file

__all__ = ("DeepPotentialData",)


class DeepPotentialData(SinglefileData):
    """A frozen DeePMD-kit model: PyTorch (``.pth``) or TensorFlow (``.pb``), stored as bytes.

    Attributes: ``backend`` (``pytorch`` | ``tensorflow``), ``type_map``, ``descriptor`` (e.g. ``se_e2_a``),
    ``rcut`` (Å), ``sha256`` of the file, ``compressed`` and optional training ``metrics``.
    Type map, descriptor and cutoff are read from the model file itself; values given by the caller must
    agree with it.
    """

    def __init__(
        self,
        file: str | pathlib.Path,
        type_map: Sequence[str] | None = None,
        descriptor: str | None = None,
        rcut: float | None = None,
        compressed: bool | None = None,
        metrics: Mapping[str, Any] | None = None,
        **kwargs,
    ):
        path = pathlib.Path(file)
        try:
            info = inspect_model_file(path)
        except ModelFileError as exc:
            raise ValueError(str(exc)) from exc
        given = {"type_map": list(type_map) if type_map else None, "descriptor": descriptor, "rcut": rcut}
        for key, value in given.items():
            found = info.get(key)
            if value is None:
                continue
            if found is not None and found != value and not (key == "rcut" and abs(found - value) < 1e-8):
                raise ValueError(f"{key}={value!r} was given but the model file {path.name} says {found!r}")
            info[key] = value
        if not info.get("type_map"):
            raise ValueError(f"the type_map of {path.name} could not be read from the file: pass type_map=[...]")
        try:
            validate_type_map(info["type_map"])
        except FrameValidationError as exc:
            raise ValueError(str(exc)) from exc

        super().__init__(file=str(path), filename=path.name, **kwargs)
        self.base.attributes.set("backend", info["backend"])
        self.base.attributes.set("type_map", list(info["type_map"]))
        self.base.attributes.set("descriptor", info.get("descriptor"))
        self.base.attributes.set("rcut", info.get("rcut"))
        self.base.attributes.set("compressed", bool(compressed if compressed is not None else info["compressed"]))
        self.base.attributes.set("sha256", hashlib.sha256(path.read_bytes()).hexdigest())
        if metrics:
            self.base.attributes.set("metrics", dict(metrics))

    @property
    def dp_backend(self) -> str:
        """``pytorch`` or ``tensorflow`` (``Node.backend`` is AiiDA's storage backend, hence the prefix)."""
        return self.base.attributes.get("backend")

    @property
    def type_map(self) -> list[str]:
        return list(self.base.attributes.get("type_map"))

    @property
    def descriptor(self) -> str | None:
        return self.base.attributes.get("descriptor")

    @property
    def rcut(self) -> float | None:
        return self.base.attributes.get("rcut")

    @property
    def compressed(self) -> bool:
        return bool(self.base.attributes.get("compressed"))

    @property
    def sha256(self) -> str:
        return self.base.attributes.get("sha256")

    @property
    def metrics(self) -> dict[str, Any]:
        return dict(self.base.attributes.get("metrics", {}))

    def set_metrics(self, metrics: Mapping[str, Any]) -> None:
        """Record training/validation errors (only before the node is stored)."""
        self.base.attributes.set("metrics", {**self.metrics, **metrics})

    def write(self, directory: str | pathlib.Path, name: str | None = None) -> pathlib.Path:
        """Copy the model file into ``directory`` (keeping its suffix) and return its path."""
        target = pathlib.Path(directory) / (name or self.filename)
        target.parent.mkdir(parents=True, exist_ok=True)
        with self.open(mode="rb") as source:
            target.write_bytes(source.read())
        return target
