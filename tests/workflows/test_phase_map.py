"""The composition scan: the phase map from known tables, input checks, and real `lmp` on two compositions."""

from __future__ import annotations

import pytest
from aiida import orm
from aiida.engine import submit
from aiida.engine.utils import instantiate_process
from aiida.manage import get_manager

from aiida_perovskite.calcfunctions.phase_diagram import summarise_phase_map
from aiida_perovskite.data import DeepPotentialData
from aiida_perovskite.workflows.phase_map import PhaseMapWorkChain
from tests.conftest import await_process, executable
from tests.helpers import train_tiny_model

PROTOCOL = {
    "equilibration_steps": 20,
    "production_steps": 60,
    "sampling_interval": 10,
    "thermo_interval": 5,
    "blocks": 3,
    "ensemble": "npt-tri",
}
TYPE_MAP = ["Ba", "Ca", "Ti", "O"]


def table(phases: dict[float, str], transitions: list[dict]) -> orm.Dict:
    return orm.Dict({"rows": [{"temperature": t, "phase": p} for t, p in phases.items()], "transitions": transitions})


def test_map_from_known_tables(aiida_profile):
    tables = {
        "table_y000": table({100.0: "R", 200.0: "O", 300.0: "T"}, [{"estimate": 150.0}, {"estimate": 250.0}]),
        "table_y125": table({300.0: "C", 100.0: "O", 200.0: "T"}, [{"estimate": 150.0}, {"estimate": 250.0}]),
    }
    settings = orm.Dict({"labels": ["y000", "y125"], "values": [0.0, 0.125], "axis": "y (Ca)"})
    result = summarise_phase_map(settings, **tables)
    mapped = result["map"].get_dict()
    assert mapped["temperatures"] == [100.0, 200.0, 300.0]  # rows sorted by temperature
    assert mapped["phases"] == [["R", "O", "T"], ["O", "T", "C"]]
    assert mapped["values"] == [0.0, 0.125]
    assert result["plot"].get_content(mode="rb")[:4] == b"\x89PNG"


def test_map_refuses_different_ladders(aiida_profile):
    tables = {"table_a": table({100.0: "T"}, []), "table_b": table({200.0: "T"}, [])}
    with pytest.raises(ValueError, match="was run at"):
        summarise_phase_map(orm.Dict({"labels": ["a", "b"]}), **tables)


def builder_for(code, model, compositions, temperatures=(100.0, 200.0), mode="independent"):
    builder = PhaseMapWorkChain.get_builder()
    builder.compositions = orm.Dict(compositions)
    builder.repeats = orm.List([2, 2, 2])
    builder.seed = orm.Int(3)
    builder.md.code = code
    builder.md.model = model
    builder.md.temperatures = orm.List(list(temperatures))
    builder.md.mode = orm.Str(mode)
    builder.md.protocol = orm.Dict(PROTOCOL)
    builder.md.options = {"environment_variables": {"OMP_NUM_THREADS": "1", "TF_CPP_MIN_LOG_LEVEL": "2"}}
    return builder


@pytest.fixture(scope="module")
def tf_model(tmp_path_factory):
    path = train_tiny_model(tmp_path_factory.mktemp("pm"), executable("dp"), "tf", type_map=TYPE_MAP)
    return DeepPotentialData(path).store()


@pytest.mark.parametrize(
    ("compositions", "changes", "message"),
    [
        ({}, {}, "give at least one composition"),
        ({"y0": "Ba0.5Ca0.4TiO3"}, {}, "sum"),
        ({"y0": "BaTiO3", "sr": "SrTiO3"}, {}, r"\['Sr'\] that the model's type_map"),
        ({"y0": "BaTiO3"}, {"temperatures": [300.0, 100.0], "mode": "heating"}, "strictly increasing"),
        ({"y0": "BaTiO3"}, {"temperatures": [-10.0]}, "temperature must be a positive number"),
        ({"y0": "BaTiO3"}, {"values": {"other": 0.1}}, "composition_values must give a number"),
    ],
)
def test_bad_scans_are_rejected(aiida_localhost, tf_model, compositions, changes, message):
    code = orm.InstalledCode(label="lmp-pm-v", computer=aiida_localhost, filepath_executable="/bin/true").store()
    temperatures, mode = changes.get("temperatures", (100.0,)), changes.get("mode", "independent")
    with pytest.raises(ValueError, match=message):  # raised when the port or the whole input is checked
        builder = builder_for(code, tf_model, compositions, temperatures, mode)
        if "values" in changes:
            builder.composition_values = orm.Dict(changes["values"])
        instantiate_process(get_manager().get_runner(), builder)


@pytest.mark.slow
@pytest.mark.daemon
def test_two_compositions_give_a_map(daemon, session_computer, tf_model):
    code = orm.InstalledCode(label="lmp-pm", computer=session_computer, filepath_executable=str(executable("lmp")))
    builder = builder_for(code.store(), tf_model, {"y000": "BaTiO3", "y250": "Ba0.75Ca0.25TiO3"})
    builder.composition_values = orm.Dict({"y000": 0.0, "y250": 0.25})
    builder.axis = orm.Str("y in Ba(1-y)Ca(y)TiO3")
    node = await_process(submit(builder), timeout=900)
    assert node.is_finished_ok, (node.exit_status, node.exit_message)
    mapped = node.outputs.map.get_dict()
    assert mapped["labels"] == ["y000", "y250"] and mapped["values"] == [0.0, 0.25]
    assert mapped["temperatures"] == [100.0, 200.0]
    assert all(phase in {"C", "T", "O", "R", "uncertain"} for column in mapped["phases"] for phase in column)
    calcium = node.outputs.structures.y250.get_ase().get_chemical_symbols().count("Ca")
    assert calcium == 2  # a quarter of the 8 A sites of the 2x2x2 cell
    assert node.outputs.plot.get_content(mode="rb")[:4] == b"\x89PNG"
