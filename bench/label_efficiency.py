"""Label efficiency on a pool of real DFT frames: selection by model deviation against random selection.

The pool-based variant of the label-efficiency question (docs/benchmarks.md): the UniPero BaTiO3 frames of
``../shared/data/unipero-task1`` (ab initio MD of a 40-atom cell at 300, 450 and 900 K, ABACUS PBEsol) are split
once, per temperature, into a fixed held-out set and a pool. Each seed starts from the same few random pool
frames for every strategy; then, round after round, an ensemble is trained on the labels so far (the demo's
network and training settings, from scratch), every pool frame's max force deviation is computed, and a batch
of frames is added by each strategy side by side:

- ``trust_window``: the campaign's selection (``select_candidates``): frames between the trust levels, random
  among them (fewer than a batch when fewer are candidates);
- ``max_deviation``: the highest deviations first, whatever the trust levels;
- ``random``: uniformly random pool frames, deviations ignored;
- ``diverse``: the campaign's ``diverse`` mode: farthest-point sampling among the frames between the trust
  levels, in the radial-fingerprint space, away from the frames labeled so far.

Each round's ensemble is tested on the held-out set (mean of the members' RMSE). Prints the force and energy
RMSE against the number of labels (mean and spread over seeds) and the labels each strategy needs to reach
a target force RMSE, as a ratio to random; writes the curves as JSON and a plot.

    .venv/bin/python bench/label_efficiency.py [--seeds 3] [--initial 2] [--batch 2] [--rounds 5]
        [--steps 6000] [--out bench-results/label_efficiency] [--workdir DIR]

With ``--workdir`` a stopped run resumes: the trainings it finished are reused (the choices are deterministic
given the seeds and models, so the resumed run makes the same ones).
"""

from __future__ import annotations

import argparse
import concurrent.futures
import contextlib
import json
import os
import pathlib
import subprocess
import sys
import tempfile
import time

import numpy as np
import yaml

REPO = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from efficiency import report  # noqa: E402

from aiida_perovskite.analysis.fingerprints import radial_fingerprints  # noqa: E402
from aiida_perovskite.analysis.model_deviation import (  # noqa: E402
    CANDIDATE,
    TrustLevels,
    choose,
    classify,
)
from aiida_perovskite.protocols import load_protocol, recursive_merge  # noqa: E402

BIN = pathlib.Path(sys.executable).parent
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
POOL_DATA = REPO.parent / "shared" / "data" / "unipero-task1"
TEMPERATURES = ("300K", "450K", "900K")
STRATEGIES = ("trust_window", "max_deviation", "random", "diverse")
DEMO = REPO / "examples" / "demo-batio3.yaml"
ENV = {
    **os.environ,
    "OMP_NUM_THREADS": "1",
    "DP_INTRA_OP_PARALLELISM_THREADS": "1",
    "DP_INTER_OP_PARALLELISM_THREADS": "1",
    "TF_CPP_MIN_LOG_LEVEL": "3",
}


def load_pool(held_out_fraction: float) -> tuple:
    """The UniPero frames as one dpdata system, and the held-out and pool indices (a fixed split per temperature)."""
    import dpdata

    systems = [dpdata.LabeledSystem(str(POOL_DATA / f"BT-{t}"), fmt="deepmd/npy") for t in TEMPERATURES]
    everything = systems[0].copy()
    for system in systems[1:]:
        everything.append(system)
    rng = np.random.default_rng(0)
    held_out, pool, start = [], [], 0
    for system in systems:
        order = start + rng.permutation(len(system))
        count = round(held_out_fraction * len(system))
        held_out.append(order[:count])
        pool.append(order[count:])
        start += len(system)
    return everything, np.sort(np.concatenate(held_out)), np.sort(np.concatenate(pool))


def training_parameters(steps: int) -> dict:
    """The demo campaign's training input (protocol and overrides of examples/demo-batio3.yaml)."""
    training = yaml.safe_load(DEMO.read_text())["training"]
    protocol = load_protocol("deepmd_train", training["protocol"], training.get("overrides"))
    params = recursive_merge(protocol["parameters"], {"training": {"numb_steps": steps, "disp_freq": steps}})
    params["model"]["type_map"] = ["Ba", "Ti", "O"]
    return params


def train_one(params: dict, data: pathlib.Path, seed: int, workdir: pathlib.Path) -> pathlib.Path:
    """Train and freeze one member in ``workdir``; a model frozen there by an earlier, interrupted run is reused."""
    if (workdir / "model.pb").is_file():
        return workdir / "model.pb"
    workdir.mkdir(parents=True, exist_ok=True)
    params = recursive_merge(params, {})
    params["model"]["descriptor"]["seed"] = seed
    params["model"]["fitting_net"]["seed"] = seed
    params["training"].update(
        seed=seed,
        save_freq=params["training"]["numb_steps"],
        training_data={"systems": [str(data)], "batch_size": "auto"},
    )
    (workdir / "input.json").write_text(json.dumps(params))
    for args in (["train", "input.json"], ["freeze", "-o", "model.partial.pb"]):
        result = subprocess.run([str(BIN / "dp"), "--tf", *args], cwd=workdir, env=ENV, capture_output=True, text=True)
        if result.returncode:
            raise RuntimeError(f"dp {' '.join(args)} failed in {workdir}:\n{result.stderr[-2000:]}")
    return (workdir / "model.partial.pb").rename(workdir / "model.pb")


def train_ensemble(workers, params: dict, data: pathlib.Path, seeds: list[int], directory: pathlib.Path) -> list:
    jobs = [workers.submit(train_one, params, data, seed, directory / f"model{i}") for i, seed in enumerate(seeds)]
    return [job.result() for job in jobs]


class Evaluator:
    """Predictions of frozen models on the frames (one TensorFlow session per model, in this process)."""

    def __init__(self, frames):
        self.coords = frames.data["coords"].reshape(len(frames), -1)
        self.cells = frames.data["cells"].reshape(len(frames), 9)
        self.types = frames.data["atom_types"]
        self.energies = frames.data["energies"]
        self.forces = frames.data["forces"]
        self.natoms = frames.get_natoms()

    def predict(self, model: pathlib.Path, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        from deepmd.infer import DeepPot

        potential = DeepPot(str(model))
        energy, force, _ = potential.eval(self.coords[rows], self.cells[rows], self.types)
        return energy.reshape(-1), force.reshape(len(rows), -1, 3)

    def errors(self, predictions: list[tuple[np.ndarray, np.ndarray]], rows: np.ndarray) -> dict[str, float]:
        """Mean over the ensemble members of their energy (meV/atom) and force (eV/Å) RMSE on ``rows``."""
        energy = [np.sqrt(np.mean(((e - self.energies[rows]) / self.natoms) ** 2)) * 1000 for e, _ in predictions]
        force = [np.sqrt(np.mean((f - self.forces[rows]) ** 2)) for _, f in predictions]
        return {"energy_rmse": float(np.mean(energy)), "force_rmse": float(np.mean(force))}


def max_force_deviation(forces: list[np.ndarray]) -> np.ndarray:
    """Per frame ``max_i sqrt(<|F_i - <F_i>|^2>)`` of the members' forces (frames, atoms, 3)."""
    stacked = np.stack(forces)
    spread = stacked - stacked.mean(axis=0, keepdims=True)
    return np.sqrt((spread**2).sum(axis=-1).mean(axis=0)).max(axis=-1)


def pick(
    strategy: str,
    deviation: np.ndarray,
    batch: int,
    levels: TrustLevels,
    seed: int,
    fingerprints: np.ndarray,
    labeled: np.ndarray,
) -> np.ndarray:
    """Rows of ``deviation`` (the unlabeled pool frames, whose ``fingerprints`` are given) the strategy labels
    next; ``labeled``: the fingerprints of the frames labeled so far."""
    everything = np.arange(deviation.size)
    window = np.flatnonzero(classify(deviation, levels) == CANDIDATE)
    if strategy == "trust_window":
        return choose(window, deviation, batch, "random", seed)
    if strategy == "diverse":
        return choose(window, deviation, batch, "diverse", seed, fingerprints, labeled)
    if strategy == "max_deviation":
        return choose(everything, deviation, batch, "max_deviation", None)
    return choose(everything, deviation, batch, "random", seed)


def run_seed(seed: int, args, frames, held_out, pool, fingerprints, params, levels, root: pathlib.Path) -> dict:
    """One seed's curves; ``fingerprints``: of the pool frames, row for row."""
    evaluator = Evaluator(frames)
    rng = np.random.default_rng(1000 + seed)
    initial = rng.choice(pool.size, size=args.initial, replace=False)
    model_seeds = [int(s) for s in rng.integers(1, 2**31, size=args.models)]
    curves = {strategy: [] for strategy in STRATEGIES}
    labeled = {strategy: np.sort(initial) for strategy in STRATEGIES}
    shared_round = None
    with concurrent.futures.ThreadPoolExecutor(max_workers=args.jobs) as workers:
        for round_index in range(args.rounds + 1):
            for strategy in STRATEGIES:
                chosen = pool[labeled[strategy]]
                if round_index == 0 and shared_round is not None:
                    predictions, deviation = shared_round
                else:
                    directory = root / f"seed{seed}" / f"{strategy}-{round_index}"
                    data = directory / "data"
                    frames.sub_system(chosen).to("deepmd/npy", str(data))
                    models = train_ensemble(workers, params, data, model_seeds, directory)
                    remaining = np.setdiff1d(np.arange(pool.size), labeled[strategy])
                    predictions = [evaluator.predict(model, held_out) for model in models]
                    pool_forces = [evaluator.predict(model, pool[remaining])[1] for model in models]
                    deviation = np.full(pool.size, -np.inf)
                    deviation[remaining] = max_force_deviation(pool_forces)
                    if round_index == 0:
                        shared_round = predictions, deviation
                row = {"labels": int(chosen.size), **evaluator.errors(predictions, held_out)}
                available = np.flatnonzero(np.isfinite(deviation))
                window = classify(deviation[available], levels)
                row["pool_candidates"] = int(np.sum(window == CANDIDATE))
                row["pool_median_deviation"] = float(np.median(deviation[available]))
                curves[strategy].append(row)
                print(
                    f"seed {seed} round {round_index} {strategy:>13}: {row['labels']:3d} labels, held-out force "
                    f"{row['force_rmse']:.4f} eV/Å, energy {row['energy_rmse']:.2f} meV/atom; pool median "
                    f"deviation {row['pool_median_deviation']:.3f}, {row['pool_candidates']} in the window",
                    flush=True,
                )
                if round_index < args.rounds:
                    local = pick(
                        strategy,
                        deviation[available],
                        args.batch,
                        levels,
                        seed * 100 + round_index,
                        fingerprints[available],
                        fingerprints[labeled[strategy]],
                    )
                    labeled[strategy] = np.sort(np.concatenate([labeled[strategy], available[local]]))
    return curves


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--initial", type=int, default=2, help="random pool frames every strategy starts from")
    parser.add_argument("--batch", type=int, default=2, help="frames added per round")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--models", type=int, default=2, help="ensemble members")
    parser.add_argument(
        "--steps", type=int, default=6000, help="training steps (from scratch every round; 1,500 was training-limited)"
    )
    parser.add_argument("--held-out", type=float, default=0.25, help="fraction of each temperature held out")
    parser.add_argument("--jobs", type=int, default=2, help="trainings at a time")
    parser.add_argument(
        "--target", type=float, default=None, help="force RMSE target (eV/Å); default: the worst strategy's final mean"
    )
    parser.add_argument("--out", type=pathlib.Path, default=REPO / "bench-results" / "label_efficiency")
    parser.add_argument(
        "--workdir",
        type=pathlib.Path,
        default=None,
        help="keep the trainings here and reuse the finished ones when run again (resumes a stopped run); "
        "default: a temporary directory",
    )
    args = parser.parse_args()
    if not POOL_DATA.is_dir():
        sys.exit(f"skipped: the pool needs the UniPero frames in {POOL_DATA} (not part of a user's clone)")

    demo = yaml.safe_load(DEMO.read_text())
    levels = TrustLevels(**demo["trust"])
    frames, held_out, pool = load_pool(args.held_out)
    params = training_parameters(args.steps)
    symbols = [frames.data["atom_names"][t] for t in frames.data["atom_types"]]
    fingerprints = radial_fingerprints(frames.data["cells"][pool], frames.data["coords"][pool], symbols)
    print(
        f"pool {pool.size} frames, held out {held_out.size} (300/450/900 K, 40 atoms, ABACUS PBEsol); "
        f"trust {levels.force_lo}/{levels.force_hi} eV/Å; {args.models} models x {args.steps} steps per round"
    )
    start = time.perf_counter()
    with contextlib.ExitStack() as stack:
        root = args.workdir or pathlib.Path(stack.enter_context(tempfile.TemporaryDirectory()))
        results = {
            seed: run_seed(seed, args, frames, held_out, pool, fingerprints, params, levels, root)
            for seed in range(args.seeds)
        }
    title = f"UniPero BaTiO3 pool ({pool.size} frames), {args.seeds} seeds: held-out error against labels"
    report(results, STRATEGIES, "random", args.target, args.out, "pool", title)
    print(f"\nwall time {time.perf_counter() - start:.0f} s; results in {args.out}")


if __name__ == "__main__":
    main()
