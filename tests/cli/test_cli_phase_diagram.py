"""``aiida-perovskite phase-diagram``: bad input refused before anything is stored, and heating + cooling
ladders with a campaign's model run by the daemon and shown as a table, then the polarization analysis of one
of their runs."""

from __future__ import annotations

import re

import pytest
from aiida import orm
from click.testing import CliRunner

from aiida_perovskite.cli import cli
from aiida_perovskite.workflows.phase_diagram import runs_by_temperature
from tests.conftest import await_process


def invoke(*args):
    return CliRunner().invoke(cli, ["phase-diagram", *map(str, args)])


@pytest.fixture
def lammps(aiida_localhost):
    from tests.conftest import executable

    found = orm.QueryBuilder().append(orm.InstalledCode, filters={"label": "lmp-pd"}).first(flat=True)
    return (
        found
        or orm.InstalledCode(
            label="lmp-pd", computer=aiida_localhost, filepath_executable=str(executable("lmp"))
        ).store()
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["999999999", "-T", "50,100"], "neither a PK or UUID of this profile nor a .pb/.pth file"),
        (["missing.pb", "-T", "50,100"], "no model file at missing.pb"),
        (["1", "-T", "100:50:10"], "give 20,60,100 or 20:400:40"),
        (["1", "-T", "50,100", "--code", "nowhere@localhost"], "aiida-perovskite setup registers lmp@localhost"),
        (["1", "-T", "50,100", "--production-steps", "0"], "protocol.production_steps: must be at least 1, got 0"),
        (["1", "-T", "50,100", "--protocol", "slow"], "'slow' is not one of 'fast', 'balanced', 'precise'"),
    ],
)
def test_submit_refuses_bad_input_before_storing(lammps, args, message):
    if "--code" not in args:
        args = [*args, "--code", lammps.full_label]
    before = orm.QueryBuilder().append(orm.Node).count()
    result = invoke("submit", *args)
    assert result.exit_code != 0
    assert message in result.output
    assert orm.QueryBuilder().append(orm.Node).count() == before


def test_show_refuses_a_node_that_is_not_a_phase_diagram(aiida_profile):
    node = orm.Int(1).store()
    result = invoke("show", node.pk)
    assert result.exit_code != 0 and "is not a PhaseDiagramWorkChain" in result.output


@pytest.mark.slow
@pytest.mark.daemon
def test_heating_and_cooling_with_a_campaign_model_in_one_command(converged):
    code = converged.inputs.explore.code.full_label
    result = invoke(
        "submit",
        converged.pk,
        "-T",
        "50:300:250",
        "--repeat",
        2,
        2,
        2,
        "--equilibration-steps",
        100,
        "--production-steps",
        200,
        "--sampling-interval",
        20,
        "--blocks",
        4,
        "--code",
        code,
    )
    assert result.exit_code == 0, result.output
    pks = [int(pk) for pk in re.findall(r"PhaseDiagramWorkChain<(\d+)>", result.output)]
    assert len(pks) == 2 and "heating" in result.output and "cooling" in result.output
    nodes = [await_process(orm.load_node(pk), timeout=600) for pk in pks]
    assert all(node.is_finished_ok for node in nodes), [node.exit_message for node in nodes]
    heating, cooling = nodes
    assert heating.inputs.temperatures.get_list() == [50, 300] and cooling.inputs.temperatures.get_list() == [300, 50]
    assert (
        heating.inputs.model.uuid == converged.outputs.compressed_models.model_0.uuid
        if ("compressed_models" in converged.outputs)
        else converged.outputs.models.model_0.uuid
    )
    assert heating.base.extras.get("mode") == "heating" and cooling.base.extras.get("stage") == "phase_diagram"
    assert cooling.inputs.structure.get_ase().cell.angles() == pytest.approx([90, 90, 90])  # cooled from cubic

    shown = invoke("show", *pks)
    assert shown.exit_code == 0, shown.output
    for node in nodes:
        assert f"<{node.pk}>" in shown.output
        for row in node.outputs.table["rows"]:
            assert re.search(rf"^\s+{row['temperature']:.1f}\s+{row['phase']}\s", shown.output, re.MULTILINE)

    analysed = invoke("polarization", heating.pk, "-T", 50, "--wait")
    assert analysed.exit_code == 0, analysed.output
    child = orm.load_node(int(re.search(r"PolarizationWorkChain<(\d+)>", analysed.output).group(1)))
    statistics = child.outputs.statistics.get_dict()
    assert child.inputs.trajectory.uuid == runs_by_temperature(heating)[50].outputs.trajectory.uuid
    assert child.inputs.settings["born_charges"] == "BaTiO3"  # found from the structure's formula
    assert statistics["frames"] == 200 // 20 + 1  # the production frames only (steps 100..300)
    assert f"TAID {statistics['elements']['Ti']['taid']:.3f} Å" in analysed.output
    assert f"|P| {statistics['polarization_magnitude']:.3f} C/m²" in analysed.output
    assert invoke("polarization", heating.pk, "-T", 75).exit_code != 0  # not on the ladder
