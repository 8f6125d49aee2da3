"""A checked campaign file -> a ConcurrentLearningWorkChain builder (codes, data and structures looked up or
built here; every lookup is checked before the first node is stored)."""

from __future__ import annotations

from aiida import orm
from aiida.common.exceptions import MultipleObjectsError, NotExistent, ValidationError

from aiida_perovskite.calcfunctions.seeds import spawn_seeds
from aiida_perovskite.calcfunctions.structures import build_solid_solution
from aiida_perovskite.campaign.spec import Campaign, CampaignError, SystemSpec
from aiida_perovskite.data import TrainingSetData
from aiida_perovskite.schema import SettingError
from aiida_perovskite.structures import parent_cell

__all__ = ("build_campaign", "check_campaign", "load_code_for")

CODE_SECTIONS = ("training", "exploration", "labeling")  # the file's sections that name a code
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

    codes = _codes(campaign)
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

    seeds = spawn_seeds(campaign.seed, len(campaign.systems) + 1)  # the last one builds the analysis structure
    structures = {
        name: _structure(spec, campaign, seed, store)
        for (name, spec), seed in zip(campaign.systems.items(), seeds[:-1], strict=True)
    }
    convergence = {"accurate_fraction": campaign.accurate_fraction, "max_iterations": campaign.max_iterations}
    if campaign.max_force_rmse is not None:
        convergence["max_force_rmse"] = campaign.max_force_rmse
    overrides = {
        "trust": campaign.trust,
        "max_labels": campaign.max_labels,
        "convergence": convergence,
        "validation": {"held_out_fraction": campaign.held_out_fraction},
        "training": campaign.training,
        "exploration": campaign.exploration,
        "labeling": campaign.labeling,
        **({"perturbation": campaign.perturbation} if campaign.perturbation is not None else {}),
    }
    try:
        builder = ConcurrentLearningWorkChain.get_builder_from_protocol(
            codes,
            structures,
            campaign.seed,
            overrides=overrides,
            schedule=campaign.stages,
            training_set=training_set,
            validation_set=validation_set,
            perturb=campaign.perturbation is not None,
            base_dir=campaign.base_dir,
        )
    except SettingError as error:
        raise CampaignError(error.key, error.message) from error
    builder.metadata.label = campaign.name
    builder.metadata.description = campaign.description
    _analysis(builder, campaign, seeds[-1], store)
    return builder


def check_campaign(campaign: Campaign) -> None:
    """Everything a submission would check, nothing stored: codes, data, structures, then the WorkChain's own
    port validation of the inputs built from the file."""
    builder = build_campaign(campaign, store=False)
    error = builder.process_class.spec().inputs.validate(builder._inputs(prune=True))
    if error is not None:
        raise CampaignError(f"input {error.port}", error.message)
    for section, code in _codes(campaign).items():
        _check_executable(code, f"{section}.code")


def _codes(campaign: Campaign) -> dict[str, orm.AbstractCode]:
    """The code of each section of the file that names one."""
    return {section: load_code_for(getattr(campaign, section)["code"], f"{section}.code") for section in CODE_SECTIONS}


def _check_executable(code: orm.AbstractCode, key: str) -> None:
    """An installed code's executable exists and is executable on its computer (a job would die with exit 127)."""
    if not isinstance(code, orm.InstalledCode):
        return
    try:
        code.validate_filepath_executable()
    except ValidationError as exc:
        raise CampaignError(
            key,
            f"code {code.full_label}: {exc}; fix its path (`verdi code show {code.full_label}`) or run "
            "`aiida-perovskite setup`",
        ) from exc
