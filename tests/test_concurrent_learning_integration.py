"""The concurrent-learning loop for real (dp, lmp, cp2k, a live daemon) on tiny settings: two iterations with
their provenance, and a campaign whose daemon workers are SIGKILLed mid-labeling."""

from __future__ import annotations

import os
import signal
import time

import pytest
from aiida import orm
from aiida.engine import submit

from aiida_perovskite.campaign.builder import build_campaign
from aiida_perovskite.campaign.queries import campaign_processes, iteration_records, status_rows
from aiida_perovskite.campaign.spec import parse_campaign
from aiida_perovskite.workflows.concurrent_learning import ConcurrentLearningWorkChain
from tests.conftest import await_process, executable

pytestmark = [pytest.mark.slow, pytest.mark.daemon]

NOT_CONVERGED = ConcurrentLearningWorkChain.exit_codes.ERROR_NOT_CONVERGED.status

# Every frame is a candidate (trust levels far apart), so each iteration labels exactly max_labels frames and
# the number of labels does not depend on how well the tiny models happen to train.
CAMPAIGN = {
    "name": "cl-test",
    "protocol": "fast",
    "seed": 42,
    "systems": {"BaTiO3": {"structure": {"perovskite": "BaTiO3", "phase": "tetragonal"}}},
    "stages": [
        {
            "temperatures": [200],
            "pressures": [1.0],
            "ensemble": "npt-aniso",
            "steps": 60,
            "sampling_interval": 10,
            "max_iterations": 5,
        }
    ],
    "trust": {"force_lo": 1.0e-6, "force_hi": 1.0e3},
    "max_labels": 1,
    "convergence": {"accurate_fraction": 0.99, "max_iterations": 2},
    "initial_data": {"perturbation": {"count": 2, "cell_strain": 0.02, "atom_displacement": 0.03}},
    "training": {
        "code": "dp-cl@localhost-session",
        "protocol": "fast",
        "num_models": 2,
        "overrides": {"parameters": {"training": {"numb_steps": 40, "disp_freq": 20, "save_freq": 40}}},
    },
    "exploration": {"code": "lmp-cl@localhost-session"},
    "labeling": {
        "engine": "cp2k",
        "code": "cp2k-cl@localhost-session",
        "protocol": "fast",
        # Gamma only and 250 Ry: self-consistent labels for a mechanics test, not physics.
        "overrides": {"settings": {"cutoff": 250, "rel_cutoff": 30, "kpoint_spacing": 5.0}},
        "max_concurrent": 2,
    },
}


@pytest.fixture(scope="module")
def codes(session_computer):
    for label, name, plugin in (
        ("dp-cl", "dp", "perovskite.deepmd.train"),
        ("lmp-cl", "lmp", "perovskite.lammps.explore"),
        ("cp2k-cl", "cp2k.psmp", "cp2k"),
    ):
        orm.InstalledCode(
            label=label,
            computer=session_computer,
            filepath_executable=str(executable(name)),
            default_calc_job_plugin=plugin,
        ).store()


def submit_campaign(**changes) -> orm.WorkChainNode:
    campaign = parse_campaign({**CAMPAIGN, **changes})
    return submit(build_campaign(campaign))


@pytest.fixture(scope="module")
def uninterrupted(daemon, codes) -> orm.WorkChainNode:
    return await_process(submit_campaign(), timeout=1800)


def test_two_iterations_with_their_provenance(uninterrupted):
    node = uninterrupted
    assert node.exit_status == NOT_CONVERGED, node.exit_message  # trust levels that no model can meet
    history = node.outputs.history.get_list()
    assert [record["iteration"] for record in history] == [0, 1]

    # Seeds: the campaign seed is an input; everything derives from it through recorded derive_seeds calls.
    assert node.inputs.seed.value == 42
    derived = [c for c in node.called if c.process_label == "derive_seeds"]
    assert derived[0].inputs.seed.value == 42
    trainings = sorted(campaign_processes(node, stage="train"), key=lambda n: n.ctime)
    ensembles = [t for t in trainings if t.process_label == "TrainEnsembleWorkChain"]
    assert len(ensembles) == 2
    for ensemble in ensembles:
        assert ensemble.inputs.seed.creator.process_label == "derive_seeds"

    # Training set of iteration 1 = iteration 0's + the frames labeled in iteration 0.
    first, second = (ensemble.inputs.training_set for ensemble in ensembles)
    labeled = history[0]["labeled"]
    assert labeled == 1 and history[0]["systems"]["BaTiO3"]["selected"] == 1
    assert second.nframes == first.nframes + labeled
    merge = second.creator
    assert merge.process_label == "merge_training_sets"
    assert merge.inputs.existing.uuid == first.uuid
    assert node.outputs.training_set.nframes == second.nframes + history[1]["labeled"]

    # Every labeled frame: label job <- frames_to_structures <- select_candidates <- exploration job.
    jobs = [j for j in campaign_processes(node, stage="label") if j.process_label == "Cp2kLabelBaseWorkChain"]
    iteration_jobs = [j for j in jobs if j.base.extras.get("system", None) == "BaTiO3"]
    assert len(iteration_jobs) == 2 and all(j.is_finished_ok for j in iteration_jobs)
    for job in iteration_jobs:
        assert job.base.extras.get("campaign") == node.uuid
        (calculation,) = job.called  # the CalcJob the restart WorkChain ran carries the tags too
        assert calculation.base.extras.get("campaign") == node.uuid
        assert calculation.base.extras.get("iteration") == job.base.extras.get("iteration")
        structure = job.inputs.cp2k.structure
        assert structure.creator.process_label == "frames_to_structures"
        selection = structure.creator.inputs.trajectory.creator
        assert selection.process_label == "select_candidates"
        sources = [link.node.creator for link in selection.base.links.get_incoming(node_class=orm.TrajectoryData).all()]
        assert sources and all(s.process_label == "LammpsExploreCalculation" for s in sources)
        assert {s.base.extras.get("iteration") for s in sources} == {job.base.extras.get("iteration")}

    # The convergence decision of each iteration is a calcfunction node.
    decisions = [c for c in node.called if c.process_label == "check_convergence"]
    assert len(decisions) == 2 and not decisions[-1].outputs.decision["converged"]

    # The status rows (CLI and report) carry the history's numbers.
    rows = status_rows(iteration_records(node))
    assert [(r["iteration"], r["labeled"], r["explored"]) for r in rows] == [
        (record["iteration"], record["labeled"], record["systems"]["BaTiO3"]["explored"]) for record in history
    ]


def test_report_and_export(uninterrupted, tmp_path):
    from aiida_perovskite.campaign.report import write_report

    report = write_report(uninterrupted, tmp_path / "report")
    text = report.read_text()
    assert "| 0 | BaTiO3 |" in text and "| 1 | BaTiO3 |" in text
    for figure in ("learning_curves.png", "deviations.png", "fractions.png"):
        assert (tmp_path / "report" / figure).stat().st_size > 1000


def _worker_pids(daemon_client) -> list[int]:
    info = daemon_client.get_worker_info()["info"]
    return [int(pid) for pid in info]


def test_campaign_survives_sigkill_of_the_daemon_workers(uninterrupted, daemon):
    init_data = next(c for c in uninterrupted.called if c.process_label == "InitDataWorkChain")
    # Also exercised here: iterations 1.. start from the previous models, and a final longer training.
    training = {**CAMPAIGN["training"], "reuse": {"numb_steps": 20}, "final": {"numb_steps": 60}}
    node = submit_campaign(initial_data={"training_set": init_data.outputs.training_set.pk}, training=training)

    deadline = time.monotonic() + 900
    while True:  # wait for a CP2K job of the first labeling step to be running
        running = [
            c
            for c in campaign_processes(node, stage="label")
            if c.process_label == "Cp2kLabelBaseWorkChain" and not c.is_terminated and c.called
        ]
        if running or node.is_terminated:
            break
        assert time.monotonic() < deadline, "no labeling job started"
        time.sleep(1)
    assert not node.is_terminated, node.exit_message

    for pid in _worker_pids(daemon):
        os.kill(pid, signal.SIGKILL)
    daemon.stop_daemon(wait=True)
    time.sleep(3)
    assert not node.is_terminated
    daemon.start_daemon()
    await_process(node, timeout=1800)

    assert node.exit_status == NOT_CONVERGED, node.exit_message
    history, reference = node.outputs.history.get_list(), uninterrupted.outputs.history.get_list()
    assert [r["labeled"] for r in history] == [r["labeled"] for r in reference]
    jobs = [j for j in campaign_processes(node, stage="label") if j.process_label == "Cp2kLabelBaseWorkChain"]
    keys = [(j.base.extras.get("iteration"), *j.base.extras.get("frames")) for j in jobs]
    assert len(keys) == len(set(keys)) == 2, keys  # no labeling job launched twice
    assert all(len(j.called) == 1 for j in jobs)  # and no CP2K calculation run twice
    assert node.outputs.training_set.nframes == init_data.outputs.training_set.nframes + 2

    ensembles = [n for n in campaign_processes(node) if n.process_label == "TrainEnsembleWorkChain"]
    by_stage = {(n.base.extras.get("stage"), n.base.extras.get("iteration")): n for n in ensembles}
    reused = by_stage[("train", 1)]
    assert {m.uuid for m in reused.inputs.reuse.models.values()} == {
        m.uuid for m in by_stage[("train", 0)].outputs.models.values()
    }
    final = by_stage[("final_training", 2)]
    assert final.inputs.training_set.uuid == node.outputs.training_set.uuid
    assert {m.uuid for m in node.outputs.models.values()} == {m.uuid for m in final.outputs.models.values()}
    (calculation,) = [c for c in final.called_descendants if c.process_label == "DeepmdTrainCalculation"][:1]
    assert calculation.inputs.parameters["training"]["numb_steps"] == 60


def test_labeling_failures_stop_the_campaign_and_relabel_recovers_them(uninterrupted, session_computer, tmp_path):
    from aiida_perovskite.workflows.relabel import relabel_campaign
    from tests.test_labeling_integration import wrapper

    allow = tmp_path / "allow"
    script = wrapper(tmp_path, "cp2k-flaky", f"[ ! -e {allow} ]")
    orm.InstalledCode(
        label="cp2k-flaky", computer=session_computer, filepath_executable=str(script), default_calc_job_plugin="cp2k"
    ).store()
    init_data = next(c for c in uninterrupted.called if c.process_label == "InitDataWorkChain")
    labeling = {**CAMPAIGN["labeling"], "code": "cp2k-flaky@localhost-session", "tolerated_failed_fraction": 0.0}
    node = await_process(
        submit_campaign(initial_data={"training_set": init_data.outputs.training_set.pk}, labeling=labeling),
        timeout=1200,
    )
    assert node.exit_status == ConcurrentLearningWorkChain.exit_codes.ERROR_LABELING_FAILED.status
    history = node.outputs.history.get_list()
    assert history[0]["failed_labels"] == 1 and history[0]["labeled"] == 0
    assert node.outputs.training_set.nframes == init_data.outputs.training_set.nframes  # nothing lost, nothing new

    allow.touch()
    updated, recovered, still_failed = relabel_campaign(node, timeout=900, report=lambda _: None)
    assert recovered == 1 and not still_failed
    assert updated.nframes == node.outputs.training_set.nframes + 1
    assert updated.creator.process_label == "merge_training_sets"
    retries = [j for j in campaign_processes(node, stage="label") if j.base.extras.get("relabel_of", None)]
    assert len(retries) == 1 and retries[0].is_finished_ok
