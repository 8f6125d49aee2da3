"""The settings of the concurrent-learning loop and its phase diagrams, each defined once: the campaign file, the
WorkChain port validators and the calcfunctions validate through these models.

Defaults come from the protocol files (``protocol_default``); the MD time step and damping left unset are
``MdSettings``' and the sanity filter's are ``SANITY_DEFAULTS``.
"""

from __future__ import annotations

import copy
import functools
from collections.abc import Mapping
from typing import Annotated, Any

from pydantic import Field, ValidationError, model_validator

from aiida_perovskite.analysis.lammps_io import ENSEMBLES, MdSettingError, MdSettings
from aiida_perovskite.analysis.model_deviation import SELECTION_MODES, TrustLevels
from aiida_perovskite.analysis.model_files import BACKENDS
from aiida_perovskite.loop.schedule import STAGE_MD_KEYS
from aiida_perovskite.protocols import available_protocols, load_protocol
from aiida_perovskite.schema import Settings, bounded, choice, first_problem, problem

__all__ = (
    "AT_LEAST_ONE",
    "FORCE_TARGET",
    "FRACTION",
    "HELD_OUT_FRACTION",
    "LADDER_MODES",
    "Convergence",
    "Exploration",
    "FinalTraining",
    "HeldOut",
    "Labeling",
    "LoopSettings",
    "Perturbation",
    "PhaseDiagramMd",
    "ReuseTraining",
    "Sanity",
    "Stage",
    "StageConditions",
    "Training",
    "name_problem",
    "names_problem",
    "protocol_default",
    "system_trust_problem",
    "trust_problem",
)

FRACTION = bounded(0, 1, lo_open=True, description="a fraction in (0, 1]")
POSITIVE = bounded(0, lo_open=True)
AT_LEAST_ONE = bounded(1, integer=True)
FORCE_TARGET = bounded(0, lo_open=True, description="a held-out force RMSE target in eV/Å")
HELD_OUT_FRACTION = bounded(0, 1, hi_open=True, description="of each iteration's labels kept out of training, e.g. 0.1")
NonEmptyNumbers = Annotated[list[float], Field(min_length=1)]


def protocol_default(*path: str, workflow: str = "concurrent_learning") -> Any:
    """A default of ``workflow``'s default protocol (``protocols/<workflow>.yaml``)."""
    value: Any = load_protocol(workflow)
    for part in path:
        value = value[part]
    return copy.deepcopy(value)


NODE_LABEL_LENGTH = 255  # AiiDA's label and link-label columns (varchar(255) on PostgreSQL)
SYSTEM_NAME_LENGTH = 64  # a system name is one part of composite link labels


def name_problem(name: object) -> str | None:
    """Why ``name`` cannot name a system (or a structure to label), or None. Names become parts of AiiDA link
    labels joined by '__' (``devi__BTO_T``), so they use letters, digits and single '_'."""
    if not isinstance(name, str) or not name.isascii() or not name.replace("_", "").isalnum() or "__" in name:
        return f"{name!r}: names use letters, digits and single '_' (they become AiiDA link labels), e.g. BTO_T"
    if len(name) > SYSTEM_NAME_LENGTH:
        return f"{len(name)} characters; at most {SYSTEM_NAME_LENGTH} (part of link labels), shorten it"
    return None


def names_problem(names: object) -> str | None:
    """The first of ``names`` that cannot name a system, with why; or None."""
    return next((error for name in names if (error := name_problem(name))), None)


def _md_default(name: str) -> float:
    return MdSettings.__dataclass_fields__[name].default


class MdTimes(Settings):
    """The time step and the thermostat and barostat damping of MD runs (MdSettings' when not given)."""

    timestep: float | None = Field(default=None, description=f"ps; {_md_default('timestep')} if not given")
    tdamp: float | None = Field(
        default=None, description=f"thermostat damping in ps; {_md_default('tdamp')} if not given"
    )
    pdamp: float | None = Field(
        default=None, description=f"barostat damping in ps; {_md_default('pdamp')} if not given"
    )

    def given_times(self) -> dict[str, float]:
        return {key: getattr(self, key) for key in ("timestep", "tdamp", "pdamp") if getattr(self, key) is not None}


class StageConditions(MdTimes):
    """The MD runs of one exploration stage: every (temperature, pressure) is one ``MdSettings``."""

    temperatures: NonEmptyNumbers = Field(description="temperatures in K, e.g. [50, 150, 300]")
    pressures: NonEmptyNumbers = Field(default=[1.0], description="pressures in bar")
    ensemble: choice(ENSEMBLES, "ensemble") = Field(description="the MD ensemble")
    steps: int = Field(description="MD steps of each run")
    sampling_interval: int = Field(description="steps between two frames whose deviation is computed")

    @model_validator(mode="after")
    def _md_runs(self) -> StageConditions:
        md = {"ensemble": self.ensemble, "steps": self.steps, "sampling_interval": self.sampling_interval}
        md.update(self.given_times())
        for t_index, temperature in enumerate(self.temperatures):
            for p_index, pressure in enumerate(self.pressures):
                try:
                    MdSettings(temperature=temperature, pressure=pressure, **md)
                except MdSettingError as error:
                    key = {"temperature": f"temperatures[{t_index}]", "pressure": f"pressures[{p_index}]"}
                    raise problem(str(error), key.get(error.setting, error.setting)) from None
        return self

    def md_settings(self) -> dict[str, Any]:
        """The stage's MD conditions as given (unset optional settings left out)."""
        return self.model_dump(include=set(STAGE_MD_KEYS), exclude_none=True)


class Stage(StageConditions):
    """An exploration stage: its MD runs and when it ends (accurate fraction and force target, or iterations)."""

    max_iterations: AT_LEAST_ONE = Field(description="iterations after which the stage ends anyway")
    accurate_fraction: FRACTION | None = Field(default=None, description="this stage's convergence threshold")
    max_force_rmse: FORCE_TARGET | None = None


class Convergence(Settings):
    """When the campaign is converged: every stage's accurate fraction (and force target), within the iterations."""

    accurate_fraction: FRACTION = Field(default_factory=lambda: protocol_default("convergence", "accurate_fraction"))
    max_iterations: AT_LEAST_ONE = Field(default_factory=lambda: protocol_default("convergence", "max_iterations"))
    max_force_rmse: FORCE_TARGET | None = None


class Perturbation(Settings):
    """Randomly strained and displaced copies of each starting structure (DP-GEN's init_bulk)."""

    count: AT_LEAST_ONE = Field(default_factory=lambda: protocol_default("perturbation", "count"))
    cell_strain: bounded(0, 0.5, hi_open=True) = Field(
        default_factory=lambda: protocol_default("perturbation", "cell_strain"),
        description="largest strain component, e.g. 0.03",
    )
    atom_displacement: bounded(0, 0.5, hi_open=True) = Field(
        default_factory=lambda: protocol_default("perturbation", "atom_displacement"),
        description="largest displacement of an atom in Å",
    )
    volume_scale: POSITIVE = Field(default=1.0, description="scales the volume before perturbing")


class ReuseTraining(Settings):
    """Warm start: each model of the next iteration continues from its predecessor."""

    numb_steps: AT_LEAST_ONE = Field(description="training steps of a warm-started model")
    start_lr: POSITIVE | None = None


class FinalTraining(Settings):
    """The longer training of the converged campaign's final models."""

    numb_steps: AT_LEAST_ONE = Field(description="training steps of the final models")
    compress: bool = Field(default=False, description="also write compressed TensorFlow models for MD")


LADDER_MODES = ("heating", "cooling", "independent")  # of a phase-diagram ladder


def _ladder_default(name: str) -> Any:
    return Field(default_factory=lambda: protocol_default(name, workflow="phase_diagram"))


class PhaseDiagramMd(MdTimes):
    """The MD of each rung of a phase-diagram ladder (``protocols/phase_diagram.yaml``)."""

    ensemble: choice(ENSEMBLES, "ensemble") = _ladder_default("ensemble")
    equilibration_steps: bounded(0, integer=True) = _ladder_default("equilibration_steps")
    production_steps: AT_LEAST_ONE = _ladder_default("production_steps")
    sampling_interval: AT_LEAST_ONE = _ladder_default("sampling_interval")
    thermo_interval: AT_LEAST_ONE = _ladder_default("thermo_interval")
    blocks: AT_LEAST_ONE = _ladder_default("blocks")

    @model_validator(mode="after")
    def _runnable(self) -> PhaseDiagramMd:
        try:
            self.md_settings(300.0, 1.0)
        except MdSettingError as error:
            raise problem(str(error), error.setting) from None
        return self

    def md_settings(self, temperature: float, pressure: float) -> MdSettings:
        """The MD run of one rung (temperature in K, pressure in bar)."""
        return MdSettings(
            ensemble=self.ensemble,
            temperature=temperature,
            pressure=pressure,
            steps=self.equilibration_steps + self.production_steps,
            sampling_interval=self.sampling_interval,
            **self.given_times(),
        )

    @property
    def first_production_frame(self) -> int:
        """Index of the first analysed frame after the equilibration."""
        return self.equilibration_steps // self.sampling_interval


class Training(Settings):
    """The DeePMD ensemble: its code, protocol (``deepmd_train.yaml``) and the warm-start and final trainings."""

    code: str = Field(min_length=1, max_length=NODE_LABEL_LENGTH, description="dp code label, e.g. dp@localhost")
    protocol: choice(functools.partial(available_protocols, "deepmd_train"), "protocol") | None = None
    num_models: bounded(1, integer=True) | None = Field(default=None, description="ensemble size (4 is usual)")
    backend: choice(BACKENDS, "backend") | None = None
    overrides: dict[str, Any] = Field(default={}, description="merged over the protocol's DeePMD input")
    reuse: ReuseTraining | None = None
    final: FinalTraining | None = None
    options: dict[str, Any] = Field(default={}, description="CalcJob metadata.options (resources, walltime, ...)")

    @model_validator(mode="after")
    def _ensemble(self) -> Training:
        if self.num_models is not None and self.num_models < 2:
            raise problem("the model deviation needs at least 2 models (4 is usual)", "num_models")
        try:
            load_protocol("deepmd_train", self.protocol, self.overrides)
        except ValueError as error:
            raise problem(str(error), "overrides") from None
        return self


class Sanity(Settings):
    """The candidate filter of ``analysis.model_deviation.sanity_mask`` (defaults: ``SANITY_DEFAULTS``)."""

    min_distance: bounded(0, lo_open=True) | None = Field(default=None, description="shortest distance, Å")
    max_skew: bounded(0, lo_open=True) | None = None
    max_volume_change: bounded(0, lo_open=True) | None = Field(default=None, description="from the run's start")


class Exploration(Settings):
    """LAMMPS exploration with the ensemble and the selection of candidates among its frames."""

    code: str = Field(min_length=1, max_length=NODE_LABEL_LENGTH, description="lmp code label")
    selection_mode: choice(SELECTION_MODES, "mode") = Field(
        default_factory=lambda: protocol_default("exploration", "selection_mode")
    )
    skip_frames: bounded(0, integer=True) = Field(
        default_factory=lambda: protocol_default("exploration", "skip_frames"),
        description="first frames of a run never selected",
    )
    sanity: Sanity = Sanity()
    options: dict[str, Any] = {}


class Labeling(Settings):
    """The labeling engine (DFT code or teacher model); the engine's own keys are checked by its plugin."""

    engine: str = Field(description="cp2k, qe, vasp, abacus or teacher")
    code: str | None = Field(
        default=None,
        min_length=1,
        max_length=NODE_LABEL_LENGTH,
        description="the engine's code label (<engine>@localhost)",
    )
    protocol: str | None = None
    overrides: dict[str, Any] = {}
    options: dict[str, Any] = {}
    max_concurrent: bounded(1, integer=True) | None = Field(default=None, description="labeling jobs at once")
    tolerated_failed_fraction: bounded(0, 1) | None = Field(
        default=None, description="of an iteration's jobs that may fail before the campaign stops"
    )
    allow_mixed_levels: bool = Field(
        default=False, description="train on labels of different levels of theory (their energies differ)"
    )
    teacher: dict[str, Any] | None = Field(default=None, description="the teacher model (teacher engine only)")


def system_trust_problem(levels: Mapping[str, Any], own: Mapping[str, Any], key: str) -> tuple[str, str] | None:
    """(key path, message) if a system's trust levels, the campaign's ``levels`` updated by its ``own``, are not
    valid trust levels; the path starts at ``key``."""
    try:
        TrustLevels.model_validate({**levels, **own})
    except ValidationError as error:
        return first_problem(error, key)
    return None


def trust_problem(trust: Mapping[str, Any]) -> tuple[str, str] | None:
    """(key path, message) if the campaign's ``trust`` (levels and ``per_system`` overrides) is invalid."""
    levels = {key: value for key, value in trust.items() if key != "per_system"}
    overrides = {"trust": {}, **{f"trust.per_system.{name}": own for name, own in trust.get("per_system", {}).items()}}
    return next((found for key, own in overrides.items() if (found := system_trust_problem(levels, own, key))), None)


class HeldOut(Settings):
    """Frames held out of the labels to measure the models on."""

    held_out_fraction: HELD_OUT_FRACTION = 0.0


class LoopSettings(Settings):
    """Every setting of a campaign besides its systems and data, in the shape of ``concurrent_learning.yaml``:
    what ``ConcurrentLearningWorkChain.get_builder_from_protocol`` checks a protocol and its overrides with."""

    max_labels: AT_LEAST_ONE
    convergence: Convergence
    trust: dict[str, Any] = Field(description="force_lo/force_hi (virial_lo/virial_hi), per_system overrides")
    stages: Annotated[list[Stage], Field(min_length=1)]
    perturbation: Perturbation
    validation: HeldOut
    training: Training
    exploration: Exploration
    labeling: Labeling

    @model_validator(mode="after")
    def _trust_levels(self) -> LoopSettings:
        if found := trust_problem(self.trust):
            raise problem(found[1], found[0])
        return self
