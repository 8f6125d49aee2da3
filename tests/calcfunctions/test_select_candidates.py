"""The select_candidates calcfunction: per-system statistics, indices, seeded choice, provenance."""

from __future__ import annotations

import numpy as np
import pytest
from aiida import orm

from aiida_perovskite.analysis.frames import LabeledFrames
from aiida_perovskite.calcfunctions.select_candidates import select_candidates
from aiida_perovskite.data import TrainingSetData
from tests.helpers import TYPE_MAP, cubic_batio3


def exploration(devi: list[float], shift: float = 0.0, expected: int | None = None) -> dict[str, orm.Data]:
    table = orm.ArrayData()
    table.set_array("step", np.arange(len(devi)) * 10)
    table.set_array("max_devi_f", np.array(devi, dtype=float))
    table.set_array("max_devi_v", np.zeros(len(devi)))
    atoms = cubic_batio3(repeat=2)
    trajectory = orm.TrajectoryData()
    positions = np.array([atoms.positions + shift + 0.001 * i for i in range(len(devi))])
    trajectory.set_trajectory(
        symbols=atoms.get_chemical_symbols(),
        positions=positions,
        cells=np.array([atoms.cell[:]] * len(devi)),
        stepids=np.arange(len(devi)),
        pbc=(True, True, True),
    )
    return {"devi": table, "traj": trajectory, "expected": orm.Int(expected if expected is not None else len(devi))}


def run_selection(
    jobs: dict[str, dict], trust=None, max_labels=3, mode="random", seed=42, skip=0, sanity=None, **extra
):
    kwargs = {f"{kind}__{job}": node for job, nodes in jobs.items() for kind, node in nodes.items()}
    return select_candidates.run_get_node(
        trust=orm.Dict(trust or {"force_lo": 0.05, "force_hi": 0.15}),
        max_labels=orm.Int(max_labels),
        mode=orm.Str(mode),
        seed=orm.Int(seed),
        skip_frames=orm.Int(skip),
        sanity=orm.Dict(sanity or {}),
        **extra,
        **kwargs,
    )


DEVI = [0.01, 0.06, 0.07, 0.2, np.nan, 0.08, 0.09, 0.10, 0.02]


def test_statistics_indices_and_candidates():
    results, node = run_selection({"BTO__T300": exploration(DEVI), "BTO__T600": exploration([0.01, 0.12, 0.5])})
    stats = results["statistics"]["BTO"]
    assert stats == {
        "explored": 12,
        "accurate": 3,
        "candidate": 6,
        "failed": 3,
        "not_sampled": 0,
        "filtered_out": 0,
        "selected": 3,
        "accurate_fraction": 0.25,
    }
    indices = results["indices"]["BTO"]
    assert indices.get_array("jobs").tolist() == ["BTO__T300", "BTO__T600"]
    assert indices.get_array("failed").tolist() == [[0, 3], [0, 4], [1, 2]]
    assert indices.get_array("accurate").tolist() == [[0, 0], [0, 8], [1, 0]]
    selected = indices.get_array("selected")
    assert len(selected) == 3
    assert all(pair.tolist() in indices.get_array("candidate").tolist() for pair in selected)
    candidates = results["candidates"]["BTO"]
    assert candidates.numsteps == 3
    np.testing.assert_array_equal(candidates.get_array("source"), selected)
    assert node.is_finished_ok
    assert {link.link_label for link in node.base.links.get_incoming().all()} >= {"seed", "trust", "devi__BTO__T300"}


def test_same_seed_same_frames_different_seed_different_frames():
    jobs = {"BTO__T300": exploration(DEVI * 3)}
    first = run_selection(jobs, seed=1)[0]["indices"]["BTO"].get_array("selected").tolist()
    again = run_selection(jobs, seed=1)[0]["indices"]["BTO"].get_array("selected").tolist()
    other = run_selection(jobs, seed=2)[0]["indices"]["BTO"].get_array("selected").tolist()
    assert first == again
    assert first != other


def test_max_deviation_mode_and_skip_frames():
    results, _ = run_selection({"BTO__T300": exploration(DEVI)}, mode="max_deviation", max_labels=2, skip=2)
    assert results["indices"]["BTO"].get_array("selected").tolist() == [[0, 6], [0, 7]]
    assert results["statistics"]["BTO"]["explored"] == 7


def test_per_system_trust_levels():
    trust = {"force_lo": 0.05, "force_hi": 0.15, "per_system": {"PTO": {"force_lo": 0.1, "force_hi": 0.3}}}
    results, _ = run_selection({"BTO__a": exploration([0.08, 0.2]), "PTO__a": exploration([0.08, 0.2])}, trust=trust)
    assert results["statistics"]["BTO"]["failed"] == 1
    assert results["statistics"]["PTO"]["accurate"] == 1 and results["statistics"]["PTO"]["candidate"] == 1


def test_sanity_filter_removes_candidates_and_counts_them():
    squeezed = exploration([0.1, 0.1])
    positions = squeezed["traj"].get_positions()
    positions[1, 1] = positions[1, 0] + [0.2, 0, 0]
    squeezed["traj"].set_array("positions", positions)
    results, _ = run_selection({"BTO__a": squeezed}, sanity={"min_distance": 0.8})
    assert results["statistics"]["BTO"]["filtered_out"] == 1
    assert results["indices"]["BTO"].get_array("selected").tolist() == [[0, 0]]


def test_a_swollen_cell_is_filtered_out_even_where_the_models_agree():
    swollen = exploration([0.0, 0.1, 0.1, 0.1])
    cells = swollen["traj"].get_cells()
    cells[2] *= 1.1  # +33 % volume: a cell blown up by a bad model
    cells[3] *= 1.05  # +16 %: thermal expansion and pressure stay far below this
    swollen["traj"].set_array("cells", cells)
    results, _ = run_selection({"BTO__a": swollen}, sanity={"max_volume_change": 0.2})
    assert results["statistics"]["BTO"]["filtered_out"] == 1
    assert sorted(results["indices"]["BTO"].get_array("selected").tolist()) == [[0, 1], [0, 3]]


def test_frames_a_crashed_run_did_not_reach_count_as_failed():
    results, _ = run_selection({"BTO__a": exploration([0.01, 0.1], expected=6)})
    stats = results["statistics"]["BTO"]
    assert (stats["explored"], stats["failed"], stats["not_sampled"]) == (6, 4, 4)


@pytest.mark.parametrize("mode", ["random", "max_deviation"])
def test_no_candidates_means_no_candidate_output(mode):
    results, _ = run_selection({"BTO__a": exploration([0.01, 0.02])}, mode=mode)
    assert "BTO" not in results.get("candidates", {})
    assert results["statistics"]["BTO"]["accurate_fraction"] == 1.0


def test_uniform_mode_samples_every_sane_frame_whatever_its_deviation():
    """Naive sampling: accurate and failed frames are picked too; the non-finite deviation (a broken run) is not."""
    jobs = {"BTO__T300": exploration(DEVI * 4)}
    picked = set()
    for seed in range(20):
        results = run_selection(jobs, max_labels=6, mode="uniform", seed=seed)[0]
        indices = results["indices"]["BTO"]
        picked |= {tuple(pair) for pair in indices.get_array("selected").tolist()}
        assert results["statistics"]["BTO"]["selected"] == 6
    accurate = {tuple(pair) for pair in indices.get_array("accurate").tolist()}
    failed = {tuple(pair) for pair in indices.get_array("failed").tolist()}
    assert picked & accurate and picked & failed
    assert all(np.isfinite(DEVI[frame % len(DEVI)]) for _, frame in picked)


def three_kinds() -> dict[str, orm.Data]:
    """12 candidate frames of a 2x2x2 BaTiO3 cell, four of each kind: cubic, Ti off-centred by 0.15 Å along z,
    strained by 4 % along x; thermal noise of 0.005 Å on every frame; the highest deviation on frame 0 (cubic)."""
    jobs = exploration([0.14, 0.1, 0.1, 0.1] + [0.1] * 8)
    positions, cells = jobs["traj"].get_positions(), jobs["traj"].get_cells()
    titanium = np.array([symbol == "Ti" for symbol in jobs["traj"].symbols])
    positions[4:8, titanium, 2] += 0.15
    cells[8:] = cells[8:] @ np.diag([1.04, 1.0, 1.0])
    positions[8:] = positions[8:] @ np.diag([1.04, 1.0, 1.0])
    positions += np.random.default_rng(3).normal(0, 0.005, positions.shape)
    jobs["traj"].set_array("positions", positions)
    jobs["traj"].set_array("cells", cells)
    return jobs


def labeled_cubic_frames() -> TrainingSetData:
    atoms = cubic_batio3(repeat=2)
    coords = atoms.positions + np.random.default_rng(4).normal(0, 0.005, (2, len(atoms), 3))
    types = np.array([TYPE_MAP.index(symbol) for symbol in atoms.get_chemical_symbols()])
    frames = LabeledFrames(TYPE_MAP, types, np.array([atoms.cell[:]] * 2), coords, np.zeros(2), np.zeros_like(coords))
    return TrainingSetData([frames])


def test_diverse_mode_takes_one_frame_of_each_kind_from_the_highest_deviation():
    results, _ = run_selection({"BTO__a": three_kinds()}, mode="diverse", max_labels=3)
    selected = results["indices"]["BTO"].get_array("selected")[:, 1]
    assert 0 in selected
    assert sorted(selected // 4) == [0, 1, 2]


def test_diverse_mode_picks_away_from_the_labeled_frames_and_records_them():
    reference = labeled_cubic_frames()
    results, node = run_selection({"BTO__a": three_kinds()}, mode="diverse", max_labels=2, reference=reference)
    assert sorted(results["indices"]["BTO"].get_array("selected")[:, 1] // 4) == [1, 2]
    assert node.base.links.get_incoming(link_label_filter="reference").one().node.uuid == reference.uuid
