"""Label efficiency in the loop itself: selection by model deviation against naive sampling, side by side.

The demo campaign (examples/demo-batio3.yaml: SevenNet-MF-0 r2SCAN teacher, a 2x2x2 rhombohedral BaTiO3 cell,
NPT at 50-450 K, 2-model ensembles) runs once per ``exploration.selection_mode`` and seed, with the same
exploration, teacher, training settings, labels per iteration and number of iterations:

- ``random``: the campaign's rule, random among the frames between the trust levels;
- ``max_deviation``: the candidates with the highest deviation first;
- ``uniform``: any explored frame that passes the sanity filter, deviations ignored (naive sampling);
- ``diverse``: farthest-point sampling among the candidates in a radial-fingerprint space, away from the
  frames the ensemble was trained on.

Every campaign is tested each iteration on one fixed held-out set (``validation.training_set``): frames of the
teacher's own MD at the campaign's temperatures (ASE Langevin, NVT on the starting cell, the teacher's labels),
made once and reused. Prints the held-out force and energy RMSE against the labels (mean and spread over the
seeds) and the labels each strategy needs to reach a target force RMSE, as a ratio to ``uniform``.

Needs a profile with a running daemon and the dp, lmp and teacher codes (``aiida-perovskite setup``).

    .venv/bin/python bench/label_efficiency_campaign.py [--seeds 3] [--iterations 5] [--held-out-steps 400]

A rerun takes the campaigns an earlier run left (finished, or still running after a daemon restart) for the same
campaign file instead of submitting them again, so an interrupted benchmark continues where it stopped.
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import json
import pathlib
import sys
import time

import numpy as np
import yaml

REPO = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from efficiency import report  # noqa: E402

DEMO = REPO / "examples" / "demo-batio3.yaml"
STRATEGIES = ("random", "max_deviation", "uniform", "diverse")


def campaign_file(demo: dict, mode: str, seed: int, iterations: int, validation_pk: int) -> dict:
    """The demo campaign with one selection mode and seed, a fixed number of iterations, tested on one set."""
    campaign = copy.deepcopy(demo)
    campaign.update(
        name=f"label-efficiency-{mode}-{seed}",
        seed=seed,
        convergence={"accurate_fraction": 1.0, "max_iterations": iterations},
        validation={"held_out_fraction": 0.0, "training_set": validation_pk},
    )
    campaign["stages"] = [{**stage, "max_iterations": iterations} for stage in campaign["stages"]]
    campaign["exploration"] = {**campaign.get("exploration", {}), "selection_mode": mode}
    campaign["training"] = {key: value for key, value in campaign["training"].items() if key != "final"}
    campaign.pop("analysis", None)
    return campaign


def teacher_md_set(demo: dict, steps: int, interval: int, seed: int):
    """A TrainingSetData of the teacher's own NVT MD at every temperature of the demo's stages."""
    from ase import units
    from ase.calculators.calculator import Calculator, all_changes
    from ase.md.langevin import Langevin
    from ase.md.velocitydistribution import MaxwellBoltzmannDistribution
    from ase.stress import full_3x3_to_voigt_6_stress

    from aiida_perovskite.analysis.frames import LabeledFrames
    from aiida_perovskite.campaign.spec import parse_campaign
    from aiida_perovskite.data import TrainingSetData
    from aiida_perovskite.engines import get_engine
    from aiida_perovskite.structures import parent_cell
    from aiida_perovskite.teachers import describe_teacher, get_teacher

    request = demo["labeling"]["teacher"]
    identity = describe_teacher(request)
    evaluator = get_teacher(request["kind"]).load(identity, None, "cpu")

    class TeacherCalculator(Calculator):
        implemented_properties = ("energy", "forces", "stress")

        def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
            super().calculate(atoms, properties, system_changes)
            energy, forces, virial = evaluator(self.atoms)
            stress = -virial / self.atoms.get_volume()
            self.results = {
                "energy": energy,
                "forces": forces,
                "stress": full_3x3_to_voigt_6_stress(stress),
                "virial": virial,  # DeePMD's sign, kept for the labels
            }

    spec = next(iter(parse_campaign(copy.deepcopy(demo)).systems.values()))
    start = parent_cell(spec.value, spec.phase, spec.lattice_constant, spec.c_over_a, spec.angle, spec.displacement)
    start = start.repeat(spec.repeat)
    temperatures = sorted({t for stage in demo["stages"] for t in stage["temperatures"]})
    type_map = sorted(set(start.get_chemical_symbols()), key=start.get_chemical_symbols().index)
    cells, coords, energies, forces, virials = [], [], [], [], []
    rng = np.random.default_rng(seed)
    for temperature in temperatures:
        atoms = start.copy()
        atoms.calc = TeacherCalculator()
        MaxwellBoltzmannDistribution(atoms, temperature_K=temperature, rng=rng)
        dynamics = Langevin(atoms, 2 * units.fs, temperature_K=temperature, friction=0.02, rng=rng)
        for _ in range(steps // interval):
            dynamics.run(interval)
            energy = atoms.get_potential_energy()  # the step's own evaluation, not a second one
            force, virial = atoms.get_forces(), atoms.calc.results["virial"]
            cells.append(atoms.cell[:].copy())
            coords.append(atoms.positions.copy())
            energies.append(energy)
            forces.append(force)
            virials.append(virial)
        print(f"teacher MD at {temperature} K: {steps // interval} frames", flush=True)
    frames = LabeledFrames(
        type_map=type_map,
        atom_types=np.array([type_map.index(s) for s in start.get_chemical_symbols()]),
        cells=np.array(cells),
        coords=np.array(coords),
        energies=np.array(energies),
        forces=np.array(forces),
        virials=np.array(virials),
    )
    from aiida import orm

    source = get_engine("teacher").label_source(engine_inputs={"teacher": orm.Dict(identity)})
    return TrainingSetData([frames], type_map=type_map, label_sources=[source]).store()


def held_out_set(demo: dict, args, cache: pathlib.Path):
    """The fixed held-out set of this profile: made once (``cache`` remembers its uuid), then reused."""
    from aiida import orm
    from aiida.common.exceptions import NotExistent

    if cache.is_file():
        try:
            return orm.load_node(json.loads(cache.read_text())["uuid"])
        except NotExistent:
            pass
    node = teacher_md_set(demo, args.held_out_steps, args.held_out_interval, seed=12345)
    node.label = "label-efficiency held-out set: teacher MD"
    cache.write_text(json.dumps({"uuid": node.uuid, "pk": node.pk}))
    return node


def run_campaign(campaign: dict, timeout: float) -> list[dict]:
    """Run one campaign (or take the one an earlier run of this bench left, finished or still running, for the same
    file), wait for it, and return its curve: labels and held-out errors per iteration."""
    from aiida import orm
    from aiida.engine import submit

    from aiida_perovskite.campaign.builder import build_campaign
    from aiida_perovskite.campaign.spec import parse_campaign
    from aiida_perovskite.loop.schedule import labels_behind
    from aiida_perovskite.workflows.concurrent_learning import ConcurrentLearningWorkChain

    key = hashlib.sha256(json.dumps(campaign, sort_keys=True).encode()).hexdigest()
    earlier = orm.QueryBuilder().append(orm.WorkChainNode, filters={"extras.label_efficiency_run": key}, project="*")
    not_converged = ConcurrentLearningWorkChain.exit_codes.ERROR_NOT_CONVERGED.status  # the fixed iterations ran
    usable = [n for n in earlier.all(flat=True) if not n.is_terminated or n.exit_status in (0, not_converged)]
    if usable:
        node = max(usable, key=lambda n: n.ctime)
        print(f"{campaign['name']}: taking ConcurrentLearningWorkChain<{node.pk}> from an earlier run", flush=True)
    else:
        node = submit(build_campaign(parse_campaign(campaign)))
        node.base.extras.set_many({"campaign": node.uuid, "label_efficiency_run": key})
    start = time.monotonic()
    while not node.is_terminated:
        if time.monotonic() - start > timeout:
            raise TimeoutError(f"{campaign['name']}: ConcurrentLearningWorkChain<{node.pk}> still running")
        time.sleep(10)
    node = orm.load_node(node.pk)
    if node.exit_status not in (0, not_converged):
        if usable:  # taken over while running, then failed (e.g. its jobs died with the machine): run it afresh
            print(f"{campaign['name']}<{node.pk}> ended with exit {node.exit_status}: running it again", flush=True)
            return run_campaign(campaign, timeout)
        raise RuntimeError(f"{campaign['name']}<{node.pk}> ended with exit {node.exit_status}: {node.exit_message}")
    rows = [
        {
            "labels": labels_behind(record),
            "force_rmse": record["validation"]["force_rmse"],
            "energy_rmse": 1000 * record["validation"]["energy_rmse_per_atom"],
            "accurate_fraction": float(np.mean([s["accurate_fraction"] for s in record["systems"].values()])),
        }
        for record in node.outputs.history.get_list()
    ]
    print(
        f"{campaign['name']} <{node.pk}> exit {node.exit_status}: "
        + ", ".join(f"{row['labels']}: {row['force_rmse']:.3f}" for row in rows),
        flush=True,
    )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--iterations", type=int, default=5, help="iterations of every campaign")
    parser.add_argument("--held-out-steps", type=int, default=400, help="teacher MD steps per temperature")
    parser.add_argument("--held-out-interval", type=int, default=20, help="MD steps between held-out frames")
    parser.add_argument("--timeout", type=float, default=7200, help="seconds one campaign may take")
    parser.add_argument(
        "--target", type=float, default=None, help="force RMSE target (eV/Å); default: the worst strategy's final mean"
    )
    parser.add_argument("--out", type=pathlib.Path, default=REPO / "bench-results" / "label_efficiency")
    args = parser.parse_args()

    from aiida import load_profile

    profile = load_profile()
    demo = yaml.safe_load(DEMO.read_text())
    args.out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    validation = held_out_set(demo, args, args.out / f"held_out_{profile.name}.json")
    print(f"held-out set: TrainingSetData<{validation.pk}>, {validation.nframes} teacher-MD frames", flush=True)
    results = {
        seed: {
            mode: run_campaign(campaign_file(demo, mode, seed, args.iterations, validation.pk), args.timeout)
            for mode in STRATEGIES
        }
        for seed in range(1, args.seeds + 1)
    }
    title = f"BaTiO3 demo campaign, {args.seeds} seeds: error on {validation.nframes} teacher-MD frames against labels"
    report(results, STRATEGIES, "uniform", args.target, args.out, "campaign", title)
    print(f"\nwall time {time.perf_counter() - start:.0f} s; results in {args.out}")


if __name__ == "__main__":
    main()
