"""A distilled student against its teacher: the checks of a validated potential (docs/validation.md).

Takes a finished campaign of the loaded profile (its final compressed model, its teacher, its starting
structures and its stages) and runs two checks, each of which can fail (exit status 1):

1. **Held-out MD frames** (UniPero's Task II): NPT MD with the student (LAMMPS, the campaign's ensemble) from
   every system's starting structure at every temperature and pressure of its stages; after
   ``--equilibration`` steps a frame every ``--interval`` steps is labeled by the teacher. Energy (meV/atom)
   and force (eV/Å, per component, as ``dp test``) RMSE and MAE per condition and over all frames, against
   the bar force RMSE <= 0.05 eV/Å and energy RMSE <= 2 meV/atom.
2. **Relaxed phases**: cubic, tetragonal, orthorhombic and rhombohedral 2x2x2 cells relaxed under their own
   symmetry by the student and by the teacher: the same energy order, energies relative to cubic within
   2 meV/f.u., pseudocubic lengths within 0.3 %, angles within 0.05°; the Born-charge polarization of each.

    .venv/bin/python bench/validate_student.py --campaign PK [--out bench-results/validation]
    .venv/bin/python bench/validate_student.py --model FILE --campaign-file examples/distill-batio3.yaml

The second form checks a model file (e.g. a refined or shipped student) at the conditions of the campaign file
that produced it: its teacher, starting structures and stages, without the campaign in the profile.

Writes ``validation.json``, ``heldout-parity.png`` and ``heldout-conditions.png`` into ``--out``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import pathlib
import subprocess
import sys
import tempfile
import time

import numpy as np

FORCE_RMSE_BAR = 0.05  # eV/Å
ENERGY_RMSE_BAR = 2.0  # meV/atom


def campaign_parts(pk: int) -> dict:
    """The final compressed model of a finished campaign and the parts of its inputs the checks need."""
    from aiida import orm

    from aiida_perovskite.campaign.queries import final_model

    node = orm.load_node(pk)
    model = final_model(node)
    path = pathlib.Path(tempfile.mkdtemp(prefix="student-")) / model.filename
    path.write_bytes(model.get_content(mode="rb"))
    return _parts(node.inputs, path, model.type_map, node.label)


def file_parts(model: pathlib.Path, campaign_file: pathlib.Path) -> dict:
    """A model file checked at the conditions of ``campaign_file`` (built, not submitted)."""
    from aiida_perovskite.analysis.model_files import inspect_model_file
    from aiida_perovskite.campaign.builder import build_campaign
    from aiida_perovskite.campaign.spec import load_campaign

    campaign = load_campaign(campaign_file)
    builder = build_campaign(campaign, store=False)
    return _parts(builder, model.resolve(), inspect_model_file(model)["type_map"], campaign.name)


def _parts(inputs, model: pathlib.Path, type_map: list[str], label: str) -> dict:
    """The student, the teacher (identity and loaded evaluator), starting structures and stages of a campaign's
    inputs (a stored campaign's or an unsubmitted builder's)."""
    from aiida_perovskite.teachers import get_teacher

    teacher = inputs.label.engine_inputs["teacher"].get_dict()
    return {
        "model": model,
        "type_map": type_map,
        "teacher": teacher,
        "evaluator": get_teacher(teacher["kind"]).load(teacher, None, "cpu"),  # checks the checkpoint's hash
        "structures": {name: structure.get_ase() for name, structure in inputs.structures.items()},
        "stages": inputs.schedule.get_dict(),
        "label": label,
    }


def conditions_of(stages: dict) -> dict[str, list[tuple[str, float, float]]]:
    """Per system: the (ensemble, temperature, pressure) of every stage, each once."""
    found = {}
    for system, system_stages in stages.items():
        seen = []
        for stage in system_stages:
            for temperature in stage["temperatures"]:
                for pressure in stage.get("pressures") or [1.0]:
                    condition = (stage["ensemble"], float(temperature), float(pressure))
                    if condition not in seen:
                        seen.append(condition)
        found[system] = seen
    return found


def student_md(model: pathlib.Path, atoms, type_map, ensemble, temperature, pressure, steps, interval, seed):
    """Frames (cells, positions) of a LAMMPS run with the student, one every ``interval`` steps."""
    from aiida_perovskite.analysis.lammps_io import MdSettings, parse_dump, production_script, write_data_file
    from aiida_perovskite.calculations.defaults import SERIAL_ENVIRONMENT

    settings = MdSettings(
        ensemble=ensemble, temperature=temperature, pressure=pressure, steps=steps, sampling_interval=interval
    )
    with tempfile.TemporaryDirectory() as folder:
        folder = pathlib.Path(folder)
        with open(folder / "start.data", "w") as handle:
            write_data_file(handle, atoms, type_map)
        script = production_script(
            settings, str(model), type_map, seed, "start.data", "frames.dump", "final.data", interval
        )
        (folder / "in.lammps").write_text(script)
        result = subprocess.run(
            ["lmp", "-in", "in.lammps"],
            cwd=folder,
            capture_output=True,
            text=True,
            env={**os.environ, **SERIAL_ENVIRONMENT},
        )
        if result.returncode != 0:
            raise RuntimeError(f"lmp failed at {temperature} K: {result.stdout[-2000:]}{result.stderr[-2000:]}")
        return parse_dump((folder / "frames.dump").read_text(), type_map)


def held_out_check(parts: dict, steps: int, equilibration: int, interval: int, seed: int) -> dict:
    from deepmd.infer import DeepPot

    from aiida_perovskite.analysis.deepmd_outputs import errors_of_predictions

    teacher = parts["evaluator"]
    student = DeepPot(str(parts["model"]))
    type_map = parts["type_map"]
    rows, all_e, all_f = [], ([], []), ([], [])
    for system, conditions in conditions_of(parts["stages"]).items():
        start = parts["structures"][system]
        types = np.array([type_map.index(s) for s in start.get_chemical_symbols()])
        for ensemble, temperature, pressure in conditions:
            begin = time.perf_counter()
            md = student_md(parts["model"], start, type_map, ensemble, temperature, pressure, steps, interval, seed)
            keep = md["steps"] >= equilibration
            cells, positions = md["cells"][keep], md["positions"][keep]
            e_s, f_s, _ = student.eval(positions.reshape(len(cells), -1), cells.reshape(len(cells), -1), types)[:3]
            e_t, f_t = [], []
            for cell, coords in zip(cells, positions, strict=True):
                frame = start.copy()
                frame.set_cell(cell)
                frame.positions = coords
                energy, forces, _ = teacher(frame)
                e_t.append(energy)
                f_t.append(forces)
            natoms = len(start)
            e_s, e_t = np.ravel(e_s) / natoms * 1000, np.array(e_t) / natoms * 1000  # meV/atom
            f_s, f_t = np.asarray(f_s).reshape(len(cells), -1, 3), np.array(f_t)
            energy, force = errors_of_predictions(e_t, e_s), errors_of_predictions(f_t, f_s)
            rows.append(
                {
                    "system": system,
                    "ensemble": ensemble,
                    "temperature": temperature,
                    "pressure": pressure,
                    "frames": len(cells),
                    "energy_rmse": energy["rmse"],
                    "energy_mae": energy["mae"],
                    "force_rmse": force["rmse"],
                    "force_mae": force["mae"],
                    "volume_per_fu": float(np.mean(np.abs(np.linalg.det(cells)))) / (natoms / 5),
                    "seconds": time.perf_counter() - begin,
                }
            )
            for store, values in ((all_e[0], e_t), (all_e[1], e_s), (all_f[0], f_t), (all_f[1], f_s)):
                store.append(values)
            print(
                f"  {system:13s} {ensemble} {temperature:5.0f} K: {len(cells)} frames, force RMSE "
                f"{force['rmse']:.4f} eV/Å, energy RMSE {energy['rmse']:.2f} meV/atom",
                flush=True,
            )
    reference_e, predicted_e = np.concatenate(all_e[0]), np.concatenate(all_e[1])
    reference_f, predicted_f = np.concatenate(all_f[0]), np.concatenate(all_f[1])
    total = {
        "energy": errors_of_predictions(reference_e, predicted_e),
        "force": errors_of_predictions(reference_f, predicted_f),
        "energy_offset": float(np.mean(predicted_e - reference_e)),
    }
    passed = total["force"]["rmse"] <= FORCE_RMSE_BAR and total["energy"]["rmse"] <= ENERGY_RMSE_BAR
    arrays = {"energy": (reference_e, predicted_e), "force": (reference_f.ravel(), predicted_f.ravel())}
    return {"rows": rows, "total": total, "passed": passed, "arrays": arrays}


def relaxed_check(parts: dict) -> dict:
    import warnings

    from deepmd.calculator import DP

    from aiida_perovskite.analysis.relaxed_phases import compare_phases, relax_phases

    teacher = getattr(parts["evaluator"], "calculator", None)  # the ASE calculator the evaluator wraps
    if teacher is None:
        raise SystemExit("the relaxed-phase check runs the teacher as an ASE calculator: sevenn teachers only")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        phases = {"teacher": relax_phases(teacher), "student": relax_phases(DP(model=str(parts["model"])))}
    comparison = compare_phases(phases["student"], phases["teacher"])
    return {
        "phases": {who: {name: dataclasses.asdict(p) for name, p in found.items()} for who, found in phases.items()},
        "rows": comparison.rows,
        "student_order": comparison.student_order,
        "teacher_order": comparison.teacher_order,
        "passed": comparison.passed,
    }


def plot_held_out(result: dict, out: pathlib.Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, 2, figsize=(9, 4.2))
    for axis, (key, unit) in zip(axes, (("energy", "meV/atom"), ("force", "eV/Å")), strict=False):
        reference, predicted = result["arrays"][key]
        axis.plot(reference, predicted, ".", ms=2 if key == "force" else 4, alpha=0.5)
        low, high = min(reference.min(), predicted.min()), max(reference.max(), predicted.max())
        axis.plot([low, high], [low, high], "k-", lw=0.8)
        error = result["total"][key]
        axis.set(
            xlabel=f"teacher {key} ({unit})",
            ylabel=f"student {key} ({unit})",
            title=f"{key}: RMSE {error['rmse']:.3g}, MAE {error['mae']:.3g} {unit}",
        )
    figure.tight_layout()
    figure.savefig(out / "heldout-parity.png", dpi=120)

    figure, axes = plt.subplots(1, 2, figsize=(9, 3.8), sharex=True)
    for axis, (key, bar, unit) in zip(
        axes, (("force_rmse", FORCE_RMSE_BAR, "eV/Å"), ("energy_rmse", ENERGY_RMSE_BAR, "meV/atom")), strict=False
    ):
        for system in dict.fromkeys(row["system"] for row in result["rows"]):
            rows = [row for row in result["rows"] if row["system"] == system]
            axis.plot([r["temperature"] for r in rows], [r[key] for r in rows], "o-", label=system)
        axis.axhline(bar, color="k", ls="--", lw=0.8, label="bar")
        axis.set(xlabel="temperature (K)", ylabel=f"{key.replace('_', ' ')} ({unit})")
    axes[0].legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(out / "heldout-conditions.png", dpi=120)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--campaign", type=int, help="pk of a finished campaign")
    source.add_argument("--model", type=pathlib.Path, help="a frozen model file (with --campaign-file)")
    parser.add_argument("--campaign-file", type=pathlib.Path, help="the campaign file that made --model")
    parser.add_argument("--steps", type=int, default=4000, help="MD steps per condition")
    parser.add_argument("--equilibration", type=int, default=1000, help="steps before the first held-out frame")
    parser.add_argument("--interval", type=int, default=300, help="steps between held-out frames")
    parser.add_argument("--seed", type=int, default=20261124)
    parser.add_argument("--out", type=pathlib.Path, default=pathlib.Path("bench-results/validation"))
    args = parser.parse_args()
    if args.model is not None and args.campaign_file is None:
        parser.error("--model needs --campaign-file: the campaign file gives the teacher, structures and stages")

    from aiida import load_profile

    load_profile()
    args.out.mkdir(parents=True, exist_ok=True)
    parts = campaign_parts(args.campaign) if args.model is None else file_parts(args.model, args.campaign_file)
    print(
        f"campaign {parts['label']}<{args.campaign or args.campaign_file}>: student {parts['model']}, teacher "
        f"{parts['teacher']['model']} [{parts['teacher'].get('modal')}]",
        flush=True,
    )

    begin = time.perf_counter()
    print("1. held-out frames from student MD at every stage's conditions, labeled by the teacher", flush=True)
    held_out = held_out_check(parts, args.steps, args.equilibration, args.interval, args.seed)
    total = held_out["total"]
    print(
        f"   all {sum(r['frames'] for r in held_out['rows'])} frames: force RMSE {total['force']['rmse']:.4f} "
        f"(MAE {total['force']['mae']:.4f}) eV/Å, energy RMSE {total['energy']['rmse']:.2f} "
        f"(MAE {total['energy']['mae']:.2f}, mean offset {total['energy_offset']:+.2f}) meV/atom -> "
        f"{'PASS' if held_out['passed'] else 'FAIL'} (bars {FORCE_RMSE_BAR} eV/Å, {ENERGY_RMSE_BAR} meV/atom)",
        flush=True,
    )
    plot_held_out(held_out, args.out)
    held_out_seconds = time.perf_counter() - begin

    begin = time.perf_counter()
    print("2. relaxed phases, student against teacher", flush=True)
    relaxed = relaxed_check(parts)
    for row in relaxed["rows"]:
        print(
            f"   {row['phase']:13s} {row['quantity']:24s} student {row['student']:10.4f} teacher "
            f"{row['teacher']:10.4f} diff {row['difference']:+.4f} {'ok' if row['ok'] else 'FAIL'}"
        )
    for who in ("student", "teacher"):
        p = {name: round(np.linalg.norm(phase["polarization"]), 3) for name, phase in relaxed["phases"][who].items()}
        print(f"   {who}: energy order {relaxed[f'{who}_order']}, |P| (C/m²) {p}")
    print(f"   -> {'PASS' if relaxed['passed'] else 'FAIL'}", flush=True)
    relaxed_seconds = time.perf_counter() - begin

    held_out.pop("arrays")
    summary = {
        "campaign": args.campaign,
        "model": str(parts["model"]),
        "held_out": held_out,
        "relaxed": relaxed,
        "seconds": {"held_out": held_out_seconds, "relaxed": relaxed_seconds},
        "settings": vars(args),
    }
    (args.out / "validation.json").write_text(json.dumps(summary, indent=1, default=str))
    print(
        f"written {args.out}/validation.json, heldout-parity.png, heldout-conditions.png "
        f"({held_out_seconds:.0f} s + {relaxed_seconds:.0f} s)"
    )
    return 0 if held_out["passed"] and relaxed["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
