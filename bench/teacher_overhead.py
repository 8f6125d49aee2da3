"""Teacher labeling through AiiDA against the same teacher called directly in one Python loop.

Both label the same frames (perturbed BaTiO3, 5 and 40 atoms) with SevenNet-MF-0 (r2SCAN) on one thread per
process: directly (load the teacher once, label frame by frame), and as a LabelWorkChain through the daemon of
the current profile (batches of ``--batch`` frames, one job at a time, then two). The difference per frame is
what AiiDA costs: storing the structures, writing and reading the job files, starting the program and loading
the teacher in each job, polling, parsing, assembling the training set.

    aiida-perovskite setup          # once: profile, daemon, teacher@localhost
    python bench/teacher_overhead.py [--frames 5:200 40:100] [--batch 100]
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")


def frames_of(natoms: int, count: int, seed: int = 0):
    from aiida_perovskite.structures import parent_cell, perturb

    repeat = round((natoms / 5) ** (1 / 3))
    parent = parent_cell("BaTiO3", "tetragonal", displacement=0.1).repeat(repeat)
    return perturb(parent, count=count, seed=seed, cell_strain=0.02, atom_displacement=0.1)


def direct(frames) -> tuple[float, float]:
    """Seconds to load the teacher, and to label every frame, in this process."""
    import torch

    from aiida_perovskite.teachers import describe_teacher, get_teacher

    torch.set_num_threads(1)
    start = time.perf_counter()
    identity = describe_teacher({"kind": "sevenn", "model": "7net-mf-0", "modal": "R2SCAN"})
    evaluator = get_teacher("sevenn").load(identity, None, "cpu")
    loaded = time.perf_counter()
    for atoms in frames:
        evaluator(atoms)
    return loaded - start, time.perf_counter() - loaded


def through_aiida(frames, batch: int, concurrent: int) -> tuple[float, dict]:
    """Wall seconds from building the inputs to the finished LabelWorkChain, and its job timings."""
    from aiida import orm
    from aiida.engine import submit

    from aiida_perovskite.engines.teacher import teacher_inputs
    from aiida_perovskite.workflows.label import LabelWorkChain

    start = time.perf_counter()
    builder = LabelWorkChain.get_builder()
    builder.engine, builder.code = orm.Str("teacher"), orm.load_code("teacher@localhost")
    builder.engine_inputs = teacher_inputs({"kind": "sevenn", "model": "7net-mf-0", "modal": "R2SCAN"})
    builder.overrides = orm.Dict({"batch_size": batch})
    builder.max_concurrent = orm.Int(concurrent)
    builder.structures = {f"f{index}": orm.StructureData(ase=atoms) for index, atoms in enumerate(frames)}
    node = submit(builder)
    while not node.is_terminated:
        time.sleep(0.2)
    wall = time.perf_counter() - start
    assert node.is_finished_ok, node.exit_message
    assert node.outputs.training_set.nframes == len(frames)
    jobs = [c for c in node.called if c.process_label == "TeacherLabelCalculation"]
    timings = {
        "jobs": len(jobs),
        "load": sum(j.outputs.timings["load_seconds"] for j in jobs),
        "label": sum(j.outputs.timings["label_seconds"] for j in jobs),
    }
    return wall, timings


def main() -> None:
    from aiida import load_profile

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", nargs="+", default=["5:200", "40:100"], help="natoms:count pairs")
    parser.add_argument("--batch", type=int, default=100)
    args = parser.parse_args()
    load_profile()
    print(
        f"{'atoms':>5} {'frames':>6} | {'direct: load':>12} {'label':>7} {'frames/s':>8} | "
        f"{'AiiDA 1 job at a time':>22} {'frames/s':>8} {'overhead/frame':>14} | {'2 at a time':>11} {'frames/s':>8}"
    )
    for pair in args.frames:
        natoms, count = (int(value) for value in pair.split(":"))
        frames = frames_of(natoms, count)
        load, label = direct(frames)
        direct_total = load + label
        serial, timings = through_aiida(frames, args.batch, 1)
        parallel, _ = through_aiida(frames, args.batch, 2)
        overhead = (serial - label) / count
        print(
            f"{natoms:>5} {count:>6} | {load:>11.2f}s {label:>6.2f}s {count / direct_total:>8.1f} | "
            f"{serial:>21.2f}s {count / serial:>8.1f} {1000 * overhead:>11.1f} ms | "
            f"{parallel:>10.2f}s {count / parallel:>8.1f}"
        )
        print(
            f"      in the AiiDA run: {timings['jobs']} job(s), teacher loaded in {timings['load']:.2f} s in all, "
            f"labeling {timings['label']:.2f} s; AiiDA / direct wall = {serial / direct_total:.2f}"
        )


if __name__ == "__main__":
    main()
