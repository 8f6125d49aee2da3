"""Orchestration overhead of a campaign: its wall time against the time the external codes actually ran.

For every CalcJob of the campaign the code ran from the moment its job script was written to the moment its
last output file was written (read from the job folder); the union of those intervals is the time the campaign
could not have been shorter than with this orchestration's job order. wall / union is the overhead ratio
(1.00: AiiDA added nothing). Per CalcJob the time before the code ran (upload, queue, poll) and after (poll,
retrieve, parse) is split out, per process type, with the jobs per minute of each type and the hand-over
times of its first and last 10 % of jobs (a slowdown as the database grows shows there); the time spent in
calcfunctions is summed per function. With --run, the resident memory of the daemon workers is sampled
every 5 s while the campaign runs.

    python bench/overhead.py --pk 1234            # a finished campaign of the loaded profile
    python bench/overhead.py --run examples/demo-batio3.yaml   # submit it, wait, then measure
    python bench/overhead.py --run bench/campaigns/scale-teacher.yaml --json bench-results/overhead/scale.json

Run it on each storage stack's profile (AIIDA_PATH / `verdi profile set-default`) to compare them."""

from __future__ import annotations

import argparse
import collections
import json
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


def idle_gaps(jobs: list[dict], begin: float, finish: float) -> list[dict]:
    """The stretches between ``begin`` and ``finish`` when no external code ran (the hand-overs between steps,
    where the campaign waits only for AiiDA), each split into: the job whose code ended last -> that job done
    in AiiDA (the code's exit, the poll, retrieval, parsing); the next job created -> its script written
    (upload, submission); and between them the workflow steps and calcfunctions."""
    gaps, end, previous = [], begin, None
    for job in sorted(jobs, key=lambda job: job["start"]):
        if job["start"] > end:
            gaps.append(_split_gap(end, job["start"], previous, job))
        if job["stop"] > end:
            end, previous = job["stop"], job
    if finish > end:
        gaps.append(_split_gap(end, finish, previous, None))
    return gaps


def _split_gap(start: float, stop: float, previous: dict | None, following: dict | None) -> dict:
    finished = min(max(previous["mtime"], start), stop) if previous else start
    upload = stop - max(following["ctime"], finished) if following else 0.0
    return {
        "length": stop - start,
        "job_done": finished - start,
        "upload": upload,
        "workflow": stop - start - (finished - start) - upload,
    }


def analyse(campaign) -> dict:
    """Wall time, code time (sum and union), overhead ratio and the per-type split of one campaign."""
    from aiida import orm

    descendants = [n for n in campaign.called_descendants if isinstance(n, orm.ProcessNode)]
    wall = (campaign.mtime - campaign.ctime).total_seconds()
    jobs_of_type, missing = collections.defaultdict(list), 0
    for calc in sorted((n for n in descendants if isinstance(n, orm.CalcJobNode)), key=lambda n: n.ctime):
        interval = code_interval(calc)
        if interval is None:
            missing += 1
            continue
        start, stop = interval
        jobs_of_type[calc.process_label].append(
            {"ctime": calc.ctime.timestamp(), "mtime": calc.mtime.timestamp(), "start": start, "stop": stop}
        )
    per_type = {label: job_statistics(jobs) for label, jobs in sorted(jobs_of_type.items())}
    functions = collections.defaultdict(list)
    for node in descendants:
        if isinstance(node, orm.CalcFunctionNode):
            functions[node.process_label].append((node.mtime - node.ctime).total_seconds())
    function_time = sum(sum(times) for times in functions.values())
    all_jobs = [job for jobs in jobs_of_type.values() for job in jobs]
    intervals = [(job["start"], job["stop"]) for job in all_jobs]
    union = union_length(intervals)
    gaps = idle_gaps(all_jobs, campaign.ctime.timestamp(), campaign.mtime.timestamp())
    return {
        "campaign": campaign.pk,
        "label": campaign.label,
        "exit_status": campaign.exit_status,
        "wall_s": wall,
        "code_sum_s": sum(stop - start for start, stop in intervals),
        "code_union_s": union,
        "ratio": wall / union if union else float("inf"),
        "idle_gaps": {
            "count": len(gaps),
            "total_s": sum(gap["length"] for gap in gaps),
            "largest_s": sorted(gap["length"] for gap in gaps)[-3:][::-1],
            **{f"{part}_s": sum(gap[part] for gap in gaps) for part in ("job_done", "workflow", "upload")},
        },
        "calcjobs": len(intervals),
        "calcjobs_without_folder": missing,
        "calcfunctions": sum(len(times) for times in functions.values()),
        "calcfunction_s": function_time,
        "calcfunction_per_type": {
            label: {"calls": len(times), "total_s": sum(times)}
            for label, times in sorted(functions.items(), key=lambda item: -sum(item[1]))
        },
        "per_type": per_type,
    }


def job_statistics(jobs: list[dict]) -> dict:
    """Count, summed code/before/after times, jobs per minute and the hand-over (before + after) of the first
    and last 10 % of the jobs of one type, in creation order."""
    n = len(jobs)
    handover = [(job["start"] - job["ctime"]) + (job["mtime"] - job["stop"]) for job in jobs]
    tenth = max(n // 10, 1)
    span = max(job["mtime"] for job in jobs) - min(job["ctime"] for job in jobs)
    return {
        "jobs": n,
        "code": sum(job["stop"] - job["start"] for job in jobs),
        "before": sum(job["start"] - job["ctime"] for job in jobs),
        "after": sum(job["mtime"] - job["stop"] for job in jobs),
        "jobs_per_minute": 60 * n / span if span > 0 else float("inf"),
        "handover_first_s": float(np.mean(handover[:tenth])),
        "handover_last_s": float(np.mean(handover[-tenth:])),
    }


def daemon_workers() -> list:
    """The daemon worker processes of the loaded profile."""
    import psutil
    from aiida.manage import get_manager

    profile = get_manager().get_profile().name
    workers = []
    for process in psutil.process_iter(["cmdline"]):
        command = " ".join(process.info["cmdline"] or [])
        if "daemon" in command and "worker" in command and profile in command:
            workers.append(process)
    return workers


def resident_mb(workers: list) -> float:
    import psutil

    total = 0
    for process in workers:
        try:
            total += process.memory_info().rss
        except psutil.Error:
            continue
    return total / 2**20


def print_report(result: dict) -> None:
    print(
        f"campaign {result['label']} <{result['campaign']}> (exit {result['exit_status']}): "
        f"wall {result['wall_s']:.0f} s, "
        f"external codes {result['code_union_s']:.0f} s (union; sum {result['code_sum_s']:.0f} s over "
        f"{result['calcjobs']} jobs): wall / code = {result['ratio']:.3f}"
    )
    gaps = result["idle_gaps"]
    print(
        f"no code running: {gaps['count']} stretches, {gaps['total_s']:.0f} s "
        f"({gaps['total_s'] / max(gaps['count'], 1):.1f} s each; largest "
        + ", ".join(f"{gap:.1f}" for gap in gaps["largest_s"])
        + " s)"
    )
    print(
        f"  of which: code ended -> its job done in AiiDA (exit, poll, retrieve, parse) {gaps['job_done_s']:.0f} s, "
        f"workflow steps and calcfunctions {gaps['workflow_s']:.0f} s, upload and submission {gaps['upload_s']:.0f} s"
    )
    print(
        f"calcfunctions: {result['calcfunctions']}, {result['calcfunction_s']:.1f} s in all "
        f"({result['calcfunction_s'] / max(result['calcfunctions'], 1) * 1000:.0f} ms each); slowest: "
        + ", ".join(
            f"{label} {row['total_s']:.1f} s/{row['calls']}"
            for label, row in list(result["calcfunction_per_type"].items())[:4]
        )
    )
    if result["calcjobs_without_folder"]:
        print(f"({result['calcjobs_without_folder']} CalcJobs without a job folder left out)")
    if "daemon_rss_mb" in result:
        memory = result["daemon_rss_mb"]
        print(
            f"daemon workers' resident memory: start {memory['start']:.0f} MB, peak {memory['peak']:.0f} MB, "
            f"end {memory['end']:.0f} MB"
        )
    print(
        f"{'process':26} {'jobs':>5} {'code s':>7} {'before s':>9} {'after s':>8} {'jobs/min':>9} "
        f"{'hand-over first/last 10 %':>26}"
    )
    for label, row in result["per_type"].items():
        n = row["jobs"]
        print(
            f"{label:26} {n:5d} {row['code'] / n:7.1f} {row['before'] / n:9.1f} {row['after'] / n:8.1f} "
            f"{row['jobs_per_minute']:9.1f} {row['handover_first_s']:12.1f} / {row['handover_last_s']:.1f} s"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--pk", type=int, help="a finished campaign of the loaded profile")
    group.add_argument("--run", type=pathlib.Path, help="a campaign file to submit and measure")
    parser.add_argument("--json", type=pathlib.Path, help="also write the result here")
    args = parser.parse_args()

    from aiida import load_profile, orm

    profile = load_profile()
    memory = []
    if args.pk is not None:
        campaign = orm.load_node(args.pk)
    else:
        from aiida.engine import submit

        from aiida_perovskite.campaign.builder import build_campaign
        from aiida_perovskite.campaign.spec import load_campaign

        workers = daemon_workers()
        campaign = submit(build_campaign(load_campaign(args.run)))
        print(
            f"submitted ConcurrentLearningWorkChain<{campaign.pk}> on {profile.name} ({len(workers)} daemon worker(s))",
            flush=True,
        )
        while not campaign.is_terminated:
            memory.append(resident_mb(workers))
            time.sleep(5)
        memory.append(resident_mb(workers))
    result = analyse(campaign)
    result["profile"] = profile.name
    result["storage"] = profile.storage_backend
    result["broker"] = profile.process_control_backend
    if memory:
        result["daemon_rss_mb"] = {"start": memory[0], "peak": max(memory), "end": memory[-1]}
    print(f"profile {profile.name}: {result['storage']} + {result['broker']}")
    print_report(result)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
