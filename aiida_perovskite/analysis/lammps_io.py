"""LAMMPS input writing and output reading for DeePMD MD (no AiiDA).

Units are LAMMPS ``metal``: Å, eV, ps, K, bar.
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Sequence
from typing import IO

import numpy as np

from aiida_perovskite.analysis.trajectory_io import text_dump_frames

__all__ = (
    "ENSEMBLES",
    "MD_BOUNDS",
    "NO_ERROR",
    "MdSettingError",
    "MdSettings",
    "exploration_script",
    "last_error",
    "parse_dump",
    "parse_thermo",
    "production_script",
    "write_data_file",
)

ENSEMBLES = ("nvt", "npt-iso", "npt-aniso", "npt-tri")
THERMO_COLUMNS = "step temp pe ke etotal press vol lx ly lz xy xz yz"

# Upper bounds (lower bound 0, exclusive; pressure in [-bound, bound]): a value beyond them is a unit slip (fs for
# ps, Pa or GPa for bar) or a typo, refused before anything runs.
MD_BOUNDS = {
    "temperature": (5000.0, "K"),
    "pressure": (1.0e6, "bar (1e6 bar = 100 GPa)"),
    "timestep": (0.01, "ps (0.002 ps = 2 fs)"),
    "tdamp": (100.0, "ps"),
    "pdamp": (100.0, "ps"),
}


class MdSettingError(ValueError):
    """An invalid MD setting; ``setting`` names it."""

    def __init__(self, setting: str, message: str):
        super().__init__(message)
        self.setting = setting


@dataclasses.dataclass(frozen=True)
class MdSettings:
    """One MD run. Defaults follow the papers' MD protocol: 2 fs, Tdamp 0.1 ps, Pdamp 0.5 ps."""

    ensemble: str
    temperature: float
    steps: int
    sampling_interval: int
    pressure: float = 1.0
    timestep: float = 0.002
    tdamp: float = 0.1
    pdamp: float = 0.5

    @classmethod
    def from_dict(cls, values: dict) -> MdSettings:
        known = {field.name for field in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown MD setting(s) {unknown}; known: {sorted(known)}")
        missing = sorted(
            name for name in ("ensemble", "temperature", "steps", "sampling_interval") if name not in values
        )
        if missing:
            raise ValueError(f"missing MD setting(s) {missing}")
        return cls(**values)

    def __post_init__(self):
        if self.ensemble not in ENSEMBLES:
            raise MdSettingError(
                "ensemble", f"unknown ensemble {self.ensemble!r}; choose one of {', '.join(ENSEMBLES)}"
            )
        for name in ("temperature", "timestep", "tdamp", "pdamp"):
            value = getattr(self, name)
            if not isinstance(value, int | float) or not math.isfinite(value) or value <= 0:
                raise MdSettingError(name, f"{name} must be a positive number, got {value!r}")
        if not isinstance(self.pressure, int | float) or not math.isfinite(self.pressure):
            raise MdSettingError("pressure", f"pressure must be a number (bar), got {self.pressure!r}")
        for name, (bound, unit) in MD_BOUNDS.items():
            value = getattr(self, name)
            if abs(value) > bound:
                raise MdSettingError(name, f"{name} {value} is beyond {bound:g} {unit}: check the unit")
        for name in ("steps", "sampling_interval"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise MdSettingError(name, f"{name} must be a positive integer, got {value!r}")
        if self.sampling_interval > self.steps:
            raise MdSettingError(
                "sampling_interval",
                f"sampling_interval {self.sampling_interval} is longer than the run ({self.steps} steps)",
            )

    @property
    def expected_frames(self) -> int:
        return self.steps // self.sampling_interval + 1


def write_data_file(handle: IO[str], atoms, type_map: Sequence[str]) -> None:
    """LAMMPS data file with atom types in ``type_map`` order (every element a type, used or not)."""
    from ase.io.lammpsdata import write_lammps_data

    write_lammps_data(handle, atoms, specorder=list(type_map), masses=True, units="metal", atom_style="atomic")


def _integrator(s: MdSettings) -> str:
    if s.ensemble == "nvt":
        return f"fix integrate all nvt temp {s.temperature} {s.temperature} {s.tdamp}"
    coupling = s.ensemble.split("-")[1]
    return (
        f"fix integrate all npt temp {s.temperature} {s.temperature} {s.tdamp} "
        f"{coupling} {s.pressure} {s.pressure} {s.pdamp}"
    )


def _setup_lines(
    s: MdSettings, data_file: str, pair_style: str, type_map: Sequence[str], velocity_seed: int | None
) -> list[str]:
    """Units, structure, DeePMD pair style, velocities (unless continuing with those of the data file)."""
    return [
        "units metal",
        "boundary p p p",
        "atom_style atomic",
        "atom_modify map yes",
        f"read_data {data_file}",
        *(["change_box all triclinic"] if s.ensemble == "npt-tri" else []),
        "neighbor 1.0 bin",
        pair_style,
        f"pair_coeff * * {' '.join(type_map)}",
        *(
            [f"velocity all create {s.temperature} {velocity_seed} dist gaussian mom yes rot yes"]
            if velocity_seed is not None
            else []
        ),
        _integrator(s),
        f"timestep {s.timestep}",
        f"thermo_style custom {THERMO_COLUMNS}",
        "thermo_modify format float %.10g lost error norm no flush yes",
    ]


# Close every output, then exit without destroying the DeePMD pair style, whose TensorFlow teardown kept `lmp`
# running after its last output (1-2 s less with `quit` side by side on a loaded machine; not visible in the
# demo's hand-overs, docs/benchmarks.md).
QUIT = "quit 0"


def exploration_script(
    settings: MdSettings,
    models: Sequence[str],
    type_map: Sequence[str],
    velocity_seed: int,
    data_file: str,
    devi_file: str,
    dump_file: str,
) -> str:
    """Input script: MD with ``models[0]``, all models evaluated every ``sampling_interval`` steps."""
    every = settings.sampling_interval
    pair_style = f"pair_style deepmd {' '.join(models)} out_freq {every} out_file {devi_file}"
    lines = [
        *_setup_lines(settings, data_file, pair_style, type_map, velocity_seed),
        f"thermo {every}",
        f"dump sampled all custom {every} {dump_file} id type x y z",
        "dump_modify sampled sort id format float %.15g",
        f"run {settings.steps}",
        QUIT,
    ]
    return "\n".join(lines) + "\n"


def production_script(
    settings: MdSettings,
    model: str,
    type_map: Sequence[str],
    velocity_seed: int | None,
    data_file: str,
    dump_file: str,
    final_file: str,
    thermo_interval: int,
) -> str:
    """Input script of production MD with one model: thermo every ``thermo_interval`` steps, frames every
    ``sampling_interval`` steps to a binary dump, the final state (with velocities) written for the next run."""
    lines = [
        *_setup_lines(settings, data_file, f"pair_style deepmd {model}", type_map, velocity_seed),
        f"thermo {thermo_interval}",
        f"dump frames all custom {settings.sampling_interval} {dump_file} id type x y z",
        "dump_modify frames sort id",
        f"run {settings.steps}",
        f"write_data {final_file} nocoeff",
        QUIT,
    ]
    return "\n".join(lines) + "\n"


def parse_dump(text: str, type_map: Sequence[str]) -> dict[str, np.ndarray]:
    """Frames of a ``dump custom ... id type x y z`` file as arrays: steps, cells (n, 3, 3), positions (n, N, 3),
    symbols. Triclinic boxes follow LAMMPS' bounding-box convention; a last frame cut by a crash is dropped."""
    frames = list(text_dump_frames(text.encode()))
    if not frames:
        return {
            "steps": np.zeros(0, dtype=int),
            "cells": np.zeros((0, 3, 3)),
            "positions": np.zeros((0, 0, 3)),
            "symbols": [],
        }
    return {
        "steps": np.array([frame.step for frame in frames], dtype=int),
        "cells": np.array([frame.cell for frame in frames]),
        "positions": np.array([frame.positions for frame in frames]),
        "symbols": [type_map[t - 1] for t in frames[-1].types],
    }


_LOOP = re.compile(r"^Loop time of")


def parse_thermo(log: str) -> dict[str, np.ndarray]:
    """The thermo table of the (last) run in ``log.lammps``, by lower-case column name."""
    header, rows = None, []
    for line in log.splitlines():
        fields = line.split()
        if fields and fields[0] == "Step":
            header, rows = [name.lower() for name in fields], []
            continue
        if header is None:
            continue
        if _LOOP.match(line):
            break
        if len(fields) == len(header) and all(_is_number(field) for field in fields):
            rows.append([float(value) for value in fields])
    if header is None:
        return {}
    table = np.array(rows, dtype=float).reshape(-1, len(header))
    return {name: table[:, index] for index, name in enumerate(header)}


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


NO_ERROR = "LAMMPS stopped without an error message"


def last_error(output: str) -> str:
    """The last ``ERROR`` line LAMMPS printed, or :data:`NO_ERROR`."""
    errors = [line.strip() for line in output.splitlines() if line.strip().startswith("ERROR")]
    return errors[-1] if errors else NO_ERROR
