"""Site compositions of ABO3 perovskites and their solid solutions, with the checks a user needs.

Accepted forms:

- a formula with fractional subscripts: ``Ba0.925Ca0.075Ti0.9Sn0.1O3`` (elements go to the A or B site by
  their usual site in perovskites);
- end members with parenthesised B sites and their fractions: ``0.7Pb(Mg1/3Nb2/3)O3-0.3PbTiO3``;
- an explicit mapping: ``{"A": {"Ba": 0.9, "Ca": 0.1}, "B": {"Ti": 1.0}, "X": "O"}``.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from fractions import Fraction

from ase.data import chemical_symbols

__all__ = ("A_SITE", "B_SITE", "CompositionError", "SiteComposition", "parse_composition")

# Usual oxidation states of the cations the project meets on each site.
A_SITE = {"Ba": 2, "Sr": 2, "Ca": 2, "Pb": 2, "Cd": 2, "K": 1, "Na": 1, "Li": 1, "Ag": 1, "Bi": 3, "La": 3, "Y": 3}
B_SITE = {
    "Ti": 4,
    "Zr": 4,
    "Sn": 4,
    "Hf": 4,
    "Ce": 4,
    "Nb": 5,
    "Ta": 5,
    "Sb": 5,
    "Mg": 2,
    "Zn": 2,
    "Ni": 2,
    "Co": 2,
    "In": 3,
    "Sc": 3,
    "Fe": 3,
    "Yb": 3,
    "Al": 3,
    "Ga": 3,
    "Mn": 4,
    "W": 6,
}
ANIONS = {"O": -2, "F": -1}
TOLERANCE = 1e-6


class CompositionError(ValueError):
    """A composition that is not a valid (charge-neutral, complete) perovskite; the message says why."""


@dataclasses.dataclass(frozen=True)
class SiteComposition:
    """Fractions of each element on the A and B sites of an ABX3 perovskite."""

    a_site: dict[str, float]
    b_site: dict[str, float]
    anion: str = "O"

    def __post_init__(self):
        for site, fractions in (("A", self.a_site), ("B", self.b_site)):
            if not fractions:
                raise CompositionError(f"the {site} site is empty")
            unknown = [e for e in fractions if e not in chemical_symbols[1:]]
            if unknown:
                raise CompositionError(f"unknown element(s) {unknown} on the {site} site")
            negative = {e: f for e, f in fractions.items() if f <= 0}
            if negative:
                raise CompositionError(f"{site}-site fractions must be positive, got {negative}")
            total = sum(fractions.values())
            if abs(total - 1) > TOLERANCE:
                raise CompositionError(f"the {site}-site fractions {fractions} sum to {total:.6g}, not 1")
        if self.anion not in ANIONS:
            raise CompositionError(f"unsupported anion {self.anion!r}; use one of {sorted(ANIONS)}")
        charge = self.average_charge()
        if abs(charge) > TOLERANCE:
            cations, needed = charge - 3 * ANIONS[self.anion], -3 * ANIONS[self.anion]
            states = {e: _charge(e, "A") for e in self.a_site} | {e: _charge(e, "B") for e in self.b_site}
            raise CompositionError(
                f"{self.formula()} is not charge-neutral on average: the cations give {cations:+.4g}, "
                f"{self.anion}3 needs {needed:+d} (oxidation states used: {states})"
            )

    def average_charge(self) -> float:
        cations = sum(f * _charge(e, "A") for e, f in self.a_site.items())
        cations += sum(f * _charge(e, "B") for e, f in self.b_site.items())
        return cations + 3 * ANIONS[self.anion]

    @property
    def elements(self) -> list[str]:
        return [*self.a_site, *self.b_site, self.anion]

    def formula(self) -> str:
        def site(fractions):
            return "".join(f"{e}{_number(f)}" for e, f in fractions.items())

        return f"{site(self.a_site)}{site(self.b_site)}{self.anion}3"


def _charge(element: str, site: str) -> int:
    table = A_SITE if site == "A" else B_SITE
    if element not in table:
        raise CompositionError(
            f"no usual oxidation state known for {element} on the {site} site; give the composition as a dictionary "
            f"with elements from {sorted(table)}"
        )
    return table[element]


def _number(value: float) -> str:
    return "" if abs(value - 1) < TOLERANCE else f"{value:.6g}"


_TOKEN = re.compile(r"([A-Z][a-z]?)(\d+(?:\.\d+)?(?:/\d+)?)?")
_MEMBER = re.compile(r"^\s*(?P<fraction>\d*\.?\d+(?:/\d+)?)?\s*(?P<body>[A-Z(].*)$")


def parse_composition(spec: str | Mapping) -> SiteComposition:
    """Parse any accepted form into a checked SiteComposition (see the module docstring)."""
    if isinstance(spec, SiteComposition):
        return spec
    if isinstance(spec, Mapping):
        missing = [key for key in ("A", "B") if key not in spec]
        if missing:
            raise CompositionError(f"a composition dictionary needs the keys 'A' and 'B' (missing {missing})")
        return SiteComposition(dict(spec["A"]), dict(spec["B"]), spec.get("X", "O"))
    if not isinstance(spec, str) or not spec.strip():
        raise CompositionError(f"cannot read a composition from {spec!r}")
    members = [member for member in re.split(r"\s*-\s*(?=\d|[A-Z(])", spec.strip()) if member]
    if len(members) == 1:
        return _parse_member(members[0])
    parsed = [_MEMBER.match(member) for member in members]
    if any(match is None or match.group("fraction") is None for match in parsed):
        raise CompositionError(f"{spec!r}: give the fraction of every end member, e.g. '0.7Pb(Mg1/3Nb2/3)O3-0.3PbTiO3'")
    weights = [float(Fraction(match.group("fraction"))) for match in parsed]
    if abs(sum(weights) - 1) > TOLERANCE:
        raise CompositionError(f"{spec!r}: the end-member fractions {weights} sum to {sum(weights):.6g}, not 1")
    a_site: dict[str, float] = {}
    b_site: dict[str, float] = {}
    anion = None
    for weight, match in zip(weights, parsed, strict=True):
        member = _parse_member(match.group("body"))
        for target, fractions in ((a_site, member.a_site), (b_site, member.b_site)):
            for element, fraction in fractions.items():
                target[element] = target.get(element, 0.0) + weight * fraction
        if anion not in (None, member.anion):
            raise CompositionError(f"{spec!r}: end members with different anions")
        anion = member.anion
    return SiteComposition(a_site, b_site, anion or "O")


def _parse_member(text: str) -> SiteComposition:
    """One formula: fractional subscripts, optionally a parenthesised B site, ending in O3 (or F3)."""
    body = text.replace(" ", "")
    match = re.fullmatch(r"(?P<cations>.*?)(?P<anion>O|F)3", body)
    if match is None:
        raise CompositionError(f"{text!r} is not an ABX3 formula ending in O3")
    cations = match.group("cations")
    grouped = re.fullmatch(r"(?P<a>[^()]*)\((?P<b>[^()]+)\)", cations)
    if grouped:
        a_site = _fractions(grouped.group("a"), text)
        b_site = _fractions(grouped.group("b"), text)
    else:
        a_site, b_site = {}, {}
        for element, amount in _fractions(cations, text).items():
            if element in A_SITE:
                a_site[element] = amount
            elif element in B_SITE:
                b_site[element] = amount
            else:
                raise CompositionError(
                    f"{text!r}: {element} has no usual perovskite site; write the B site in parentheses, "
                    "e.g. 'Pb(Mg1/3Nb2/3)O3', or give a dictionary"
                )
    return SiteComposition(a_site, b_site, match.group("anion"))


def _fractions(text: str, whole: str) -> dict[str, float]:
    position, fractions = 0, {}
    for token in _TOKEN.finditer(text):
        if token.start() != position:
            break
        element, amount = token.group(1), token.group(2)
        if element not in chemical_symbols[1:]:
            raise CompositionError(f"{whole!r}: unknown element {element!r}")
        fractions[element] = fractions.get(element, 0.0) + (float(Fraction(amount)) if amount else 1.0)
        position = token.end()
    if position != len(text):
        raise CompositionError(f"{whole!r}: cannot read {text[position:]!r}")
    return fractions
