"""Every ``aiida-perovskite campaign`` command through click's runner: the output's content, errors for unknown
PKs and for nodes that are not campaigns, ``export`` read back with dpdata and DeePMD, ``graph`` in every format.
``frames``, ``run``/``watch``, ``submit`` and ``relabel`` on live campaigns are in
test_concurrent_learning_integration.py."""

from __future__ import annotations

import hashlib
import re

import numpy as np
import pytest
import yaml
from aiida import orm
from click.testing import CliRunner

from aiida_perovskite.cli import cli
from tests.campaign_fixtures import CAMPAIGN, write_campaign


def invoke(*args: str):
    return CliRunner().invoke(cli, ["campaign", *map(str, args)])


def test_check_accepts_a_valid_file_and_stores_nothing(codes, tmp_path):
    before = orm.QueryBuilder().append(orm.Node).count()
    result = invoke("check", write_campaign(tmp_path / "ok.yaml"))
    assert result.exit_code == 0, result.output
    assert "ok (1 system(s), up to 5 iterations)" in result.output
    assert orm.QueryBuilder().append(orm.Node).count() == before


def test_check_builds_solid_solutions_without_storing_them(codes, tmp_path):
    solid_solution = {"structure": {"composition": "Ba0.5Sr0.5TiO3"}, "repeat": [2, 2, 2]}
    path = write_campaign(tmp_path / "ss.yaml", systems={"BST": solid_solution}, analysis=None)
    before = orm.QueryBuilder().append(orm.Node).count()
    result = invoke("check", path)
    assert result.exit_code == 0, result.output
    assert orm.QueryBuilder().append(orm.Node).count() == before


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"training.code": "nowhere@localhost"}, "training.code: no usable code 'nowhere@localhost'"),
        (
            {"training.code": "lmp-cl@localhost-session"},
            "training.code: code 'lmp-cl@localhost-session' runs the 'perovskite.lammps.explore' plugin; give a "
            "code set up for 'perovskite.deepmd.train'",
        ),
        (
            {"exploration.code": "dp-cl@localhost-session"},
            "exploration.code: code 'dp-cl@localhost-session' runs the 'perovskite.deepmd.train' plugin",
        ),
        ({"labeling.code": "dp-cl@localhost-session"}, "labeling.code: code 'dp-cl@localhost-session' runs the"),
        ({"max_labels": 0}, "max_labels"),
        ({"stages": []}, "stages"),
    ],
)
def test_check_refuses_with_the_key_and_the_fix(codes, tmp_path, changes, expected):
    result = invoke("check", write_campaign(tmp_path / "bad.yaml", **changes))
    assert result.exit_code == 1, result.output
    assert expected in " ".join(result.output.split()), result.output


def test_check_refuses_a_code_whose_executable_is_gone(codes, session_computer, tmp_path):
    """A job would die with bash's exit 127 (ERROR_EXECUTABLE_NOT_RUN); the check says so before submission."""
    from tests.helpers import script_code

    gone = tmp_path / "perovskite-teacher"
    code = script_code(session_computer, "teacher-gone", gone, "#!/bin/sh\n")
    path = write_campaign(tmp_path / "gone.yaml", **{"labeling.code": code.full_label, "analysis": None})
    assert invoke("check", path).exit_code == 0
    gone.unlink()
    result = invoke("check", path)
    assert result.exit_code == 1, result.output
    message = " ".join(result.output.split())
    assert "labeling" in message and f"code {code.full_label}" in message and str(gone) in message, message


COMMANDS_ON_A_CAMPAIGN = [
    ("status",),
    ("watch",),
    ("frames",),
    ("report", "{tmp}/report"),
    ("export", "{tmp}/export"),
    ("graph", "{tmp}/graph.svg"),
    ("relabel",),
]


@pytest.mark.parametrize("command", COMMANDS_ON_A_CAMPAIGN, ids=lambda c: c[0])
def test_unknown_pks_and_nodes_that_are_not_campaigns_are_refused(command, tmp_path):
    name, *rest = (part.format(tmp=tmp_path) for part in command)
    result = invoke(name, 987654321, *rest)
    assert result.exit_code == 1 and "no node with PK 987654321 in this profile" in result.output, result.output
    data = orm.Int(3).store()
    result = invoke(name, data.pk, *rest)
    assert result.exit_code == 1 and f"node {data.pk} is a Int, not a campaign" in result.output, result.output


@pytest.mark.slow
@pytest.mark.daemon
def test_status_and_watch_show_every_iteration_of_a_finished_campaign(converged):
    history = converged.outputs.history.get_list()
    for command in ("status", "watch"):
        result = invoke(command, converged.pk)
        assert result.exit_code == 0, result.output
        assert f"campaign cl-test <{converged.pk}>: finished [0]" in result.output
        rows = [line for line in result.output.splitlines() if re.match(r"^│\s+\d+\s+│ BaTiO3", line)]
        assert len(rows) == len(history), result.output
        for line, record in zip(rows, history, strict=True):
            cells = [cell.strip() for cell in line.strip("│").split("│")]
            values = record["systems"]["BaTiO3"]
            assert int(cells[0]) == record["iteration"]
            assert str(values["explored"]) in cells and str(values["selected"]) in cells
    assert "(nothing running)" in invoke("watch", converged.pk).output


@pytest.mark.slow
@pytest.mark.daemon
def test_report_writes_the_figures_and_the_summary(converged, tmp_path):
    result = invoke("report", converged.pk, tmp_path / "report")
    assert result.exit_code == 0, result.output
    text = (tmp_path / "report" / "report.md").read_text()
    assert f"ConcurrentLearningWorkChain<{converged.pk}>" in text and "exit 0" in text
    for figure in ("learning_curves.png", "deviations.png", "fractions.png"):
        assert (tmp_path / "report" / figure).stat().st_size > 1000


@pytest.mark.slow
@pytest.mark.daemon
def test_export_round_trip_with_dpdata_and_deepmd(converged, tmp_path):
    import dpdata
    from ase.io import read
    from deepmd.infer import DeepPot

    training_set = converged.outputs.training_set
    result = invoke("export", converged.pk, tmp_path / "npy")
    assert result.exit_code == 0, result.output
    assert f"training set ({training_set.nframes} frames)" in result.output
    systems = dpdata.MultiSystems()
    for folder in sorted((tmp_path / "npy" / "training_set").iterdir()):
        systems.append(dpdata.LabeledSystem(str(folder), fmt="deepmd/npy"))
    assert systems.get_nframes() == training_set.nframes
    exported = np.concatenate([system["energies"] for system in systems])
    stored = np.concatenate([block.energies for _, block in training_set.iter_frames()])
    np.testing.assert_allclose(np.sort(exported), np.sort(stored), rtol=0, atol=1e-8)
    history = converged.outputs.history.get_list()
    assert yaml.safe_load((tmp_path / "npy" / "history.json").read_text()) == history
    # the provenance summary identifies what was written, for readers without the database
    summary = yaml.safe_load((tmp_path / "npy" / "provenance.json").read_text())
    assert summary["campaign"]["uuid"] == converged.uuid and summary["campaign"]["exit_status"] == 0
    assert summary["outputs"]["training_set"]["content_hash"] == training_set.content_hash()
    assert summary["outputs"]["held_out_set"]["frames"] == converged.outputs.held_out_set.nframes
    assert summary["labels"]["engine_inputs"]["teacher"]["modal"] == "R2SCAN"
    written = hashlib.sha256((tmp_path / "npy" / "models" / "model_0.pb").read_bytes()).hexdigest()
    assert summary["outputs"]["models"]["model_0"]["sha256"] == written
    assert summary["learning_curve"] == converged.outputs.learning_curve.get_dict()

    # the exported model reproduces the exported labels about as well as its own learning curve says
    models = sorted((tmp_path / "npy" / "models").iterdir())
    assert [model.stem for model in models] == [f"model_{i}" for i in range(CAMPAIGN["training"]["num_models"])]
    potential = DeepPot(str(models[0]))
    assert potential.get_type_map() == training_set.type_map
    system = systems[0]
    _, forces, _ = potential.eval(
        system["coords"].reshape(len(system), -1), system["cells"].reshape(len(system), 9), system["atom_types"]
    )
    rmse = float(np.sqrt(np.mean((forces.reshape(system["forces"].shape) - system["forces"]) ** 2)))
    final = converged.outputs.learning_curve["points"][-1]["force_rmse"]  # the same ensemble on held-out frames
    assert rmse < 2 * final, (rmse, final)

    only = invoke("export", converged.pk, tmp_path / "one", "--model", "model_0", "--no-compressed")
    assert only.exit_code == 0, only.output
    assert [path.name for path in (tmp_path / "one" / "models").iterdir()] == ["model_0.pb"]
    assert not (tmp_path / "one" / "compressed_models").exists()
    assert "no model ['model_9']" in invoke("export", converged.pk, tmp_path / "x", "--model", "model_9").output

    for fmt, name in (("deepmd/hdf5", "training_set.hdf5"), ("extxyz", "training_set.extxyz")):
        result = invoke("export", converged.pk, tmp_path / fmt.replace("/", "-"), "--format", fmt)
        assert result.exit_code == 0, result.output
        written = tmp_path / fmt.replace("/", "-") / name
        count = (
            dpdata.MultiSystems.from_file(str(written), fmt=fmt).get_nframes()
            if fmt == "deepmd/hdf5"
            else len(read(written, index=":"))
        )
        assert count == training_set.nframes


@pytest.mark.slow
@pytest.mark.daemon
def test_graph_draws_one_row_per_iteration_with_counts_and_pks(converged, tmp_path):
    history = converged.outputs.history.get_list()
    result = invoke("graph", converged.pk, tmp_path / "campaign.dot")
    assert result.exit_code == 0, result.output
    source = (tmp_path / "campaign.dot").read_text()
    for record in history:
        iteration = record["iteration"]
        assert f"iteration {iteration}" in source
        values = record["systems"]["BaTiO3"]
        assert f"selected {values['selected']}" in source
        assert f"{record['labeled']} labeled, {record['failed_labels']} failed" in source
    trainings = [c for c in converged.called if c.process_label == "TrainEnsembleWorkChain"]
    assert all(f"TrainEnsembleWorkChain&lt;{c.pk}&gt;" in source for c in trainings)
    assert source.count("check_convergence&lt;") == len(history) and "<B>converged</B>" in source
    assert "phase diagram" in source and "polarization" in source

    result = invoke("graph", converged.pk, tmp_path / "one.dot", "--iteration", 1)
    assert result.exit_code == 0, result.output
    one = (tmp_path / "one.dot").read_text()
    assert "iteration 1" in one and "iteration 0" not in one and "final ensemble" not in one

    for suffix, magic in (("svg", b"<?xml"), ("png", b"\x89PNG"), ("pdf", b"%PDF")):
        result = invoke("graph", converged.pk, tmp_path / f"campaign.{suffix}")
        assert result.exit_code == 0, result.output
        assert (tmp_path / f"campaign.{suffix}").read_bytes().startswith(magic)

    label = next(c for c in converged.called if c.process_label == "LabelWorkChain")
    result = invoke("graph", converged.pk, tmp_path / "step.dot", "--step", label.pk)
    assert result.exit_code == 0, result.output
    step = (tmp_path / "step.dot").read_text()
    teacher_jobs = [c for c in label.called if c.process_label == "TeacherLabelCalculation"]
    assert f"LabelWorkChain ({label.pk})" in step and all(f"({job.pk})" in step for job in teacher_jobs)

    result = invoke("graph", converged.pk, tmp_path / "step.dot", "--step", converged.outputs.training_set.pk)
    assert result.exit_code == 1 and "is not a step of campaign" in result.output
    result = invoke("graph", converged.pk, tmp_path / "campaign.txt")
    assert result.exit_code == 2 and "end it in .svg, .png, .pdf, .dot" in result.output


def _commands(group, path=()):
    import click

    for name, command in group.commands.items():
        if isinstance(command, click.Group):
            yield from _commands(command, (*path, name))
        else:
            yield (*path, name)


@pytest.mark.parametrize("command", list(_commands(cli)), ids=" ".join)
def test_every_command_has_help_with_an_example(command):
    result = CliRunner().invoke(cli, [*command, "--help"])
    assert result.exit_code == 0, result.output
    example = result.output.split("Example", 1)
    assert len(example) == 2 and f"aiida-perovskite {' '.join(command)}" in example[1], result.output


def test_the_activity_lines_say_what_a_job_waits_for_and_how_to_resume_a_paused_one(aiida_localhost):
    """AiiDA pauses a job whose upload failed 5 times (seen with a full scratch disk): status names it."""
    from aiida.engine import ProcessState

    from aiida_perovskite.cli.campaign import _process_state

    job = orm.CalcJobNode(computer=aiida_localhost, process_type="aiida.calculations:perovskite.teacher.label")
    job.set_process_state(ProcessState.WAITING)
    job.set_process_status("Waiting for transport task: upload")
    job.store()
    assert _process_state(job) == "waiting: Waiting for transport task: upload"
    job.set_process_status("Pausing after failed transport task: upload_calculation failed 5 times consecutively.")
    job.pause()
    state = _process_state(job)
    assert state.startswith("PAUSED: Pausing after failed transport task: upload_calculation failed 5 times")
    assert f"verdi process report {job.pk}" in state and f"verdi process play {job.pk}" in state
