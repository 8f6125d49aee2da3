"""Reading and analysing 40,000-atom frames (20x20x20 BaTiO3): text vs binary LAMMPS dumps, and the split
between reading, displacements of every cation and Born-charge polarization of every unit cell.

    .venv/bin/python bench/polarization_io.py [--repeat 20] [--frames 10]

LAMMPS writes the frames itself (pair_style zero, NVE at 3000 K), as text (%.10g) and as binary dumps. The two
readers' arrays are compared (steps, cells, types exactly; positions to the text format's precision).
"""

from __future__ import annotations

import argparse
import pathlib
import subprocess
import sys
import tempfile
import time

import numpy as np

REPO = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from aiida_perovskite.analysis.lammps_io import write_data_file  # noqa: E402
from aiida_perovskite.analysis.polarization import LocalAnalysis  # noqa: E402
from aiida_perovskite.analysis.trajectory_io import read_binary_dump, read_text_dump  # noqa: E402
from aiida_perovskite.structures import parent_cell  # noqa: E402

TYPE_MAP = ["Ba", "Ti", "O"]
SCRIPT = """units metal
atom_style atomic
boundary p p p
read_data structure.data
pair_style zero 6.0
pair_coeff * *
velocity all create 3000 7
fix md all nve
timestep 0.002
dump text all custom {every} traj.dump id type x y z
dump_modify text sort id format float %.10g
dump binary all custom {every} traj.bin id type x y z
dump_modify binary sort id
run {steps}
"""


def timed(function):
    start = time.perf_counter()
    result = function()
    return result, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--frames", type=int, default=10)
    args = parser.parse_args()
    atoms = parent_cell("BaTiO3", "tetragonal").repeat([args.repeat] * 3)
    every = 10
    with tempfile.TemporaryDirectory() as tmp:
        root = pathlib.Path(tmp)
        with open(root / "structure.data", "w") as handle:
            write_data_file(handle, atoms, TYPE_MAP)
        (root / "in.lammps").write_text(SCRIPT.format(every=every, steps=every * (args.frames - 1)))
        subprocess.run(
            [str(pathlib.Path(sys.executable).parent / "lmp"), "-in", "in.lammps", "-screen", "none"],
            cwd=root,
            check=True,
            capture_output=True,
        )
        sizes = {name: (root / name).stat().st_size / 1e6 for name in ("traj.dump", "traj.bin")}
        for reader, name in ((read_text_dump, "traj.dump"), (read_binary_dump, "traj.bin")):
            next(reader(root / name))  # untimed: the one-off import of pandas and a warm file cache
        text_frames, t_text = timed(lambda: list(read_text_dump(root / "traj.dump")))
        binary_frames, t_binary = timed(lambda: list(read_binary_dump(root / "traj.bin")))

    n = len(binary_frames)
    assert [f.step for f in text_frames] == [f.step for f in binary_frames]
    assert all((a.types == b.types).all() for a, b in zip(text_frames, binary_frames, strict=True))
    cell_difference = max(np.abs(a.cell - b.cell).max() for a, b in zip(text_frames, binary_frames, strict=True))
    position_difference = max(
        np.abs(a.positions - b.positions).max() for a, b in zip(text_frames, binary_frames, strict=True)
    )
    symbols = [TYPE_MAP[t - 1] for t in binary_frames[0].types]
    analysis, t_build = timed(
        lambda: LocalAnalysis.from_reference(binary_frames[0].cell, binary_frames[0].positions, symbols)
    )
    _, t_displacements = timed(lambda: [analysis.frame(f.cell, f.positions) for f in binary_frames])
    results, t_full = timed(lambda: [analysis.frame(f.cell, f.positions, "BaTiO3") for f in binary_frames])
    from_text = [analysis.frame(f.cell, f.positions, "BaTiO3") for f in text_frames]
    polarization_difference = max(
        np.abs(a.polarization - b.polarization).max() for a, b in zip(results, from_text, strict=True)
    )
    print(
        f"{len(atoms)} atoms per frame, {n} frames; text dump {sizes['traj.dump']:.1f} MB, "
        f"binary dump {sizes['traj.bin']:.1f} MB"
    )
    print(
        f"readers agree: same steps and types; max |Δcell| {cell_difference:.1e} Å, "
        f"max |Δx| {position_difference:.1e} Å (text written with %.10g), "
        f"max |ΔP| from the two {polarization_difference:.1e} C/m²"
    )
    print(f"{'stage':<44}{'ms/frame':>10}")
    rows = [
        ("read: text (pandas C tokenizer)", t_text / n),
        ("read: binary (numpy.frombuffer)", t_binary / n),
        ("displacements of all A and B cations", t_displacements / n),
        ("Born-charge polarization of all unit cells", (t_full - t_displacements) / n),
        ("read text + displacements + polarization", (t_text + t_full) / n),
        ("read binary + displacements + polarization", (t_binary + t_full) / n),
    ]
    for name, per_frame in rows:
        print(f"{name:<44}{per_frame * 1000:>10.1f}")
    print(f"neighbour lists (once per trajectory): {t_build:.2f} s")


if __name__ == "__main__":
    main()
