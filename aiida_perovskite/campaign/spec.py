"""Campaign files: YAML checked key by key before anything is stored or submitted.

Every problem is reported as ``CampaignError`` naming the offending key (``systems.BTO.stages[0].steps``)
and saying how to fix it. The checked campaign is plain data (``Campaign``); ``campaign.builder`` turns it
into a ConcurrentLearningWorkChain builder.
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import math
import pathlib
from collections.abc import Mapping
from typing import Any

import yaml

from aiida_perovskite.analysis.lammps_io import MdSettingError, MdSettings
from aiida_perovskite.analysis.model_deviation import SELECTION_MODES
from aiida_perovskite.analysis.model_files import BACKENDS
from aiida_perovskite.loop.schedule import STAGE_KEYS, STAGE_MD_KEYS
from aiida_perovskite.protocols import available_protocols, load_protocol, recursive_merge
from aiida_perovskite.structures import PHASES, parent_cell, parse_composition
from aiida_perovskite.structures.composition import CompositionError

__all__ = ("Campaign", "CampaignError", "SystemSpec", "load_campaign", "parse_campaign")

TOP_KEYS = (
    "name",
    "description",
    "protocol",
    "seed",
    "systems",
    "stages",
    "trust",
    "max_labels",
    "convergence",
    "initial_data",
    "validation",
    "training",
    "exploration",
    "labeling",
    "analysis",
)
SYSTEM_KEYS = ("structure", "repeat", "stages", "trust")
STRUCTURE_SOURCES = ("perovskite", "composition", "file")
PARENT_KEYS = ("phase", "lattice_constant", "c_over_a", "angle", "displacement")  # of a parent perovskite only
STRUCTURE_KEYS = (*STRUCTURE_SOURCES, *PARENT_KEYS, "configuration")
TRUST_KEYS = ("force_lo", "force_hi", "virial_lo", "virial_hi")
CONVERGENCE_KEYS = ("accurate_fraction", "max_iterations", "max_force_rmse")
VALIDATION_KEYS = ("training_set", "held_out_fraction")
INITIAL_KEYS = ("training_set", "perturbation")
PERTURBATION_KEYS = ("count", "cell_strain", "atom_displacement", "volume_scale")
TRAINING_KEYS = ("code", "protocol", "num_models", "backend", "overrides", "reuse", "final", "options")
EXPLORATION_KEYS = ("code", "selection_mode", "skip_frames", "sanity", "options")
SANITY_KEYS = ("min_distance", "max_skew", "max_volume_change")
LABELING_KEYS = (
    "engine",
    "code",
    "protocol",
    "overrides",
    "options",
    "max_concurrent",
    "tolerated_failed_fraction",
    "allow_mixed_levels",
    "teacher",
)
ANALYSIS_KEYS = ("phase_diagram", "polarization")
PHASE_DIAGRAM_KEYS = ("structure", "repeat", "temperatures", "mode", "pressure", "md")
POLARIZATION_KEYS = ("temperatures", "settings")


NODE_LABEL_LENGTH = 255  # AiiDA's label and link-label columns (varchar(255) on PostgreSQL)
SYSTEM_NAME_LENGTH = 64  # a system name is one part of composite link labels
# Every explored frame of a system may be labeled: no labeling engine handles frames much larger than this.
MAX_LABELED_ATOMS = 5000
# The analysed MD holds whole frames in memory (24 MB per frame and million atoms for positions alone).
MAX_MD_ATOMS = 2_000_000


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
            found |= _elements_of(spec, self.base_dir)
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
    _mapping(data, "", "the campaign file must be a mapping of keys (name, systems, stages, ...)")
    _known(data, TOP_KEYS, "")
    protocol = data.get("protocol")
    protocols = available_protocols("concurrent_learning")
    if protocol is not None and protocol not in protocols:
        raise CampaignError("protocol", f"unknown protocol {protocol!r}; choose one of {', '.join(protocols)}")
    defaults = load_protocol("concurrent_learning", protocol)

    name = _string(data.get("name", "campaign"), "name")
    seed = _integer(data.get("seed"), "seed", minimum=0, hint="give an integer campaign seed, e.g. seed: 2026")
    systems, system_stages, per_system_trust = _systems(data.get("systems"), base_dir)

    stages_default = data.get("stages", defaults["stages"])
    stages = {}
    for system in systems:
        given = system_stages.get(system)
        key = f"systems.{system}.stages" if given is not None else "stages"
        stages[system] = _stages(given if given is not None else stages_default, key)

    trust = _trust(recursive_merge(defaults["trust"], data.get("trust") or {}), "trust")
    for system, levels in per_system_trust.items():
        _trust({**trust, **levels}, f"systems.{system}.trust")
    if per_system_trust:
        trust["per_system"] = per_system_trust

    max_labels = _integer(data.get("max_labels", defaults["max_labels"]), "max_labels", minimum=1)
    convergence = data.get("convergence") or {}
    _mapping(convergence, "convergence")
    _known(convergence, CONVERGENCE_KEYS, "convergence")
    fraction = _fraction(
        convergence.get("accurate_fraction", defaults["accurate_fraction"]), "convergence.accurate_fraction"
    )
    max_iterations = _integer(
        convergence.get("max_iterations", defaults["max_iterations"]), "convergence.max_iterations", minimum=1
    )

    max_force_rmse = convergence.get("max_force_rmse", defaults.get("max_force_rmse"))
    if max_force_rmse is not None:
        max_force_rmse = _number(max_force_rmse, "convergence.max_force_rmse")
    validation_set, held_out_fraction = _validation(
        recursive_merge(defaults["validation"], data.get("validation") or {}), base_dir
    )
    training_set, perturbation = _initial_data(data.get("initial_data"), defaults["perturbation"], base_dir)
    training = _section(data, "training", TRAINING_KEYS, defaults["training"], {"code": "dp@localhost"})
    _training(training)
    exploration = _section(data, "exploration", EXPLORATION_KEYS, defaults["exploration"], {"code": "lmp@localhost"})
    _exploration(exploration)
    given = data.get("labeling") or {}
    engine = given.get("engine", defaults["labeling"]["engine"]) if isinstance(given, Mapping) else None
    labeling = _section(data, "labeling", LABELING_KEYS, defaults["labeling"], {"code": f"{engine}@localhost"})
    _labeling(labeling, base_dir)

    analysis, analysis_structure = _analysis(data.get("analysis") or {}, base_dir)
    campaign = Campaign(
        name=name,
        description=str(data.get("description", "")),
        seed=seed,
        systems=systems,
        stages=stages,
        trust=trust,
        max_labels=max_labels,
        accurate_fraction=fraction,
        max_iterations=max_iterations,
        max_force_rmse=max_force_rmse,
        validation_set=validation_set,
        held_out_fraction=held_out_fraction,
        training_set=training_set,
        perturbation=perturbation,
        training=training,
        exploration=exploration,
        labeling=labeling,
        base_dir=base_dir,
        analysis=analysis,
        analysis_structure=analysis_structure,
    )
    _engine_elements(campaign)
    return campaign


def _mapping(value: Any, key: str, hint: str = "give a mapping of keys") -> None:
    if not isinstance(value, Mapping):
        raise CampaignError(key, f"expected a mapping, got {type(value).__name__} {value!r}; {hint}")


def _known(values: Mapping, allowed: tuple[str, ...], key: str) -> None:
    for name in values:
        if name not in allowed:
            close = difflib.get_close_matches(str(name), allowed, n=1)
            hint = f"did you mean {close[0]!r}?" if close else f"allowed keys: {', '.join(allowed)}"
            raise CampaignError(f"{key}.{name}" if key else str(name), f"unknown key; {hint}")


def _string(value: Any, key: str, max_length: int = NODE_LABEL_LENGTH) -> str:
    if not isinstance(value, str) or not value.strip():
        raise CampaignError(key, f"expected a non-empty string, got {value!r}")
    if len(value) > max_length:
        raise CampaignError(key, f"{len(value)} characters; at most {max_length} (the database column), shorten it")
    return value


def _integer(value: Any, key: str, minimum: int | None = None, hint: str = "") -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise CampaignError(key, f"expected an integer, got {value!r}" + (f"; {hint}" if hint else ""))
    if minimum is not None and value < minimum:
        raise CampaignError(key, f"must be at least {minimum}, got {value}")
    return value


def _number(value: Any, key: str, positive: bool = True) -> float:
    if not isinstance(value, int | float) or isinstance(value, bool) or not math.isfinite(value):
        raise CampaignError(key, f"expected a finite number, got {value!r}")
    if positive and value <= 0:
        raise CampaignError(key, f"must be positive, got {value}")
    return float(value)


def _fraction(value: Any, key: str) -> float:
    value = _number(value, key)
    if value > 1:
        raise CampaignError(key, f"is a fraction in (0, 1], got {value}")
    return value


def _systems(value: Any, base_dir: pathlib.Path) -> tuple[dict[str, SystemSpec], dict[str, Any], dict[str, dict]]:
    if not value:
        raise CampaignError(
            "systems", "give at least one system, e.g. systems: {BaTiO3: {structure: {perovskite: BaTiO3}}}"
        )
    _mapping(value, "systems")
    systems, stages, trust = {}, {}, {}
    for name, spec in value.items():
        key = f"systems.{name}"
        if not isinstance(name, str) or not name.isascii() or not name.replace("_", "").isalnum() or "__" in name:
            raise CampaignError(
                key, "system names use letters, digits and single '_' (they become AiiDA link labels), e.g. BTO_T"
            )
        _string(name, key, SYSTEM_NAME_LENGTH)
        _mapping(spec, key, "give structure (and optionally repeat, stages, trust)")
        _known(spec, SYSTEM_KEYS, key)
        if "structure" not in spec:
            raise CampaignError(f"{key}.structure", f"missing; give one of {', '.join(STRUCTURE_SOURCES)}")
        systems[name] = _structure(
            name, spec["structure"], spec.get("repeat", [1, 1, 1]), key, base_dir, MAX_LABELED_ATOMS
        )
        if "stages" in spec:
            stages[name] = spec["stages"]
        if "trust" in spec:
            _mapping(spec["trust"], f"{key}.trust")
            _known(spec["trust"], TRUST_KEYS, f"{key}.trust")
            trust[name] = dict(spec["trust"])
    return systems, stages, trust


def _structure(name: str, value: Any, repeat: Any, key: str, base_dir: pathlib.Path, max_atoms: int) -> SystemSpec:
    key = f"{key}.structure"
    _mapping(value, key, f"give one of {', '.join(STRUCTURE_SOURCES)}")
    _known(value, STRUCTURE_KEYS, key)
    sources = [source for source in STRUCTURE_SOURCES if source in value]
    if len(sources) != 1:
        raise CampaignError(key, f"give exactly one of {', '.join(STRUCTURE_SOURCES)}, got {sources or 'none'}")
    if not isinstance(repeat, list) or len(repeat) != 3 or any(not isinstance(n, int) or n < 1 for n in repeat):
        raise CampaignError(f"{key[: -len('.structure')]}.repeat", f"give three positive integers, got {repeat!r}")
    (source,) = sources
    spec = SystemSpec(name, source, value[source], list(repeat))
    for field in ("lattice_constant", "c_over_a", "angle"):
        if field in value:
            setattr(spec, field, _number(value[field], f"{key}.{field}"))
    if "displacement" in value:
        spec.displacement = _number(value["displacement"], f"{key}.displacement", positive=False)
        if not 0 <= spec.displacement < 0.5:
            raise CampaignError(f"{key}.displacement", f"must be in [0, 0.5) Å, got {spec.displacement}")
    for field in PARENT_KEYS[2:]:
        if field in value and source != "perovskite":
            raise CampaignError(f"{key}.{field}", "applies to a parent perovskite only (structure.perovskite)")
    if "phase" in value:
        if value["phase"] not in PHASES:
            raise CampaignError(f"{key}.phase", f"unknown phase {value['phase']!r}; choose one of {', '.join(PHASES)}")
        if source != "perovskite":
            raise CampaignError(f"{key}.phase", "a phase applies to a parent perovskite only (structure.perovskite)")
        spec.phase = value["phase"]
    if "configuration" in value:
        spec.configuration = _integer(value["configuration"], f"{key}.configuration", minimum=0)
    if source == "file":
        path = base_dir / str(spec.value)
        if not path.is_file():
            raise CampaignError(f"{key}.file", f"no file {path} (paths are relative to the campaign file)")
    else:
        try:
            composition = parse_composition(spec.value)
        except CompositionError as exc:
            raise CampaignError(f"{key}.{source}", str(exc)) from exc
        single = len(composition.a_site) == 1 and len(composition.b_site) == 1
        if source == "perovskite" and not single:
            raise CampaignError(f"{key}.perovskite", f"{composition.formula()} is a solid solution: use composition:")
        if source == "perovskite":
            try:
                parent_cell(spec.value, spec.phase, spec.lattice_constant, spec.c_over_a, spec.angle, spec.displacement)
            except ValueError as exc:
                raise CampaignError(key, str(exc)) from exc
    atoms = _cell_atoms(spec, base_dir, f"{key}.file") * math.prod(spec.repeat)
    if atoms > max_atoms:
        raise CampaignError(
            f"{key[: -len('.structure')]}.repeat",
            f"{atoms} atoms; at most {max_atoms} here (see the campaigns guide), use a smaller repeat",
        )
    return spec


def _cell_atoms(spec: SystemSpec, base_dir: pathlib.Path, key: str) -> int:
    """Atoms in the cell that ``repeat`` repeats: a structure file's, or the 5-atom perovskite cell."""
    return len(_file_symbols(spec, base_dir, key)) if spec.source == "file" else 5


def _file_symbols(spec: SystemSpec, base_dir: pathlib.Path, key: str) -> tuple[str, ...]:
    """The chemical symbols of a structure file, or the error at ``key``."""
    path = base_dir / str(spec.value)
    try:
        return _read_symbols(str(path), path.stat().st_mtime_ns)
    except Exception as exc:  # ASE raises many kinds for an unreadable file
        raise CampaignError(key, f"ASE cannot read it: {exc}") from exc


@functools.lru_cache(maxsize=64)
def _read_symbols(path: str, mtime_ns: int) -> tuple[str, ...]:
    """Read once per file version: the check, the engine check and the builder all ask for the same file."""
    from ase.io import read

    return tuple(read(path).get_chemical_symbols())


def _stages(value: Any, key: str) -> list[dict]:
    if not isinstance(value, list) or not value:
        raise CampaignError(key, "give a non-empty list of stages (temperatures, ensemble, steps, ...)")
    stages = []
    for index, stage in enumerate(value):
        where = f"{key}[{index}]"
        _mapping(stage, where)
        _known(stage, STAGE_KEYS, where)
        for required in ("temperatures", "ensemble", "steps", "sampling_interval", "max_iterations"):
            if required not in stage:
                raise CampaignError(f"{where}.{required}", "missing")
        temperatures = stage["temperatures"]
        if not isinstance(temperatures, list) or not temperatures:
            raise CampaignError(
                f"{where}.temperatures", f"give a non-empty list of temperatures in K, got {temperatures!r}"
            )
        for t_index, temperature in enumerate(temperatures):
            _number(temperature, f"{where}.temperatures[{t_index}]")
        pressures = stage.get("pressures", [1.0])
        if not isinstance(pressures, list) or not pressures:
            raise CampaignError(f"{where}.pressures", f"give a non-empty list of pressures in bar, got {pressures!r}")
        for p_index, pressure in enumerate(pressures):
            _number(pressure, f"{where}.pressures[{p_index}]", positive=False)
        _integer(stage["steps"], f"{where}.steps", minimum=1)
        _integer(stage["sampling_interval"], f"{where}.sampling_interval", minimum=1)
        _md_settings(stage, temperatures, pressures, where)
        _integer(stage["max_iterations"], f"{where}.max_iterations", minimum=1)
        if "accurate_fraction" in stage:
            _fraction(stage["accurate_fraction"], f"{where}.accurate_fraction")
        if "max_force_rmse" in stage:
            _number(stage["max_force_rmse"], f"{where}.max_force_rmse")
        stages.append({**stage, "pressures": pressures})
    return stages


def _md_settings(stage: Mapping, temperatures: list, pressures: list, where: str) -> None:
    """Every MD run of a stage checked by the one definition of MD settings (bounds included)."""
    md = {key: stage[key] for key in STAGE_MD_KEYS if key in stage and key not in ("temperatures", "pressures")}
    for t_index, temperature in enumerate(temperatures):
        for p_index, pressure in enumerate(pressures):
            try:
                MdSettings(temperature=temperature, pressure=pressure, **md)
            except MdSettingError as error:
                key = {
                    "temperature": f"{where}.temperatures[{t_index}]",
                    "pressure": f"{where}.pressures[{p_index}]",
                }.get(error.setting, f"{where}.{error.setting}")
                raise CampaignError(key, str(error)) from error


def _trust(value: Any, key: str) -> dict[str, float]:
    _mapping(value, key)
    _known(value, (*TRUST_KEYS, "per_system"), key)
    levels = {
        name: _number(level, f"{key}.{name}", positive=False) for name, level in value.items() if name in TRUST_KEYS
    }
    for kind in ("force", "virial"):
        lo, hi = levels.get(f"{kind}_lo"), levels.get(f"{kind}_hi")
        if (lo is None) != (hi is None):
            raise CampaignError(key, f"give both {kind}_lo and {kind}_hi")
        if lo is not None and lo < 0:
            raise CampaignError(f"{key}.{kind}_lo", f"must not be negative, got {lo}")
        if lo is not None and lo >= hi:
            raise CampaignError(f"{key}.{kind}_lo", f"must be below {kind}_hi ({lo} >= {hi}); e.g. 0.125 and 0.5 eV/Å")
    if "force_lo" not in levels:
        raise CampaignError(key, "give force_lo and force_hi (eV/Å)")
    return levels


def _labeled_data(value: Any, key: str, base_dir: pathlib.Path) -> str | int | list[str]:
    """A labeled set named in a campaign file: a node PK, or deepmd/npy folders (one, or a list as DP-GEN's
    init_data_sys) relative to the file."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, list):
        if not value:
            raise CampaignError(key, "an empty list; give deepmd/npy folders or a node PK")
        return [_labeled_data(item, f"{key}[{index}]", base_dir) for index, item in enumerate(value)]
    path = base_dir / str(value)
    if not path.exists():
        raise CampaignError(key, f"no data at {path}; give a deepmd/npy folder or a node PK")
    return str(path)


def _validation(value: Any, base_dir: pathlib.Path) -> tuple[str | int | None, float]:
    _mapping(value, "validation")
    _known(value, VALIDATION_KEYS, "validation")
    fraction = _number(value.get("held_out_fraction", 0.0), "validation.held_out_fraction", positive=False)
    if not 0 <= fraction < 1:
        raise CampaignError("validation.held_out_fraction", f"must be in [0, 1), e.g. 0.1; got {fraction}")
    data = value.get("training_set")
    return (None if data is None else _labeled_data(data, "validation.training_set", base_dir)), fraction


def _initial_data(value: Any, default_perturbation: dict, base_dir: pathlib.Path):
    if value is None:
        raise CampaignError(
            "initial_data", "missing; give training_set (a path to deepmd/npy data or a node PK) or perturbation"
        )
    _mapping(value, "initial_data")
    _known(value, INITIAL_KEYS, "initial_data")
    if "training_set" not in value and "perturbation" not in value:
        raise CampaignError("initial_data", "give training_set, perturbation, or both (perturbations added to the set)")
    training_set = (
        _labeled_data(value["training_set"], "initial_data.training_set", base_dir) if "training_set" in value else None
    )
    if "perturbation" not in value:
        return training_set, None
    perturbation = recursive_merge(default_perturbation, value["perturbation"] or {})
    _known(perturbation, PERTURBATION_KEYS, "initial_data.perturbation")
    _integer(perturbation["count"], "initial_data.perturbation.count", minimum=1)
    for name in ("cell_strain", "atom_displacement"):
        amount = _number(perturbation.get(name, 0.0), f"initial_data.perturbation.{name}", positive=False)
        if not 0 <= amount < 0.5:
            raise CampaignError(f"initial_data.perturbation.{name}", f"must be in [0, 0.5), got {amount}")
    if "volume_scale" in perturbation:
        _number(perturbation["volume_scale"], "initial_data.perturbation.volume_scale")
    return training_set, perturbation


def _section(data: Mapping, name: str, allowed: tuple[str, ...], defaults: dict, extra: dict) -> dict:
    value = data.get(name) or {}
    _mapping(value, name)
    _known(value, allowed, name)
    return recursive_merge({**extra, **defaults}, value)


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


def _training(section: dict) -> None:
    _string(section["code"], "training.code")
    _check_protocol(section, "training", "deepmd_train")
    if "num_models" in section:
        models = _integer(section["num_models"], "training.num_models", minimum=1)
        if models < 2:
            raise CampaignError("training.num_models", "the model deviation needs at least 2 models (4 is usual)")
    if "backend" in section and section["backend"] not in BACKENDS:
        raise CampaignError(
            "training.backend", f"unknown backend {section['backend']!r}; choose one of {', '.join(BACKENDS)}"
        )
    for name, allowed in (("reuse", ("numb_steps", "start_lr")), ("final", ("numb_steps", "compress"))):
        if name in section:
            _mapping(section[name], f"training.{name}")
            _known(section[name], allowed, f"training.{name}")
            _integer(section[name].get("numb_steps"), f"training.{name}.numb_steps", minimum=1)
    if not isinstance(section.get("final", {}).get("compress", False), bool):
        raise CampaignError("training.final.compress", "give true or false")
    for name in ("overrides", "options"):
        _mapping(section.get(name, {}), f"training.{name}")


def _exploration(section: dict) -> None:
    _string(section["code"], "exploration.code")
    if section.get("selection_mode", "random") not in SELECTION_MODES:
        raise CampaignError(
            "exploration.selection_mode",
            f"unknown mode {section['selection_mode']!r}; choose one of {', '.join(SELECTION_MODES)}",
        )
    _integer(section.get("skip_frames", 0), "exploration.skip_frames", minimum=0)
    for name in ("sanity", "options"):
        _mapping(section.get(name, {}), f"exploration.{name}")
    _known(section.get("sanity", {}), SANITY_KEYS, "exploration.sanity")
    for name, value in section.get("sanity", {}).items():
        _number(value, f"exploration.sanity.{name}")


def _labeling(section: dict, base_dir: pathlib.Path) -> None:
    from aiida_perovskite.engines import registered_engines

    engines = registered_engines()
    if section["engine"] not in engines:
        raise CampaignError(
            "labeling.engine", f"unknown engine {section['engine']!r}; choose one of {', '.join(engines)}"
        )
    if missing := engines[section["engine"]].missing_plugin():
        raise CampaignError("labeling.engine", missing)
    _string(section["code"], "labeling.code")
    _check_protocol(section, "labeling", section["engine"])
    engine = engines[section["engine"]]
    for other in engines.values():
        for key in sorted(set(section) & set(other.section_keys) - set(engine.section_keys)):
            raise CampaignError(f"labeling.{key}", f"only the {other.name} engine takes it, not {engine.name!r}")
    if "allow_mixed_levels" in section and not isinstance(section["allow_mixed_levels"], bool):
        raise CampaignError("labeling.allow_mixed_levels", f"give true or false, got {section['allow_mixed_levels']!r}")
    if "max_concurrent" in section:  # else the protocol's
        _integer(section["max_concurrent"], "labeling.max_concurrent", minimum=1)
    if "tolerated_failed_fraction" in section:
        tolerated = _number(section["tolerated_failed_fraction"], "labeling.tolerated_failed_fraction", positive=False)
        if not 0 <= tolerated <= 1:
            raise CampaignError("labeling.tolerated_failed_fraction", f"must be in [0, 1], got {tolerated}")
    for name in ("overrides", "options"):
        _mapping(section.get(name, {}), f"labeling.{name}")
    if problem := engine.check_section(section, base_dir):
        raise CampaignError(*problem)


def _analysis(value: Any, base_dir: pathlib.Path) -> tuple[dict[str, Any], SystemSpec | None]:
    """The downstream analysis run on the final model once the campaign converged."""
    from aiida_perovskite.workflows.phase_diagram import ladder_error, protocol_error
    from aiida_perovskite.workflows.polarization import KNOWN_SETTINGS

    _mapping(value, "analysis")
    _known(value, ANALYSIS_KEYS, "analysis")
    if not value:
        return {}, None
    if "phase_diagram" not in value:
        raise CampaignError("analysis.phase_diagram", "missing: the polarization analysis reads its MD runs")
    diagram = value["phase_diagram"]
    key = "analysis.phase_diagram"
    _mapping(diagram, key)
    _known(diagram, PHASE_DIAGRAM_KEYS, key)
    for required in ("structure", "temperatures", "md"):
        if required not in diagram:
            raise CampaignError(f"{key}.{required}", "missing")
    structure = _structure(
        "phase_diagram", diagram["structure"], diagram.get("repeat", [1, 1, 1]), key, base_dir, MAX_MD_ATOMS
    )
    temperatures = diagram["temperatures"]
    mode = diagram.get("mode", "heating")
    if not isinstance(temperatures, list):
        raise CampaignError(f"{key}.temperatures", f"give a list of temperatures in K, got {temperatures!r}")
    if error := ladder_error(temperatures, mode):
        raise CampaignError(f"{key}.temperatures", error)
    pressure = _number(diagram.get("pressure", 1.0), f"{key}.pressure", positive=False)
    _mapping(diagram["md"], f"{key}.md")
    if error := protocol_error(diagram["md"], temperatures[0], pressure):
        raise CampaignError(f"{key}.md", error)
    analysis = {
        "phase_diagram": {"temperatures": temperatures, "mode": mode, "pressure": pressure, "md": diagram["md"]}
    }
    if "polarization" in value:
        polarization = value["polarization"]
        key = "analysis.polarization"
        _mapping(polarization, key)
        _known(polarization, POLARIZATION_KEYS, key)
        chosen = polarization.get("temperatures", [min(temperatures)])
        missing = [t for t in chosen if t not in temperatures] if isinstance(chosen, list) else chosen
        if not isinstance(chosen, list) or missing:
            raise CampaignError(f"{key}.temperatures", f"{missing} are not on the phase-diagram ladder {temperatures}")
        settings = polarization.get("settings", {})
        _mapping(settings, f"{key}.settings")
        _known(settings, tuple(sorted(KNOWN_SETTINGS)), f"{key}.settings")
        analysis["polarization"] = {"temperatures": chosen, "settings": settings}
    return analysis, structure


def _elements_of(spec: SystemSpec, base_dir: pathlib.Path) -> set[str]:
    if spec.source == "file":
        return set(_file_symbols(spec, base_dir, f"systems.{spec.name}.structure.file"))
    composition = parse_composition(spec.value)
    return {*composition.a_site, *composition.b_site, composition.anion}


def _engine_elements(campaign: Campaign) -> None:
    from aiida_perovskite.engines import get_engine

    for name, spec in campaign.systems.items():
        error = get_engine(campaign.labeling["engine"]).check_elements(
            _elements_of(spec, campaign.base_dir), campaign.labeling.get("protocol"), campaign.labeling.get("overrides")
        )
        if error:
            raise CampaignError(f"systems.{name}.structure", f"{campaign.labeling['engine']} cannot label it: {error}")
