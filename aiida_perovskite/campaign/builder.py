"""A checked campaign file -> a ConcurrentLearningWorkChain builder (codes, data and structures looked up or
built here; every lookup is checked before the first node is stored)."""

from __future__ import annotations

from typing import Any

from aiida import orm
from aiida.common.exceptions import MultipleObjectsError, NotExistent

from aiida_perovskite.analysis.model_deviation import SANITY_DEFAULTS
from aiida_perovskite.calcfunctions.seeds import spawn_seeds
from aiida_perovskite.calcfunctions.structures import build_solid_solution
from aiida_perovskite.campaign.spec import Campaign, CampaignError, SystemSpec
from aiida_perovskite.data import TrainingSetData
from aiida_perovskite.protocols import recursive_merge
from aiida_perovskite.structures import parent_cell

__all__ = ("build_campaign", "check_campaign", "load_code_for")

CODE_PLUGINS = {"training": "perovskite.deepmd.train", "exploration": "perovskite.lammps.explore"}


def load_code_for(label: str, key: str) -> orm.AbstractCode:
    """The code ``label`` (e.g. ``cp2k@localhost``), or a CampaignError saying how to create it."""
    try:
        return orm.load_code(label)
    except (NotExistent, MultipleObjectsError, ValueError) as exc:
        raise CampaignError(
            key, f"no usable code {label!r} ({exc}); run `aiida-perovskite setup` or see `verdi code list`"
        ) from exc


def _labeled_data(value: str | int | list[str] | None, key: str) -> TrainingSetData | None:
    """The TrainingSetData a campaign file names (a PK, or deepmd/npy folders read now)."""
    if value is None:
        return None
    if isinstance(value, int):
        try:
            node = orm.load_node(value)
        except NotExistent as exc:
            raise CampaignError(key, f"no node with PK {value}") from exc
        if not isinstance(node, TrainingSetData):
            raise CampaignError(key, f"node {value} is a {type(node).__name__}, not TrainingSetData")
        return node
    try:
        return TrainingSetData.from_deepmd_npy(*(value if isinstance(value, list) else [value]))
    except (OSError, ValueError) as exc:
        raise CampaignError(key, f"cannot read deepmd/npy data at {value}: {exc}") from exc


def _structure(spec: SystemSpec, campaign: Campaign, seed: int, store: bool = True) -> orm.StructureData:
    if spec.source == "perovskite":
        atoms = parent_cell(
            spec.value, spec.phase, spec.lattice_constant, spec.c_over_a, spec.angle, spec.displacement
        ).repeat(spec.repeat)
        return orm.StructureData(ase=atoms)
    if spec.source == "file":
        from ase.io import read

        return orm.StructureData(ase=read(campaign.base_dir / str(spec.value)).repeat(spec.repeat))
    composition = orm.Dict(spec.value) if isinstance(spec.value, dict) else orm.Str(spec.value)
    extra = {"lattice_constant": orm.Float(spec.lattice_constant)} if spec.lattice_constant else {}
    built = build_solid_solution(
        composition,
        orm.List(spec.repeat),
        orm.Int(seed),
        orm.Int(spec.configuration + 1),
        **extra,
        metadata={"store_provenance": store},
    )
    return built[f"configuration_{spec.configuration}"]


def _check_type_map(campaign: Campaign, training_set: TrainingSetData | None) -> None:
    if training_set is None or campaign.perturbation is not None:  # perturbations label every system's elements
        return
    missing = sorted(campaign.elements() - set(training_set.type_map))
    if missing:
        raise CampaignError(
            "initial_data.training_set",
            f"has no frames with {missing} (type_map {training_set.type_map}); the models could not describe the "
            "systems: add data with these elements or use initial_data.perturbation",
        )


def _analysis(builder, campaign: Campaign, seed: int, store: bool) -> None:
    """The phase diagram and polarization analysis the campaign runs on its final model."""
    if not campaign.analysis:
        return
    diagram = campaign.analysis["phase_diagram"]
    spec = campaign.analysis_structure
    builder.phase_diagram.structure = _structure(spec, campaign, seed, store)
    builder.phase_diagram.repeats = orm.List(spec.repeat)
    builder.phase_diagram.temperatures = orm.List(diagram["temperatures"])
    builder.phase_diagram.mode = orm.Str(diagram["mode"])
    builder.phase_diagram.pressure = orm.Float(diagram["pressure"])
    builder.phase_diagram.protocol = orm.Dict(diagram["md"])
    if "polarization" in campaign.analysis:
        polarization = campaign.analysis["polarization"]
        builder.polarization.settings = orm.Dict({"repeats": spec.repeat, **polarization["settings"]})
        builder.polarization_temperatures = orm.List(polarization["temperatures"])


def build_campaign(campaign: Campaign, store: bool = True):
    """The builder of the ConcurrentLearningWorkChain for ``campaign`` (``store=False``: solid solutions are
    built without recording their calcfunction, for a check that leaves nothing behind)."""
    from aiida_perovskite.engines import get_engine
    from aiida_perovskite.workflows.concurrent_learning import ConcurrentLearningWorkChain
    from aiida_perovskite.workflows.deepmd_train_base import DeepmdTrainBaseWorkChain

    codes = {
        section: load_code_for(getattr(campaign, section)["code"], f"{section}.code")
        for section in ("training", "exploration", "labeling")
    }
    for section, plugin in CODE_PLUGINS.items():
        found = codes[section].default_calc_job_plugin
        if found and found != plugin:
            raise CampaignError(
                f"{section}.code",
                f"code {codes[section].full_label!r} runs the {found!r} plugin; give a code set up for {plugin!r}",
            )
    if error := get_engine(campaign.labeling["engine"]).check_code(codes["labeling"]):
        raise CampaignError("labeling.code", error)
    training_set = _labeled_data(campaign.training_set, "initial_data.training_set")
    validation_set = _labeled_data(campaign.validation_set, "validation.training_set")
    _check_type_map(campaign, training_set)

    builder = ConcurrentLearningWorkChain.get_builder()
    builder.metadata.label = campaign.name
    builder.metadata.description = campaign.description
    seeds = spawn_seeds(campaign.seed, len(campaign.systems) + 1)  # the last one builds the analysis structure
    builder.structures = {
        name: _structure(spec, campaign, seed, store)
        for (name, spec), seed in zip(campaign.systems.items(), seeds[:-1], strict=True)
    }
    builder.schedule = orm.Dict(campaign.stages)
    builder.trust = orm.Dict(campaign.trust)
    builder.max_labels = orm.Int(campaign.max_labels)
    builder.accurate_fraction = orm.Float(campaign.accurate_fraction)
    builder.max_iterations = orm.Int(campaign.max_iterations)
    builder.held_out_fraction = orm.Float(campaign.held_out_fraction)
    if validation_set is not None:
        builder.validation_set = validation_set
    if campaign.max_force_rmse is not None:
        builder.max_force_rmse = orm.Float(campaign.max_force_rmse)
    builder.seed = orm.Int(campaign.seed)
    if training_set is not None:
        builder.training_set = training_set
    if campaign.perturbation is not None:
        builder.init_data.structures = dict(builder.structures)
        builder.init_data.perturbation = orm.Dict(campaign.perturbation)

    training = campaign.training
    overrides: dict[str, Any] = dict(training.get("overrides", {}))
    if "backend" in training:
        overrides["backend"] = training["backend"]
    if training.get("options"):
        overrides = recursive_merge(overrides, {"metadata": {"options": training["options"]}})
    base = DeepmdTrainBaseWorkChain.get_builder_from_protocol(
        codes["training"], None, training.get("protocol"), overrides
    )
    base.train.pop("seed")
    builder.train.train = base
    if "num_models" in training:
        builder.train.num_models = orm.Int(training["num_models"])
    if "reuse" in training:
        builder.train_reuse = orm.Dict(training["reuse"])
    if "final" in training:
        builder.final_training = orm.Dict(training["final"])

    exploration = campaign.exploration
    builder.explore.code = codes["exploration"]
    builder.explore.selection_mode = orm.Str(exploration.get("selection_mode", "random"))
    builder.explore.skip_frames = orm.Int(exploration.get("skip_frames", 0))
    if exploration.get("sanity"):  # the keys a file leaves out keep their defaults
        builder.explore.sanity = orm.Dict({**SANITY_DEFAULTS, **exploration["sanity"]})
    builder.explore.options = dict(exploration.get("options", {}))

    labeling = campaign.labeling
    builder.label.engine = orm.Str(labeling["engine"])
    builder.label.code = codes["labeling"]
    if labeling.get("protocol"):
        builder.label.protocol = orm.Str(labeling["protocol"])
    if labeling.get("overrides"):
        builder.label.overrides = orm.Dict(labeling["overrides"])
    builder.label.options = dict(labeling.get("options", {}))
    engine = get_engine(labeling["engine"])
    try:
        builder.label.engine_inputs = engine.engine_inputs_from_section(labeling, campaign.base_dir)
    except ValueError as exc:
        raise CampaignError(
            f"labeling.{engine.section_keys[0] if engine.section_keys else 'engine'}", str(exc)
        ) from exc
    builder.allow_mixed_levels = orm.Bool(labeling.get("allow_mixed_levels", False))
    _analysis(builder, campaign, seeds[-1], store)
    builder.label.max_concurrent = orm.Int(labeling["max_concurrent"])  # the protocol always gives both
    builder.label.tolerated_failed_fraction = orm.Float(labeling["tolerated_failed_fraction"])
    return builder


def check_campaign(campaign: Campaign) -> None:
    """Everything a submission would check, nothing stored: codes, data, structures, then the WorkChain's own
    port validation of the inputs built from the file."""
    builder = build_campaign(campaign, store=False)
    error = builder.process_class.spec().inputs.validate(builder._inputs(prune=True))
    if error is not None:
        raise CampaignError(f"input {error.port}", error.message)
