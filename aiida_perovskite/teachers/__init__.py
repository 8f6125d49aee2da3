"""Teachers: pretrained interatomic potentials that label frames in place of DFT (no AiiDA import here).

A teacher is a class registered in the entry-point group ``perovskite.teachers``. On the client it turns a
user's request (``{"kind": "sevenn", "model": "7net-mf-0", "modal": "R2SCAN"}``) into an *identity*: the
package, its version, the checkpoint and its sha256, the modal or head, and the level of theory of its
labels; that identity is stored as the input node of every labeling job. Where the job runs, the same class
loads the teacher from the identity, refusing a checkpoint whose hash differs, and evaluates frames.
Nothing here downloads weights: a teacher whose files are not on disk is refused with the reason.
"""

from __future__ import annotations

import abc
import hashlib
import importlib.metadata
import pathlib
from collections.abc import Mapping
from typing import Any

import numpy as np

__all__ = (
    "ENTRY_POINT_GROUP",
    "Evaluator",
    "Teacher",
    "TeacherError",
    "describe_teacher",
    "file_sha256",
    "get_teacher",
    "registered_teachers",
)

ENTRY_POINT_GROUP = "perovskite.teachers"


class TeacherError(ValueError):
    """A teacher cannot be used: ``reason`` is a short machine-readable kind, the message says how to fix it."""

    def __init__(self, message: str, reason: str = "invalid"):
        self.reason = reason
        super().__init__(message)


class Evaluator(abc.ABC):
    """A loaded teacher: energy (eV), forces (eV/Å, natoms x 3) and virial (eV, 3 x 3, DeePMD's sign:
    ``virial = -stress * volume``) of one frame."""

    @abc.abstractmethod
    def __call__(self, atoms) -> tuple[float, np.ndarray, np.ndarray]: ...


class Teacher(abc.ABC):
    """One kind of teacher (a package or model format)."""

    kind: str
    #: keys a request may have besides ``kind``
    request_keys: tuple[str, ...] = ()

    @abc.abstractmethod
    def describe(self, request: Mapping[str, Any], model_file: pathlib.Path | None = None) -> dict[str, Any]:
        """The identity of the teacher ``request`` names: checked here (files on disk, hashes, modal/head).

        ``model_file``: the model a request refers to when the caller stores it as a node of its own (DeePMD).
        The identity holds ``kind``, ``model``, ``sha256``, ``package``, ``version``, ``level_of_theory`` and
        whatever else :meth:`load` needs. Raises :class:`TeacherError`.
        """

    @abc.abstractmethod
    def load(self, identity: Mapping[str, Any], model_file: pathlib.Path | None, device: str) -> Evaluator:
        """The evaluator of ``identity`` where the job runs; raises :class:`TeacherError` when its files are
        missing or differ from the identity's hash."""

    def check_request(self, request: Mapping[str, Any]) -> None:
        unknown = sorted(set(request) - {"kind", *self.request_keys})
        if unknown:
            raise TeacherError(
                f"unknown key(s) {unknown} for a {self.kind!r} teacher; it takes {', '.join(self.request_keys)}"
            )


def file_sha256(path: pathlib.Path) -> str:
    digest = hashlib.sha256()
    with pathlib.Path(path).open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def package_version(distribution: str) -> str:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError as exc:
        raise TeacherError(
            f"the teacher needs the {distribution} package, which is not installed here: "
            f"pip install 'aiida-perovskite[engines]'",
            reason="package_missing",
        ) from exc


def registered_teachers() -> dict[str, type[Teacher]]:
    """Teacher classes by kind, from the ``perovskite.teachers`` entry points (not imported until used)."""
    return {entry.name: entry for entry in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP)}


def get_teacher(kind: str) -> Teacher:
    entries = registered_teachers()
    if kind not in entries:
        raise TeacherError(
            f"unknown teacher kind {kind!r}; installed kinds: {', '.join(sorted(entries)) or 'none'} "
            f"(a package adds one through the {ENTRY_POINT_GROUP!r} entry-point group)",
            reason="unknown_kind",
        )
    return entries[kind].load()()


def describe_teacher(request: Mapping[str, Any], model_file: pathlib.Path | None = None) -> dict[str, Any]:
    """The identity of the teacher ``request`` (a mapping with ``kind``) names."""
    if not isinstance(request, Mapping) or "kind" not in request:
        raise TeacherError(f"a teacher is a mapping with a 'kind' (e.g. sevenn, deepmd), got {request!r}")
    teacher = get_teacher(str(request["kind"]))
    teacher.check_request(request)
    return teacher.describe(request, model_file)
