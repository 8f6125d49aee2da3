"""Fast reading of LAMMPS dumps: the binary format (``dump custom ... file.bin``) and a vectorised text path.

Both yield ``Frame`` objects (step, cell rows, positions sorted by atom id, LAMMPS types). Reading a text dump
line by line in Python costs seconds for a 40,000-atom frame; the binary path reads it with one
``numpy.frombuffer`` per chunk (docs/benchmarks.md).
"""

from __future__ import annotations

import dataclasses
import io
import pathlib
import struct
from collections.abc import Iterator

import numpy as np

from aiida_perovskite.analysis.lammps_io import _cell_from_bounds

__all__ = ("Frame", "read_binary_dump", "read_text_dump")

MAGIC = b"DUMPCUSTOM"


@dataclasses.dataclass
class Frame:
    step: int
    cell: np.ndarray  # (3, 3) rows
    positions: np.ndarray  # (N, 3) Å, sorted by atom id
    types: np.ndarray  # (N,) LAMMPS atom types (1-based)


def _frame_from_table(step: int, cell: np.ndarray, columns: list[str], table: np.ndarray) -> Frame:
    table = table[np.argsort(table[:, columns.index("id")], kind="stable")]
    positions = table[:, [columns.index(name) for name in ("x", "y", "z")]]
    return Frame(step, cell, positions, table[:, columns.index("type")].astype(int))


def read_binary_dump(path: str | pathlib.Path, columns: list[str] | None = None) -> Iterator[Frame]:
    """Frames of a LAMMPS binary custom dump (format revisions with the ``DUMPCUSTOM`` magic, and the old one
    without it, which needs ``columns``, e.g. ``["id", "type", "x", "y", "z"]``)."""
    data = pathlib.Path(path).read_bytes()
    offset = 0
    while offset < len(data):
        (step,) = struct.unpack_from("<q", data, offset)
        offset += 8
        frame_columns = columns
        if step < 0:  # new format: -len(magic), magic, endian, revision, then the real timestep
            magic_length = -step
            if data[offset : offset + magic_length] != MAGIC:
                raise ValueError(f"{path}: not a LAMMPS custom binary dump")
            offset += magic_length
            _endian, revision = struct.unpack_from("<ii", data, offset)
            offset += 8
            (step,) = struct.unpack_from("<q", data, offset)
            offset += 8
        else:
            revision = 0
        natoms, triclinic = struct.unpack_from("<qi", data, offset)
        offset += 12 + 24  # natoms, triclinic, 6 boundary ints
        bounds = np.frombuffer(data, dtype="<f8", count=6, offset=offset).reshape(3, 2)
        offset += 48
        tilts = np.zeros(3)
        if triclinic:
            tilts = np.frombuffer(data, dtype="<f8", count=3, offset=offset)
            offset += 24
        (size_one,) = struct.unpack_from("<i", data, offset)
        offset += 4
        if revision:
            (unit_length,) = struct.unpack_from("<i", data, offset)
            offset += 4 + unit_length
            time_flag = data[offset]
            offset += 1 + (8 if time_flag else 0)
            (columns_length,) = struct.unpack_from("<i", data, offset)
            offset += 4
            frame_columns = data[offset : offset + columns_length].decode().split()
            offset += columns_length
        if frame_columns is None:
            raise ValueError(f"{path}: old binary format without column names: pass columns=[...]")
        (chunks,) = struct.unpack_from("<i", data, offset)
        offset += 4
        parts = []
        for _ in range(chunks):
            (count,) = struct.unpack_from("<i", data, offset)
            offset += 4
            parts.append(np.frombuffer(data, dtype="<f8", count=count, offset=offset))
            offset += 8 * count
        table = np.concatenate(parts).reshape(natoms, size_one)
        if triclinic:
            box = np.column_stack([bounds, tilts[[0, 1, 2]]])
            cell = _cell_from_bounds(box, True)
        else:
            cell = _cell_from_bounds(bounds, False)
        yield _frame_from_table(int(step), cell, frame_columns, table)


def read_text_dump(path: str | pathlib.Path) -> Iterator[Frame]:
    """Frames of a text ``dump custom``: the header by lines, the atom block by one ``numpy.loadtxt`` call."""
    with open(path) as handle:
        while True:
            line = handle.readline()
            if not line:
                return
            if not line.startswith("ITEM: TIMESTEP"):
                continue
            step = int(handle.readline())
            handle.readline()
            natoms = int(handle.readline())
            header = handle.readline()
            bounds = np.array([[float(v) for v in handle.readline().split()] for _ in range(3)])
            columns = handle.readline().split()[2:]
            block = "".join(handle.readline() for _ in range(natoms))
            table = np.loadtxt(io.StringIO(block), ndmin=2)
            if table.shape != (natoms, len(columns)):
                return  # a frame cut by a crash
            yield _frame_from_table(step, _cell_from_bounds(bounds, "xy" in header), columns, table)
