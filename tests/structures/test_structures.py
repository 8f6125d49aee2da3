"""Perovskite structures: compositions, parent phases, solid solutions, perturbations (no AiiDA)."""

from __future__ import annotations

import numpy as np
import pytest
from ase.neighborlist import neighbor_list

from aiida_perovskite.structures import (
    BCTS_GRID,
    CompositionError,
    bcts_composition,
    parent_cell,
    parse_composition,
    perturb,
    solid_solution,
)


def test_bcts_formula_is_parsed_onto_sites():
    composition = parse_composition("Ba0.925Ca0.075Ti0.9Sn0.1O3")
    assert composition.a_site == {"Ba": 0.925, "Ca": 0.075}
    assert composition.b_site == {"Ti": 0.9, "Sn": 0.1}


def test_end_member_notation_and_dictionary():
    pmn_pt = parse_composition("0.7Pb(Mg1/3Nb2/3)O3-0.3PbTiO3")
    assert pmn_pt.a_site == {"Pb": 1.0}
    assert pmn_pt.b_site == pytest.approx({"Mg": 0.7 / 3, "Nb": 1.4 / 3, "Ti": 0.3})
    explicit = parse_composition({"A": {"K": 0.5, "Na": 0.5}, "B": {"Nb": 1.0}})
    assert explicit.formula() == "K0.5Na0.5NbO3"


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("Pb(Mg1/2Nb1/2)O3", "not charge-neutral on average: the cations give \\+5.5, O3 needs \\+6"),
        ("Ba0.9Ca0.2TiO3", "A-site fractions .* sum to 1.1, not 1"),
        ("BaTi0.5O3", "B-site fractions .* sum to 0.5, not 1"),
        ("BaQqO3", "unknown element 'Qq'"),
        ("Pb(Mg1/3Nb2/3)O3-PbTiO3", "give the fraction of every end member"),
        ("0.6BaTiO3-0.3SrTiO3", "end-member fractions .* sum to 0.9"),
        ("BaTiO2", "not an ABX3 formula"),
        ("BaCuO3", "Cu has no usual perovskite site"),
        ({"A": {"Ba": 1.0}}, "needs the keys 'A' and 'B'"),
    ],
)
def test_invalid_compositions(spec, message):
    with pytest.raises(CompositionError, match=message):
        parse_composition(spec)


def test_tetragonal_batio3_has_exactly_the_requested_c_over_a():
    atoms = parent_cell("BaTiO3", "tetragonal", a=3.99, c_over_a=1.01)
    a, b, c = atoms.cell.lengths()
    assert (a, b) == (3.99, 3.99)
    assert c / a == pytest.approx(1.01, abs=1e-12)
    assert atoms.cell.angles() == pytest.approx([90, 90, 90])


@pytest.mark.parametrize(
    ("phase", "axis"), [("tetragonal", [0, 0, 1]), ("orthorhombic", [0, 1, 1]), ("rhombohedral", [1, 1, 1])]
)
def test_polar_displacement_along_the_phase_axis(phase, axis):
    plain = parent_cell("BaTiO3", phase)
    polar = parent_cell("BaTiO3", phase, displacement=0.1)
    shift = polar.positions[1] - plain.positions[1]
    direction = plain.cell[:].T @ np.array(axis, dtype=float)
    assert np.linalg.norm(shift) == pytest.approx(0.1)
    assert np.cross(shift, direction) == pytest.approx(np.zeros(3), abs=1e-12)


def test_phase_angles():
    assert parent_cell("BaTiO3", "rhombohedral", angle=89.9).cell.angles() == pytest.approx([89.9] * 3)
    assert parent_cell("KNbO3", "orthorhombic", angle=89.7).cell.angles() == pytest.approx([89.7, 90, 90])
    with pytest.raises(ValueError, match="unknown phase"):
        parent_cell("BaTiO3", "monoclinic")


@pytest.mark.parametrize(
    ("x", "y", "repeats"),
    [
        (0.25, 0.125, (2, 2, 2)),
        (0.125, 0.25, (2, 2, 2)),
        (0.0, 0.0, (2, 2, 2)),
        (0.25, 0.25, (12, 12, 4)),
        (0.125, 0.125, (12, 12, 4)),
    ],
)
def test_realised_composition_is_exact_where_the_site_count_allows(x, y, repeats):
    built = solid_solution(bcts_composition(x, y), repeats, seed=3)
    assert built.exact
    atoms = built.configurations[0]
    sites = np.prod(repeats)
    symbols = np.array(atoms.get_chemical_symbols())
    assert (symbols == "Sn").sum() == round(x * sites) and (symbols == "Ca").sum() == round(y * sites)
    assert (symbols == "O").sum() == 3 * sites


def test_inexact_composition_is_reported():
    built = solid_solution("Ba0.925Ca0.075Ti0.9Sn0.1O3", (12, 12, 4), seed=1)
    assert not built.exact
    assert built.realised["A"]["Ca"] == pytest.approx(43 / 576)  # 0.075 x 576 = 43.2 -> 43
    assert built.realised["B"]["Sn"] == pytest.approx(58 / 576)  # 57.6 -> 58
    assert sum(built.realised["A"].values()) == pytest.approx(1.0)


def test_same_seed_same_structure_and_independent_configurations():
    first = solid_solution("Ba0.875Ca0.125Ti0.75Sn0.25O3", (4, 4, 4), seed=7, configurations=2)
    again = solid_solution("Ba0.875Ca0.125Ti0.75Sn0.25O3", (4, 4, 4), seed=7, configurations=2)
    assert first.configurations[0].get_chemical_symbols() == again.configurations[0].get_chemical_symbols()
    assert first.configurations[0].get_chemical_symbols() != first.configurations[1].get_chemical_symbols()
    other = solid_solution("Ba0.875Ca0.125Ti0.75Sn0.25O3", (4, 4, 4), seed=8)
    assert other.configurations[0].get_chemical_symbols() != first.configurations[0].get_chemical_symbols()


def test_cation_oxygen_distances_are_physical():
    atoms = solid_solution(bcts_composition(0.10, 0.075), (4, 4, 4), seed=5).configurations[0]
    first, second, distance = neighbor_list("ijd", atoms, 3.2)
    symbols = np.array(atoms.get_chemical_symbols())
    for cation, (nearest, count) in {"Ti": (2.0, 6), "Sn": (2.0, 6), "Ba": (2.83, 12), "Ca": (2.83, 12)}.items():
        mask = (symbols[first] == cation) & (symbols[second] == "O")
        if not mask.any():
            continue
        assert distance[mask].min() == pytest.approx(nearest, abs=0.02)
        per_atom = np.bincount(first[mask & (distance < nearest + 0.1)])
        assert set(per_atom[per_atom > 0]) == {count}


def test_bcts_preset_has_eleven_compositions_in_the_square():
    assert len(BCTS_GRID) == 11 and len(set(BCTS_GRID)) == 11
    assert (0.10, 0.075) in BCTS_GRID
    assert all(0 <= x <= 0.25 and 0 <= y <= 0.25 for x, y in BCTS_GRID)
    assert bcts_composition(0.10, 0.075).formula() == "Ba0.925Ca0.075Ti0.9Sn0.1O3"


def test_perturbation_amplitudes_and_seed():
    base = parent_cell("BaTiO3")
    copies = perturb(base, 20, seed=11, cell_strain=0.02, atom_displacement=0.05)
    assert len(copies) == 20
    for atoms in copies:
        strain = np.linalg.solve(base.cell[:], atoms.cell[:]) - np.eye(3)
        assert np.abs(strain).max() <= 0.02 + 1e-12
        np.testing.assert_allclose(strain, strain.T, atol=1e-12)
        unstrained = atoms.positions - base.get_scaled_positions() @ atoms.cell[:]
        assert np.linalg.norm(unstrained, axis=1).max() <= 0.05 + 1e-12
    again = perturb(base, 20, seed=11, cell_strain=0.02, atom_displacement=0.05)
    np.testing.assert_array_equal(copies[5].positions, again[5].positions)
    scaled = perturb(base, 1, seed=1, cell_strain=0.0, atom_displacement=0.0, volume_scale=1.03)[0]
    assert scaled.get_volume() == pytest.approx(base.get_volume() * 1.03)
