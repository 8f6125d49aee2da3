"""Labeled DeePMD training data as one AiiDA node.

Each system (frames with one atom count and ordering) is stored in the node's repository in the standard
DeePMD-kit ``deepmd/npy`` layout, ``<system>/type.raw``, ``<system>/type_map.raw`` and
``<system>/set.000/{box,coord,energy,force[,virial]}.npy``, so that the repository can be handed to ``dp``
as it is. All systems share the node's ``type_map``: atom type ``t`` is element ``type_map[t]``.

Units are DeePMD's: coordinates and cells in Å, energies in eV, forces in eV/Å, virials in eV.
"""

from __future__ import annotations

import pathlib
import tempfile
from collections.abc import Iterable, Mapping, Sequence

from aiida.orm import Data

from aiida_perovskite.analysis.frames import FrameValidationError, LabeledFrames, validate_type_map

__all__ = ("TrainingSetData", "TrainingSetValidationError", "label_source_conflict")

EXPORT_FORMATS = ("deepmd/npy", "deepmd/hdf5", "extxyz")


class TrainingSetValidationError(ValueError):
    """Raised when frames cannot form a valid training set; nothing is stored."""


class TrainingSetData(Data):
    """One or more DeePMD systems of labeled frames (energy, forces, optional virial)."""

    def __init__(
        self,
        systems: Sequence[LabeledFrames],
        type_map: Sequence[str] | None = None,
        label_sources: Iterable[Mapping[str, str]] = (),
        **kwargs,
    ):
        """Validate ``systems`` against one ``type_map`` and write them to the repository.

        :param systems: frame blocks; each one's ``atom_types`` index into ``type_map``.
        :param type_map: element of each atom type; defaults to the type_map of the first system.
        :param label_sources: where the labels come from (``engine``, ``method``, ``details`` each); empty when
            unknown (data imported from files).
        :raises TrainingSetValidationError: on an empty set, inconsistent shapes, non-finite numbers or an
            unknown element. The node is then not created.
        """
        systems = list(systems)
        if not systems:
            raise TrainingSetValidationError("a training set needs at least one system with at least one frame")
        type_map = list(type_map if type_map is not None else systems[0].type_map)
        try:
            validate_type_map(type_map)
            for index, system in enumerate(systems):
                system.validate(label=f"system {index}")
                systems[index] = system.remap(type_map)
        except FrameValidationError as exc:
            raise TrainingSetValidationError(str(exc)) from exc
        super().__init__(**kwargs)

        names = _unique_names([system.formula(type_map) for system in systems])
        with tempfile.TemporaryDirectory() as tmp:
            root = pathlib.Path(tmp)
            for name, system in zip(names, systems, strict=True):
                system.write_deepmd_npy(root / name, type_map)
            self.base.repository.put_object_from_tree(str(root))

        self.base.attributes.set("type_map", type_map)
        self.base.attributes.set(
            "systems",
            [
                {
                    "name": name,
                    "formula": system.formula(type_map),
                    "natoms": system.natoms,
                    "nframes": system.nframes,
                    "has_virial": system.virials is not None,
                }
                for name, system in zip(names, systems, strict=True)
            ],
        )
        self.base.attributes.set("nframes", int(sum(system.nframes for system in systems)))
        sources = {tuple(sorted(dict(source).items())) for source in label_sources}
        self.base.attributes.set("label_sources", [dict(source) for source in sorted(sources)])

    @classmethod
    def from_dpdata(cls, systems, type_map: Sequence[str] | None = None, **kwargs) -> TrainingSetData:
        """Build from a ``dpdata.LabeledSystem``, a ``dpdata.MultiSystems`` or an iterable of LabeledSystems."""
        import dpdata

        if isinstance(systems, dpdata.LabeledSystem):
            systems = [systems]
        elif isinstance(systems, dpdata.MultiSystems):
            systems = list(systems.systems.values())
        frames = [LabeledFrames.from_dpdata(system) for system in systems]
        if type_map is None:
            type_map = _union_type_map(frame.type_map for frame in frames)
        return cls(frames, type_map=type_map, **kwargs)

    @classmethod
    def from_deepmd_npy(cls, *paths: str | pathlib.Path, **kwargs) -> TrainingSetData:
        """Build from DeePMD system folders (``type.raw``, ``type_map.raw``, ``set.*/``), or folders of them such as
        :meth:`export` writes."""
        import dpdata

        systems = [system for path in paths for system in _system_folders(pathlib.Path(path))]
        return cls.from_dpdata([dpdata.LabeledSystem(str(path), fmt="deepmd/npy") for path in systems], **kwargs)

    @property
    def type_map(self) -> list[str]:
        return list(self.base.attributes.get("type_map"))

    @property
    def system_names(self) -> list[str]:
        return [system["name"] for system in self.base.attributes.get("systems")]

    @property
    def nframes(self) -> int:
        return int(self.base.attributes.get("nframes"))

    @property
    def label_sources(self) -> list[dict[str, str]]:
        """Where the labels come from (engine, method, details); empty when unknown."""
        return [dict(source) for source in self.base.attributes.get("label_sources", [])]

    def get_frames(self, name: str) -> LabeledFrames:
        """Read one stored system back as arrays."""
        if name not in self.system_names:
            raise KeyError(f"no system {name!r} in this training set; it has {self.system_names}")
        with tempfile.TemporaryDirectory() as tmp:
            self.base.repository.copy_tree(tmp, name)
            return LabeledFrames.read_deepmd_npy(pathlib.Path(tmp), self.type_map)

    def iter_frames(self) -> Iterable[tuple[str, LabeledFrames]]:
        for name in self.system_names:
            yield name, self.get_frames(name)

    def content_hash(self) -> str:
        """sha256 of the labeled frames (type_map, atom types, cells, coordinates, energies, forces, virials of
        every system in name order): equal for equal data, whatever node holds it."""
        import hashlib

        import numpy as np

        digest = hashlib.sha256(repr(self.type_map).encode())
        for name, frames in sorted(self.iter_frames()):
            digest.update(name.encode())
            for array in (
                frames.atom_types,
                frames.cells,
                frames.coords,
                frames.energies,
                frames.forces,
                frames.virials,
            ):
                if array is not None:
                    digest.update(np.ascontiguousarray(array, dtype=np.float64).tobytes())
        return digest.hexdigest()

    def to_dpdata(self):
        """Return the data as a ``dpdata.MultiSystems`` (one LabeledSystem per stored system)."""
        import dpdata

        multi = dpdata.MultiSystems(type_map=self.type_map)
        for _, frames in self.iter_frames():
            multi.append(frames.to_dpdata(self.type_map))
        return multi

    def write_deepmd_npy(self, path: str | pathlib.Path) -> list[pathlib.Path]:
        """Copy the stored DeePMD folders below ``path``; return the system folders (input for ``dp``)."""
        path = pathlib.Path(path).resolve()  # the repository copies only to absolute paths
        path.mkdir(parents=True, exist_ok=True)
        self.base.repository.copy_tree(path)
        return [path / name for name in self.system_names]

    def export(self, path: str | pathlib.Path, fmt: str = "deepmd/npy") -> pathlib.Path:
        """Write the data to ``path`` in ``deepmd/npy`` (a folder per system), ``deepmd/hdf5`` or ``extxyz``."""
        path = pathlib.Path(path)
        if fmt == "deepmd/npy":
            self.write_deepmd_npy(path)
        elif fmt == "deepmd/hdf5":
            path.parent.mkdir(parents=True, exist_ok=True)
            self.to_dpdata().to("deepmd/hdf5", str(path))
        elif fmt == "extxyz":
            from ase.io import write

            path.parent.mkdir(parents=True, exist_ok=True)
            atoms = [a for _, frames in self.iter_frames() for a in frames.to_ase(self.type_map)]
            write(str(path), atoms, format="extxyz")
        else:
            raise ValueError(f"unknown export format {fmt!r}; choose one of {', '.join(EXPORT_FORMATS)}")
        return path


def label_source_conflict(sources: Iterable[Mapping[str, str]]) -> str | None:
    """Why labels from ``sources`` cannot be trained on together (their energies are not comparable: another
    functional, code, pseudopotential or teacher shifts them), or None when there is at most one source."""
    distinct = {tuple(sorted(dict(source).items())) for source in sources}
    if len(distinct) <= 1:
        return None
    described = "; ".join(
        f"{values['engine']} {values['method']} ({values['details']})" for values in map(dict, sorted(distinct))
    )
    return (
        f"the labels come from {len(distinct)} different levels of theory ({described}): their energies are not "
        "comparable; label everything with one engine and method, or allow mixed levels explicitly"
    )


def _union_type_map(type_maps: Iterable[Sequence[str]]) -> list[str]:
    """Elements of all type maps, in order of first appearance."""
    union: list[str] = []
    for type_map in type_maps:
        union.extend(element for element in type_map if element not in union)
    return union


def _unique_names(names: Sequence[str]) -> list[str]:
    """Make system names unique by suffixing repeats (two systems can share a formula)."""
    seen: dict[str, int] = {}
    unique = []
    for name in names:
        count = seen.get(name, 0)
        unique.append(name if count == 0 else f"{name}.{count}")
        seen[name] = count + 1
    return unique


def _system_folders(path: pathlib.Path) -> list[pathlib.Path]:
    """``path`` if it is a DeePMD system folder, else the system folders just below it (an exported set)."""
    if (path / "type.raw").exists() or not path.is_dir():
        return [path]  # dpdata names what is missing
    return sorted(child for child in path.iterdir() if (child / "type.raw").exists()) or [path]
