"""A mock ``vasp`` executable: reads INCAR, POSCAR and KPOINTS in the working directory, labels the
structure with the reference model and writes vasprun.xml, OUTCAR, CONTCAR and the stdout in VASP 6 formats.

Run as ``python -m tests.mock_engines.vasp`` from the calculation's folder. If ``MOCK_VASP_UNCONVERGED``
names a file that does not exist yet, the run creates it and stops at NELM without electronic convergence
(as a real VASP run does), so that restart handlers can be exercised.
"""

from __future__ import annotations

import os
import pathlib
import shutil
import sys

import numpy as np
from ase.io import read

from tests.mock_engines.reference import ENTROPY_TERM, reference_labels

EV_PER_A3_IN_KBAR = 1602.1766208


def read_incar(path: pathlib.Path) -> dict[str, str]:
    tags = {}
    for line in path.read_text().splitlines():
        for statement in line.split("#")[0].split("!")[0].split(";"):
            if "=" in statement:
                key, value = statement.split("=", 1)
                tags[key.strip().upper()] = value.strip()
    return tags


def read_mesh(path: pathlib.Path) -> list[int]:
    lines = path.read_text().splitlines()
    if int(lines[1].split()[0]) != 0:
        raise SystemExit("mock vasp: only automatic KPOINTS meshes are supported")
    return [int(value) for value in lines[3].split()[:3]]


def gamma_mesh(mesh: list[int]) -> np.ndarray:
    """Fractional coordinates of a Gamma-centred mesh, no symmetry reduction."""
    grid = np.indices(mesh).reshape(3, -1).T / np.asarray(mesh)
    return np.where(grid > 0.5, grid - 1, grid)


def _v(values, fmt="%16.8f") -> str:
    return "<v>" + " ".join(fmt % value for value in values) + " </v>"


def _varray(name: str, rows, indent: str) -> str:
    body = "\n".join(f"{indent} {_v(row)}" for row in rows)
    return f'{indent}<varray name="{name}" >\n{body}\n{indent}</varray>'


def _structure(atoms, name: str | None, indent: str) -> str:
    header = f'{indent}<structure name="{name}" >' if name else f"{indent}<structure>"
    reciprocal = np.linalg.inv(atoms.cell[:]).T
    return "\n".join(
        [
            header,
            f"{indent} <crystal>",
            _varray("basis", atoms.cell[:], indent + "  "),
            f'{indent}  <i name="volume">{atoms.get_volume():16.8f} </i>',
            _varray("rec_basis", reciprocal, indent + "  "),
            f"{indent} </crystal>",
            _varray("positions", atoms.get_scaled_positions(wrap=False), indent + " "),
            f"{indent}</structure>",
        ]
    )


def _energies(energy: float, indent: str) -> str:
    values = {"e_fr_energy": energy, "e_wo_entrp": energy + ENTROPY_TERM, "e_0_energy": energy + ENTROPY_TERM / 2}
    lines = [f'{indent} <i name="{key}">{value:16.8f} </i>' for key, value in values.items()]
    return "\n".join([f"{indent}<energy>", *lines, f"{indent}</energy>"])


def vasprun(atoms, incar, mesh, energy, forces, stress_kbar, scf_energies) -> str:
    symbols = atoms.get_chemical_symbols()
    species = sorted(set(symbols), key=symbols.index)
    atom_rows = "\n".join(f"    <rc><c>{s:2s}</c><c>{species.index(s) + 1:4d}</c></rc>" for s in symbols)
    type_rows = "\n".join(
        f"    <rc><c>{symbols.count(s):4d}</c><c>{s:2s}</c><c>{atoms[symbols.index(s)].mass:16.8f}</c>"
        f"<c>{8.0:16.8f}</c><c>  PAW_PBE {s} 06Sep2000</c></rc>"
        for s in species
    )
    incar_rows = "\n".join(f'  <i name="{key}">{value} </i>' for key, value in incar.items())
    scsteps = "\n".join(
        f'  <scstep>\n   <time name="total">    0.01    0.01</time>\n{_energies(e, "   ")}\n  </scstep>'
        for e in scf_energies
    )
    return f"""<?xml version="1.0" encoding="ISO-8859-1"?>
<modeling>
 <generator>
  <i name="program" type="string">vasp </i>
  <i name="version" type="string">6.4.2  </i>
  <i name="subversion" type="string">20Jul23 (build mock) complex                          serial </i>
  <i name="platform" type="string">LinuxGNU </i>
  <i name="date" type="string">2026 11 22 </i>
  <i name="time" type="string">12:00:00 </i>
 </generator>
 <incar>
{incar_rows}
 </incar>
 <kpoints>
  <generation param="Gamma">
   <v type="int" name="divisions">{"".join(f"{n:8d}" for n in mesh)} </v>
   <v name="usershift">      0.00000000       0.00000000       0.00000000 </v>
  </generation>
{_varray("kpointlist", gamma_mesh(mesh), "  ")}
{_varray("weights", np.full((int(np.prod(mesh)), 1), 1 / np.prod(mesh)), "  ")}
 </kpoints>
 <parameters>
  <separator name="electronic" >
   <i type="string" name="PREC">{incar.get("PREC", "normal").lower()}</i>
   <i name="ENCUT">{float(incar.get("ENCUT", 400)):16.8f}</i>
   <i name="EDIFF">{float(incar.get("EDIFF", 1e-4)):16.8f}</i>
   <i type="int" name="NELM">{int(incar.get("NELM", 60))}</i>
  </separator>
  <separator name="ionic" >
   <i type="int" name="NSW">{int(incar.get("NSW", 0))}</i>
   <i type="int" name="IBRION">{int(incar.get("IBRION", -1))}</i>
   <i type="int" name="ISIF">{int(incar.get("ISIF", 2))}</i>
  </separator>
 </parameters>
 <atominfo>
  <atoms>{len(atoms):8d} </atoms>
  <types>{len(species):8d} </types>
  <array name="atoms" >
   <dimension dim="1">ion</dimension>
   <field type="string">element</field>
   <field type="int">atomtype</field>
   <set>
{atom_rows}
   </set>
  </array>
  <array name="atomtypes" >
   <dimension dim="1">type</dimension>
   <field type="int">atomspertype</field>
   <field type="string">element</field>
   <field>mass</field>
   <field>valence</field>
   <field type="string">pseudopotential</field>
   <set>
{type_rows}
   </set>
  </array>
 </atominfo>
{_structure(atoms, "initialpos", " ")}
 <calculation>
{scsteps}
{_structure(atoms, None, "  ")}
{_varray("forces", forces, "  ")}
{_varray("stress", stress_kbar, "  ")}
{_energies(energy, "  ")}
  <time name="totalsc">    0.11    0.12</time>
 </calculation>
{_structure(atoms, "finalpos", " ")}
</modeling>
"""


def outcar(atoms, incar, mesh, energy, forces, stress_kbar, scf_energies) -> str:
    nelm, nsw, ibrion = int(incar.get("NELM", 60)), int(incar.get("NSW", 0)), int(incar.get("IBRION", -1))
    kpoints = gamma_mesh(mesh)
    symbols = atoms.get_chemical_symbols()
    species = sorted(set(symbols), key=symbols.index)
    lines = [
        " vasp.6.4.2 20Jul23 (build mock) complex",
        " executed on             LinuxGNU date 2026.11.22  12:00:00",
        " running    1 mpi-ranks, with    1 threads/rank",
        "",
        " INCAR:",
        *[f" POTCAR:    PAW_PBE {s} 06Sep2000" for s in species],
        *[f" POTCAR:    PAW_PBE {s} 06Sep2000" for s in species],  # VASP lists them twice
        "",
        f"   k-points           NKPTS = {len(kpoints):6d}   k-points in BZ     NKDIM = {len(kpoints):6d}"
        "   number of bands    NBANDS=    24",
        "   ions per type =  " + "".join(f"{symbols.count(s):6d}" for s in species),
        f"   NELM   =    {nelm};   NELMIN=  2; NELMDL= -5     # of ELM steps",
        f"   NSW    =    {nsw:6d}    number of steps for IOM",
        f"   IBRION =    {ibrion:6d}    ionic relax: 0-MD 1-quasi-New 2-CG",
        "   ISPIN  =      1    spin polarized calculation?",
        "",
        " k-points in reciprocal lattice and weights: Automatic mesh",
        *[" " + "".join(f"{x:12.8f}" for x in point) + f"{1 / len(kpoints):12.3f}" for point in kpoints],
        "",
    ]
    for step, scf_energy in enumerate(scf_energies, start=1):
        lines += [
            f"----------------------------------------- Iteration    1({step:4d})  -------------------------------"
            "--------",
            "",
            f"  free energy    TOTEN  = {scf_energy:18.8f} eV",
            "",
            f"  energy without entropy = {scf_energy + ENTROPY_TERM:17.8f}"
            f"  energy(sigma->0) = {scf_energy + ENTROPY_TERM / 2:17.8f}",
            "",
        ]
    voigt = [
        stress_kbar[0, 0],
        stress_kbar[1, 1],
        stress_kbar[2, 2],
        stress_kbar[0, 1],
        stress_kbar[1, 2],
        stress_kbar[2, 0],
    ]
    total = np.array(voigt) * atoms.get_volume() / EV_PER_A3_IN_KBAR
    lines += [
        "  FORCE on cell =-STRESS in cart. coord.  units (eV):",
        "  Direction    XX          YY          ZZ          XY          YZ          ZX",
        "  " + "-" * 86,
        # the model has no energy decomposition: the terms VASP lists are printed as zero, their sum is the total
        *[
            f"  {term:8s}" + "".join(f"{0.0:12.5f}" for _ in range(6))
            for term in ("Alpha Z", "Ewald", "Hartree", "E(xc)", "Local", "n-local", "augment", "Kinetic", "Fock")
        ],
        "  " + "-" * 85,
        "  Total   " + "".join(f"{value:12.5f}" for value in total),
        "  in kB   " + "".join(f"{value:12.5f}" for value in voigt),
        f"  external pressure = {np.trace(stress_kbar) / 3:11.2f} kB  Pullay stress =        0.00 kB",
        "",
        "",
        " VOLUME and BASIS-vectors are now :",
        " " + "-" * 77,
        "  energy-cutoff  :      " + f"{float(incar.get('ENCUT', 400)):.2f}",
        f"  volume of cell : {atoms.get_volume():11.2f}",
        "      direct lattice vectors                 reciprocal lattice vectors",
        *[
            "  " + "".join(f"{x:13.9f}" for x in row) + "  " + "".join(f"{x:13.9f}" for x in rec)
            for row, rec in zip(atoms.cell[:], np.linalg.inv(atoms.cell[:]).T, strict=True)
        ],
        "",
        "",
        " POSITION                                       TOTAL-FORCE (eV/Angst)",
        " " + "-" * 83,
        *[
            " " + "".join(f"{x:13.5f}" for x in position) + "    " + "".join(f"{f:14.6f}" for f in force)
            for position, force in zip(atoms.positions, forces, strict=True)
        ],
        " " + "-" * 83,
        "    total drift:                         " + "".join(f"{x:14.6f}" for x in forces.sum(axis=0)),
        "",
        "",
        "-" * 104,
        "",
        "",
        "  FREE ENERGIE OF THE ION-ELECTRON SYSTEM (eV)",
        "  ---------------------------------------------------",
        f"  free  energy   TOTEN  = {energy:18.8f} eV",
        "",
        f"  energy  without entropy= {energy + ENTROPY_TERM:17.8f}"
        f"  energy(sigma->0) = {energy + ENTROPY_TERM / 2:17.8f}",
        "",
        "",
        "",
        " General timing and accounting informations for this job:",
        " ========================================================",
        "",
        "                  Total CPU time used (sec):        0.120",
        "                            User time (sec):        0.100",
        "                          System time (sec):        0.020",
        "                         Elapsed time (sec):        0.130",
        "",
        "                   Maximum memory used (kb):       42000.",
        "                   Average memory used (kb):          N/A",
        "",
        "                          Minor page faults:            0",
        "                          Major page faults:            0",
        "                 Voluntary context switches:            0",
    ]
    return "\n".join(lines) + "\n"


def main() -> None:
    workdir = pathlib.Path.cwd()
    for name in ("INCAR", "POSCAR", "KPOINTS", "POTCAR"):
        if not (workdir / name).is_file():
            sys.exit(f"mock vasp: {name} not found")
    incar = read_incar(workdir / "INCAR")
    mesh = read_mesh(workdir / "KPOINTS")
    atoms = read(workdir / "POSCAR", format="vasp")
    energy, forces, stress = reference_labels(atoms)
    stress_kbar = -stress * EV_PER_A3_IN_KBAR  # VASP's sign: positive = compressed

    flag = os.environ.get("MOCK_VASP_UNCONVERGED")
    unconverged = bool(flag) and not pathlib.Path(flag).exists()
    if unconverged:
        pathlib.Path(flag).touch()
    nelm = int(incar.get("NELM", 60))
    nsteps = nelm if unconverged else 6
    scf_energies = [energy + 10.0 / 4**step for step in range(nsteps - 1)] + [energy]

    print(" running    1 mpi-ranks, with    1 threads/rank")
    print(" vasp.6.4.2 20Jul23 (build mock) complex")
    print(" POSCAR found :  " + str(len(set(atoms.get_chemical_symbols()))) + " types and " + str(len(atoms)) + " ions")
    for step, scf_energy in enumerate(scf_energies, start=1):
        print(f"DAV: {step:3d}    {scf_energy:.12E}   {-1.0 / 4**step:.5E}   {-1.0 / 4**step:.5E}  96   0.1E+01")
    print(f"   1 F= {energy:.8E} E0= {energy + ENTROPY_TERM / 2:.8E}  d E =0.000000E+00")
    (workdir / "vasprun.xml").write_text(vasprun(atoms, incar, mesh, energy, forces, stress_kbar, scf_energies))
    (workdir / "OUTCAR").write_text(outcar(atoms, incar, mesh, energy, forces, stress_kbar, scf_energies))
    shutil.copy(workdir / "POSCAR", workdir / "CONTCAR")
    print(" writing wavefunctions")


if __name__ == "__main__":
    main()
