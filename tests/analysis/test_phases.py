"""Phase classification on synthetic NPT series with known phases and noise."""

from __future__ import annotations

import numpy as np
import pytest

from aiida_perovskite.analysis.phases import (
    block_average,
    canonical_polar,
    classify_lattice,
    classify_polar,
    hysteresis,
    transitions,
)

RNG = np.random.default_rng(7)
N = 500
# frame-to-frame fluctuation (Å) of the mean Ti displacement of a 4x4x4 BaTiO3 cell in NPT MD with the shipped
# student at 120 K: 0.014-0.026 per component (docs/validation.md)
POLAR_NOISE = 0.02


def series(mean, noise, n=N):
    return np.asarray(mean, dtype=float) + RNG.normal(0, noise, (n, len(mean)))


CASES = {
    # phase: lengths (Å), angles (deg), mean polar vector (Å)
    "C": ([4.00, 4.00, 4.00], [90, 90, 90], [0, 0, 0]),
    "T": ([4.00, 4.00, 4.04], [90, 90, 90], [0, 0, 0.12]),  # c/a = 1.01
    "O": ([3.99, 4.02, 4.02], [89.8, 90, 90], [0, 0.09, 0.09]),
    "R": ([4.01, 4.01, 4.01], [89.9, 89.9, 89.9], [0.07, 0.07, 0.07]),
}


@pytest.mark.parametrize("phase", list(CASES))
def test_known_phases_with_noise(phase):
    lengths, angles, polar = CASES[phase]
    assert classify_lattice(series(lengths, 0.01), series(angles, 0.05))["label"] == phase
    assert classify_polar(series(polar, POLAR_NOISE))["label"] == phase


@pytest.mark.parametrize("phase", ["T", "O", "R"])
def test_polar_axis_may_point_anywhere(phase):
    polar = np.array(CASES[phase][2])[[2, 0, 1]] * -1  # permuted and reversed
    assert classify_polar(series(polar, POLAR_NOISE))["label"] == phase


@pytest.mark.parametrize("phase", ["T", "O", "R"])
def test_a_cell_that_switches_between_equivalent_directions_keeps_its_phase(phase):
    """A few-hundred-atom cell hops between the symmetry-equivalent variants of its phase during a run (a T cell's
    axis from +z to -x to +y ...): the raw average shrinks in the components that switched, the sorted
    magnitudes do not."""
    base = np.array(CASES[phase][2])
    variants = [np.roll(base, shift) * sign for shift in range(3) for sign in (1, -1)]
    polar = np.concatenate([series(variants[i % 6], POLAR_NOISE, n=50) for i in range(10)])
    assert classify_polar(series(base, POLAR_NOISE))["label"] == phase
    assert classify_polar(polar)["label"] == phase
    assert np.abs(block_average(polar).mean).max() < 0.5 * base.max()  # what averaging the raw vector sees


def test_canonical_polar_is_the_same_for_every_equivalent_direction():
    vector = np.array([0.03, -0.11, 0.07])
    rows = np.array(
        [
            vector[list(order)] * signs
            for order in ((0, 1, 2), (2, 0, 1), (1, 2, 0))
            for signs in ((1, 1, 1), (-1, 1, -1), (1, -1, -1))
        ]
    )
    np.testing.assert_allclose(canonical_polar(rows), np.tile([0.11, 0.07, 0.03], (len(rows), 1)))


@pytest.mark.parametrize("noise", [[0.06, 0.06, 0.06], [0.01, 0.01, 0.09]], ids=["isotropic", "one soft axis"])
def test_fluctuations_about_zero_above_the_floor_are_not_read_as_polar(noise):
    """A small hot cell whose mean displacement fluctuates about zero by more than the floor: sorting folds the
    fluctuations into positive magnitudes above it, which must not make the cell T, O or R."""
    polar = RNG.normal(0, noise, (N, 3))
    result = classify_polar(polar)
    assert result["magnitudes"][0] > 0.05  # above the floor: only the spread tells
    assert result["label"] == "C"


def test_a_polarization_as_large_as_its_fluctuations_is_uncertain():
    assert classify_polar(series([0, 0, 0.07], 0.035))["label"] == "uncertain"  # spread ~0.4: neither T nor C


def test_signal_inside_the_noise_is_uncertain():
    # c/a 1.002 with noise so large (and so few samples) that neither T nor C can be shown
    lengths = series([4.0, 4.0, 4.008], 0.2, n=25)
    angles = series([90, 90, 90], 2.0, n=25)
    assert classify_lattice(lengths, angles)["label"] == "uncertain"
    assert classify_polar(series([0, 0, 0.03], 0.3, n=25))["label"] == "uncertain"


def test_two_unequal_components_are_not_orthorhombic():
    assert classify_polar(series([0, 0.1, 0.2], POLAR_NOISE))["label"] == "uncertain"  # monoclinic-like


def test_block_average_error_is_the_standard_error_of_block_means():
    data = np.concatenate([np.full(10, 1.0), np.full(10, 3.0)])
    estimate = block_average(data, blocks=2)
    assert estimate.mean[0] == pytest.approx(2.0)
    assert estimate.error[0] == pytest.approx(np.std([1.0, 3.0], ddof=1) / np.sqrt(2))
    with pytest.raises(ValueError, match="cannot form 5 blocks"):
        block_average(np.zeros(3), blocks=5)


def test_batio3_sequence_of_transitions():
    temperatures = [50, 100, 150, 200, 250, 300]
    labels = ["R", "R", "O", "uncertain", "T", "C"]
    assert transitions(temperatures, labels) == [
        {"from": "R", "to": "O", "between": [100, 150], "estimate": 125.0},
        {"from": "O", "to": "T", "between": [150, 250], "estimate": 200.0},
        {"from": "T", "to": "C", "between": [250, 300], "estimate": 275.0},
    ]


def test_hysteresis_pairs_the_transitions_of_a_heating_and_a_cooling_ladder():
    heating = transitions([50, 100, 150, 200, 250, 300], ["R", "R", "O", "T", "T", "C"])
    # a cooling ladder runs downwards; its transitions are stated low-temperature phase first as well
    cooling = transitions([300, 250, 200, 150, 100, 50], ["C", "T", "T", "T", "O", "R"])
    assert hysteresis(heating, cooling) == [
        {"pair": "R -> O", "heating": 125.0, "cooling": 75.0, "width": 50.0},
        {"pair": "O -> T", "heating": 175.0, "cooling": 125.0, "width": 50.0},
        {"pair": "T -> C", "heating": 275.0, "cooling": 275.0, "width": 0.0},
    ]
    assert hysteresis(heating, transitions([300, 50], ["C", "R"])) == []  # R -> C directly: no common pair


def test_the_report_states_the_transitions_found():
    from aiida_perovskite.campaign.report import describe_transitions

    found = transitions([20, 100, 250, 450], ["R", "uncertain", "C", "C"])
    assert describe_transitions(found) == "R → C between 20 and 250 K (~135 K)"
    assert describe_transitions([]) == "none found on this ladder"
