"""A labeling executable that fails a given fraction of its jobs the ways real jobs fail, in front of the real
``perovskite-teacher``, for the fault-injection bench (bench/faults.py) and tests.

    faulty_teacher.py --write PATH --teacher EXE --rate 0.3 --seed 0   write the executable a code points at

Each job draws from a generator seeded by the seed and its job folder (a retry is a new folder, so it draws
again). With probability ``rate`` it injects one fault, named on stderr (teacher.log):
``crash`` (exits 1 before labeling), ``walltime`` (killed with SIGKILL after 1 s, as a scheduler at the time
limit), ``garbage`` (labels.npz overwritten with random bytes) or ``nan`` (one frame's forces set to NaN)."""

from __future__ import annotations

import argparse
import hashlib
import os
import pathlib
import random
import signal
import stat
import subprocess
import sys
import time

FAULTS = ("crash", "walltime", "garbage", "nan")
FAULT_LINE = "injected fault: "


def write(path: pathlib.Path, teacher: str, rate: float, seed: int) -> pathlib.Path:
    path.write_text(
        f"#!{sys.executable}\nimport sys\nsys.path.insert(0, {str(pathlib.Path(__file__).parent)!r})\n"
        f"from faulty_teacher import run\nsys.exit(run({teacher!r}, {rate!r}, {seed!r}, sys.argv[1:]))\n"
    )
    path.chmod(path.stat().st_mode | stat.S_IEXEC)
    return path


def run(teacher: str, rate: float, seed: int, args: list[str]) -> int:
    draw = random.Random(hashlib.sha256(f"{seed}:{os.getcwd()}".encode()).hexdigest())
    if draw.random() >= rate:
        os.execv(teacher, [teacher, *args])
    fault = draw.choice(FAULTS)
    print(f"{FAULT_LINE}{fault}", file=sys.stderr, flush=True)
    if fault == "crash":
        return 1
    process = subprocess.Popen([teacher, *args])
    if fault == "walltime":
        time.sleep(1.0)
        process.send_signal(signal.SIGKILL)
        process.wait()
        return 128 + signal.SIGKILL
    code = process.wait()
    labels = pathlib.Path("labels.npz")
    if fault == "garbage":
        labels.write_bytes(draw.randbytes(4096))
    else:
        import numpy as np

        with np.load(labels) as data:
            arrays = dict(data)
        if len(arrays["forces"]):  # the teacher may have rejected every frame
            arrays["forces"][0] = np.nan
        with open(labels, "wb") as handle:
            np.savez(handle, **arrays)
    return code


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--write", type=pathlib.Path, required=True)
    parser.add_argument("--teacher", required=True)
    parser.add_argument("--rate", type=float, default=0.3)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    print(write(args.write, args.teacher, args.rate, args.seed))


if __name__ == "__main__":
    main()
