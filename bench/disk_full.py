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

from aiida import load_profile
from aiida.engine import submit
from aiida.plugins import WorkflowFactory

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))


def computer_on(workdir: pathlib.Path):
    """This machine as `aiida-perovskite setup` describes it (profiles/computers/localhost.yaml), with its work
    directory on ``workdir``, and its ``dp`` code."""
    from aiida_perovskite.stack import PROFILES_DIR, CodeSpec, ensure_codes, ensure_computer, load_yaml

    spec = load_yaml(PROFILES_DIR / "computers" / "localhost.yaml")
    spec.update(label=f"disk-{workdir.name}", work_dir=str(workdir / "aiida"))
    computer = ensure_computer(spec)
    dp = [code for code in CodeSpec.from_yaml(PROFILES_DIR / "codes" / "localhost.yaml") if code.label == "dp"]
    return computer, ensure_codes(computer, dp)["dp"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("workdir", type=pathlib.Path, help="a small filesystem for the computer's work directory")
    parser.add_argument("--steps", type=int, default=4000, help="training steps (a checkpoint every 10)")
    args = parser.parse_args()
    load_profile()
    from aiida_perovskite.data import TrainingSetData
    from tests.helpers import lj_frames

    computer, code = computer_on(args.workdir)
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
