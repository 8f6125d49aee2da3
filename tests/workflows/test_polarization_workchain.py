"""The polarization WorkChain on a synthetic polarised trajectory and on real DFT frames."""

from __future__ import annotations

import numpy as np
import pytest
from aiida import orm
from aiida.engine import run_get_node
from aiida.engine.utils import instantiate_process
from aiida.manage import get_manager

from aiida_perovskite.structures import parent_cell
from aiida_perovskite.workflows.polarization import PolarizationWorkChain


def trajectory_of(frames) -> orm.TrajectoryData:
    trajectory = orm.TrajectoryData()
    trajectory.set_trajectory(
        symbols=frames[0].get_chemical_symbols(),
        positions=np.array([f.positions for f in frames]),
        cells=np.array([f.cell[:] for f in frames]),
        stepids=np.arange(len(frames)),
        pbc=(True, True, True),
    )
    return trajectory.store()


@pytest.fixture
def tetragonal_trajectory():
    """Five frames of a 3x3x3 BaTiO3 cell with every Ti 0.12 Å up along c plus 0.01 Å noise; atoms wrapped."""
    rng = np.random.default_rng(1)
    reference = parent_cell("BaTiO3", "tetragonal").repeat((3, 3, 3))
    frames = []
    for _ in range(5):
        frame = reference.copy()
        frame.positions[np.array(frame.get_chemical_symbols()) == "Ti"] += [0, 0, 0.12]
        frame.positions += rng.normal(0, 0.01, frame.positions.shape)
        frame.wrap()
        frames.append(frame)
    return trajectory_of(frames)


def test_tetragonal_trajectory_statistics_labels_and_plots(tetragonal_trajectory, tmp_path):
    settings = orm.Dict({"born_charges": "BaTiO3", "frames": {"start": 1}, "repeats": [3, 3, 3]})
    results, node = run_get_node(PolarizationWorkChain, trajectory=tetragonal_trajectory, settings=settings)
    assert node.is_finished_ok, node.exit_status
    stats = results["statistics"].get_dict()
    assert stats["frames"] == 4
    assert stats["elements"]["Ti"]["taid"] == pytest.approx(0.12, abs=0.01)
    assert stats["elements"]["Ba"]["taid"] < 0.01
    assert stats["cell_phase_fractions"]["T"] == 1.0
    assert stats["polarization_mean"][2] > 0.1 and abs(stats["polarization_mean"][0]) < 0.02
    assert stats["lattice"]["c"] / stats["lattice"]["a"] == pytest.approx(1.01, abs=1e-3)
    assert stats["b_o_bond_lengths"]["short"] < stats["b_o_bond_lengths"]["long"]
    assert results["per_cell"].get_array("phase_labels").tolist() == ["T"] * 27
    assert results["distributions"].get_array("counts_Ti").shape == (3, 100)
    assert sorted(results["plots"]) == ["distributions", "layer_map", "rdf", "stereographic"]
    png = results["plots"]["layer_map"].get_content(mode="rb")
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 5000


def test_bad_settings_are_rejected(tetragonal_trajectory):
    for settings, message in [
        ({"born_charges": "LiNbO3"}, "no built-in Born charges for 'LiNbO3'"),
        ({"frames": {"start": 10}}, "select none of the 5 frames"),
        ({"colour": "red"}, r"unknown setting\(s\) \['colour'\]"),
    ]:
        with pytest.raises(ValueError, match=message):
            instantiate_process(
                get_manager().get_runner(),
                PolarizationWorkChain,
                trajectory=tetragonal_trajectory,
                settings=orm.Dict(settings),
            )


def test_real_batio3_frames(unipero_dir):
    import dpdata

    system = dpdata.LabeledSystem(str(unipero_dir / "BT-300K"), fmt="deepmd/npy")
    trajectory = orm.TrajectoryData()
    trajectory.set_trajectory(
        symbols=[system["atom_names"][t] for t in system["atom_types"]],
        positions=system["coords"][::10],
        cells=system["cells"][::10],
        pbc=(True, True, True),
    )
    results, node = run_get_node(
        PolarizationWorkChain,
        trajectory=trajectory.store(),
        settings=orm.Dict({"born_charges": "BaTiO3", "repeats": [2, 2, 2]}),
    )
    assert node.is_finished_ok
    stats = results["statistics"].get_dict()
    # time-averaged over 29 frames the 300 K displacements partly cancel; the per-frame magnitude is ~0.18 Å
    assert 0.0 < stats["elements"]["Ti"]["mean_magnitude"] < 0.3
    assert 3.9 < stats["lattice"]["a"] < 4.1
    assert 1.95 < stats["b_o_bond_lengths"]["mean"] < 2.1
    r, g = results["rdf"].get_array("r"), results["rdf"].get_array("g_O_Ti")
    assert 1.8 < r[np.argmax(g)] < 2.2  # first O-Ti peak at the Ti-O bond length


def test_bond_lengths_against_composition_plot(tmp_path):
    """The composition-scan figure: B-O bond lengths of several analyses side by side."""
    from aiida_perovskite.analysis.plots import plot_bond_lengths

    compositions = ["BaTiO3", "Ba0.925Ca0.075Ti0.95Sn0.05O3", "Ba0.925Ca0.075Ti0.9Sn0.1O3"]
    bonds = {
        "short": [1.86, 1.88, 1.90],
        "medium": [2.00, 2.01, 2.01],
        "long": [2.20, 2.17, 2.15],
        "mean": [2.03, 2.03, 2.04],
    }
    path = plot_bond_lengths(compositions, bonds, tmp_path / "bonds.png")
    assert path.read_bytes()[:4] == b"\x89PNG" and path.stat().st_size > 5000
