"""Local displacements and polarization on analytic constructions and on real DFT frames."""

from __future__ import annotations

import pathlib

import numpy as np
import pytest

from aiida_perovskite.analysis.cages import CageError
from aiida_perovskite.analysis.polarization import (
    BORN_CHARGES,
    E_PER_A2_IN_C_PER_M2,
    LocalAnalysis,
    cell_phase_labels,
    element_statistics,
)
from aiida_perovskite.structures import parent_cell

Z = BORN_CHARGES["BaTiO3"]


def supercell(repeat=(3, 3, 3), a=4.0):
    return parent_cell("BaTiO3", a=a).repeat(repeat)


def analyse(atoms, moved=None):
    analysis = LocalAnalysis.from_reference(atoms.cell[:], atoms.positions, atoms.get_chemical_symbols())
    frame = moved if moved is not None else atoms
    return analysis, analysis.displacements(frame.cell[:], frame.positions)


def test_ti_displaced_in_a_cubic_cage_gives_exactly_that_displacement():
    atoms = supercell()
    moved = atoms.copy()
    ti = [i for i, s in enumerate(atoms.get_chemical_symbols()) if s == "Ti"]
    moved.positions[ti[4]] += [0, 0, 0.1]
    analysis, d = analyse(atoms, moved)
    b = analysis.cages["B"].cations.tolist()
    np.testing.assert_allclose(d["B"][b.index(ti[4])], [0, 0, 0.1], atol=1e-12)
    others = np.delete(d["B"], b.index(ti[4]), axis=0)
    np.testing.assert_allclose(others, 0, atol=1e-12)
    np.testing.assert_allclose(d["A"], 0, atol=1e-12)  # a Ti is not in any A-site cage


def test_cage_sizes_and_five_atom_cell_images():
    analysis, _ = analyse(parent_cell("BaTiO3"))
    assert analysis.cages["A"].oxygens.shape == (1, 12) and analysis.cages["B"].oxygens.shape == (1, 6)
    assert analysis.cages["BA"].oxygens.shape == (1, 8)


def uniform_tetragonal(u_a, u_b, u_o_par, u_o_perp, repeat=(2, 2, 2), c_over_a=1.01):
    atoms = parent_cell("BaTiO3", "tetragonal", a=3.99, c_over_a=c_over_a).repeat(repeat)
    ideal = atoms.copy()
    symbols = atoms.get_chemical_symbols()
    fractional = ideal.get_scaled_positions()
    for index, symbol in enumerate(symbols):
        if symbol == "Ba":
            atoms.positions[index] += [0, 0, u_a]
        elif symbol == "Ti":
            atoms.positions[index] += [0, 0, u_b]
        else:  # O on the face normal to z (same z as Ba) bonds along z with Ti
            on_z_face = np.isclose((fractional[index, 2] * repeat[2]) % 1, 0)
            atoms.positions[index] += [0, 0, u_o_par if on_z_face else u_o_perp]
    return ideal, atoms


def test_uniformly_polarised_tetragonal_cell_gives_sum_of_born_charges_times_displacements():
    u = {"a": 0.02, "b": 0.11, "o_par": -0.07, "o_perp": -0.04}
    ideal, polar = uniform_tetragonal(u["a"], u["b"], u["o_par"], u["o_perp"])
    analysis = LocalAnalysis.from_reference(ideal.cell[:], ideal.positions, ideal.get_chemical_symbols())
    p = analysis.polarization(polar.cell[:], polar.positions, "BaTiO3")
    omega = ideal.get_volume() / 8
    expected = (Z["A"] * u["a"] + Z["B"] * u["b"] + Z["O_par"] * u["o_par"] + 2 * Z["O_perp"] * u["o_perp"]) / omega
    np.testing.assert_allclose(p[:, 2], expected * E_PER_A2_IN_C_PER_M2, rtol=0, atol=1e-8)
    np.testing.assert_allclose(p[:, :2], 0, atol=1e-8)
    np.testing.assert_allclose(analysis.polarization(ideal.cell[:], ideal.positions, "BaTiO3"), 0, atol=1e-10)


def test_tetragonal_batio3_polarisation_is_of_the_experimental_order():
    # Ti 0.1 Å off centre against its cage, the Kwei et al. style displacement pattern: ~0.2-0.3 C/m²
    ideal, polar = uniform_tetragonal(0.0, 0.1, -0.03, -0.01)
    analysis = LocalAnalysis.from_reference(ideal.cell[:], ideal.positions, ideal.get_chemical_symbols())
    pz = analysis.polarization(polar.cell[:], polar.positions, "BaTiO3")[:, 2]
    assert 0.15 < pz.mean() < 0.45  # experiment: 0.26 C/m²


@pytest.mark.parametrize(
    ("direction", "label"),
    [([0, 0, 1], "T"), ([0, 1, 1], "O"), ([1, 1, 1], "R"), ([0, -1, 0], "T"), ([-1, 1, 0], "O"), ([1, -1, -1], "R")],
)
def test_cell_labels_from_displacement_direction(direction, label):
    vector = 0.15 * np.array(direction, dtype=float) / np.linalg.norm(direction)
    assert cell_phase_labels(vector[None])[0] == label
    assert cell_phase_labels(0.5 * vector[None] / 0.15 * 0.05)[0] == "N"  # below the 0.1 Å threshold


def test_triclinic_cell_and_wrapped_atoms_give_the_unwrapped_answer():
    atoms = parent_cell("BaTiO3", "rhombohedral", angle=89.6).repeat((3, 3, 3))
    rng = np.random.default_rng(0)
    moved = atoms.copy()
    moved.positions += rng.normal(0, 0.05, moved.positions.shape)
    analysis, unwrapped = analyse(atoms, moved)
    wrapped = moved.copy()
    wrapped.wrap()
    shifted = moved.copy()
    shifted.positions[::7] += moved.cell[0] - moved.cell[2]  # whole lattice vectors: same crystal
    for other in (wrapped, shifted):
        d = analysis.displacements(other.cell[:], other.positions)
        for site in "AB":
            np.testing.assert_allclose(d[site], unwrapped[site], atol=1e-10)
        np.testing.assert_allclose(
            analysis.polarization(other.cell[:], other.positions, "BaTiO3"),
            analysis.polarization(moved.cell[:], moved.positions, "BaTiO3"),
            atol=1e-10,
        )


def test_statistics_and_taid():
    atoms = supercell((2, 2, 2))
    moved = atoms.copy()
    for index, symbol in enumerate(atoms.get_chemical_symbols()):
        if symbol == "Ti":
            moved.positions[index] += [0.0, 0.0, 0.12]
    analysis, d = analyse(atoms, moved)
    stats = element_statistics(d, analysis.symbols, analysis.cages)
    assert stats["Ti"]["count"] == 8 and stats["Ti"]["taid"] == pytest.approx(0.12)
    assert stats["Ba"]["taid"] == pytest.approx(0.0, abs=1e-12)


def test_unknown_site_needs_an_explicit_assignment():
    atoms = parent_cell("BaTiO3")
    symbols = ["Cu", "Ti", "O", "O", "O"]
    with pytest.raises(CageError, match=r"cannot tell the site of \['Cu'\]"):
        LocalAnalysis.from_reference(atoms.cell[:], atoms.positions, symbols)
    LocalAnalysis.from_reference(atoms.cell[:], atoms.positions, symbols, a_elements=["Cu"], b_elements=["Ti"])


def test_real_batio3_frames_at_300k(unipero_dir):
    """UniPero BT-300K (PBEsol AIMD, 40 atoms): Ti sits off its cage centre by ~0.1-0.2 Å on average, Ba less,
    and the Ti-O distances cluster around 2 Å."""
    import dpdata

    system = dpdata.LabeledSystem(str(unipero_dir / "BT-300K"), fmt="deepmd/npy")
    symbols = [system["atom_names"][t] for t in system["atom_types"]]
    cells, coords = system["cells"], system["coords"]
    analysis = LocalAnalysis.from_reference(cells[0], coords[0], symbols)
    ti, ba = [], []
    for cell, positions in zip(cells, coords, strict=True):
        result = analysis.frame(cell, positions)
        assert not result.implausible
        d = result.displacements
        ti.append(np.linalg.norm(d["B"], axis=1).mean())
        ba.append(np.linalg.norm(d["A"], axis=1).mean())
    assert 0.05 < np.mean(ti) < 0.3, np.mean(ti)
    assert np.mean(ba) < np.mean(ti)
    bond = np.linalg.norm(analysis.frame(cells[0], coords[0]).b_oxygen_vectors, axis=-1)
    assert bond.min() > 1.7 and bond.max() < 2.4 and abs(bond.mean() - 2.0) < 0.06


def test_numbers_unchanged_against_the_regression_arrays():
    """A distorted, strained, wrapped 4x4x4 rhombohedral frame: displacements and polarization equal the arrays
    recorded before the per-frame analysis was restructured for speed."""
    recorded = np.load(pathlib.Path(__file__).resolve().parents[1] / "recorded" / "polarization_regression.npz")
    analysis = LocalAnalysis.from_reference(
        recorded["reference_cell"], recorded["reference_positions"], recorded["symbols"]
    )
    result = analysis.frame(recorded["cell"], recorded["positions"], "BaTiO3")
    np.testing.assert_allclose(result.displacements["A"], recorded["displacements_A"], rtol=0, atol=1e-12)
    np.testing.assert_allclose(result.displacements["B"], recorded["displacements_B"], rtol=0, atol=1e-12)
    np.testing.assert_allclose(result.polarization, recorded["polarization"], rtol=0, atol=1e-12)
    assert not result.implausible
