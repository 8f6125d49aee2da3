"""A disk that fills while a job runs: a training on a computer whose work directory is a small filesystem.

    mount -t tmpfs -o size=1m tmpfs /mnt/tiny               # as root; the job's checkpoints do not fit
    python bench/disk_full.py /mnt/tiny                      # -> the training pauses, saying why and how to go on
    mount -o remount,size=50m /mnt/tiny; verdi process play PK   # -> the job runs again and finishes

Uses the loaded profile and its daemon (docs/reliability.md, "A broken set-up")."""

from __future__ import annotations

import argparse
import pathlib
import sys
import time

from aiida import load_profile, orm
from aiida.common.exceptions import NotExistent
from aiida.engine import submit
from aiida.plugins import WorkflowFactory

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))


def computer_on(workdir: pathlib.Path) -> orm.Computer:
    label = f"disk-{workdir.name}"
    try:
        return orm.load_computer(label)
    except NotExistent:
        computer = orm.Computer(
            label=label,
            hostname="localhost",
            transport_type="core.local",
            scheduler_type="core.direct",
            workdir=str(workdir / "aiida"),
        ).store()
        computer.configure(safe_interval=0)
        computer.set_minimum_job_poll_interval(0.5)
        return computer


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("workdir", type=pathlib.Path, help="a small filesystem for the computer's work directory")
    parser.add_argument("--steps", type=int, default=4000, help="training steps (a checkpoint every 10)")
    args = parser.parse_args()
    load_profile()
    from aiida_perovskite.data import TrainingSetData
    from tests.helpers import lj_frames

    computer = computer_on(args.workdir)
    try:
        code = orm.load_code(f"dp@{computer.label}")
    except NotExistent:
        dp = pathlib.Path(sys.executable).parent / "dp"
        code = orm.InstalledCode(
            label="dp",
            computer=computer,
            filepath_executable=str(dp),
            default_calc_job_plugin="perovskite.deepmd.train",
        ).store()
    overrides = {"parameters": {"training": {"numb_steps": args.steps, "disp_freq": 10, "save_freq": 10}}}
    builder = WorkflowFactory("perovskite.deepmd.train.base").get_builder_from_protocol(
        code, TrainingSetData([lj_frames(nframes=8)]).store(), protocol="fast", overrides=overrides, seed=7
    )
    node = submit(builder)
    print(f"submitted {node.process_label}<{node.pk}> on {computer.label} ({args.workdir})", flush=True)
    while not (node.paused or node.is_terminated):
        time.sleep(2)
    for process in [node, *node.called]:
        state = "paused" if process.paused else process.process_state.value
        print(f"{process.process_label}<{process.pk}> {state} [{process.exit_status}] {process.exit_message or ''}")
    print(f"status: {node.process_status}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
