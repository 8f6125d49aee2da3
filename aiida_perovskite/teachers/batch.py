"""Label a batch of frames with a teacher, frame by frame: a frame that raises, gives NaN/inf, or whose
forces or energy explode is recorded as failed with its reason; the others are labeled. The files a job
reads and writes are defined here, so that the program and the AiiDA parser agree on them."""

from __future__ import annotations

import dataclasses
import itertools
import json
import os
import pathlib
import time
from collections.abc import Callable, Sequence

import numpy as np

from aiida_perovskite.analysis.model_deviation import shortest_distance
from aiida_perovskite.teachers import Evaluator

__all__ = (
    "FAILURES_FILE",
    "FRAMES_FILE",
    "INPUT_FILE",
    "LABELS_FILE",
    "STATUS_FILE",
    "BatchLabels",
    "FrameChecks",
    "label_batch",
    "label_problem",
    "read_frames",
    "read_labels",
    "write_frames",
)

INPUT_FILE = "teacher.json"
FRAMES_FILE = "frames.npz"
LABELS_FILE = "labels.npz"
FAILURES_FILE = "failures.json"
STATUS_FILE = "status.json"


@dataclasses.dataclass(frozen=True)
class FrameChecks:
    """When a teacher's label is not trusted: atoms closer than ``min_distance`` (Å; an ML teacher has no
    reliable short-range repulsion), a force above ``max_force`` (eV/Å), or an energy per atom more than
    ``max_energy_deviation`` (eV/atom) from the median of the batch's labeled frames (with 3 or more)."""

    min_distance: float
    max_force: float
    max_energy_deviation: float


def write_frames(path: pathlib.Path, names: Sequence[str], frames: Sequence) -> None:
    """Frames (ase.Atoms, any sizes) as one npz: per frame its name, atom count and cell; atoms concatenated."""
    np.savez(
        path,
        names=np.array(list(names), dtype=str),
        natoms=np.array([len(atoms) for atoms in frames], dtype=int),
        cells=np.array([atoms.cell[:] for atoms in frames], dtype=float).reshape(-1, 3, 3),
        numbers=np.concatenate([atoms.numbers for atoms in frames]).astype(int),
        positions=np.concatenate([atoms.positions for atoms in frames]).astype(float),
    )


def read_frames(path: pathlib.Path) -> list[tuple[str, object]]:
    from ase import Atoms

    with np.load(path) as data:
        offsets = np.concatenate([[0], np.cumsum(data["natoms"])])
        return [
            (
                str(name),
                Atoms(
                    numbers=data["numbers"][start:stop],
                    positions=data["positions"][start:stop],
                    cell=cell,
                    pbc=True,
                ),
            )
            for name, cell, start, stop in zip(data["names"], data["cells"], offsets[:-1], offsets[1:], strict=True)
        ]


@dataclasses.dataclass
class BatchLabels:
    """Labels of the frames that passed, in input order, and the reason for each frame that did not."""

    names: list[str] = dataclasses.field(default_factory=list)
    energies: list[float] = dataclasses.field(default_factory=list)
    forces: list[np.ndarray] = dataclasses.field(default_factory=list)
    virials: list[np.ndarray] = dataclasses.field(default_factory=list)
    failures: dict[str, str] = dataclasses.field(default_factory=dict)

    def write(self, directory: pathlib.Path) -> None:
        """Write both files atomically (a job cut short leaves the last complete state)."""
        labels, failures = directory / LABELS_FILE, directory / FAILURES_FILE
        with open(f"{labels}.tmp", "wb") as handle:
            np.savez(
                handle,
                names=np.array(self.names, dtype=str),
                energies=np.array(self.energies, dtype=float),
                natoms=np.array([len(f) for f in self.forces], dtype=int),
                forces=np.concatenate(self.forces) if self.forces else np.zeros((0, 3)),
                virials=np.array(self.virials, dtype=float).reshape(-1, 3, 3),
            )
        os.replace(f"{labels}.tmp", labels)
        pathlib.Path(f"{failures}.tmp").write_text(json.dumps(self.failures, indent=1))
        os.replace(f"{failures}.tmp", failures)


def read_labels(labels: bytes | pathlib.Path, failures: str) -> BatchLabels:
    import io

    source = io.BytesIO(labels) if isinstance(labels, bytes) else labels
    with np.load(source) as data:
        offsets = np.concatenate([[0], np.cumsum(data["natoms"])])
        return BatchLabels(
            names=[str(name) for name in data["names"]],
            energies=[float(e) for e in data["energies"]],
            forces=[data["forces"][a:b] for a, b in itertools.pairwise(offsets)],
            virials=list(data["virials"]),
            failures=json.loads(failures),
        )


def label_problem(energy: float, forces: np.ndarray, virial: np.ndarray, natoms: int) -> str | None:
    """Why a label is unusable whatever the teacher: not one force per atom and a 3x3 virial, or not finite.
    Checked where the teacher computes it and again where the parser reads it (the file may be damaged)."""
    forces, virial = np.asarray(forces), np.asarray(virial)
    if forces.shape != (natoms, 3) or virial.shape != (3, 3):
        return f"the label has forces of shape {forces.shape} and a virial of shape {virial.shape} for {natoms} atoms"
    if not (np.isfinite(energy) and np.isfinite(forces).all() and np.isfinite(virial).all()):
        return "the teacher returned NaN or infinite energy, forces or virial"
    return None


def _label_one(evaluator: Evaluator, atoms, checks: FrameChecks) -> tuple[tuple | None, str | None]:
    if not np.isfinite(atoms.positions).all() or not np.isfinite(atoms.cell[:]).all():
        return None, "the frame has NaN or infinite coordinates"
    if len(atoms) > 1:
        shortest = shortest_distance(atoms.cell[:], atoms.positions)
        if shortest < checks.min_distance:
            return None, f"two atoms are {shortest:.3f} Å apart, closer than min_distance {checks.min_distance} Å"
    try:
        energy, forces, virial = evaluator(atoms)
    except Exception as exc:
        return None, f"the teacher raised {type(exc).__name__}: {exc}"
    problem = label_problem(energy, forces, virial, len(atoms))
    if problem:
        return None, problem
    largest = float(np.linalg.norm(forces, axis=1).max())
    if largest > checks.max_force:
        return None, f"a force of {largest:.1f} eV/Å is above max_force {checks.max_force} eV/Å (exploded)"
    return (energy, forces, virial), None


def label_batch(
    evaluator: Evaluator,
    frames: Sequence[tuple[str, object]],
    checks: FrameChecks,
    checkpoint: Callable[[BatchLabels], None] | None = None,
    checkpoint_seconds: float = 30.0,
) -> BatchLabels:
    """Label ``frames`` (name, ase.Atoms) one by one; ``checkpoint`` is called with the labels so far every
    ``checkpoint_seconds`` and at the end."""
    result = BatchLabels()
    natoms = {}
    last = time.monotonic()
    for name, atoms in frames:
        labels, reason = _label_one(evaluator, atoms, checks)
        if reason is not None:
            result.failures[name] = reason
        else:
            energy, forces, virial = labels
            result.names.append(name)
            result.energies.append(float(energy))
            result.forces.append(np.asarray(forces, dtype=float))
            result.virials.append(np.asarray(virial, dtype=float))
            natoms[name] = len(atoms)
        if checkpoint is not None and time.monotonic() - last > checkpoint_seconds:
            checkpoint(result)
            last = time.monotonic()
    _reject_energy_outliers(result, natoms, checks.max_energy_deviation)
    if checkpoint is not None:
        checkpoint(result)
    return result


def _reject_energy_outliers(result: BatchLabels, natoms: dict[str, int], limit: float) -> None:
    if len(result.names) < 3:
        return
    per_atom = np.array([e / natoms[n] for n, e in zip(result.names, result.energies, strict=True)])
    median = float(np.median(per_atom))
    keep = np.abs(per_atom - median) <= limit
    for index in np.flatnonzero(~keep):
        result.failures[result.names[index]] = (
            f"energy {per_atom[index]:.3f} eV/atom is {abs(per_atom[index] - median):.1f} eV/atom from the batch "
            f"median {median:.3f}, above max_energy_deviation {limit} eV/atom (exploded)"
        )
    for field in ("names", "energies", "forces", "virials"):
        values = getattr(result, field)
        setattr(result, field, [value for value, kept in zip(values, keep, strict=True) if kept])
