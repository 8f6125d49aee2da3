"""Classification, selection and sanity filtering of explored frames (pure logic)."""

from __future__ import annotations

import numpy as np
import pytest

from aiida_perovskite.analysis.model_deviation import (
    ACCURATE,
    CANDIDATE,
    FAILED,
    TrustLevels,
    cell_skew,
    choose,
    classify,
    force_deviation,
    parse_model_devi,
    sanity_mask,
    shortest_distance,
)
from tests.helpers import cubic_batio3

LEVELS = TrustLevels(force_lo=0.05, force_hi=0.15)


def test_boundaries_are_half_open():
    devi = np.array([0.0, 0.0499999, 0.05, 0.1, 0.1499999, 0.15, 3.0])
    assert classify(devi, LEVELS).tolist() == [ACCURATE, ACCURATE, CANDIDATE, CANDIDATE, CANDIDATE, FAILED, FAILED]


def test_nan_and_infinity_are_failed_never_accurate():
    devi = np.array([np.nan, np.inf, -np.inf, 0.01])
    assert classify(devi, LEVELS).tolist() == [FAILED, FAILED, FAILED, ACCURATE]


def test_virial_criterion_can_only_make_a_frame_worse():
    levels = TrustLevels(force_lo=0.05, force_hi=0.15, virial_lo=0.01, virial_hi=0.02)
    force = np.array([0.01, 0.01, 0.01, 0.1, 0.2])
    virial = np.array([0.001, 0.015, 0.5, 0.001, 0.001])
    assert classify(force, levels, virial).tolist() == [ACCURATE, CANDIDATE, FAILED, CANDIDATE, FAILED]
    with pytest.raises(ValueError, match="no virial deviations"):
        classify(force, levels)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"force_lo": 0.2, "force_hi": 0.1}, "must be below force_hi"),
        ({"force_lo": 0.1, "force_hi": 0.1}, "must be below force_hi"),
        ({"force_lo": -0.1, "force_hi": 0.1}, "must not be negative"),
        ({"force_lo": 0.1, "force_hi": 0.2, "virial_lo": 0.1}, "both virial_lo and virial_hi"),
    ],
)
def test_invalid_trust_levels(kwargs, message):
    with pytest.raises(ValueError, match=message):
        TrustLevels(**kwargs)


def test_random_choice_is_seeded():
    candidates = np.arange(100)
    devi = np.linspace(0, 1, 100)
    first = choose(candidates, devi, 10, "random", seed=1)
    assert first.tolist() == choose(candidates, devi, 10, "random", seed=1).tolist()
    assert first.tolist() != choose(candidates, devi, 10, "random", seed=2).tolist()
    assert len(set(first.tolist())) == 10 and first.tolist() == sorted(first.tolist())
    with pytest.raises(ValueError, match="explicit seed"):
        choose(candidates, devi, 10, "random", seed=None)


def test_max_deviation_takes_the_largest():
    devi = np.array([0.1, 0.9, 0.3, 0.8, 0.5])
    assert choose(np.array([0, 1, 2, 3, 4]), devi, 2, "max_deviation", None).tolist() == [1, 3]
    assert choose(np.array([0, 2, 4]), devi, 2, "max_deviation", None).tolist() == [2, 4]


def test_fewer_candidates_than_the_cap_are_all_taken():
    assert choose(np.array([7, 3]), np.zeros(10), 5, "random", seed=0).tolist() == [3, 7]
    with pytest.raises(ValueError, match="unknown selection mode"):
        choose(np.arange(10), np.zeros(10), 5, "best", seed=0)


def test_force_deviation_formula():
    forces = np.zeros((4, 3, 3))
    forces[:, 1, 0] = [1.0, -1.0, 1.0, -1.0]  # atom 1: spread 1 eV/Å along x
    forces[:, 2, 2] = [0.5, 0.5, 0.5, 0.5]  # atom 2: all models agree
    assert force_deviation(forces) == pytest.approx(1.0)


def test_sanity_filter_distance_and_skew():
    atoms = cubic_batio3(repeat=2)
    squeezed = atoms.copy()
    squeezed.positions[1] = squeezed.positions[0] + [0.3, 0, 0]
    sheared = atoms.copy()
    shear = np.array([[0, 0, 0], [6.0, 0, 0], [0, 0, 0]])
    sheared.set_cell(atoms.cell[:] + shear, scale_atoms=True)
    cells = np.array([atoms.cell[:], squeezed.cell[:], sheared.cell[:]])
    positions = np.array([atoms.positions, squeezed.positions, sheared.positions])
    assert shortest_distance(atoms.cell[:], atoms.positions) == pytest.approx(2.0)
    assert cell_skew(sheared.cell[:]) == pytest.approx(0.75)
    assert sanity_mask(cells, positions, min_distance=0.8, max_skew=0.5).tolist() == [True, False, False]
    assert sanity_mask(cells, positions).tolist() == [True, True, True]


def test_model_devi_file_with_cut_last_line():
    text = (
        "#       step         max_devi_v         min_devi_v         avg_devi_v         max_devi_f         min_devi_f"
        "         avg_devi_f\n"
        "           0       1.0e-02       1.0e-03       5.0e-03       2.0e-02       1.0e-03       5.0e-03\n"
        "          10       nan       1.0e-03       5.0e-03       nan       1.0e-03       5.0e-03\n"
        "          20       1.0e-02       1.0e-03"
    )
    table = parse_model_devi(text)
    assert table["step"].tolist() == [0, 10]
    assert np.isnan(table["max_devi_f"][1])
    assert classify(table["max_devi_f"], LEVELS).tolist() == [ACCURATE, FAILED]


def test_a_new_selection_strategy_is_one_class_and_one_entry(monkeypatch):
    """A strategy registered in SELECTORS is chosen by name, with its own pool."""
    from aiida_perovskite.analysis import model_deviation as md

    class LowestDeviation(md.RandomCandidates):
        name = "min_deviation"

        def pick(self, pool, deviations, max_count, seed):
            return pool[np.argsort(np.asarray(deviations)[pool])[:max_count]]

    monkeypatch.setitem(md.SELECTORS, "min_deviation", LowestDeviation())
    deviations = np.array([0.05, 0.3, 0.2, 0.4, 0.25])
    classes = md.classify(deviations, md.TrustLevels(force_lo=0.1, force_hi=0.5))
    pool = md.selector("min_deviation").pool(classes, deviations)
    assert pool.tolist() == [1, 2, 3, 4]  # the candidates, not the accurate frame 0
    assert md.choose(pool, deviations, 2, "min_deviation", seed=None).tolist() == [2, 4]
    assert md.selector("uniform").pool(classes, deviations).tolist() == [0, 1, 2, 3, 4]
