"""Fault injection: a campaign whose labeling jobs fail at random, the ways real jobs fail, then `relabel`.

The labeling code is tests/mock_engines/faulty_teacher.py in front of the real perovskite-teacher: each job, with
probability ``--rate``, crashes, is killed at 1 s as at a walltime, leaves garbage for labels.npz, or has NaN
forces in one frame. The campaign must complete or stop with the labeling-tolerance exit code; every selected
frame must be labeled or recorded as failed with its exit code and message (nothing dropped); then `campaign
relabel` (the RelabelWorkChain, with the same faulty code) is run up to ``--relabel`` times and must recover the
failed frames. Prints one table per fault kind (jobs, exit codes) and the frame balance per iteration.

    python bench/faults.py --rate 0.3 --json bench-results/faults/embedded.json
"""

from __future__ import annotations

import argparse
import collections
import json
import pathlib
import re
import shutil
import sys
import tempfile
import time

import yaml

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "mock_engines"))

from faulty_teacher import FAULT_LINE, write  # noqa: E402


def faulty_code(rate: float, seed: int, computer: str = "localhost"):
    from aiida import orm

    label = f"teacher-faulty-{rate:g}-{seed}"
    found = orm.QueryBuilder().append(orm.InstalledCode, filters={"label": label}).first(flat=True)
    if found is not None:
        return found
    folder = pathlib.Path(tempfile.mkdtemp(prefix="faulty-teacher-"))
    teacher = shutil.which("perovskite-teacher") or str(pathlib.Path(sys.executable).parent / "perovskite-teacher")
    script = write(folder / "perovskite-teacher-faulty", teacher, rate, seed)
    return orm.InstalledCode(
        label=label,
        computer=orm.load_computer(computer),
        filepath_executable=str(script),
        default_calc_job_plugin="perovskite.teacher.label",
    ).store()


def injected(job) -> str:
    """The fault the wrapper injected into ``job`` ('none' if it ran the teacher untouched)."""
    if "retrieved" not in job.outputs or "teacher.log" not in job.outputs.retrieved.base.repository.list_object_names():
        return "unknown (no teacher.log)"
    log = job.outputs.retrieved.base.repository.get_object_content("teacher.log")
    found = re.search(rf"{FAULT_LINE}(\w+)", log)
    return found.group(1) if found else "none"


def job_table(jobs) -> dict[str, dict]:
    """Per injected fault: jobs and their exit statuses."""
    table: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    for job in jobs:
        table[injected(job)][str(job.exit_status)] += 1
    return {fault: dict(statuses) for fault, statuses in sorted(table.items())}


def frame_balance(campaign) -> list[dict]:
    """Per iteration: frames selected, labeled, failed (history) and the failed frames the provenance holds."""
    from aiida_perovskite.campaign.frames import labeled_frames

    rows = []
    failed = labeled_frames(campaign, failed=True)
    if len(failed):  # the initial data's frames (perturbations) are labeled in iteration 0 too
        explored = failed[failed["origin"] == "exploration"]
        rows.append(
            {"iteration": "initial data", "failed_in_provenance": int((failed["origin"] != "exploration").sum())}
        )
        failed = explored
    for record in campaign.outputs.history.get_list():
        iteration = record["iteration"]
        selected = sum(system["selected"] for system in record["systems"].values())
        recorded = int((failed["iteration"] == iteration).sum()) if len(failed) else 0
        rows.append(
            {
                "iteration": iteration,
                "selected": selected,
                "labeled": record["labeled"],
                "failed": record["failed_labels"],
                "failed_in_provenance": recorded,
                "balanced": selected == record["labeled"] + record["failed_labels"],
            }
        )
    return rows


def relabel(campaign, attempts: int) -> list[dict]:
    from click.testing import CliRunner

    from aiida_perovskite.cli import cli

    results = []
    for _ in range(attempts):
        result = CliRunner().invoke(cli, ["campaign", "relabel", str(campaign.pk), "--timeout", "3600"])
        found = re.search(r"recovered (\d+) frame\(s\); (\d+) still failing", result.output)
        if found is None:
            results.append({"exit_code": result.exit_code, "output": result.output[-2000:]})
            break
        recovered, failing = map(int, found.groups())
        results.append({"exit_code": result.exit_code, "recovered": recovered, "still_failing": failing})
        if failing == 0:
            break
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--campaign", type=pathlib.Path, default=ROOT / "bench/campaigns/soak-teacher.yaml")
    parser.add_argument("--rate", type=float, default=0.3, help="fraction of labeling jobs that fail")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--tolerance", type=float, help="labeling.tolerated_failed_fraction (default: the protocol's)")
    parser.add_argument("--relabel", type=int, default=5, help="relabel attempts at most")
    parser.add_argument("--json", type=pathlib.Path)
    args = parser.parse_args()

    from aiida import load_profile
    from aiida.engine import submit

    from aiida_perovskite.campaign.builder import build_campaign
    from aiida_perovskite.campaign.spec import load_campaign
    from aiida_perovskite.tags import campaign_processes
    from aiida_perovskite.workflows.concurrent_learning import ConcurrentLearningWorkChain

    profile = load_profile()
    code = faulty_code(args.rate, args.seed)
    data = yaml.safe_load(args.campaign.read_text())
    data["name"] = f"{data['name']}-faults"
    data["labeling"]["code"] = code.full_label
    data["labeling"]["overrides"] = {"batch_size": 1}
    if args.tolerance is not None:
        data["labeling"]["tolerated_failed_fraction"] = (
            args.tolerance
        )  # one frame per job: enough jobs for the rate to show
    with tempfile.TemporaryDirectory() as tmp:
        path = pathlib.Path(tmp) / "faults.yaml"
        path.write_text(yaml.safe_dump(data))
        start = time.monotonic()
        campaign = submit(build_campaign(load_campaign(path)))
    print(f"campaign <{campaign.pk}> with {code.full_label} (rate {args.rate})", flush=True)
    while not campaign.is_terminated:
        time.sleep(5)
    wall = time.monotonic() - start
    tolerance = ConcurrentLearningWorkChain.exit_codes.ERROR_LABELING_FAILED.status
    print(
        f"exit {campaign.exit_status} ({campaign.exit_message or 'ok'}) in {wall:.0f} s; tolerance exit is {tolerance}"
    )

    jobs = [job for job in campaign_processes(campaign) if job.process_label == "TeacherLabelCalculation"]
    table = job_table(jobs)
    faulted = sum(sum(statuses.values()) for fault, statuses in table.items() if fault != "none")
    print(f"{len(jobs)} labeling jobs, {faulted} with an injected fault ({faulted / max(len(jobs), 1):.0%})")
    for fault, statuses in table.items():
        print(f"  {fault:10s} {sum(statuses.values()):3d} job(s), exit statuses {statuses}")
    balance = frame_balance(campaign) if "history" in campaign.outputs else []
    for row in balance:
        if "selected" not in row:
            print(f"  initial data: {row['failed_in_provenance']} failed frames in the provenance")
            continue
        print(
            "  iteration {iteration}: selected {selected} = labeled {labeled} + failed {failed} "
            "({failed_in_provenance} failed frames in the provenance)".format(**row)
        )
    relabels = relabel(campaign, args.relabel) if any(row["failed_in_provenance"] for row in balance) else []
    for index, result in enumerate(relabels, 1):
        print(f"  relabel {index}: {result}")
    result = {
        "profile": profile.name,
        "pk": campaign.pk,
        "rate": args.rate,
        "exit_status": campaign.exit_status,
        "wall_s": round(wall, 1),
        "jobs": len(jobs),
        "faulted_jobs": faulted,
        "by_fault": table,
        "frames": balance,
        "relabel": relabels,
    }
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
