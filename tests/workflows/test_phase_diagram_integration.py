"""Real `lmp` along a short heating ladder: production MD chained from state to state, a complete table and
a plot; and the input checks."""

from __future__ import annotations

import pytest
from aiida import orm
from aiida.engine import submit
from aiida.engine.utils import instantiate_process
from aiida.manage import get_manager

from aiida_perovskite.data import DeepPotentialData
from aiida_perovskite.structures import parent_cell
from aiida_perovskite.workflows.phase_diagram import PhaseDiagramWorkChain, runs_by_temperature
from tests.conftest import await_process, executable
from tests.helpers import train_tiny_model

PROTOCOL = {
    "equilibration_steps": 20,
    "production_steps": 100,
    "sampling_interval": 10,
    "thermo_interval": 5,
    "blocks": 4,
    "ensemble": "npt-tri",
}


@pytest.fixture(scope="module")
def tf_model(tmp_path_factory):
    return DeepPotentialData(train_tiny_model(tmp_path_factory.mktemp("pd"), executable("dp"), "tf")).store()


def builder_for(code, model, temperatures, mode="heating", protocol=PROTOCOL):
    builder = PhaseDiagramWorkChain.get_builder()
    builder.code = code
    builder.model = model
    builder.structure = orm.StructureData(ase=parent_cell("BaTiO3").repeat((2, 2, 2)))
    builder.repeats = orm.List([2, 2, 2])
    builder.temperatures = orm.List(temperatures)
    builder.mode = orm.Str(mode)
    builder.protocol = orm.Dict(protocol)
    builder.seed = orm.Int(5)
    builder.options = {"environment_variables": {"OMP_NUM_THREADS": "1", "TF_CPP_MIN_LOG_LEVEL": "2"}}
    return builder


@pytest.mark.slow
@pytest.mark.daemon
def test_heating_ladder_gives_a_table_and_a_plot(daemon, session_computer, tf_model):
    code = orm.InstalledCode(label="lmp-pd", computer=session_computer, filepath_executable=str(executable("lmp")))
    node = await_process(submit(builder_for(code.store(), tf_model, [100.0, 200.0])), timeout=900)
    assert node.is_finished_ok, (node.exit_status, node.exit_message, node.exception)
    rows = node.outputs.table["rows"]
    assert [row["temperature"] for row in rows] == [100.0, 200.0]
    for row in rows:
        assert row["phase"] in {"C", "T", "O", "R", "uncertain"}
        assert len(row["lattice"]) == 3 and all(a > 0 for a in row["lattice"])
        assert len(row["angles"]) == 3
        # the tiny test model is not a physical potential: its MD may leave the perovskite, which must be said
        assert len(row.get("polar_vector", [])) == 3 or "no perovskite cages" in row["note"]
    assert "transitions" in node.outputs.table.get_dict()
    assert node.outputs.plot.get_content(mode="rb")[:4] == b"\x89PNG"
    second = runs_by_temperature(node)[200.0]
    assert "parent_folder" in second.inputs.md and "velocity_seed" not in second.inputs.md  # continued, not restarted
    (calculation,) = second.called  # one run, tagged like its restart workchain
    assert calculation.process_label == "LammpsMdCalculation" and calculation.base.extras.get("temperature") == 200.0


@pytest.mark.parametrize(
    ("temperatures", "mode", "message"),
    [
        ([], "heating", "the temperature ladder is empty"),
        ([300.0, 200.0], "heating", "heating mode needs strictly increasing temperatures"),
        ([100.0, 200.0], "cooling", "cooling mode needs strictly decreasing temperatures"),
        ([-50.0, 100.0], "independent", "temperature must be a positive number, got -50.0"),
        ([100.0], "annealing", "unknown mode 'annealing'"),
    ],
)
def test_bad_ladders_are_rejected(aiida_localhost, tiny_pytorch_model, temperatures, mode, message):
    code = orm.InstalledCode(label="lmp-v", computer=aiida_localhost, filepath_executable="/bin/true").store()
    builder = builder_for(code, DeepPotentialData(tiny_pytorch_model).store(), temperatures, mode)
    with pytest.raises(ValueError, match=message):
        instantiate_process(get_manager().get_runner(), builder)


def test_model_without_an_element_of_the_structure_is_rejected(aiida_localhost, tiny_pytorch_model):
    from ase import Atoms

    code = orm.InstalledCode(label="lmp-w", computer=aiida_localhost, filepath_executable="/bin/true").store()
    builder = builder_for(code, DeepPotentialData(tiny_pytorch_model).store(), [100.0])
    strontium = parent_cell("BaTiO3")
    builder.structure = orm.StructureData(
        ase=Atoms("SrTiO3", positions=strontium.positions, cell=strontium.cell, pbc=True)
    )
    with pytest.raises(ValueError, match=r"element\(s\) \['Sr'\] that the model's type_map"):
        instantiate_process(get_manager().get_runner(), builder)


@pytest.mark.slow
def test_an_md_run_killed_from_outside_is_run_again(aiida_localhost, tf_model, tmp_path):
    """lmp killed with SIGKILL mid-run (as by a machine stop): the parser says interrupted, not unstable, and
    LammpsMdBaseWorkChain runs the same MD again to the end."""
    from aiida.engine import run_get_node

    from aiida_perovskite.calculations.lammps_md import LammpsMdCalculation
    from aiida_perovskite.workflows.lammps_md_base import LammpsMdBaseWorkChain

    marker = tmp_path / "killed-once"
    wrapper = tmp_path / "lmp-killed-once"
    wrapper.write_text(
        "#!/bin/bash\n"
        f'if [ ! -e "{marker}" ]; then\n'
        f'  touch "{marker}"; "{executable("lmp")}" "$@" & pid=$!\n'
        "  for i in $(seq 1 600); do sleep 0.1\n"
        '    [ "$(grep -cE "^ +[0-9]+ " log.lammps 2>/dev/null)" -gt 10 ] && break; done\n'
        "  kill -9 $pid; wait $pid; exit 137\n"
        "fi\n"
        f'exec "{executable("lmp")}" "$@"\n'
    )
    wrapper.chmod(0o755)
    code = orm.InstalledCode(label="lmp-killed", computer=aiida_localhost, filepath_executable=str(wrapper)).store()
    builder = LammpsMdBaseWorkChain.get_builder()
    builder.md.code = code
    builder.md.model = tf_model
    builder.md.structure = orm.StructureData(ase=parent_cell("BaTiO3").repeat((2, 2, 2)))
    builder.md.velocity_seed = orm.Int(3)
    builder.md.parameters = orm.Dict(
        {"ensemble": "npt-tri", "temperature": 100.0, "steps": 20000, "sampling_interval": 1000}
    )
    builder.md.thermo_interval = orm.Int(5)
    builder.md.metadata.options = {
        "resources": {"num_machines": 1},
        "environment_variables": {"OMP_NUM_THREADS": "1", "TF_CPP_MIN_LOG_LEVEL": "2"},
    }
    _, node = run_get_node(builder)
    assert node.is_finished_ok, (node.exit_status, node.exit_message)
    first, second = sorted(node.called, key=lambda calc: calc.ctime)
    assert first.exit_status == LammpsMdCalculation.exit_codes.ERROR_MD_INTERRUPTED.status
    assert "stopped from outside" in first.exit_message
    assert second.is_finished_ok and node.outputs.thermo.get_array("step")[-1] == 20000
    assert len(node.outputs.trajectory.get_stepids()) == 21


def test_a_builder_from_the_protocol_with_checked_overrides(aiida_localhost, tiny_pytorch_model):
    code = orm.InstalledCode(label="lmp-p", computer=aiida_localhost, filepath_executable="/bin/true").store()
    model = DeepPotentialData(tiny_pytorch_model).store()
    structure = orm.StructureData(ase=parent_cell("BaTiO3").repeat((2, 2, 2)))
    args = (code, model, structure, [300.0, 100.0])
    builder = PhaseDiagramWorkChain.get_builder_from_protocol(
        *args, "precise", {"blocks": 4}, mode="cooling", repeats=(2, 2, 2)
    )
    protocol = builder.protocol.get_dict()
    assert protocol["production_steps"] == 20000 and protocol["blocks"] == 4 and protocol["ensemble"] == "npt-tri"
    assert builder.mode.value == "cooling" and builder.repeats.get_list() == [2, 2, 2]
    instantiate_process(get_manager().get_runner(), builder)  # the ports accept what the protocol built
    with pytest.raises(ValueError, match="unknown override key 'block' for phase_diagram: did you mean 'blocks'"):
        PhaseDiagramWorkChain.get_builder_from_protocol(*args, "fast", {"block": 4}, mode="cooling")
    with pytest.raises(ValueError, match=r"protocol.sampling_interval: sampling_interval 5000 is longer than the run"):
        PhaseDiagramWorkChain.get_builder_from_protocol(*args, "fast", {"sampling_interval": 5000}, mode="cooling")
    with pytest.raises(ValueError, match="heating mode needs strictly increasing"):
        PhaseDiagramWorkChain.get_builder_from_protocol(*args, "fast")
