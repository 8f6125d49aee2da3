"""Orchestration overhead of a campaign: its wall time against the time the external codes actually ran.

For every CalcJob of the campaign the code ran from the moment its job script was written to the moment its
last output file was written (read from the job folder); the union of those intervals is the time the campaign
could not have been shorter than with this orchestration's job order. wall / union is the overhead ratio
(1.00: AiiDA added nothing). Per CalcJob the time before the code ran (upload, queue, poll) and after (poll,
retrieve, parse) is split out, per process type, and the time spent in calcfunctions is summed.

    python bench/overhead.py --pk 1234            # a finished campaign of the loaded profile
    python bench/overhead.py --run examples/demo-batio3.yaml   # submit it, wait, then measure

Run it on each storage stack's profile (AIIDA_PATH / `verdi profile set-default`) to compare them."""

from __future__ import annotations

import argparse
import collections
import os
import pathlib
import time

import numpy as np


def code_interval(calc) -> tuple[float, float] | None:
    """(job script written, last output written) in epoch seconds, from the job folder; None if it is gone."""
    workdir = calc.get_remote_workdir()
    if not workdir or not os.path.isdir(workdir):
        return None
    root = pathlib.Path(workdir)
    script = root / "_aiidasubmit.sh"
    if not script.exists():
        return None
    start = script.stat().st_mtime
    last = start
    for path in root.rglob("*"):
        if ".aiida" in path.relative_to(root).parts or path.is_symlink() or not path.is_file():
            continue
        last = max(last, path.stat().st_mtime)
    return start, last


def union_length(intervals: list[tuple[float, float]]) -> float:
    """Total length covered by possibly overlapping intervals."""
    total, end = 0.0, -np.inf
    for start, stop in sorted(intervals):
        if stop <= end:
            continue
        total += stop - max(start, end)
        end = stop
    return total


def analyse(campaign) -> dict:
    """Wall time, code time (sum and union), overhead ratio and the per-type split of one campaign."""
    from aiida import orm

    descendants = [n for n in campaign.called_descendants if isinstance(n, orm.ProcessNode)]
    wall = (campaign.mtime - campaign.ctime).total_seconds()
    intervals, per_type = [], collections.defaultdict(lambda: {"jobs": 0, "code": 0.0, "before": 0.0, "after": 0.0})
    missing = 0
    for calc in (n for n in descendants if isinstance(n, orm.CalcJobNode)):
        interval = code_interval(calc)
        if interval is None:
            missing += 1
            continue
        start, stop = interval
        intervals.append(interval)
        row = per_type[calc.process_label]
        row["jobs"] += 1
        row["code"] += stop - start
        row["before"] += start - calc.ctime.timestamp()
        row["after"] += calc.mtime.timestamp() - stop
    functions = [n for n in descendants if isinstance(n, orm.CalcFunctionNode)]
    function_time = sum((n.mtime - n.ctime).total_seconds() for n in functions)
    union = union_length(intervals)
    return {
        "campaign": campaign.pk,
        "label": campaign.label,
        "wall_s": wall,
        "code_sum_s": sum(stop - start for start, stop in intervals),
        "code_union_s": union,
        "ratio": wall / union if union else float("inf"),
        "calcjobs": len(intervals),
        "calcjobs_without_folder": missing,
        "calcfunctions": len(functions),
        "calcfunction_s": function_time,
        "per_type": {label: dict(row) for label, row in sorted(per_type.items())},
    }


def print_report(result: dict) -> None:
    print(
        f"campaign {result['label']} <{result['campaign']}>: wall {result['wall_s']:.0f} s, external codes "
        f"{result['code_union_s']:.0f} s (union; sum {result['code_sum_s']:.0f} s over {result['calcjobs']} jobs): "
        f"wall / code = {result['ratio']:.2f}"
    )
    print(
        f"calcfunctions: {result['calcfunctions']}, {result['calcfunction_s']:.1f} s in all "
        f"({result['calcfunction_s'] / max(result['calcfunctions'], 1) * 1000:.0f} ms each)"
    )
    if result["calcjobs_without_folder"]:
        print(f"({result['calcjobs_without_folder']} CalcJobs without a job folder left out)")
    print(f"{'process':32} {'jobs':>5} {'code s/job':>11} {'before s/job':>13} {'after s/job':>12}")
    for label, row in result["per_type"].items():
        n = row["jobs"]
        print(f"{label:32} {n:5d} {row['code'] / n:11.1f} {row['before'] / n:13.1f} {row['after'] / n:12.1f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--pk", type=int, help="a finished campaign of the loaded profile")
    group.add_argument("--run", type=pathlib.Path, help="a campaign file to submit and measure")
    args = parser.parse_args()

    from aiida import load_profile, orm

    load_profile()
    if args.pk is not None:
        campaign = orm.load_node(args.pk)
    else:
        from aiida.engine import submit

        from aiida_perovskite.campaign.builder import build_campaign
        from aiida_perovskite.campaign.spec import load_campaign

        campaign = submit(build_campaign(load_campaign(args.run)))
        print(f"submitted ConcurrentLearningWorkChain<{campaign.pk}>", flush=True)
        while not campaign.is_terminated:
            time.sleep(5)
    print_report(analyse(campaign))


if __name__ == "__main__":
    main()
