"""Structural fingerprints (smoothed radial distributions per element pair) and farthest-point sampling."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from aiida_perovskite.analysis.fingerprints import BIN_WIDTH, farthest_point_order, radial_fingerprints
from aiida_perovskite.analysis.model_deviation import choose
from tests.helpers import cubic_batio3

ELEMENTS = ["Ba", "O", "Ti"]  # pairs in order: Ba-Ba, Ba-O, Ba-Ti, O-O, O-Ti, Ti-Ti


def fingerprint(atoms, elements=ELEMENTS) -> np.ndarray:
    return radial_fingerprints(atoms.cell[:][None], atoms.positions[None], atoms.get_chemical_symbols(), elements)[0]


def polar(displacement: float, repeat: int = 2):
    """Cubic BaTiO3 with every Ti moved along z."""
    atoms = cubic_batio3(repeat=repeat)
    atoms.positions[[s == "Ti" for s in atoms.get_chemical_symbols()], 2] += displacement
    return atoms


def test_ti_o_shell_holds_the_analytic_neighbour_count():
    """Cubic a = 4 Å: six O at 2 Å around each Ti and two Ti around each O, counted both ways, per atom:
    (1 x 6 + 3 x 2) / 5 = 2.4 in the O-Ti channel below 2.5 Å."""
    channels = fingerprint(cubic_batio3()).reshape(6, -1)
    below = int(2.5 / BIN_WIDTH)
    assert channels[4, :below].sum() == pytest.approx(2.4, rel=1e-6)
    assert channels[5, :below].sum() == pytest.approx(0.0, abs=1e-12)  # no Ti-Ti closer than 4 Å


def test_invariant_to_atom_order_translation_rotation_and_supercell():
    atoms = polar(0.1, repeat=1)
    reference = fingerprint(atoms)
    moved = atoms.copy()
    moved.translate([0.3, -1.1, 2.7])
    moved.wrap()
    rotation = Rotation.from_euler("xyz", [20, -35, 50], degrees=True).as_matrix()
    rotated = atoms.copy()
    rotated.set_cell(atoms.cell[:] @ rotation.T, scale_atoms=True)
    shuffled = atoms[np.random.default_rng(0).permutation(len(atoms))]
    for other in (moved, rotated, shuffled, atoms.repeat((2, 1, 3))):
        np.testing.assert_allclose(fingerprint(other), reference, atol=1e-12)


def test_a_polar_distortion_is_far_beyond_thermal_noise():
    rng = np.random.default_rng(1)
    cubic = cubic_batio3(repeat=2)
    noisy = cubic.copy()
    noisy.positions += rng.normal(0, 0.005, noisy.positions.shape)
    distortion = np.linalg.norm(fingerprint(polar(0.12)) - fingerprint(cubic))
    noise = np.linalg.norm(fingerprint(noisy) - fingerprint(cubic))
    assert distortion > 10 * noise


def test_frames_must_be_among_the_elements():
    with pytest.raises(ValueError, match=r"\['Ti'\] of the frames are not among"):
        fingerprint(cubic_batio3(), elements=["Ba", "O"])


CLUSTERS = np.repeat(np.eye(3) * 10, 4, axis=0) + np.random.default_rng(2).normal(0, 0.1, (12, 3))


def test_farthest_point_sampling_takes_one_frame_of_each_cluster_first():
    picked = farthest_point_order(CLUSTERS, 3, first=1)
    assert picked[0] == 1
    assert sorted(picked // 4) == [0, 1, 2]


def test_farthest_point_sampling_avoids_the_labeled_frames():
    labeled = CLUSTERS[:2] + 0.01
    picked = farthest_point_order(CLUSTERS, 2, reference=labeled)
    assert sorted(picked // 4) == [1, 2]
    assert sorted(farthest_point_order(CLUSTERS, 20).tolist()) == list(range(12))


def test_diverse_mode_starts_at_the_highest_deviation_and_needs_fingerprints():
    deviations = np.array([0.3, 0.2, 0.1, 0.25] * 3)
    candidates = np.arange(12)
    picked = choose(candidates, deviations, 3, "diverse", seed=None, fingerprints=CLUSTERS)
    assert 0 in picked  # the highest deviation
    assert sorted(picked // 4) == [0, 1, 2]
    with pytest.raises(ValueError, match="needs the fingerprints"):
        choose(candidates, deviations, 3, "diverse", seed=None)
