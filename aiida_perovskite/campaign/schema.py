"""The campaign file as a pydantic model: its JSON Schema is what ``aiida-perovskite campaign schema`` publishes.

The loop's concepts (stages, trust levels, perturbations, convergence, training phases) are the models of
``loop.settings`` and ``analysis.model_deviation``; this module composes them into the file and adds what only a
file has: systems and their structures, paths relative to the file (``context={'base_dir': ...}``), size limits.
What needs the AiiDA plugins (labeling engines and their protocols, codes) is checked by ``campaign.spec``.
"""

from __future__ import annotations

import functools
import math
import pathlib
from typing import Annotated, Any

from pydantic import AfterValidator, Field, ValidationInfo, model_validator

from aiida_perovskite.analysis.model_deviation import TrustLevels
from aiida_perovskite.loop.settings import (
    LADDER_MODES,
    NODE_LABEL_LENGTH,
    Convergence,
    Exploration,
    HeldOut,
    Labeling,
    Perturbation,
    PhaseDiagramMd,
    Stage,
    Training,
    name_problem,
    system_trust_problem,
)
from aiida_perovskite.protocols import available_protocols, load_protocol, recursive_merge
from aiida_perovskite.schema import Settings, bounded, choice, problem
from aiida_perovskite.structures import PHASES, parent_cell, parse_composition
from aiida_perovskite.structures.composition import CompositionError

__all__ = ("CampaignFile", "campaign_schema", "file_symbols", "structure_elements")

# Every explored frame of a system may be labeled: no labeling engine handles frames much larger than this.
MAX_LABELED_ATOMS = 5000
# The analysed MD holds whole frames in memory (24 MB per frame and million atoms for positions alone).
MAX_MD_ATOMS = 2_000_000
STRUCTURE_SOURCES = ("perovskite", "composition", "file")
PARENT_ONLY = ("c_over_a", "angle", "displacement")  # of a parent perovskite (structure.perovskite) only


def _base_dir(info: ValidationInfo) -> pathlib.Path:
    return pathlib.Path((info.context or {}).get("base_dir", "."))


def _existing(value: Any, info: ValidationInfo, key: str = "") -> str:
    path = _base_dir(info) / str(value)
    if not path.exists():
        raise problem(f"no data at {path}; give a deepmd/npy folder or a node PK", key)
    return str(path)


def _labeled_data(value: Any, info: ValidationInfo) -> str | int | list[str]:
    """A labeled set: a node PK, or deepmd/npy folders (one, or a list as DP-GEN's init_data_sys) relative to
    the campaign file; paths are returned resolved."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, list):
        if not value:
            raise problem("an empty list; give deepmd/npy folders or a node PK")
        return [_existing(item, info, f"[{index}]") for index, item in enumerate(value)]
    return _existing(value, info)


LabeledData = Annotated[
    Any,
    AfterValidator(_labeled_data),
    Field(
        description="a deepmd/npy folder (or a list of them) relative to the campaign file, or a node PK",
        json_schema_extra={
            "anyOf": [{"type": "string"}, {"type": "integer"}, {"type": "array", "items": {"type": "string"}}]
        },
    ),
]


def _system_name(name: str) -> str:
    if error := name_problem(name):
        raise problem(error)
    return name


SystemName = Annotated[str, AfterValidator(_system_name), Field(pattern=r"^[A-Za-z0-9]+(_[A-Za-z0-9]+)*$")]


def _some_systems(systems: dict[str, Any]) -> dict[str, Any]:
    if not systems:
        raise problem("give at least one system, e.g. systems: {BaTiO3: {structure: {perovskite: BaTiO3}}}")
    return systems


def _repeat(value: list[int]) -> list[int]:
    if len(value) != 3 or any(n < 1 for n in value):
        raise problem(f"give three positive integers, got {value!r}")
    return value


Repeat = Annotated[list[int], AfterValidator(_repeat), Field(description="supercell repeats, e.g. [2, 2, 2]")]


def file_symbols(path: pathlib.Path) -> tuple[str, ...]:
    """The chemical symbols of a structure file (read once per file version: several checks ask)."""
    return _read_symbols(str(path), path.stat().st_mtime_ns)


@functools.lru_cache(maxsize=64)
def _read_symbols(path: str, mtime_ns: int) -> tuple[str, ...]:
    from ase.io import read

    return tuple(read(path).get_chemical_symbols())


class Structure(Settings):
    """A starting structure: a parent perovskite in a phase, a solid-solution composition, or a structure file."""

    perovskite: str | None = Field(default=None, description="a single ABO3 perovskite, e.g. BaTiO3")
    composition: str | None = Field(default=None, description="a solid solution, e.g. Ba0.9Ca0.1Ti0.9Zr0.1O3")
    file: str | None = Field(default=None, description="a structure file ASE reads, relative to the campaign file")
    phase: choice(PHASES, "phase") | None = Field(
        default=None, description="of a parent perovskite; cubic if not given"
    )
    lattice_constant: bounded(0, lo_open=True) | None = Field(default=None, description="pseudo-cubic a in Å")
    c_over_a: bounded(0, lo_open=True) | None = None
    angle: bounded(0, lo_open=True) | None = Field(default=None, description="degrees, orthorhombic/rhombohedral")
    displacement: bounded(0, 0.5, hi_open=True) | None = Field(
        default=None, description="Å, B cation along the polar axis (a polar start instead of the saddle point)"
    )
    configuration: bounded(0, integer=True) | None = Field(default=None, description="which random solid solution")

    @property
    def source(self) -> str:
        return next(source for source in STRUCTURE_SOURCES if getattr(self, source) is not None)

    @model_validator(mode="after")
    def _buildable(self, info: ValidationInfo) -> Structure:
        sources = [source for source in STRUCTURE_SOURCES if getattr(self, source) is not None]
        if len(sources) != 1:
            raise problem(f"give exactly one of {', '.join(STRUCTURE_SOURCES)}, got {sources or 'none'}")
        source = sources[0]
        for field in ("phase", *PARENT_ONLY):
            if getattr(self, field) is not None and source != "perovskite":
                raise problem("applies to a parent perovskite only (structure.perovskite)", field)
        if source == "file":
            path = _base_dir(info) / self.file
            if not path.is_file():
                raise problem(f"no file {path} (paths are relative to the campaign file)", "file")
            try:
                file_symbols(path)
            except Exception as exc:  # ASE raises many kinds for an unreadable file
                raise problem(f"ASE cannot read it: {exc}", "file") from None
            return self
        try:
            composition = parse_composition(getattr(self, source))
        except CompositionError as exc:
            raise problem(str(exc), source) from None
        if source == "perovskite":
            if len(composition.a_site) != 1 or len(composition.b_site) != 1:
                raise problem(f"{composition.formula()} is a solid solution: use composition:", "perovskite")
            try:
                parent_cell(
                    self.perovskite,
                    self.phase or "cubic",
                    self.lattice_constant,
                    self.c_over_a,
                    self.angle,
                    self.displacement or 0.0,
                )
            except ValueError as exc:
                raise problem(str(exc)) from None
        return self

    def atoms(self, base_dir: pathlib.Path) -> int:
        """Atoms in the cell that ``repeat`` repeats: a structure file's, or the 5-atom perovskite cell."""
        return len(file_symbols(base_dir / self.file)) if self.source == "file" else 5


def structure_elements(source: str, value: str, base_dir: pathlib.Path) -> set[str]:
    """Every element of a starting structure given as ``source`` (perovskite, composition, file): ``value``."""
    if source == "file":
        return set(file_symbols(base_dir / value))
    composition = parse_composition(value)
    return {*composition.a_site, *composition.b_site, composition.anion}


def _size_problem(structure: Structure, repeat: list[int], info: ValidationInfo, max_atoms: int) -> None:
    atoms = structure.atoms(_base_dir(info)) * math.prod(repeat)
    if atoms > max_atoms:
        raise problem(
            f"{atoms} atoms; at most {max_atoms} here (see the campaigns guide), use a smaller repeat", "repeat"
        )


class TrustOverride(Settings):
    """A system's own trust levels: any of the campaign's, the others inherited."""

    force_lo: float | None = None
    force_hi: float | None = None
    virial_lo: float | None = None
    virial_hi: float | None = None


class System(Settings):
    """A system the campaign explores and labels (every frame of it may be labeled: at most 5,000 atoms)."""

    structure: Structure = Field(description="give one of perovskite, composition, file")
    repeat: Repeat = [1, 1, 1]
    stages: Annotated[list[Stage], Field(min_length=1)] | None = Field(
        default=None, description="this system's own stages instead of the campaign's"
    )
    trust: TrustOverride | None = Field(default=None, description="this system's own trust levels")

    @model_validator(mode="after")
    def _labelable(self, info: ValidationInfo) -> System:
        _size_problem(self.structure, self.repeat, info, MAX_LABELED_ATOMS)
        return self


class Validation(HeldOut):
    """Where the campaign measures its models' errors: a fixed labeled set and/or frames held out of its labels."""

    training_set: LabeledData | None = None


class InitialData(Settings):
    """The labels of iteration 0: a labeled set, labeled perturbations of the systems, or both."""

    training_set: LabeledData | None = None
    perturbation: Perturbation | None = None

    @model_validator(mode="after")
    def _something(self) -> InitialData:
        if self.training_set is None and self.perturbation is None:
            raise problem("give training_set, perturbation, or both (perturbations added to the set)")
        return self


class PhaseDiagram(Settings):
    """The heating or cooling ladder run on the final model."""

    structure: Structure
    repeat: Repeat = [1, 1, 1]
    temperatures: list[float] = Field(description="the ladder in K, in the order run")
    mode: choice(LADDER_MODES, "mode") = Field(default="heating", description="the order the rungs are run in")
    pressure: float = Field(default=1.0, description="bar")
    protocol: choice(functools.partial(available_protocols, "phase_diagram"), "protocol") | None = Field(
        default=None, description="the MD of each rung (protocols/phase_diagram.yaml); md overrides its keys"
    )
    md: PhaseDiagramMd = PhaseDiagramMd()

    def resolved_md(self) -> dict[str, Any]:
        """The MD of each rung: the protocol's, with the keys given in ``md``."""
        given = self.md.model_dump(exclude_unset=True)
        return PhaseDiagramMd.model_validate(load_protocol("phase_diagram", self.protocol, given)).model_dump(
            exclude_none=True
        )

    @model_validator(mode="after")
    def _fits(self, info: ValidationInfo) -> PhaseDiagram:
        _size_problem(self.structure, self.repeat, info, MAX_MD_ATOMS)
        return self


class Polarization(Settings):
    """Local polarization of some of the phase diagram's runs."""

    temperatures: list[float] | None = Field(default=None, description="rungs of the ladder; its lowest if not given")
    settings: dict[str, Any] = {}


class Analysis(Settings):
    """What runs on the final model once the campaign converged."""

    phase_diagram: PhaseDiagram | None = None
    polarization: Polarization | None = None

    @model_validator(mode="after")
    def _runs_to_analyse(self) -> Analysis:
        if self.polarization is not None and self.phase_diagram is None:
            raise problem("missing: the polarization analysis reads its MD runs", "phase_diagram")
        return self


class CampaignFile(Settings):
    """A concurrent-learning campaign. Keys left out come from its protocol (``concurrent_learning.yaml``)."""

    name: str = Field(default="campaign", min_length=1, max_length=NODE_LABEL_LENGTH)
    description: str = ""
    protocol: choice(functools.partial(available_protocols, "concurrent_learning"), "protocol") | None = None
    seed: bounded(0, integer=True) = Field(
        description="give an integer campaign seed, e.g. seed: 2026 (every random choice derives from it)"
    )
    systems: Annotated[dict[SystemName, System], AfterValidator(_some_systems)] = Field(
        description="the systems explored and labeled", json_schema_extra={"minProperties": 1}
    )
    stages: Annotated[list[Stage], Field(min_length=1)]
    trust: TrustLevels
    max_labels: bounded(1, integer=True) = Field(description="labels per system and iteration")
    convergence: Convergence = Convergence()
    initial_data: InitialData = Field(
        description="give training_set (a path to deepmd/npy data or a node PK), perturbation, or both"
    )
    validation: Validation = Validation()
    training: Training
    exploration: Exploration
    labeling: Labeling
    analysis: Analysis = Analysis()

    @model_validator(mode="after")
    def _system_trust(self) -> CampaignFile:
        for name, system in self.systems.items():
            if system.trust is None:
                continue
            own = system.trust.model_dump(exclude_none=True)
            levels = self.trust.model_dump(exclude_none=True)
            if found := system_trust_problem(levels, own, f"systems.{name}.trust"):
                raise problem(found[1], found[0])
        return self


def with_protocol(data: dict[str, Any]) -> dict[str, Any]:
    """The campaign file ``data`` over its protocol's defaults (and the labeling engine's default code label)."""
    data = {key: value for key, value in data.items() if value is not None}  # `analysis:` with nothing under it
    name = data.get("protocol")
    defaults = load_protocol(
        "concurrent_learning", name if name in available_protocols("concurrent_learning") else None
    )
    merged = recursive_merge({key: value for key, value in defaults.items() if key != "perturbation"}, data)
    if isinstance(merged.get("labeling"), dict):
        merged["labeling"].setdefault("code", f"{merged['labeling'].get('engine')}@localhost")
    initial = merged.get("initial_data")
    if isinstance(initial, dict) and "perturbation" in initial:
        merged["initial_data"] = {
            **initial,
            "perturbation": recursive_merge(defaults["perturbation"], initial["perturbation"] or {}),
        }
    return merged


def campaign_schema() -> dict[str, Any]:
    """JSON Schema of a campaign file for editors: keys the protocol fills in are optional."""
    schema = CampaignFile.model_json_schema()
    schema["title"] = "aiida-perovskite campaign"
    defaults = load_protocol("concurrent_learning")
    schema["required"] = [key for key in schema["required"] if key not in defaults]
    for key, model in (("training", Training), ("exploration", Exploration), ("labeling", Labeling)):
        definition = schema["$defs"][model.__name__]
        definition["required"] = [name for name in definition.get("required", []) if name not in defaults[key]]
    return schema
