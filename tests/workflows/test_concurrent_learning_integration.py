"""The concurrent-learning loop for real (dp, lmp, the SevenNet teacher, a live daemon) on a small BaTiO3
campaign: it converges with the accurate fraction rising and the held-out error falling, its provenance links
every label to the teacher, `campaign run` submits, watches and reports it, it survives SIGKILLed daemon workers and
then has the same history and data as the uninterrupted run of the same file and seed, and labeling failures stop
it with nothing lost until `relabel` recovers them."""

from __future__ import annotations

import pathlib
import re
import sys

import pytest
from aiida import orm

from aiida_perovskite.campaign.queries import iteration_records, status_rows
from aiida_perovskite.tags import campaign_processes
from aiida_perovskite.workflows.concurrent_learning import ConcurrentLearningWorkChain
from tests.campaign_fixtures import CAMPAIGN, submit_campaign, write_campaign
from tests.conftest import await_process, executable
from tests.helpers import script_code

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2] / "bench"))
import soak

pytestmark = [pytest.mark.slow, pytest.mark.daemon]


def test_the_campaign_converges_and_its_models_get_better(converged):
    node = converged
    assert node.is_finished_ok, (node.exit_status, node.exit_message)
    history = node.outputs.history.get_list()
    assert len(history) >= 2 and history[-1]["converged"]
    fractions = [record["systems"]["BaTiO3"]["accurate_fraction"] for record in history]
    assert fractions[-1] >= 0.9 > fractions[0], fractions

    # the same held-out frames for every iteration's ensemble: the error falls as labels are added
    points = node.outputs.learning_curve["points"]
    assert [point["ensemble"] for point in points] == [f"iteration_{i}" for i in range(len(history))]
    assert [point["labels"] for point in points] == sorted(point["labels"] for point in points)
    assert points[-1]["force_rmse"] < points[0]["force_rmse"], points
    assert points[0]["nframes"] == node.outputs.held_out_set.nframes > 0
    assert all("held_out" in record for record in history)  # measured during the campaign too


def test_every_label_links_to_the_teacher_and_every_decision_is_a_node(converged):
    node = converged
    teacher = node.inputs.label.engine_inputs.teacher
    assert teacher["model"] == "7net-mf-0" and teacher["modal"] == "R2SCAN"
    assert node.outputs.training_set.label_sources == [
        {
            "engine": "teacher",
            "method": teacher["level_of_theory"],
            "details": f"sevenn 7net-mf-0 [R2SCAN] sha256:{teacher['sha256']}",
        }
    ]
    jobs = [j for j in campaign_processes(node, stage="label") if j.process_label == "TeacherLabelCalculation"]
    assert jobs and all(job.inputs.teacher.uuid == teacher.uuid for job in jobs)
    labeled_structures = {
        link.node.uuid for job in jobs for link in job.base.links.get_incoming(node_class=orm.StructureData).all()
    }
    for label in (c for c in campaign_processes(node) if c.process_label == "LabelWorkChain"):
        data = label.outputs.training_set
        assemble = data.creator
        frames = [
            link for link in assemble.base.links.get_incoming().all() if link.link_label.startswith("structure__")
        ]
        assert len(frames) == data.nframes
        assert {link.node.uuid for link in frames} <= labeled_structures
        if label.base.extras.get("stage") == "label":  # candidates: frame <- selection <- exploration MD
            for link in frames:
                selection = link.node.creator.inputs.trajectory.creator
                assert selection.process_label == "select_candidates"
                assert "reference" not in selection.inputs  # only the diverse mode compares with the labeled frames
    assert node.inputs.seed.value == 42
    decisions = [c for c in node.called if c.process_label == "check_convergence"]
    assert len(decisions) == len(node.outputs.history.get_list()) and decisions[-1].outputs.decision["converged"]
    rows = status_rows(iteration_records(node))
    assert [row["labels"] for row in rows] == [
        r["training_frames"] + r["held_out_frames"] for r in node.outputs.history.get_list()
    ]


def test_the_converged_model_gets_a_phase_diagram_and_a_polarization_analysis(converged, tmp_path):
    from aiida_perovskite.campaign.report import write_report

    node = converged
    diagram = node.outputs.phase_diagram.table.get_dict()
    assert [row["temperature"] for row in diagram["rows"]] == [50, 300]
    md = [c for c in campaign_processes(node, stage="phase_diagram") if c.process_label == "LammpsMdCalculation"]
    final = (node.outputs.compressed_models if "compressed_models" in node.outputs else node.outputs.models).model_0
    assert len(md) == 2 and {run.inputs.model.uuid for run in md} == {final.uuid}
    statistics = node.outputs.polarization.T50K.get_dict()
    assert statistics["frames"] > 0 and set(statistics["elements"]) == {"Ba", "Ti"}

    report = write_report(node, tmp_path / "report")
    text = report.read_text()
    for heading in (
        "## Learning curve on one held-out set",
        "## Phase diagram of the final model",
        "## Local polarization at 50 K",
    ):
        assert heading in text
    for figure in ("learning_curves.png", "deviations.png", "fractions.png", "test_errors.png", "phase_diagram.png"):
        assert (tmp_path / "report" / figure).stat().st_size > 1000


def test_every_labeled_frame_is_traced_from_its_md_step_to_the_set_it_entered(converged, tmp_path):
    """``campaign frames``: one row per label, its exploration conditions, step and deviation within the trust
    window, and a destination that adds up to the final training and held-out sets."""
    import pandas as pd
    from click.testing import CliRunner

    from aiida_perovskite.campaign.frames import labeled_frames
    from aiida_perovskite.cli import cli

    node = converged
    table = labeled_frames(node)
    history = node.outputs.history.get_list()
    perturbed = CAMPAIGN["initial_data"]["perturbation"]["count"]
    assert len(table) == perturbed + sum(record["systems"]["BaTiO3"]["labeled"] for record in history)
    assert (table["origin"] == "perturbation").sum() == perturbed
    explored = table[table["origin"] == "exploration"]
    trust = node.inputs.trust.get_dict()
    assert explored["force_deviation"].between(trust["force_lo"], trust["force_hi"], inclusive="left").all()
    assert set(explored["temperature"]) == {50} and set(explored["ensemble"]) == {"npt-tri"}
    assert (explored["md_step"] % CAMPAIGN["stages"][0]["sampling_interval"] == 0).all()
    assert (
        explored["exploration_pk"]
        .map(lambda pk: orm.load_node(int(pk)).process_label)
        .eq("LammpsExploreCalculation")
        .all()
    )
    assert (table["destination"] == "held_out").sum() == node.outputs.held_out_set.nframes
    assert (table["destination"] == "training").sum() == node.outputs.training_set.nframes
    assert set(table["exit_status"]) == {0}

    runner = CliRunner()
    result = runner.invoke(cli, ["campaign", "frames", str(node.pk), "--iteration", "1"])
    assert result.exit_code == 0, result.output
    assert f"{(table['iteration'] == 1).sum()} frame(s) of campaign {node.pk}" in result.output
    assert "exploration" in result.output and "perturbation" not in result.output
    result = runner.invoke(cli, ["campaign", "frames", str(node.pk), "--csv", str(tmp_path / "frames.csv")])
    assert result.exit_code == 0, result.output
    empty_is_missing = {column: [""] for column in table.columns if column != "message"}  # an empty message is ""
    written = pd.read_csv(tmp_path / "frames.csv", keep_default_na=False, na_values=empty_is_missing)
    pd.testing.assert_frame_equal(written, table, check_dtype=False)
    result = runner.invoke(cli, ["campaign", "frames", str(node.outputs.training_set.pk)])
    assert result.exit_code == 1 and "is a TrainingSetData, not a campaign" in result.output
    result = runner.invoke(cli, ["campaign", "frames", "987654321"])
    assert result.exit_code == 1 and "no node with PK 987654321" in result.output


def test_campaign_run_submits_watches_until_the_end_and_writes_the_report(converged_run):
    """The session's campaign was run as a user runs it: `campaign run FILE --report DIR`."""
    run = converged_run
    assert run.exit_code == 0, run.output
    assert run.node.is_finished_ok, run.node.exit_message
    assert run.output.rstrip().endswith("converged")
    assert f"campaign cl-test <{run.node.pk}>: finished [0]" in run.output  # the watched table's last state
    assert (run.report / "report.md").is_file()
    assert run.node.base.extras.get("campaign_file") == str(run.file.resolve())


# Two of bench/soak.py's kill points (docs/reliability.md has all ten), both in one campaign: the first teacher
# job after the initial data, 1 s into its run, then, after the restart, the moment the first merge of labels into
# the training set starts. The campaign is submitted again from the same file and seed as the session's, so it
# must also reproduce that run's history and data exactly.
KILL_POINTS = (soak.KillPoint("labeling", 0, 1.0), soak.KillPoint("merging", 0, 0.0))


def test_campaign_survives_sigkill_of_the_daemon_workers_and_reproduces_the_same_history(converged, daemon):
    """SIGKILL every daemon worker at each of KILL_POINTS and restart the daemon: the same history and data as
    the uninterrupted run, and no process finished twice for the same inputs."""
    node = submit_campaign(analysis=None)
    for point in KILL_POINTS:
        target = soak.wait_for(node, point, timeout=900)
        assert target is not None, f"the campaign ended before {point.step}: {node.exit_message}"
        assert not node.is_terminated
        soak.kill_and_restart(daemon)
    await_process(node, timeout=1800)

    assert node.is_finished_ok, node.exit_message
    assert soak.fingerprint(node) == soak.fingerprint(converged)
    assert soak.finished_twice(node, converged) == {}


def test_labeling_failures_stop_the_campaign_and_relabel_recovers_them(converged, session_computer, tmp_path):
    from click.testing import CliRunner

    from aiida_perovskite.campaign.frames import labeled_frames
    from aiida_perovskite.cli import cli

    allow = tmp_path / "allow"
    script_code(  # a teacher job that crashes until the flag file exists
        session_computer,
        "teacher-flaky",
        tmp_path / "teacher-flaky",
        f"#!/bin/bash\nif [ ! -e {allow} ]; then echo 'node failure' >&2; exit 1; fi\n"
        f'exec {executable("perovskite-teacher")} "$@"\n',
    )
    init_data = next(c for c in converged.called if c.process_label == "InitDataWorkChain")
    path = write_campaign(
        tmp_path / "flaky.yaml", **{"labeling.code": "teacher-flaky@localhost-session", "analysis": None}
    )
    runner = CliRunner()
    result = runner.invoke(
        cli, ["campaign", "submit", str(path), "--training-set", str(init_data.outputs.training_set.pk)]
    )
    assert result.exit_code == 0, result.output
    node = await_process(orm.load_node(int(re.search(r"<(\d+)>", result.output).group(1))), timeout=1200)
    assert node.exit_status == ConcurrentLearningWorkChain.exit_codes.ERROR_LABELING_FAILED.status
    history = node.outputs.history.get_list()
    selected = history[0]["systems"]["BaTiO3"]["selected"]
    assert history[0]["failed_labels"] == selected > 0 and history[0]["labeled"] == 0
    assert node.outputs.training_set.nframes == init_data.outputs.training_set.nframes  # nothing lost, nothing new
    failed = labeled_frames(node, failed=True)
    assert len(failed) == selected and set(failed["destination"]) == {"failed"}
    assert (failed["exit_status"] != 0).all() and failed["message"].str.len().gt(0).all()
    assert failed["force_deviation"].notna().all()  # a failed frame still says where it came from
    result = runner.invoke(cli, ["campaign", "frames", str(node.pk), "--failed"])
    assert result.exit_code == 0 and f"{selected} frame(s) of campaign {node.pk}" in result.output

    allow.touch()
    result = runner.invoke(cli, ["campaign", "relabel", str(node.pk), "--timeout", "900"])
    assert result.exit_code == 0, result.output
    assert f"recovered {selected} frame(s); 0 still failing" in result.output
    updated = orm.load_node(int(re.search(r"updated training set: TrainingSetData<(\d+)>", result.output).group(1)))
    assert updated.nframes == node.outputs.training_set.nframes + selected
    assert updated.creator.process_label == "merge_training_sets"
    retries = [j for j in campaign_processes(node, stage="label") if j.base.extras.get("relabel_of", None)]
    assert retries and all(retry.is_finished_ok for retry in retries)
