"""Parent ABO3 cells in the four ferroelectric settings, random solid-solution supercells, and the random
perturbations of DP-GEN's init_bulk. Positions in Å; cells as rows."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np
from ase import Atoms
from ase.geometry import cellpar_to_cell

from aiida_perovskite.structures.composition import SiteComposition, parse_composition

__all__ = (
    "BCTS_GRID",
    "CELL_BOUNDS",
    "LATTICE_DEFAULTS",
    "PHASES",
    "SolidSolution",
    "bcts_composition",
    "parent_cell",
    "perturb",
    "solid_solution",
)

# Pseudocubic lattice constants (Å) of the cubic phase and the tetragonal c/a where the parent is tetragonal
# at room temperature (experiment; BaTiO3 and PbTiO3 from the science brief).
LATTICE_DEFAULTS = {
    "BaTiO3": {"a": 4.00, "c_over_a": 1.01},
    "PbTiO3": {"a": 3.90, "c_over_a": 4.15 / 3.90},
    "SrTiO3": {"a": 3.905},
    "CaTiO3": {"a": 3.84},
    "KNbO3": {"a": 4.02},
    "NaNbO3": {"a": 3.91},
    "BaSnO3": {"a": 4.12},
    "BaZrO3": {"a": 4.19},
    "PbZrO3": {"a": 4.16},
}
PHASES = {"cubic": None, "tetragonal": "001", "orthorhombic": "011", "rhombohedral": "111"}
# Fractional positions of the 5-atom cell: A at the corner, B at the centre, O at the face centres.
# Pseudocubic cell parameters of any perovskite lie well inside these: a value outside is a unit slip or a typo.
CELL_BOUNDS = {"a": (2.5, 8.0, "Å"), "c_over_a": (0.8, 1.3, ""), "angle": (60.0, 120.0, "degrees")}

FRACTIONAL = np.array([[0, 0, 0], [0.5, 0.5, 0.5], [0.5, 0.5, 0.0], [0.5, 0.0, 0.5], [0.0, 0.5, 0.5]])

# The BCTS preset: Ba(1-y)Ca(y)Ti(1-x)Sn(x)O3 on the 3 x 3 grid x, y in {0, 0.125, 0.25} plus the critical
# composition (0.10, 0.075) and (0.15, 0.075): 11 compositions, as (x, y).
BCTS_GRID = [(x, y) for x in (0.0, 0.125, 0.25) for y in (0.0, 0.125, 0.25)] + [(0.10, 0.075), (0.15, 0.075)]


def bcts_composition(x: float, y: float) -> SiteComposition:
    """Ba(1-y)Ca(y)Ti(1-x)Sn(x)O3 (elements with zero fraction left out)."""
    a_site = {element: f for element, f in (("Ba", 1 - y), ("Ca", y)) if f > 0}
    b_site = {element: f for element, f in (("Ti", 1 - x), ("Sn", x)) if f > 0}
    return SiteComposition(a_site, b_site)


def default_lattice_constant(composition: SiteComposition) -> float:
    """Vegard's law over the end members ABO3 with known lattice constants (weights: site fractions)."""
    total = weight = 0.0
    for a_element, fa in composition.a_site.items():
        for b_element, fb in composition.b_site.items():
            known = LATTICE_DEFAULTS.get(f"{a_element}{b_element}O3")
            if known:
                total += fa * fb * known["a"]
                weight += fa * fb
    if weight == 0:
        raise ValueError(f"no default lattice constant for {composition.formula()}: pass a=... (Å)")
    return total / weight


def parent_cell(
    composition: str | SiteComposition,
    phase: str = "cubic",
    a: float | None = None,
    c_over_a: float | None = None,
    angle: float | None = None,
    displacement: float = 0.0,
) -> Atoms:
    """The 5-atom pseudocubic cell of a (single-B, single-A) perovskite in ``phase``.

    tetragonal: a, a, c = a * c_over_a, right angles, polar axis [001];
    orthorhombic (Amm2, pseudocubic setting): a, a, a with the angle between b and c equal to ``angle``,
    polar axis [011]; rhombohedral (R3m): a, a, a with all three angles equal to ``angle``, polar axis [111].
    ``displacement`` (Å) moves the B cation along the polar axis.
    """
    composition = parse_composition(composition)
    if len(composition.a_site) != 1 or len(composition.b_site) != 1:
        raise ValueError(f"{composition.formula()} is a solid solution: use solid_solution() for supercells")
    if phase not in PHASES:
        raise ValueError(f"unknown phase {phase!r}; choose one of {', '.join(PHASES)}")
    for name, value in (("a", a), ("c_over_a", c_over_a), ("angle", angle)):
        low, high, unit = CELL_BOUNDS[name]
        if value is not None and not low <= value <= high:
            label = "lattice constant" if name == "a" else name
            raise ValueError(f"{label} {value} is outside [{low:g}, {high:g}] {unit}".rstrip())
    (a_element,), (b_element,) = composition.a_site, composition.b_site
    defaults = LATTICE_DEFAULTS.get(f"{a_element}{b_element}O3", {})
    a = a if a is not None else defaults.get("a") or default_lattice_constant(composition)
    lengths, angles = [a, a, a], [90.0, 90.0, 90.0]
    if phase == "tetragonal":
        lengths[2] = a * (c_over_a if c_over_a is not None else defaults.get("c_over_a", 1.01))
    elif phase == "orthorhombic":
        angles[0] = angle if angle is not None else 89.8
    elif phase == "rhombohedral":
        angles = [angle if angle is not None else 89.9] * 3
    elif c_over_a not in (None, 1.0) or angle not in (None, 90.0):
        raise ValueError("a cubic cell has c/a = 1 and right angles")
    cell = cellpar_to_cell([*lengths, *angles])
    atoms = Atoms(
        [a_element, b_element, composition.anion, composition.anion, composition.anion],
        scaled_positions=FRACTIONAL,
        cell=cell,
        pbc=True,
    )
    if displacement:
        if PHASES[phase] is None:
            raise ValueError("the cubic phase has no polar axis: give a displacement only for T, O or R")
        direction = cell.T @ np.array([int(c) for c in PHASES[phase]], dtype=float)
        atoms.positions[1] += displacement * direction / np.linalg.norm(direction)
    return atoms


@dataclasses.dataclass
class SolidSolution:
    """Random configurations of one composition and what they realise."""

    configurations: list[Atoms]
    requested: SiteComposition
    realised: dict[str, dict[str, float]]
    exact: bool


def site_counts(fractions: dict[str, float], sites: int) -> dict[str, int]:
    """Integer numbers of atoms closest to ``fractions x sites`` that fill every site (largest remainder)."""
    ideal = {element: fraction * sites for element, fraction in fractions.items()}
    counts = {element: int(np.floor(value + 1e-9)) for element, value in ideal.items()}
    missing = sites - sum(counts.values())
    for element in sorted(ideal, key=lambda e: ideal[e] - counts[e], reverse=True)[:missing]:
        counts[element] += 1
    return counts


def solid_solution(
    composition: str | SiteComposition | dict,
    repeats: Sequence[int],
    seed: int,
    a: float | None = None,
    configurations: int = 1,
) -> SolidSolution:
    """Cubic supercell of ``repeats`` 5-atom cells with A and B cations placed at random (seeded).

    The composition is met exactly when every fraction times the number of sites is an integer; otherwise
    the nearest integers are used and ``realised`` says what was built.
    """
    composition = parse_composition(composition)
    repeats = tuple(int(n) for n in repeats)
    if len(repeats) != 3 or min(repeats) < 1:
        raise ValueError(f"repeats must be three positive integers, got {repeats}")
    a = a if a is not None else default_lattice_constant(composition)
    first_a, first_b = next(iter(composition.a_site)), next(iter(composition.b_site))
    template = Atoms(
        [first_a, first_b, composition.anion, composition.anion, composition.anion],
        scaled_positions=FRACTIONAL,
        cell=np.eye(3) * a,
        pbc=True,
    ).repeat(repeats)
    cells = int(np.prod(repeats))
    a_counts, b_counts = site_counts(composition.a_site, cells), site_counts(composition.b_site, cells)
    a_sites, b_sites = np.arange(len(template))[0::5], np.arange(len(template))[1::5]
    rng = np.random.default_rng(seed)
    built = []
    for _ in range(configurations):
        atoms = template.copy()
        symbols = np.array(atoms.get_chemical_symbols(), dtype=object)
        symbols[a_sites] = rng.permutation(np.repeat(list(a_counts), list(a_counts.values())))
        symbols[b_sites] = rng.permutation(np.repeat(list(b_counts), list(b_counts.values())))
        atoms.set_chemical_symbols(list(symbols))
        built.append(atoms)
    realised = {
        "A": {e: n / cells for e, n in a_counts.items() if n},
        "B": {e: n / cells for e, n in b_counts.items() if n},
    }
    exact = all(
        abs(realised[site].get(e, 0.0) - f) < 1e-9
        for site, fractions in (("A", composition.a_site), ("B", composition.b_site))
        for e, f in fractions.items()
    )
    return SolidSolution(built, composition, realised, exact)


def perturb(
    atoms: Atoms,
    count: int,
    seed: int,
    cell_strain: float,
    atom_displacement: float,
    volume_scale: float = 1.0,
) -> list[Atoms]:
    """``count`` copies with a random symmetric strain (entries uniform in +-``cell_strain``) and random
    atomic displacements (uniform in a ball of radius ``atom_displacement`` Å), as DP-GEN's init_bulk;
    ``volume_scale`` scales the volume first."""
    if count < 1:
        raise ValueError(f"count must be at least 1, got {count}")
    if cell_strain < 0 or atom_displacement < 0 or volume_scale <= 0:
        raise ValueError("cell_strain and atom_displacement must be >= 0 and volume_scale > 0")
    rng = np.random.default_rng(seed)
    base = atoms.copy()
    base.set_cell(base.cell[:] * volume_scale ** (1 / 3), scale_atoms=True)
    copies = []
    for _ in range(count):
        strain = rng.uniform(-cell_strain, cell_strain, (3, 3))
        strain = (strain + strain.T) / 2
        copy = base.copy()
        copy.set_cell(base.cell[:] @ (np.eye(3) + strain), scale_atoms=True)
        directions = rng.normal(size=(len(copy), 3))
        directions /= np.linalg.norm(directions, axis=1, keepdims=True)
        radii = atom_displacement * rng.uniform(0, 1, len(copy)) ** (1 / 3)
        copy.positions += directions * radii[:, None]
        copies.append(copy)
    return copies
