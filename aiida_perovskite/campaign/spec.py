"""Campaign files: YAML checked key by key before anything is stored or submitted.

The file's shape, types and rules are the model ``campaign.schema.CampaignFile`` (built from the loop's
settings models); this module adds what needs the AiiDA plugins (labeling engines, their protocols and
elements, the phase-diagram and polarization WorkChains' settings). Every problem is reported as
``CampaignError`` naming the offending key (``systems.BTO.stages[0].steps``) and saying how to fix it. The
checked campaign is plain data (``Campaign``); ``campaign.builder`` turns it into a ConcurrentLearningWorkChain
builder.
"""

from __future__ import annotations

import dataclasses
import pathlib
from collections.abc import Mapping
from typing import Any

import yaml
from pydantic import ValidationError

from aiida_perovskite.campaign.schema import CampaignFile, Structure, structure_elements, with_protocol
from aiida_perovskite.protocols import available_protocols, load_protocol
from aiida_perovskite.schema import first_problem

__all__ = ("Campaign", "CampaignError", "SystemSpec", "load_campaign", "parse_campaign")


class CampaignError(ValueError):
    """A campaign file problem: ``key`` is where, the message says what is wrong and how to fix it."""

    def __init__(self, key: str, message: str):
        self.key = key
        super().__init__(f"{key}: {message}" if key else message)


@dataclasses.dataclass
class SystemSpec:
    """Where a system's starting structure comes from."""

    name: str
    source: str  # perovskite | composition | file
    value: Any
    repeat: list[int]
    phase: str = "cubic"
    lattice_constant: float | None = None
    c_over_a: float | None = None
    angle: float | None = None  # degrees, orthorhombic/rhombohedral shear
    displacement: float = 0.0  # Å, B cation along the polar axis (a polar start instead of the saddle point)
    configuration: int = 0


@dataclasses.dataclass
class Campaign:
    """A checked campaign file (plain values; codes and data are looked up when building)."""

    name: str
    description: str
    seed: int
    systems: dict[str, SystemSpec]
    stages: dict[str, list[dict]]
    trust: dict[str, Any]
    max_labels: int
    accurate_fraction: float
    max_iterations: int
    max_force_rmse: float | None
    validation_set: str | int | list[str] | None
    held_out_fraction: float
    training_set: str | int | list[str] | None
    perturbation: dict[str, Any] | None
    training: dict[str, Any]
    exploration: dict[str, Any]
    labeling: dict[str, Any]
    base_dir: pathlib.Path
    analysis: dict[str, Any] = dataclasses.field(default_factory=dict)
    analysis_structure: SystemSpec | None = None

    def elements(self) -> set[str]:
        """Every element of every system."""
        found: set[str] = set()
        for spec in self.systems.values():
            found |= structure_elements(spec.source, spec.value, self.base_dir)
        return found


def load_campaign(path: str | pathlib.Path) -> Campaign:
    """Read and check a campaign file."""
    path = pathlib.Path(path)
    if not path.is_file():
        raise CampaignError("", f"no campaign file at {path}")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise CampaignError("", f"{path} is not valid YAML: {exc}") from exc
    return parse_campaign(data, base_dir=path.parent)


def parse_campaign(data: Any, base_dir: pathlib.Path | None = None) -> Campaign:
    """Check the campaign ``data`` (a mapping as read from YAML) merged over its protocol's defaults."""
    base_dir = pathlib.Path(base_dir or ".")
    if not isinstance(data, Mapping):
        raise CampaignError(
            "",
            f"expected a mapping, got {type(data).__name__}: the campaign file must be a mapping of keys (name, "
            "systems, stages, ...)",
        )
    try:
        checked = CampaignFile.model_validate(with_protocol(dict(data)), context={"base_dir": base_dir})
    except ValidationError as error:
        raise CampaignError(*first_problem(error)) from None
    labeling = checked.labeling.model_dump(exclude_unset=True)
    _labeling(labeling, base_dir)
    analysis, analysis_structure = _analysis(checked)
    trust = checked.trust.model_dump(exclude_none=True)
    per_system = {
        name: system.trust.model_dump(exclude_none=True) for name, system in checked.systems.items() if system.trust
    }
    if per_system:
        trust["per_system"] = per_system
    initial, validation = checked.initial_data, checked.validation
    campaign = Campaign(
        name=checked.name,
        description=checked.description,
        seed=checked.seed,
        systems={name: _system_spec(name, system.structure, system.repeat) for name, system in checked.systems.items()},
        stages={
            name: [stage.model_dump(exclude_none=True) for stage in system.stages or checked.stages]
            for name, system in checked.systems.items()
        },
        trust=trust,
        max_labels=checked.max_labels,
        accurate_fraction=checked.convergence.accurate_fraction,
        max_iterations=checked.convergence.max_iterations,
        max_force_rmse=checked.convergence.max_force_rmse,
        validation_set=validation.training_set,
        held_out_fraction=validation.held_out_fraction,
        training_set=initial.training_set,
        perturbation=None if initial.perturbation is None else initial.perturbation.model_dump(exclude_unset=True),
        training=checked.training.model_dump(exclude_unset=True),
        exploration=checked.exploration.model_dump(exclude_unset=True),
        labeling=labeling,
        base_dir=base_dir,
        analysis=analysis,
        analysis_structure=analysis_structure,
    )
    _engine_elements(campaign)
    return campaign


def _system_spec(name: str, structure: Structure, repeat: list[int]) -> SystemSpec:
    spec = SystemSpec(name, structure.source, getattr(structure, structure.source), list(repeat))
    for field in ("phase", "lattice_constant", "c_over_a", "angle", "displacement", "configuration"):
        if getattr(structure, field) is not None:
            setattr(spec, field, getattr(structure, field))
    return spec


def _check_protocol(section: dict, key: str, workflow: str) -> None:
    protocols = available_protocols(workflow)
    if section.get("protocol") is not None and section["protocol"] not in protocols:
        raise CampaignError(
            f"{key}.protocol", f"unknown protocol {section['protocol']!r}; choose one of {', '.join(protocols)}"
        )
    overrides = section.get("overrides")
    if isinstance(overrides, Mapping):
        try:
            load_protocol(workflow, section.get("protocol"), overrides)
        except ValueError as error:
            raise CampaignError(f"{key}.overrides", str(error)) from error


def _labeling(section: dict, base_dir: pathlib.Path) -> None:
    """What the labeling engine's plugin decides: the engine, its protocols, its own keys."""
    from aiida_perovskite.engines import registered_engines

    engines = registered_engines()
    if section["engine"] not in engines:
        raise CampaignError(
            "labeling.engine", f"unknown engine {section['engine']!r}; choose one of {', '.join(engines)}"
        )
    if missing := engines[section["engine"]].missing_plugin():
        raise CampaignError("labeling.engine", missing)
    _check_protocol(section, "labeling", section["engine"])
    engine = engines[section["engine"]]
    for other in engines.values():
        for key in sorted(set(section) & set(other.section_keys) - set(engine.section_keys)):
            raise CampaignError(f"labeling.{key}", f"only the {other.name} engine takes it, not {engine.name!r}")
    if problem := engine.check_section(section, base_dir):
        raise CampaignError(*problem)


def _analysis(checked: CampaignFile) -> tuple[dict[str, Any], SystemSpec | None]:
    """The downstream analysis run on the final model once the campaign converged: what its WorkChains accept."""
    from aiida_perovskite.workflows.phase_diagram import ladder_error, protocol_error
    from aiida_perovskite.workflows.polarization import KNOWN_SETTINGS

    diagram = checked.analysis.phase_diagram
    if diagram is None:
        return {}, None
    key = "analysis.phase_diagram"
    if error := ladder_error(diagram.temperatures, diagram.mode):
        raise CampaignError(f"{key}.temperatures", error)
    md = diagram.resolved_md()
    if error := protocol_error(md, diagram.temperatures, diagram.pressure):
        raise CampaignError(f"{key}.md", error)
    analysis: dict[str, Any] = {
        "phase_diagram": {
            "temperatures": diagram.temperatures,
            "mode": diagram.mode,
            "pressure": diagram.pressure,
            "md": md,
        }
    }
    polarization = checked.analysis.polarization
    if polarization is not None:
        key = "analysis.polarization"
        chosen = polarization.temperatures or [min(diagram.temperatures)]
        if missing := [t for t in chosen if t not in diagram.temperatures]:
            raise CampaignError(
                f"{key}.temperatures", f"{missing} are not on the phase-diagram ladder {diagram.temperatures}"
            )
        if unknown := sorted(set(polarization.settings) - KNOWN_SETTINGS):
            raise CampaignError(
                f"{key}.settings.{unknown[0]}", f"unknown key; allowed keys: {', '.join(sorted(KNOWN_SETTINGS))}"
            )
        analysis["polarization"] = {"temperatures": chosen, "settings": polarization.settings}
    return analysis, _system_spec("phase_diagram", diagram.structure, diagram.repeat)


def _engine_elements(campaign: Campaign) -> None:
    from aiida_perovskite.engines import get_engine

    for name, spec in campaign.systems.items():
        error = get_engine(campaign.labeling["engine"]).check_elements(
            structure_elements(spec.source, spec.value, campaign.base_dir),
            campaign.labeling.get("protocol"),
            campaign.labeling.get("overrides"),
        )
        if error:
            raise CampaignError(f"systems.{name}.structure", f"{campaign.labeling['engine']} cannot label it: {error}")
