"""CP2K single-point input and output for labeling (no AiiDA): basis/potential lookup, k-point mesh,
the input as aiida-cp2k's nested dictionary, and energy/forces/virial from the output file.

Units of the returned frames are DeePMD's: eV, eV/Å, virial in eV.
"""

from __future__ import annotations

import os
import pathlib
import re
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

from aiida_perovskite.engines.units import EV_PER_ANGSTROM3_IN_GPA, virial_from_pressure

__all__ = (
    "BasisLookupError",
    "basis_and_potential",
    "cp2k_data_dir",
    "label_parameters",
    "parse_stress_gpa",
    "read_labeled_frame",
)

BASIS = "DZVP-MOLOPT-SR-GTH"


class BasisLookupError(ValueError):
    """An element without a basis set or pseudopotential in the CP2K data files."""


def cp2k_data_dir() -> pathlib.Path:
    """Where the basis and potential files are: $CP2K_DATA_DIR or Debian's /usr/share/cp2k."""
    return pathlib.Path(os.environ.get("CP2K_DATA_DIR", "/usr/share/cp2k"))


def basis_and_potential(element: str, data_dir: pathlib.Path | None = None) -> tuple[str, str]:
    """``(DZVP-MOLOPT-SR-GTH-q<n>, GTH-PBE-q<n>)`` for ``element``: the valence of the pseudopotential must
    match the one the basis set was made for."""
    data_dir = data_dir or cp2k_data_dir()
    basis_file, potential_file = data_dir / "BASIS_MOLOPT", data_dir / "GTH_POTENTIALS"
    for path in (basis_file, potential_file):
        if not path.is_file():
            raise BasisLookupError(f"{path} is missing: install the Debian package cp2k-data or set CP2K_DATA_DIR")
    aliases = _names_of(element, basis_file.read_text().splitlines())
    valence = next((re.search(r"-q(\d+)$", a).group(1) for a in aliases if re.fullmatch(rf"{BASIS}-q\d+", a)), None)
    if valence is None:
        raise BasisLookupError(f"no {BASIS} basis set for {element} in {basis_file}")
    potential = f"GTH-PBE-q{valence}"
    if potential not in _names_of(element, potential_file.read_text().splitlines()):
        raise BasisLookupError(f"no {potential} pseudopotential for {element} in {potential_file}")
    return f"{BASIS}-q{valence}", potential


def _names_of(element: str, lines: Iterable[str]) -> set[str]:
    """All names given to ``element``'s entries (the header lines ``El NAME [ALIAS ...]``)."""
    names: set[str] = set()
    for line in lines:
        fields = line.split()
        if len(fields) >= 2 and fields[0] == element and not fields[1][0].isdigit():
            names.update(fields[1:])
    return names


def label_parameters(elements: Iterable[str], natoms: int, settings: Mapping[str, Any]) -> dict[str, Any]:
    """The CP2K input (aiida-cp2k's nested dictionary) for energy, forces and analytical stress."""
    kinds = []
    for element in sorted(set(elements)):
        basis, potential = basis_and_potential(element)
        kinds.append({"_": element, "BASIS_SET": basis, "POTENTIAL": potential})
    scf: dict[str, Any] = {
        "EPS_SCF": settings["eps_scf"],
        "MAX_SCF": settings["max_scf"],
        "SCF_GUESS": "ATOMIC",
        "MIXING": {"METHOD": "BROYDEN_MIXING", "ALPHA": settings["mixing_alpha"], "NBROYDEN": 8},
    }
    if settings.get("smearing_temperature"):
        scf["ADDED_MOS"] = max(20, natoms)
        scf["SMEAR"] = {"_": "ON", "METHOD": "FERMI_DIRAC", "ELECTRONIC_TEMPERATURE": settings["smearing_temperature"]}
    return {
        "GLOBAL": {"RUN_TYPE": "ENERGY_FORCE", "PRINT_LEVEL": "MEDIUM"},
        "FORCE_EVAL": {
            "METHOD": "QUICKSTEP",
            "STRESS_TENSOR": "ANALYTICAL",
            "DFT": {
                "BASIS_SET_FILE_NAME": "BASIS_MOLOPT",
                "POTENTIAL_FILE_NAME": "GTH_POTENTIALS",
                "MGRID": {"CUTOFF": settings["cutoff"], "REL_CUTOFF": settings["rel_cutoff"]},
                "QS": {"EPS_DEFAULT": settings["eps_default"]},
                "SCF": scf,
                "XC": {"XC_FUNCTIONAL": {"PBE": {"PARAMETRIZATION": settings["functional"]}}},
            },
            "SUBSYS": {"KIND": kinds},
            "PRINT": {"FORCES": {"_": "ON"}, "STRESS_TENSOR": {"_": "ON"}},
        },
    }


_STRESS_HEADER = re.compile(r"STRESS\|\s+Analytical stress tensor \[GPa\]")


def parse_stress_gpa(text: str) -> np.ndarray | None:
    """The last analytical stress tensor of a CP2K output, in GPa (CP2K's sign: positive = compressed)."""
    lines = text.splitlines()
    starts = [index for index, line in enumerate(lines) if _STRESS_HEADER.search(line)]
    if not starts:
        return None
    rows = lines[starts[-1] + 2 : starts[-1] + 5]
    return np.array([[float(value) for value in row.split()[2:5]] for row in rows])


def read_labeled_frame(output_path: pathlib.Path, atoms):
    """Energy (eV), forces (eV/Å) and virial (eV) of a CP2K single point of ``atoms`` (ase.Atoms).

    dpdata reads energy and forces; cell and positions are taken from ``atoms`` (the output prints them
    rounded); the virial is ``stress x volume`` with CP2K's sign convention, as dpdata uses for CP2K.
    """
    import dpdata

    from aiida_perovskite.analysis.frames import LabeledFrames

    system = dpdata.LabeledSystem(str(output_path), fmt="cp2k/output")
    symbols = [system["atom_names"][t] for t in system["atom_types"]]
    if symbols != atoms.get_chemical_symbols():
        raise ValueError(f"{output_path.name}: atoms {symbols} do not match the input structure")
    stress = parse_stress_gpa(output_path.read_text())
    virial = None if stress is None else virial_from_pressure(stress, atoms.get_volume(), EV_PER_ANGSTROM3_IN_GPA)
    return LabeledFrames.single(atoms, system["energies"][-1], system["forces"][-1], virial)
