"""Crash anywhere: a campaign whose daemon workers are SIGKILLed at seeded moments, restarted each time, against
the same campaign run without interruption.

The reference run records, for every step of the loop's outline (initial data, training, exploration, selection,
labeling, merging, convergence check, final training), the processes that carry it out and how long each took.
Kill point i then targets step i (cycling through them), a seeded occurrence of it and a seeded moment inside it
(a fraction of that occurrence's reference duration after its process appears). At that moment every daemon
worker is SIGKILLed, the daemon stopped and started again, and the campaign left to finish. Each run must end
with the reference's exit status, history, training set and held-out set (content hashes), and no process may
have *finished* twice for the same inputs (node hashes counted against the reference); processes the kill left
unfinished (a calcfunction cut mid-way is run again by the restarted step) are counted and reported.

    python bench/soak.py --points 10 --json bench-results/soak/embedded.json   # bench/campaigns/soak-teacher.yaml
    python bench/soak.py ... --reference PK       # reuse a finished uninterrupted run of the loaded profile

Run it on each storage stack's profile (AIIDA_PATH / `verdi profile set-default`); the daemon must be running.
The test suite runs two of these points (tests/workflows/test_concurrent_learning_integration.py)."""

from __future__ import annotations

import argparse
import collections
import dataclasses
import json
import os
import pathlib
import signal
import time

import numpy as np
from aiida.orm import WorkflowNode


def _ensemble_stage(stage: str):
    """A training job of the ensemble the campaign tagged with ``stage`` (job -> restart workchain -> ensemble)."""
    return lambda node: node.caller is not None and node.caller.caller.base.extras.get("stage", None) == stage


# The outline's steps, each found by the label of the process that carries it out (and, where one label
# serves two steps, which of them).
STEPS = {
    "initial data": ("perturb_structures", None),
    "training": ("DeepmdTrainCalculation", _ensemble_stage("train")),
    "exploration": ("LammpsExploreCalculation", None),
    "selection": ("select_candidates", None),
    "labeling": ("TeacherLabelCalculation", lambda node: node.base.extras.get("stage", None) == "label"),
    "merging": ("merge_training_sets", None),
    "convergence check": ("check_convergence", None),
    "final training": ("DeepmdTrainCalculation", _ensemble_stage("final_training")),
}


@dataclasses.dataclass
class KillPoint:
    step: str
    occurrence: int
    delay: float  # seconds after the target process appeared


def descendants(root) -> list:
    """Every process the campaign called, at any depth (CALL links, which the QueryBuilder's ancestry skips)."""
    found, pending = [], [root]
    while pending:
        children = list(pending.pop().called)
        found += children
        pending += [child for child in children if isinstance(child, WorkflowNode)]
    return found


def processes(root, label: str, which=None) -> list:
    """The campaign's processes of ``label`` (for which ``which`` holds), oldest first."""
    return sorted(
        (node for node in descendants(root) if node.process_label == label and (which is None or which(node))),
        key=lambda node: (node.ctime, node.pk),
    )


def fingerprint(campaign) -> dict:
    """What an interrupted run must reproduce exactly."""
    outputs = campaign.outputs
    return {
        "exit_status": campaign.exit_status,
        "history": outputs.history.get_list() if "history" in outputs else None,
        "training_set": outputs.training_set.content_hash() if "training_set" in outputs else None,
        "held_out_set": outputs.held_out_set.content_hash() if "held_out_set" in outputs else None,
    }


def repeated_runs(campaign) -> collections.Counter:
    """Per process label, how many finished runs repeated an earlier one of the same type and inputs (a node's
    hash is that of its type and inputs; a process taken from the cache did not run)."""
    runs = collections.Counter(
        (node.process_label, node.process_type, node.base.caching.compute_hash())
        for node in descendants(campaign)
        if node.is_finished and node.process_type and not node.base.caching.is_created_from_cache
    )
    repeated = collections.Counter()
    for (label, _, _), count in runs.items():
        repeated[label] += count - 1
    return +repeated


def finished_twice(campaign, reference) -> dict[str, int]:
    """Per process label, the runs ``campaign`` repeated beyond those the uninterrupted ``reference`` repeated by
    design (counted per label: models differ bitwise between runs, so input hashes do not match across them)."""
    return dict(repeated_runs(campaign) - repeated_runs(reference))


def durations(campaign) -> dict[str, list[float]]:
    """Per step, how long each of its processes ran in the reference (creation -> last change)."""
    return {
        step: [(node.mtime - node.ctime).total_seconds() for node in processes(campaign, label, which)]
        for step, (label, which) in STEPS.items()
    }


def plan(reference: dict[str, list[float]], points: int, seed: int) -> list[KillPoint]:
    """Point i targets step i (cycling), a random occurrence of it and a random moment in its first 80 %."""
    rng = np.random.default_rng(seed)
    steps = [step for step, runs in reference.items() if runs]
    chosen = []
    for index in range(points):
        step = steps[index % len(steps)]
        occurrence = int(rng.integers(len(reference[step])))
        chosen.append(KillPoint(step, occurrence, float(rng.uniform(0, 0.8) * reference[step][occurrence])))
    return chosen


def wait_for(campaign, point: KillPoint, timeout: float = 1800):
    """The target process, once it exists and ``point.delay`` seconds have passed since it appeared: the moment
    to kill (None if the campaign ended first)."""
    label, which = STEPS[point.step]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = processes(campaign, label, which)
        if len(found) > point.occurrence:
            target = found[point.occurrence]
            time.sleep(max(0.0, point.delay - (time.time() - target.ctime.timestamp())))
            return target
        if campaign.is_terminated:
            return None
        time.sleep(0.1)
    raise TimeoutError(f"{point.step} #{point.occurrence} did not start within {timeout} s")


def kill_and_restart(client) -> None:
    """SIGKILL every daemon worker (no clean-up of any kind), then stop and start the daemon.

    Starting the daemon of the embedded stack starts a new ZeroMQ broker; a client process that talked to the
    old one keeps a dead connection, and what it submits afterwards stays 'created' for ever without an error
    (seen: the soak's second campaign never started). So this process drops its broker connection and runner
    too, as any long-lived client must after a daemon restart on that stack."""
    from aiida.manage import get_manager

    for pid in client.get_worker_info()["info"]:
        os.kill(int(pid), signal.SIGKILL)
    client.stop_daemon(wait=True)
    client.start_daemon()
    manager = get_manager()
    manager.reset_broker()
    manager.reset_runner()


def await_campaign(campaign, timeout: float = 3600) -> None:
    deadline = time.monotonic() + timeout
    while not campaign.is_terminated:
        if time.monotonic() > deadline:
            raise TimeoutError(f"campaign <{campaign.pk}> did not end within {timeout} s")
        time.sleep(2)


def run_point(campaign_file: pathlib.Path, point: KillPoint, client, reference) -> dict:
    from aiida.engine import submit

    from aiida_perovskite.campaign.builder import build_campaign
    from aiida_perovskite.campaign.spec import load_campaign

    start = time.monotonic()
    campaign = submit(build_campaign(load_campaign(campaign_file)))
    target = wait_for(campaign, point)
    if target is None:
        raise RuntimeError(f"the campaign ended before {point.step} #{point.occurrence}: {campaign.exit_message}")
    target_state = target.process_state.value if target.process_state else "created"
    killed_at = time.monotonic() - start
    kill_and_restart(client)
    await_campaign(campaign)
    twice = finished_twice(campaign, reference)
    unfinished = [node for node in descendants(campaign) if not node.is_terminated]
    same = fingerprint(campaign) == fingerprint(reference)
    return {
        **dataclasses.asdict(point),
        "pk": campaign.pk,
        "target": f"{target.process_label}<{target.pk}>",
        "target_state_at_kill": target_state,
        "killed_at_s": round(killed_at, 1),
        "wall_s": round(time.monotonic() - start, 1),
        "exit_status": campaign.exit_status,
        "identical": same,
        "finished_twice": twice,
        "left_unfinished": [f"{node.process_label}<{node.pk}>" for node in unfinished],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--campaign", type=pathlib.Path, default=pathlib.Path("bench/campaigns/soak-teacher.yaml"))
    parser.add_argument("--points", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0, help="seed of the kill moments")
    parser.add_argument("--reference", type=int, help="a finished uninterrupted run of the same file")
    parser.add_argument("--json", type=pathlib.Path, help="also write the results here")
    args = parser.parse_args()

    from aiida import load_profile, orm
    from aiida.engine import submit
    from aiida.engine.daemon.client import get_daemon_client

    from aiida_perovskite.campaign.builder import build_campaign
    from aiida_perovskite.campaign.spec import load_campaign

    profile = load_profile()
    client = get_daemon_client()
    if not client.is_daemon_running:
        raise SystemExit(f"the daemon of profile {profile.name} is not running: verdi daemon start")
    if args.reference is not None:
        reference = orm.load_node(args.reference)
    else:
        start = time.monotonic()
        reference = submit(build_campaign(load_campaign(args.campaign)))
        await_campaign(reference)
        print(f"reference <{reference.pk}>: exit {reference.exit_status} in {time.monotonic() - start:.0f} s")
    runs = durations(reference)
    for step, times in runs.items():
        print(f"  {step:18s} {len(times):3d} process(es), {sum(times):7.1f} s")
    results = []
    for index, point in enumerate(plan(runs, args.points, args.seed)):
        result = run_point(args.campaign, point, client, reference)
        results.append(result)
        verdict = "identical" if result["identical"] else "DIFFERENT"
        print(
            f"{index:2d} {point.step:18s} #{point.occurrence} +{point.delay:5.1f} s ({result['target']}, "
            f"{result['target_state_at_kill']}): exit {result['exit_status']}, {verdict}, "
            f"finished twice {result['finished_twice'] or 0}, left unfinished {len(result['left_unfinished'])}, "
            f"{result['wall_s']:.0f} s",
            flush=True,
        )
    identical = sum(result["identical"] for result in results)
    twice = sum(sum(result["finished_twice"].values()) for result in results)
    print(f"{identical}/{len(results)} interrupted runs identical to the reference; {twice} process(es) finished twice")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        summary = {
            "profile": profile.name,
            "storage": profile.storage_backend,
            "broker": profile.process_control_backend,
        }
        args.json.write_text(json.dumps({**summary, "reference": reference.pk, "runs": results}, indent=1))


if __name__ == "__main__":
    main()
