"""Training and MD throughput of DeePMD-kit backends, measured side by side in one run.

For each backend (PyTorch, TensorFlow): train the BCTS network (se_e2_a, rcut 6 Å, embedding 25/50/100,
fitting 120x3) for a few hundred steps on 40-atom BaTiO3 frames, freeze, compress, then run NVT MD of a
BaTiO3 supercell in LAMMPS with the plain and the compressed model. Prints steps/s and atom-steps/s and
their ratios to the PyTorch uncompressed model (the slowest configuration).

    .venv/bin/python bench/deepmd_backends.py [--steps 300] [--md-steps 100] [--repeat 4]

Uses ../shared/data/unipero-task1/BT-300K when present, otherwise Lennard-Jones-labeled frames (the
throughput does not depend on the labels).
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import re
import subprocess
import sys
import tempfile
import time

REPO = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from aiida_perovskite.protocols import load_protocol  # noqa: E402

BIN = pathlib.Path(sys.executable).parent
SHARED = REPO.parent / "shared" / "data" / "unipero-task1" / "BT-300K"
BACKENDS = {"pytorch": ("--pt", ".pth"), "tensorflow": ("--tf", ".pb")}
ENV = {
    **os.environ,
    "OMP_NUM_THREADS": "2",
    "DP_INTRA_OP_PARALLELISM_THREADS": "2",
    "DP_INTER_OP_PARALLELISM_THREADS": "1",
    "TF_CPP_MIN_LOG_LEVEL": "3",
}


def training_data(workdir: pathlib.Path) -> pathlib.Path:
    if SHARED.is_dir():
        return SHARED
    from tests.helpers import lj_frames

    path = workdir / "lj"
    lj_frames(nframes=20, repeat=2).write_deepmd_npy(path)
    return path


def dp(flag: str, *args: str, cwd: pathlib.Path) -> str:
    result = subprocess.run([str(BIN / "dp"), flag, *args], cwd=cwd, env=ENV, capture_output=True, text=True)
    if result.returncode:
        raise RuntimeError(f"dp {flag} {' '.join(args)} failed:\n{result.stdout[-2000:]}{result.stderr[-2000:]}")
    return result.stdout + result.stderr


def train(backend: str, data: pathlib.Path, steps: int, workdir: pathlib.Path) -> dict:
    flag, suffix = BACKENDS[backend]
    workdir.mkdir(parents=True)
    params = load_protocol("deepmd_train", "precise")["parameters"]
    params["model"]["type_map"] = ["Ba", "Ti", "O"]
    params["model"]["descriptor"]["sel"] = [20, 20, 60]
    params["training"].update(
        numb_steps=steps,
        disp_freq=max(steps // 10, 1),
        save_freq=steps,
        seed=1,
        training_data={"systems": [str(data)], "batch_size": 1},
    )
    params["learning_rate"]["decay_steps"] = max(steps // 10, 1)
    (workdir / "input.json").write_text(json.dumps(params))
    start = time.perf_counter()
    log = dp(flag, "train", "input.json", cwd=workdir)
    wall = time.perf_counter() - start
    per_batch = float(re.search(r"average training time: ([\d.eE+-]+) s/batch", log).group(1))
    dp(flag, "freeze", "-o", f"model{suffix}", cwd=workdir)
    start = time.perf_counter()
    dp(flag, "compress", "-i", f"model{suffix}", "-o", f"compressed{suffix}", "-t", "input.json", cwd=workdir)
    return {
        "steps_per_s": 1.0 / per_batch,
        "train_wall_s": wall,
        "compress_s": time.perf_counter() - start,
        "models": {"plain": workdir / f"model{suffix}", "compressed": workdir / f"compressed{suffix}"},
    }


LAMMPS_INPUT = """\
units metal
boundary p p p
atom_style atomic
lattice custom 4.0 a1 1 0 0 a2 0 1 0 a3 0 0 1 &
  basis 0 0 0 basis 0.5 0.5 0.5 basis 0.5 0.5 0 basis 0.5 0 0.5 basis 0 0.5 0.5
region box block 0 {n} 0 {n} 0 {n}
create_box 3 box
create_atoms 1 box basis 1 1 basis 2 2 basis 3 3 basis 4 3 basis 5 3
mass 1 137.327
mass 2 47.867
mass 3 15.999
pair_style deepmd {model}
pair_coeff * * Ba Ti O
velocity all create 300 1
fix 1 all nvt temp 300 300 0.1
timestep 0.002
thermo {steps}
run {steps}
"""


def md_throughput(model: pathlib.Path, repeat: int, steps: int, workdir: pathlib.Path) -> float:
    """Atom-steps per second of the MD loop (LAMMPS' own loop time, start-up excluded)."""
    workdir.mkdir(parents=True, exist_ok=True)
    script = workdir / f"in.{model.stem}{model.suffix}"
    script.write_text(LAMMPS_INPUT.format(n=repeat, model=model, steps=steps))
    result = subprocess.run(
        [str(BIN / "lmp"), "-in", script.name], cwd=workdir, env=ENV, capture_output=True, text=True
    )
    if result.returncode:
        raise RuntimeError(f"lmp failed for {model}:\n{result.stdout[-2000:]}{result.stderr[-2000:]}")
    match = re.search(r"Loop time of ([\d.eE+-]+) on \d+ procs for (\d+) steps with (\d+) atoms", result.stdout)
    loop, nsteps, natoms = float(match.group(1)), int(match.group(2)), int(match.group(3))
    return natoms * nsteps / loop


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=300, help="training steps per backend")
    parser.add_argument("--md-steps", type=int, default=100, help="MD steps per model")
    parser.add_argument("--repeat", type=int, default=4, help="supercell repeats (5 atoms per cell)")
    parser.add_argument("--backends", nargs="+", default=list(BACKENDS))
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        root = pathlib.Path(tmp)
        data = training_data(root)
        print(f"data: {data}  ({'UniPero BT-300K, 40 atoms' if data == SHARED else 'Lennard-Jones frames'})")
        print(f"threads: OMP {ENV['OMP_NUM_THREADS']}; MD: {5 * args.repeat**3} atoms, {args.md_steps} NVT steps")
        trained = {backend: train(backend, data, args.steps, root / backend) for backend in args.backends}
        md = {
            (backend, kind): md_throughput(path, args.repeat, args.md_steps, root / "md")
            for backend, result in trained.items()
            for kind, path in result["models"].items()
        }

    base_train = trained[args.backends[0]]["steps_per_s"]
    print("\ntraining (BCTS network, batch 1)")
    print(f"{'backend':<12}{'steps/s':>10}{'ratio':>8}{'compress s':>12}")
    for backend, result in trained.items():
        print(
            f"{backend:<12}{result['steps_per_s']:>10.1f}{result['steps_per_s'] / base_train:>8.2f}"
            f"{result['compress_s']:>12.1f}"
        )
    base_md = md[(args.backends[0], "plain")]
    print("\nMD (LAMMPS loop time)")
    print(f"{'backend':<12}{'model':<12}{'atom-steps/s':>14}{'ratio':>8}")
    for (backend, kind), rate in md.items():
        print(f"{backend:<12}{kind:<12}{rate:>14.0f}{rate / base_md:>8.2f}")


if __name__ == "__main__":
    main()
