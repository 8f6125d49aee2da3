"""A mock ``abacus`` executable: reads INPUT, STRU and KPT in the working directory, checks that the
pseudopotential and orbital files STRU names were copied, labels the structure with the reference model and
writes ``OUT.<suffix>/running_scf.log`` and the stdout in ABACUS 3.x formats.

Run as ``python -m tests.mock_engines.abacus``. If ``MOCK_ABACUS_UNCONVERGED`` names a file that does not
exist yet, the run creates it and ends its SCF loop unconverged after ``scf_nmax`` steps, as ABACUS does
(it still prints forces and stress, and exits 0).
"""

from __future__ import annotations

import os
import pathlib
import sys

import numpy as np
from ase import Atoms

from tests.mock_engines.reference import reference_labels

BOHR_IN_ANGSTROM = 0.529177210903
EV_PER_A3_IN_KBAR = 1602.1766208
DASHES = "-" * 90


def read_input(path: pathlib.Path) -> dict[str, str]:
    tags = {}
    for line in path.read_text().splitlines()[1:]:
        fields = line.split("#")[0].split()
        if len(fields) >= 2:
            tags[fields[0].lower()] = " ".join(fields[1:])
    return tags


def read_stru(path: pathlib.Path) -> tuple[Atoms, list[str], list[str]]:
    """The structure, the pseudopotential files and the orbital files of a STRU file."""
    blocks: dict[str, list[str]] = {}
    current = None
    for raw in path.read_text().splitlines():
        line = raw.split("#")[0].split("//")[0].strip()
        if not line:
            continue
        if line in ("ATOMIC_SPECIES", "NUMERICAL_ORBITAL", "LATTICE_CONSTANT", "LATTICE_VECTORS", "ATOMIC_POSITIONS"):
            current = line
            blocks[current] = []
        elif current:
            blocks[current].append(line)
    scale = float(blocks["LATTICE_CONSTANT"][0]) * BOHR_IN_ANGSTROM
    cell = np.array([[float(x) for x in row.split()[:3]] for row in blocks["LATTICE_VECTORS"]]) * scale
    species = [row.split() for row in blocks["ATOMIC_SPECIES"]]
    lines = blocks["ATOMIC_POSITIONS"]
    kind, rest = lines[0], lines[1:]
    if kind not in ("Cartesian", "Direct"):
        sys.exit(f"mock abacus: unsupported ATOMIC_POSITIONS {kind}")
    symbols, positions = [], []
    while rest:
        label, _magnetisation, count = rest[0], rest[1], int(rest[2])
        for row in rest[3 : 3 + count]:
            symbols.append(label)
            positions.append([float(x) for x in row.split()[:3]])
        rest = rest[3 + count :]
    positions = np.array(positions)
    positions = positions @ cell if kind == "Direct" else positions * scale
    atoms = Atoms(symbols=symbols, positions=positions, cell=cell, pbc=True)
    return atoms, [fields[2] for fields in species], blocks.get("NUMERICAL_ORBITAL", [])


def running_log(atoms, tags, mesh, energy, forces, stress_kbar, scf_energies, converged) -> str:
    lines = [
        "                                                                                     ",
        "                              ABACUS v3.7.5",
        "",
        "               Atomic-orbital Based Ab-initio Computation at UStc                    ",
        "",
        " READING GENERAL INFORMATION",
        f"                           global_out_dir = OUT.{tags.get('suffix', 'ABACUS')}/",
        "                                    NSPIN == 1",
        f"                              calculation = {tags.get('calculation', 'scf')}",
        f"                               basis_type = {tags.get('basis_type', 'pw')}",
        f"                                  ecutwfc = {tags.get('ecutwfc', '50')}",
        f"                                   natoms = {len(atoms)}",
        f" K-POINTS: Gamma-centred mesh {' '.join(str(n) for n in mesh)}",
        f"                                   NBANDS = {4 * len(atoms)}",
        "",
    ]
    for step, scf_energy in enumerate(scf_energies, start=1):
        lines.append(
            f" ITER   ETOT/eV          EDIFF/eV         DRHO       TIME/s\n GE{step:<4d} {scf_energy:.8e}"
            f"  {10.0 / 4**step:.8e}  {0.1 / 4**step:.4e}  0.01"
        )
    if converged:
        lines += ["", " charge density convergence is achieved", f" final etot is {energy:.11f} eV"]
    else:
        lines += ["", " !! convergence has not been achieved @_@"]
    lines += [f" EFERMI = {5.0:.11f} eV", ""]
    lines += [
        " " + DASHES,
        " TOTAL-FORCE (eV/Angstrom)",
        DASHES,
        *[
            f"{symbol + str(index):>8s} {fx:20.10f} {fy:20.10f} {fz:20.10f}"
            for symbol, index, (fx, fy, fz) in _labelled(atoms.get_chemical_symbols(), forces)
        ],
        DASHES,
        "",
        " " + DASHES,
        " TOTAL-STRESS (KBAR)",
        DASHES,
        *[f" {sx:20.10f} {sy:20.10f} {sz:20.10f}" for sx, sy, sz in stress_kbar],
        DASHES,
        f" TOTAL-PRESSURE: {np.trace(stress_kbar) / 3:.10f} KBAR",
        "",
    ]
    if converged:
        lines += [" " + "-" * 44, f" !FINAL_ETOT_IS {energy:.13f} eV", " " + "-" * 44, ""]
    lines += [" Total  Time  : 0 h 0 mins 1 secs ", ""]
    return "\n".join(lines)


def _labelled(symbols, forces):
    counts: dict[str, int] = {}
    for symbol, force in zip(symbols, forces, strict=True):
        counts[symbol] = counts.get(symbol, 0) + 1
        yield symbol, counts[symbol], force


def main() -> None:
    workdir = pathlib.Path.cwd()
    for name in ("INPUT", "STRU", "KPT"):
        if not (workdir / name).is_file():
            sys.exit(f"mock abacus: {name} not found")
    tags = read_input(workdir / "INPUT")
    atoms, pseudo_files, orbital_files = read_stru(workdir / "STRU")
    for folder, files in ((tags.get("pseudo_dir", "./"), pseudo_files), (tags.get("orbital_dir", "./"), orbital_files)):
        for name in files:
            if not (workdir / folder / name).is_file():
                sys.exit(f"mock abacus: {folder}{name} named in STRU was not copied")
    if tags.get("basis_type") == "lcao" and len(orbital_files) != len(pseudo_files):
        sys.exit("mock abacus: basis_type lcao needs one NUMERICAL_ORBITAL file per species")
    kpt = (workdir / "KPT").read_text().splitlines()
    mesh = [int(value) for value in kpt[3].split()[:3]]

    energy, forces, stress = reference_labels(atoms)
    stress_kbar = -stress * EV_PER_A3_IN_KBAR  # ABACUS's sign, as VASP's: positive = compressed
    flag = os.environ.get("MOCK_ABACUS_UNCONVERGED")
    unconverged = bool(flag) and not pathlib.Path(flag).exists()
    if unconverged:
        pathlib.Path(flag).touch()
    nsteps = int(tags.get("scf_nmax", 100)) if unconverged else 8
    scf_energies = [energy + 10.0 / 4**step for step in range(nsteps - 1)] + [energy]

    out = workdir / f"OUT.{tags.get('suffix', 'ABACUS')}"
    out.mkdir(exist_ok=True)
    log = running_log(atoms, tags, mesh, energy, forces, stress_kbar, scf_energies, not unconverged)
    (out / f"running_{tags.get('calculation', 'scf')}.log").write_text(log)
    (out / "INPUT").write_text((workdir / "INPUT").read_text())
    (out / "warning.log").write_text("")
    print("                              ABACUS v3.7.5")
    print(f" START  Time  : {atoms.get_chemical_formula()}")
    print(" SCF converged" if not unconverged else " SCF NOT converged")
    print(" Total  Time  : 0 h 0 mins 1 secs")


if __name__ == "__main__":
    main()
