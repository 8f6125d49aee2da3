"""Reading and analysing 40,000-atom frames (20x20x20 BaTiO3): text vs binary LAMMPS dumps, and the split
between reading and computing (displacements of every cation + Born-charge polarization).

    .venv/bin/python bench/polarization_io.py [--repeat 20] [--frames 5]

LAMMPS writes the frames itself (pair_style zero, NVE at 300 K), as text and as binary dumps.
"""

from __future__ import annotations

import argparse
import pathlib
import subprocess
import sys
import tempfile
import time

REPO = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from aiida_perovskite.analysis.lammps_io import parse_dump, write_data_file  # noqa: E402
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
    parser.add_argument("--frames", type=int, default=5)
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
        python_text, t_python = timed(lambda: parse_dump((root / "traj.dump").read_text(), TYPE_MAP))
        text_frames, t_text = timed(lambda: list(read_text_dump(root / "traj.dump")))
        binary_frames, t_binary = timed(lambda: list(read_binary_dump(root / "traj.bin")))

    symbols = [TYPE_MAP[t - 1] for t in binary_frames[0].types]
    analysis, t_build = timed(
        lambda: LocalAnalysis.from_reference(binary_frames[0].cell, binary_frames[0].positions, symbols)
    )

    def analyse_all():
        for frame in binary_frames:
            analysis.displacements(frame.cell, frame.positions)
            analysis.polarization(frame.cell, frame.positions, "BaTiO3")

    _, t_compute = timed(analyse_all)
    n = len(binary_frames)
    assert len(text_frames) == n == len(python_text["steps"])
    print(
        f"{len(atoms)} atoms per frame, {n} frames; text dump {sizes['traj.dump']:.1f} MB, "
        f"binary dump {sizes['traj.bin']:.1f} MB"
    )
    print(f"{'step':<36}{'s/frame':>10}{'frames/s':>10}{'ratio':>8}")
    rows = [
        ("read: text, line-by-line Python", t_python / n),
        ("read: text, numpy.loadtxt block", t_text / n),
        ("read: binary (numpy.frombuffer)", t_binary / n),
        ("analyse: displacements + P", t_compute / n),
        ("read binary + analyse", (t_binary + t_compute) / n),
    ]
    slowest = rows[0][1]
    for name, per_frame in rows:
        print(f"{name:<36}{per_frame:>10.4f}{1 / per_frame:>10.1f}{slowest / per_frame:>8.1f}")
    print(f"neighbour lists (once per trajectory): {t_build:.3f} s")


if __name__ == "__main__":
    main()
