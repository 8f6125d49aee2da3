"""Real `lmp` with a 4-model ensemble through a live daemon: deviation table, frames, recomputed deviation,
and the Explore WorkChain with its selection."""

from __future__ import annotations

import numpy as np
import pytest
from aiida import orm
from aiida.engine import submit
from aiida.plugins import CalculationFactory, WorkflowFactory

from aiida_perovskite.analysis.model_deviation import force_deviation
from aiida_perovskite.data import DeepPotentialData, TrainingSetData
from tests.conftest import await_process, executable
from tests.helpers import TYPE_MAP, cubic_batio3, lj_frames, train_tiny_model

LammpsExplore = CalculationFactory("perovskite.lammps.explore")
Explore = WorkflowFactory("perovskite.explore")

pytestmark = [pytest.mark.slow, pytest.mark.daemon]


@pytest.fixture(scope="module")
def ensemble(tmp_path_factory) -> dict[str, DeepPotentialData]:
    """Four TensorFlow models differing only in their seed (a few steps each on Lennard-Jones frames)."""
    root = tmp_path_factory.mktemp("ensemble")
    return {
        f"model_{seed}": DeepPotentialData(
            train_tiny_model(root / str(seed), executable("dp"), "tf", seed=seed)
        ).store()
        for seed in range(4)
    }


@pytest.fixture(scope="module")
def lmp_code(session_computer):
    return orm.InstalledCode(label="lmp", computer=session_computer, filepath_executable=str(executable("lmp"))).store()


def explore(code, models, ensemble_name, steps=200, every=20, temperature=300.0):
    builder = LammpsExplore.get_builder()
    builder.code = code
    builder.models = models
    builder.structure = orm.StructureData(ase=cubic_batio3(a=4.0, repeat=2))
    builder.parameters = orm.Dict(
        {
            "ensemble": ensemble_name,
            "temperature": temperature,
            "pressure": 1.0,
            "steps": steps,
            "sampling_interval": every,
        }
    )
    builder.velocity_seed = orm.Int(12345)
    builder.metadata.options.environment_variables = {"OMP_NUM_THREADS": "1", "TF_CPP_MIN_LOG_LEVEL": "2"}
    return submit(builder)


@pytest.mark.parametrize("ensemble_name", ["nvt", "npt-tri"])
def test_deviation_rows_match_frames_and_recomputed_deviation(daemon, lmp_code, ensemble, ensemble_name, tmp_path):
    node = await_process(explore(lmp_code, ensemble, ensemble_name))
    assert node.is_finished_ok, (node.exit_status, node.exit_message)
    table, trajectory = node.outputs.deviations, node.outputs.trajectory
    steps = table.get_array("step")
    assert steps.tolist() == list(range(0, 201, 20))
    assert trajectory.get_stepids().tolist() == steps.tolist()
    assert trajectory.numsteps == len(steps)
    if ensemble_name == "npt-tri":
        cells = trajectory.get_cells()
        assert not np.allclose(cells[-1], cells[0])  # the barostat moved the box
    assert node.outputs.thermo.base.attributes.get("mean")["temp"] > 0

    from deepmd.infer import DeepPot

    potentials = [DeepPot(str(ensemble[key].write(tmp_path, f"{key}.pb"))) for key in sorted(ensemble)]
    atom_types = np.array([TYPE_MAP.index(symbol) for symbol in trajectory.symbols])
    reported = table.get_array("max_devi_f")
    for frame in (0, len(steps) // 2, len(steps) - 1):
        coords = trajectory.get_positions()[frame].reshape(1, -1)
        cell = trajectory.get_cells()[frame].reshape(1, -1)
        forces = np.array([pot.eval(coords, cell, atom_types)[1][0] for pot in potentials])
        assert force_deviation(forces) == pytest.approx(reported[frame], abs=1e-6, rel=1e-5)


def test_explore_workchain_selects_and_tags(daemon, lmp_code, ensemble):
    """The diverse mode picks 5 of the 22 frames, away from the frames already labeled (``reference``), which the
    selection records; the default mode's selection does not take them (the campaign test checks that)."""
    builder = Explore.get_builder()
    builder.code = lmp_code
    builder.models = ensemble
    builder.structures = {"BaTiO3": orm.StructureData(ase=cubic_batio3(a=4.0, repeat=2))}
    builder.conditions = orm.Dict(
        {"temperatures": [100.0, 300.0], "pressures": [1.0], "ensemble": "nvt", "steps": 100, "sampling_interval": 10}
    )
    builder.trust = orm.Dict({"force_lo": 0.0, "force_hi": 1.0e6})  # every frame a candidate
    builder.max_labels = orm.Int(5)
    builder.seed = orm.Int(9)
    builder.selection_mode = orm.Str("diverse")
    builder.reference = TrainingSetData([lj_frames(nframes=3, repeat=2)])
    builder.options = {"environment_variables": {"OMP_NUM_THREADS": "1"}}
    node = submit(builder)
    node.base.extras.set_many({"campaign": "test-campaign", "iteration": 0})
    node = await_process(node)
    assert node.is_finished_ok, (node.exit_status, node.exit_message, node.exception)

    stats = node.outputs.statistics["BaTiO3"]
    assert stats["explored"] == 22 and stats["candidate"] == 22 and stats["selected"] == 5
    candidates = node.outputs.candidates.BaTiO3
    assert candidates.numsteps == 5
    jobs = node.outputs.indices.BaTiO3.get_array("jobs").tolist()
    explorations = {
        c.base.extras.get("temperature"): c for c in node.called if c.process_label == "LammpsExploreCalculation"
    }
    assert sorted(explorations) == [100.0, 300.0]
    for exploration in explorations.values():
        assert exploration.base.extras.get("system") == "BaTiO3"
        assert exploration.base.extras.get("stage") == "explore"
        assert exploration.base.extras.get("campaign") == "test-campaign"
    for row, (job_index, frame) in enumerate(candidates.get_array("source")):
        temperature = 100.0 if jobs[job_index].startswith("BaTiO3__T100") else 300.0
        source = explorations[temperature].outputs.trajectory
        np.testing.assert_allclose(candidates.get_positions()[row], source.get_positions()[frame])
    velocity_seeds = {e.inputs.velocity_seed.value for e in explorations.values()}
    assert len(velocity_seeds) == 2
    selection = next(c for c in node.called if c.process_label == "select_candidates")
    assert selection.inputs.reference.uuid == builder.reference.uuid
