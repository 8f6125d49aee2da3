"""Blocks of labeled frames (one atom count and ordering) with the checks a training set needs.

Arrays follow DeePMD-kit's units: Å for cells and coordinates, eV for energies and virials, eV/Å for forces.
Reading and writing go through dpdata so that every format it knows is reachable.
"""

from __future__ import annotations

import dataclasses
import pathlib
from collections.abc import Sequence

import numpy as np
from ase.data import chemical_symbols

__all__ = ("FrameValidationError", "LabeledFrames", "concatenate_frames", "validate_type_map")

KNOWN_ELEMENTS = frozenset(chemical_symbols[1:])


class FrameValidationError(ValueError):
    """Frames that cannot be used as training data, with the reason."""


def validate_type_map(type_map: Sequence[str]) -> None:
    """Check that ``type_map`` lists distinct, real chemical elements."""
    if not type_map:
        raise FrameValidationError("the type_map is empty; give the element of each atom type, e.g. ['Ba', 'Ti', 'O']")
    unknown = [element for element in type_map if element not in KNOWN_ELEMENTS]
    if unknown:
        raise FrameValidationError(
            f"unknown element(s) {unknown} in type_map {list(type_map)}; use chemical symbols such as 'Ba', 'Ti', 'O'"
        )
    if len(set(type_map)) != len(type_map):
        raise FrameValidationError(f"type_map {list(type_map)} lists an element twice")


@dataclasses.dataclass
class LabeledFrames:
    """``nframes`` labeled configurations of the same ``natoms`` atoms."""

    type_map: list[str]
    atom_types: np.ndarray  # (natoms,) int, index into type_map
    cells: np.ndarray  # (nframes, 3, 3) Å, rows are the cell vectors
    coords: np.ndarray  # (nframes, natoms, 3) Å, Cartesian
    energies: np.ndarray  # (nframes,) eV
    forces: np.ndarray  # (nframes, natoms, 3) eV/Å
    virials: np.ndarray | None = None  # (nframes, 3, 3) eV

    @property
    def nframes(self) -> int:
        return int(np.shape(self.energies)[0]) if np.ndim(self.energies) else 0

    @property
    def natoms(self) -> int:
        return int(np.shape(self.atom_types)[0])

    def symbols(self, type_map: Sequence[str] | None = None) -> list[str]:
        type_map = self.type_map if type_map is None else type_map
        return [type_map[t] for t in np.asarray(self.atom_types)]

    def formula(self, type_map: Sequence[str] | None = None) -> str:
        """Element counts in type_map order, e.g. ``Ba8Ti8O24``; elements with no atom are left out."""
        type_map = self.type_map if type_map is None else type_map
        counts = np.bincount(np.asarray(self.atom_types, dtype=int), minlength=len(type_map))
        return "".join(f"{element}{count}" for element, count in zip(type_map, counts, strict=True) if count)

    def validate(self, type_map: Sequence[str] | None = None, label: str = "frames") -> None:
        """Raise :class:`FrameValidationError` naming the first inconsistency found."""
        type_map = self.type_map if type_map is None else list(type_map)
        validate_type_map(type_map)
        types = np.asarray(self.atom_types)
        if types.ndim != 1 or types.size == 0:
            raise FrameValidationError(f"{label}: atom_types must be a non-empty 1-d array, got shape {types.shape}")
        if not np.issubdtype(types.dtype, np.integer) or types.min() < 0 or types.max() >= len(type_map):
            raise FrameValidationError(
                f"{label}: atom types must be integers in [0, {len(type_map) - 1}] to index type_map {type_map}"
            )
        nframes, natoms = self.nframes, self.natoms
        if nframes == 0:
            raise FrameValidationError(f"{label}: no frames")
        expected = {
            "cells": (nframes, 3, 3),
            "coords": (nframes, natoms, 3),
            "energies": (nframes,),
            "forces": (nframes, natoms, 3),
        }
        if self.virials is not None:
            expected["virials"] = (nframes, 3, 3)
        for name, shape in expected.items():
            array = np.asarray(getattr(self, name))
            if array.shape != shape:
                raise FrameValidationError(
                    f"{label}: {name} has shape {array.shape}, expected {shape} for {nframes} frames of {natoms} atoms"
                )
            if not np.issubdtype(array.dtype, np.number):
                raise FrameValidationError(f"{label}: {name} must be numeric, got dtype {array.dtype}")
            bad = ~np.isfinite(array)
            if bad.any():
                frame = int(np.argwhere(bad)[0][0])
                raise FrameValidationError(f"{label}: {name} contains NaN or infinite values (first in frame {frame})")
        volumes = np.abs(np.linalg.det(np.asarray(self.cells)))
        if (volumes < 1e-6).any():
            frame = int(np.argmax(volumes < 1e-6))
            raise FrameValidationError(f"{label}: cell of frame {frame} has zero volume; give three cell vectors in Å")

    def remap(self, type_map: Sequence[str]) -> LabeledFrames:
        """Return the same frames with atom types indexing ``type_map`` (which must hold every element used)."""
        type_map = list(type_map)
        used = sorted({self.type_map[t] for t in np.asarray(self.atom_types)})
        missing = [element for element in used if element not in type_map]
        if missing:
            raise FrameValidationError(f"element(s) {missing} of the frames are not in type_map {type_map}")
        if type_map == self.type_map:
            return self
        lookup = np.array([type_map.index(e) if e in type_map else -1 for e in self.type_map], dtype=int)
        return dataclasses.replace(self, type_map=type_map, atom_types=lookup[np.asarray(self.atom_types)])

    def select(self, indices) -> LabeledFrames:
        """The frames at ``indices`` (in that order)."""
        indices = np.asarray(indices, dtype=int)
        return dataclasses.replace(
            self,
            cells=np.asarray(self.cells)[indices],
            coords=np.asarray(self.coords)[indices],
            energies=np.asarray(self.energies)[indices],
            forces=np.asarray(self.forces)[indices],
            virials=None if self.virials is None else np.asarray(self.virials)[indices],
        )

    @classmethod
    def single(cls, atoms, energy: float, forces: np.ndarray, virial: np.ndarray | None) -> LabeledFrames:
        """One frame of ``atoms`` (ase.Atoms: cell, positions, species in order of appearance) with its labels
        (eV, eV/Å in the atoms' order, eV)."""
        symbols = atoms.get_chemical_symbols()
        type_map = sorted(set(symbols), key=symbols.index)
        return cls(
            type_map=type_map,
            atom_types=np.array([type_map.index(symbol) for symbol in symbols]),
            cells=np.array([atoms.cell[:]]),
            coords=np.array([atoms.positions]),
            energies=np.array([float(energy)]),
            forces=np.asarray(forces, dtype=float)[np.newaxis],
            virials=None if virial is None else np.asarray(virial, dtype=float)[np.newaxis],
        )

    @classmethod
    def from_dpdata(cls, system) -> LabeledFrames:
        data = system.data
        return cls(
            type_map=list(data["atom_names"]),
            atom_types=np.asarray(data["atom_types"], dtype=int),
            cells=np.asarray(data["cells"]),
            coords=np.asarray(data["coords"]),
            energies=np.asarray(data["energies"]),
            forces=np.asarray(data["forces"]),
            virials=np.asarray(data["virials"]) if "virials" in data else None,
        )

    def to_dpdata(self, type_map: Sequence[str] | None = None):
        import dpdata

        frames = self if type_map is None else self.remap(type_map)
        types = np.asarray(frames.atom_types)
        data = {
            "atom_names": list(frames.type_map),
            "atom_numbs": [int(n) for n in np.bincount(types, minlength=len(frames.type_map))],
            "atom_types": types,
            "orig": np.zeros(3),
            "cells": np.asarray(frames.cells),
            "coords": np.asarray(frames.coords),
            "energies": np.asarray(frames.energies),
            "forces": np.asarray(frames.forces),
            "nopbc": False,
        }
        if frames.virials is not None:
            data["virials"] = np.asarray(frames.virials)
        return dpdata.LabeledSystem(data=data)

    def to_ase(self, type_map: Sequence[str] | None = None) -> list:
        """One ``ase.Atoms`` per frame with energy, forces and (if present) stress from the virial."""
        from ase import Atoms
        from ase.calculators.singlepoint import SinglePointCalculator

        symbols = self.symbols(type_map)
        images = []
        for index in range(self.nframes):
            atoms = Atoms(symbols=symbols, positions=self.coords[index], cell=self.cells[index], pbc=True)
            results = {"energy": float(self.energies[index]), "forces": np.array(self.forces[index])}
            if self.virials is not None:
                results["stress"] = -np.array(self.virials[index]) / atoms.get_volume()
            atoms.calc = SinglePointCalculator(atoms, **results)
            images.append(atoms)
        return images

    def write_deepmd_npy(self, path: pathlib.Path, type_map: Sequence[str] | None = None) -> None:
        """Write one DeePMD system folder with all frames in ``set.000``."""
        self.to_dpdata(type_map).to("deepmd/npy", str(path), set_size=max(self.nframes, 1))

    @classmethod
    def read_deepmd_npy(cls, path: pathlib.Path, type_map: Sequence[str] | None = None) -> LabeledFrames:
        import dpdata

        system = dpdata.LabeledSystem(str(path), fmt="deepmd/npy", type_map=list(type_map) if type_map else None)
        return cls.from_dpdata(system)


def concatenate_frames(blocks: Sequence[LabeledFrames]) -> LabeledFrames:
    """One block with the frames of ``blocks`` (same atoms in the same order); virials kept only if all
    blocks have them."""
    first = blocks[0]
    symbols = first.symbols()
    for block in blocks[1:]:
        if block.symbols() != symbols:
            raise FrameValidationError("frames with different atoms cannot form one system")
    blocks = [block.remap(first.type_map) for block in blocks]
    with_virial = all(block.virials is not None for block in blocks)
    return LabeledFrames(
        type_map=list(first.type_map),
        atom_types=np.asarray(first.atom_types),
        cells=np.concatenate([block.cells for block in blocks]),
        coords=np.concatenate([block.coords for block in blocks]),
        energies=np.concatenate([block.energies for block in blocks]),
        forces=np.concatenate([block.forces for block in blocks]),
        virials=np.concatenate([block.virials for block in blocks]) if with_virial else None,
    )
