"""``perovskite-teacher``: the program a teacher labeling job runs (installed with the package).

    perovskite-teacher teacher.json     label frames.npz into labels.npz + failures.json (in the same folder)
    perovskite-teacher --version
    perovskite-teacher --list           the teacher kinds installed here

A fatal problem (teacher not installed, checkpoint missing or different) is written to status.json with
its reason and the program exits with 3; per-frame failures are data, not errors (exit 0).
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import sys
import time

from aiida_perovskite.teachers.batch import FRAMES_FILE, STATUS_FILE, FrameChecks, label_batch, read_frames

FATAL_EXIT = 3


def _status(directory: pathlib.Path, **values) -> None:
    (directory / STATUS_FILE).write_text(json.dumps(values, indent=1))


def run(input_file: pathlib.Path) -> int:
    from aiida_perovskite.teachers import TeacherError, get_teacher

    directory = input_file.parent
    settings = json.loads(input_file.read_text())
    if settings.get("threads"):
        for variable in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "DP_INTRA_OP_PARALLELISM_THREADS"):
            os.environ[variable] = str(settings["threads"])
        os.environ["DP_INTER_OP_PARALLELISM_THREADS"] = "1"
    identity = settings["teacher"]
    started = time.monotonic()
    try:
        teacher = get_teacher(identity["kind"])
        model_file = directory / settings["model_file"] if settings.get("model_file") else None
        evaluator = teacher.load(identity, model_file, settings.get("device", "cpu"))
    except TeacherError as exc:
        _status(directory, ok=False, reason=exc.reason, message=str(exc))
        print(f"perovskite-teacher: {exc}", file=sys.stderr)
        return FATAL_EXIT
    loaded = time.monotonic()
    frames = read_frames(directory / FRAMES_FILE)
    result = label_batch(
        evaluator,
        frames,
        FrameChecks(**settings["checks"]),
        checkpoint=lambda labels: labels.write(directory),
        checkpoint_seconds=float(settings.get("checkpoint_seconds", 30.0)),
    )
    finished = time.monotonic()
    _status(
        directory,
        ok=True,
        frames=len(frames),
        labeled=len(result.names),
        failed=len(result.failures),
        load_seconds=round(loaded - started, 3),
        label_seconds=round(finished - loaded, 3),
    )
    print(
        f"labeled {len(result.names)} of {len(frames)} frames with {identity['kind']} {identity['model']} in "
        f"{finished - loaded:.2f} s (teacher loaded in {loaded - started:.2f} s)"
    )
    for name, reason in result.failures.items():
        print(f"failed {name}: {reason}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="perovskite-teacher", description=__doc__.split("\n\n")[0])
    parser.add_argument("input", nargs="?", type=pathlib.Path, help="the job's teacher.json")
    parser.add_argument("--version", action="store_true", help="print the version and exit")
    parser.add_argument("--list", action="store_true", help="list the teacher kinds installed here")
    args = parser.parse_args(argv)
    if args.version:
        from aiida_perovskite import __version__

        print(f"perovskite-teacher {__version__}")
        return 0
    if args.list:
        from aiida_perovskite.teachers import registered_teachers

        for kind, entry in sorted(registered_teachers().items()):
            print(f"{kind}\t{entry.value}")
        return 0
    if args.input is None:
        parser.error("give the job's teacher.json")
    status = run(args.input.resolve())
    # Every output is written and closed: leave without the interpreter's teardown of torch and the teacher
    # (~1 s per job, which the campaign would wait for before its next step; bench/overhead.py).
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)


if __name__ == "__main__":
    sys.exit(main())
