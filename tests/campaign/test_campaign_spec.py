"""Campaign files: the examples are valid; each invalid file fails before anything is stored, naming the key
and the fix."""

from __future__ import annotations

import copy
import pathlib

import pytest
import yaml
from aiida import orm

from aiida_perovskite.campaign.builder import build_campaign
from aiida_perovskite.campaign.spec import CampaignError, load_campaign, parse_campaign
from tests.conftest import executable

EXAMPLES = pathlib.Path(__file__).resolve().parents[2] / "examples"

VALID = {
    "name": "unit",
    "protocol": "fast",
    "seed": 1,
    "systems": {"BaTiO3": {"structure": {"perovskite": "BaTiO3", "phase": "tetragonal"}}},
    "stages": [
        {
            "temperatures": [100, 300],
            "pressures": [1.0],
            "ensemble": "npt-aniso",
            "steps": 100,
            "sampling_interval": 10,
            "max_iterations": 2,
        }
    ],
    "trust": {"force_lo": 0.05, "force_hi": 0.5},
    "convergence": {"accurate_fraction": 0.99, "max_iterations": 2},
    "initial_data": {"perturbation": {"count": 2}},
    "labeling": {"engine": "cp2k", "code": "cp2k-unit@localhost"},
    "training": {"code": "dp-unit@localhost"},
    "exploration": {"code": "lmp-unit@localhost"},
}


def changed(path: str, value=None, delete: bool = False) -> dict:
    """VALID with the key at ``path`` (dots; [i] for list items) set to ``value`` or deleted."""
    data = copy.deepcopy(VALID)
    *parents, last = path.split(".")
    target = data
    for part in parents:
        target = target[int(part[1:-1])] if part.startswith("[") else target[part]
    key = int(last[1:-1]) if last.startswith("[") else last
    if delete:
        del target[key]
    else:
        target[key] = value
    return data


LADDER = {"structure": {"perovskite": "BaTiO3"}, "temperatures": [100, 300]}

INVALID = [
    # (campaign, key named in the error, words of the message)
    (changed("sytems", {}), "sytems", "did you mean 'systems'"),
    (changed("temperatures", [300]), "temperatures", "allowed keys: name, description"),
    (
        changed("systems.BaTiO3.structur", {"perovskite": "BaTiO3"}),
        "systems.BaTiO3.structur",
        "did you mean 'structure'",
    ),
    (changed("stages.[0].temperture", [1]), "stages[0].temperture", "did you mean 'temperatures'"),
    (changed("trust.force_lo", 0.6), "trust.force_lo", "must be below force_hi"),
    (changed("trust.force_lo", 0.5), "trust.force_lo", "must be below force_hi"),
    (changed("trust.virial_lo", 0.1), "trust", "give both virial_lo and virial_hi"),
    (changed("trust.force_lo", -0.1), "trust.force_lo", "must not be negative"),
    (
        changed("systems.BaTiO3.trust", {"force_lo": 0.9}),
        "systems.BaTiO3.trust.force_lo",
        "must be below force_hi",
    ),
    (
        changed("systems.BaTiO3.structure", {"composition": "Ba0.8Ca0.1TiO3"}),
        "systems.BaTiO3.structure.composition",
        "sum",
    ),
    (
        changed("systems.BaTiO3.structure", {"composition": "Ba0.5Xq0.5TiO3"}),
        "systems.BaTiO3.structure.composition",
        "unknown element",
    ),
    (
        changed("systems.BaTiO3.structure", {"perovskite": "LaAlO3", "lattice_constant": 3.79}),
        "systems.BaTiO3.structure",
        "cannot label it",
    ),
    (
        changed("systems.BaTiO3.structure", {"perovskite": "LaAlO3"}),
        "systems.BaTiO3.structure",
        "no default lattice constant for LaAlO3",
    ),
    (
        changed("systems.BaTiO3.structure", {"composition": "Ba0.5Sr0.5TiO3", "displacement": 0.1}),
        "systems.BaTiO3.structure.displacement",
        "parent perovskite only",
    ),
    (changed("exploration.sanity", {"max_volume": 0.2}), "exploration.sanity.max_volume", "max_volume_change"),
    (changed("validation", {"held_out_fraction": 1.0}), "validation.held_out_fraction", "[0, 1)"),
    (changed("convergence.max_force_rmse", -0.1), "convergence.max_force_rmse", "positive"),
    (
        changed("labeling", {"engine": "cp2k", "code": "cp2k@localhost", "teacher": {"kind": "sevenn"}}),
        "labeling.teacher",
        "only the teacher engine takes it",
    ),
    (
        changed("labeling", {"engine": "teacher", "teacher": {"kind": "sevenn", "model": "7net-omat"}}),
        "labeling.teacher",
        "would download it at run time",
    ),
    (
        changed(
            "analysis", {"phase_diagram": {"structure": {"perovskite": "BaTiO3"}, "temperatures": [300, 100], "md": {}}}
        ),
        "analysis.phase_diagram.temperatures",
        "heating mode needs strictly increasing temperatures",
    ),
    (changed("analysis", {"polarization": {}}), "analysis.phase_diagram", "polarization analysis reads its MD runs"),
    (
        changed("systems.BaTiO3.structure", {"perovskite": "Ba0.5Sr0.5TiO3"}),
        "systems.BaTiO3.structure.perovskite",
        "use composition",
    ),
    (changed("systems.BaTiO3.structure", {"file": "missing.vasp"}), "systems.BaTiO3.structure.file", "no file"),
    (
        changed("systems.BaTiO3.structure", {"perovskite": "BaTiO3", "composition": "BaTiO3"}),
        "systems.BaTiO3.structure",
        "exactly one of",
    ),
    (changed("systems.BaTiO3.structure.phase", "monoclinic"), "systems.BaTiO3.structure.phase", "unknown phase"),
    (changed("systems.BaTiO3.repeat", [2, 2]), "systems.BaTiO3.repeat", "three positive integers"),
    (changed("systems", {}), "systems", "at least one system"),
    (changed("systems", {"a__b": {"structure": {"perovskite": "BaTiO3"}}}), "systems.a__b", "single '_'"),
    (changed("systems", {"BTO-T": {"structure": {"perovskite": "BaTiO3"}}}), "systems.BTO-T", "link labels"),
    (changed("stages.[0].temperatures", [300, 0]), "stages[0].temperatures[1]", "must be a positive number"),
    (changed("stages.[0].temperatures", [-50]), "stages[0].temperatures[0]", "must be a positive number"),
    (changed("stages.[0].temperatures", []), "stages[0].temperatures", "non-empty list"),
    (changed("stages.[0].ensemble", "npt"), "stages[0].ensemble", "choose one of nvt, npt-iso"),
    (changed("stages.[0].steps", 0), "stages[0].steps", "must be a positive integer"),
    (changed("stages.[0].sampling_interval", 1000), "stages[0].sampling_interval", "longer than the run"),
    (changed("stages.[0].max_iterations", 0), "stages[0].max_iterations", "at least 1"),
    # physically absurd values and sizes the run would refuse or no machine could hold
    (changed("stages.[0].temperatures", [300, 30000]), "stages[0].temperatures[1]", "beyond 5000 K"),
    (changed("stages.[0].pressures", [1.0e9]), "stages[0].pressures[0]", "beyond 1e+06 bar"),
    (changed("stages.[0].timestep", 2), "stages[0].timestep", "0.002 ps = 2 fs"),
    (changed("stages.[0].tdamp", 0), "stages[0].tdamp", "positive number"),
    (changed("systems.BaTiO3.structure.lattice_constant", 40.0), "systems.BaTiO3.structure", "outside [2.5, 8] Å"),
    (changed("systems.BaTiO3.repeat", [20, 20, 20]), "systems.BaTiO3.repeat", "40000 atoms; at most 5000"),
    (changed("name", "x" * 300), "name", "at most 255"),
    (
        changed("training.overrides", {"paramters": {}}),
        "training.overrides",
        "unknown override key 'paramters' for deepmd_train: did you mean 'parameters'?",
    ),
    (changed("systems", {"B" * 70: {"structure": {"perovskite": "BaTiO3"}}}), "systems." + "B" * 70, "at most 64"),
    (changed("stages.[0].max_iterations", delete=True), "stages[0].max_iterations", "missing"),
    (changed("stages", []), "stages", "non-empty list"),
    (changed("convergence.max_iterations", 0), "convergence.max_iterations", "at least 1"),
    (changed("convergence.accurate_fraction", 1.5), "convergence.accurate_fraction", "must be in (0, 1], got 1.5"),
    (changed("convergence.accurate_fraction", 0), "convergence.accurate_fraction", "must be in (0, 1], got 0"),
    (changed("seed", "abc"), "seed", "expected an integer"),
    (changed("seed", delete=True), "seed", "campaign seed"),
    (changed("protocol", "turbo"), "protocol", "choose one of fast, balanced, precise"),
    (changed("initial_data", delete=True), "initial_data", "give training_set"),
    (changed("initial_data.perturbation.count", 0), "initial_data.perturbation.count", "at least 1"),
    (changed("initial_data.perturbation.cell_strain", 0.7), "initial_data.perturbation.cell_strain", "[0, 0.5)"),
    (changed("initial_data", {"training_set": "no/such/dir"}), "initial_data.training_set", "no data at"),
    (changed("labeling.engine", "gaussian"), "labeling.engine", "choose one of cp2k"),
    (changed("labeling.protocol", "ultra"), "labeling.protocol", "choose one of fast, balanced, precise"),
    (changed("labeling.tolerated_failed_fraction", 2), "labeling.tolerated_failed_fraction", "[0, 1]"),
    (changed("labeling.max_concurrent", 0), "labeling.max_concurrent", "at least 1"),
    (changed("training.num_models", 1), "training.num_models", "at least 2 models"),
    (changed("training.backend", "jax"), "training.backend", "choose one of tensorflow, pytorch"),
    (changed("training.protocol", "slow"), "training.protocol", "choose one of fast"),
    (changed("training.final", {"numb_steps": -5}), "training.final.numb_steps", "at least 1"),
    (changed("exploration.selection_mode", "best"), "exploration.selection_mode", "choose one of random"),
    (changed("exploration.skip_frames", -1), "exploration.skip_frames", "must not be negative"),
    # every other field of every model of the file (test_campaign_schema checks that none is left out)
    (changed("description", 5), "description", "expected a string"),
    (changed("max_labels", 0), "max_labels", "must be at least 1"),
    (changed("trust.force_hi", -1.0), "trust.force_hi", "must be positive"),
    (
        changed("trust", {"force_lo": 0.05, "force_hi": 0.5, "virial_lo": -0.1, "virial_hi": 0.1}),
        "trust.virial_lo",
        "must not be negative",
    ),
    (
        changed("trust", {"force_lo": 0.05, "force_hi": 0.5, "virial_lo": 0.1, "virial_hi": 0}),
        "trust.virial_hi",
        "must be positive",
    ),
    (changed("systems.BaTiO3.trust", {"force_hi": "high"}), "systems.BaTiO3.trust.force_hi", "expected a number"),
    (changed("systems.BaTiO3.trust", {"virial_lo": "x"}), "systems.BaTiO3.trust.virial_lo", "expected a number"),
    (changed("systems.BaTiO3.trust", {"virial_hi": []}), "systems.BaTiO3.trust.virial_hi", "expected a number"),
    (changed("systems.BaTiO3.stages", []), "systems.BaTiO3.stages", "non-empty list"),
    (
        changed("systems.BaTiO3.structure.lattice_constant", 0),
        "systems.BaTiO3.structure.lattice_constant",
        "must be positive",
    ),
    (changed("systems.BaTiO3.structure.c_over_a", -1.0), "systems.BaTiO3.structure.c_over_a", "must be positive"),
    (changed("systems.BaTiO3.structure.angle", "90"), "systems.BaTiO3.structure.angle", "expected a number"),
    (
        changed("systems.BaTiO3.structure", {"composition": "Ba0.5Sr0.5TiO3", "configuration": -1}),
        "systems.BaTiO3.structure.configuration",
        "must not be negative",
    ),
    (changed("stages.[0].accurate_fraction", 0), "stages[0].accurate_fraction", "must be in (0, 1]"),
    (changed("stages.[0].max_force_rmse", 0), "stages[0].max_force_rmse", "must be positive"),
    (changed("stages.[0].pdamp", 0), "stages[0].pdamp", "pdamp must be a positive number"),
    (
        changed("initial_data.perturbation.atom_displacement", 0.6),
        "initial_data.perturbation.atom_displacement",
        "[0, 0.5)",
    ),
    (
        changed("initial_data.perturbation.volume_scale", 0),
        "initial_data.perturbation.volume_scale",
        "must be positive",
    ),
    (changed("validation", {"training_set": "no/such/set"}), "validation.training_set", "no data at"),
    (changed("training.code", ""), "training.code", "non-empty string"),
    (changed("training.options", 5), "training.options", "expected a mapping"),
    (changed("training.reuse", 5), "training.reuse", "expected a mapping"),
    (changed("training.reuse", {"numb_steps": 0}), "training.reuse.numb_steps", "must be at least 1"),
    (changed("training.reuse", {"numb_steps": 10, "start_lr": -1e-3}), "training.reuse.start_lr", "must be positive"),
    (changed("training.final", {"numb_steps": 10, "compress": "yes"}), "training.final.compress", "give true or false"),
    (changed("exploration.code", ""), "exploration.code", "non-empty string"),
    (changed("exploration.options", []), "exploration.options", "expected a mapping"),
    (changed("exploration.sanity", {"min_distance": 0}), "exploration.sanity.min_distance", "must be positive"),
    (changed("exploration.sanity", {"max_skew": -0.5}), "exploration.sanity.max_skew", "must be positive"),
    (
        changed("exploration.sanity", {"max_volume_change": "20%"}),
        "exploration.sanity.max_volume_change",
        "expected a number",
    ),
    (changed("labeling.code", 5), "labeling.code", "expected a string"),
    (changed("labeling.options", 5), "labeling.options", "expected a mapping"),
    (changed("labeling.overrides", {"setings": {}}), "labeling.overrides", "unknown override key 'setings' for cp2k"),
    (changed("labeling.allow_mixed_levels", "no"), "labeling.allow_mixed_levels", "give true or false"),
    (
        changed("analysis", {"phase_diagram": {**LADDER, "structure": {}}}),
        "analysis.phase_diagram.structure",
        "exactly one of",
    ),
    (
        changed("analysis", {"phase_diagram": {**LADDER, "repeat": [2, 2]}}),
        "analysis.phase_diagram.repeat",
        "three positive integers",
    ),
    (
        changed("analysis", {"phase_diagram": {**LADDER, "mode": "annealing"}}),
        "analysis.phase_diagram.mode",
        "unknown mode 'annealing'; choose one of heating",
    ),
    (
        changed("analysis", {"phase_diagram": {**LADDER, "pressure": "1 bar"}}),
        "analysis.phase_diagram.pressure",
        "expected a number",
    ),
    (
        changed("analysis", {"phase_diagram": {**LADDER, "protocol": "slow"}}),
        "analysis.phase_diagram.protocol",
        "choose one of fast, balanced, precise",
    ),
    (
        changed("analysis", {"phase_diagram": {**LADDER, "md": "fast"}}),
        "analysis.phase_diagram.md",
        "expected a mapping",
    ),
    (
        changed("analysis", {"phase_diagram": {**LADDER, "md": {"blocks": 0}}}),
        "analysis.phase_diagram.md.blocks",
        "must be at least 1",
    ),
    (
        changed("analysis", {"phase_diagram": {**LADDER, "md": {"ensemble": "nve"}}}),
        "analysis.phase_diagram.md.ensemble",
        "unknown ensemble 'nve'",
    ),
    (
        changed("analysis", {"phase_diagram": {**LADDER, "md": {"equilibration_steps": -1}}}),
        "analysis.phase_diagram.md.equilibration_steps",
        "must not be negative",
    ),
    (
        changed("analysis", {"phase_diagram": {**LADDER, "md": {"production_steps": 0}}}),
        "analysis.phase_diagram.md.production_steps",
        "must be at least 1",
    ),
    (
        changed("analysis", {"phase_diagram": {**LADDER, "md": {"sampling_interval": 0}}}),
        "analysis.phase_diagram.md.sampling_interval",
        "must be at least 1",
    ),
    (
        changed("analysis", {"phase_diagram": {**LADDER, "md": {"thermo_interval": 0}}}),
        "analysis.phase_diagram.md.thermo_interval",
        "must be at least 1",
    ),
    (
        changed("analysis", {"phase_diagram": {**LADDER, "md": {"timestep": 2}}}),
        "analysis.phase_diagram.md.timestep",
        "0.002 ps = 2 fs",
    ),
    (
        changed("analysis", {"phase_diagram": {**LADDER, "md": {"tdamp": -1.0}}}),
        "analysis.phase_diagram.md.tdamp",
        "tdamp must be a positive number",
    ),
    (
        changed("analysis", {"phase_diagram": {**LADDER, "md": {"pdamp": 0}}}),
        "analysis.phase_diagram.md.pdamp",
        "pdamp must be a positive number",
    ),
    (
        changed("analysis", {"phase_diagram": LADDER, "polarization": "x"}),
        "analysis.polarization",
        "expected a mapping",
    ),
    (
        changed("analysis", {"phase_diagram": LADDER, "polarization": {"temperatures": [75]}}),
        "analysis.polarization.temperatures",
        "not on the phase-diagram ladder",
    ),
    (
        changed("analysis", {"phase_diagram": LADDER, "polarization": {"settings": {"thresold": 0.1}}}),
        "analysis.polarization.settings.thresold",
        "unknown key",
    ),
]


@pytest.mark.parametrize(("data", "key", "words"), INVALID, ids=[case[1] + ":" + case[2] for case in INVALID])
def test_invalid_campaign_names_the_key_and_the_fix(data, key, words, tmp_path):
    with pytest.raises(CampaignError) as info:
        parse_campaign(data, base_dir=tmp_path)
    assert info.value.key == key, str(info.value)
    assert words in str(info.value)


def test_not_a_mapping_and_not_yaml(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("systems: [unclosed\n")
    with pytest.raises(CampaignError, match="not valid YAML"):
        load_campaign(path)
    with pytest.raises(CampaignError, match="must be a mapping"):
        parse_campaign(["a list"])


@pytest.mark.parametrize("path", sorted(EXAMPLES.glob("*.yaml")), ids=lambda p: p.name)
def test_examples_are_valid(path):
    campaign = load_campaign(path)
    assert campaign.systems and all(campaign.stages[system] for system in campaign.systems)
    assert campaign.trust["force_lo"] < campaign.trust["force_hi"]


def test_bcts_example_has_the_eleven_preset_compositions():
    from aiida_perovskite.structures import BCTS_GRID, bcts_composition, parse_composition

    campaign = load_campaign(EXAMPLES / "bcts-11.yaml")
    built = {parse_composition(spec.value).formula() for spec in campaign.systems.values()}
    assert built == {bcts_composition(x, y).formula() for x, y in BCTS_GRID}


def test_system_stages_and_trust_override_the_campaign_defaults(tmp_path):
    data = copy.deepcopy(VALID)
    own = [{**VALID["stages"][0], "temperatures": [50], "max_iterations": 1}]
    data["systems"]["PbTiO3"] = {
        "structure": {"perovskite": "PbTiO3"},
        "repeat": [2, 2, 2],
        "stages": own,
        "trust": {"force_lo": 0.1, "force_hi": 0.3},
    }
    campaign = parse_campaign(data, base_dir=tmp_path)
    assert campaign.stages["PbTiO3"][0]["temperatures"] == [50]
    assert campaign.stages["BaTiO3"][0]["temperatures"] == [100, 300]
    assert campaign.trust["per_system"] == {"PbTiO3": {"force_lo": 0.1, "force_hi": 0.3}}


def test_protocol_fills_what_the_file_leaves_out(tmp_path):
    data = {key: value for key, value in VALID.items() if key not in ("stages", "trust", "convergence")}
    campaign = parse_campaign(data, base_dir=tmp_path)
    # the fast protocol's settings that make the loop learn (docs/campaigns.md)
    assert campaign.max_labels == 25 and campaign.max_iterations == 6 and campaign.accurate_fraction == 0.9
    assert campaign.trust == {"force_lo": 0.2, "force_hi": 0.6}
    assert campaign.held_out_fraction == 0.2 and campaign.training["reuse"] == {"numb_steps": 1000}
    assert campaign.training["num_models"] == 2 and campaign.labeling["protocol"] == "fast"


@pytest.fixture
def unit_codes(aiida_localhost):
    """The codes VALID names (created once: the test profile keeps them)."""
    for label, path, plugin in (
        ("dp-unit", executable("dp"), "perovskite.deepmd.train"),
        ("lmp-unit", executable("lmp"), "perovskite.lammps.explore"),
        ("cp2k-unit", "/usr/bin/true", "cp2k"),
        ("teacher-unit", executable("perovskite-teacher"), "perovskite.teacher.label"),
    ):
        if not orm.QueryBuilder().append(orm.InstalledCode, filters={"label": label}).count():
            orm.InstalledCode(
                label=label, computer=aiida_localhost, filepath_executable=str(path), default_calc_job_plugin=plugin
            ).store()


@pytest.mark.parametrize("section", ["labeling", "training", "exploration"])
def test_a_missing_code_fails_before_anything_is_stored(section, unit_codes, tmp_path):
    data = changed(f"{section}.code", "nowhere@localhost")
    campaign = parse_campaign(data, base_dir=tmp_path)
    before = orm.QueryBuilder().append(orm.Node).count()
    with pytest.raises(CampaignError) as info:
        build_campaign(campaign)
    assert info.value.key == f"{section}.code"
    assert "aiida-perovskite setup" in str(info.value)
    assert orm.QueryBuilder().append(orm.Node).count() == before


def test_training_set_without_the_systems_elements_is_refused(unit_codes, tmp_path):
    from aiida_perovskite.data import TrainingSetData
    from tests.helpers import lj_frames

    data = TrainingSetData([lj_frames(2)]).store()
    campaign_data = changed("initial_data", {"training_set": data.pk})
    campaign_data["systems"]["PbTiO3"] = {"structure": {"perovskite": "PbTiO3"}}
    with pytest.raises(CampaignError) as info:
        build_campaign(parse_campaign(campaign_data, base_dir=tmp_path))
    assert info.value.key == "initial_data.training_set" and "['Pb']" in str(info.value)


def test_training_set_and_perturbation_together_extend_the_data(unit_codes, tmp_path):
    """Perturbed systems are labeled and added to a given set, even for elements the set lacks."""
    from aiida_perovskite.data import TrainingSetData
    from aiida_perovskite.workflows.concurrent_learning import ConcurrentLearningWorkChain
    from tests.helpers import lj_frames

    data = TrainingSetData([lj_frames(2)]).store()
    campaign_data = changed("initial_data", {"training_set": data.pk, "perturbation": {"count": 3}})
    campaign_data["systems"]["PbTiO3"] = {"structure": {"perovskite": "PbTiO3"}}
    builder = build_campaign(parse_campaign(campaign_data, base_dir=tmp_path))
    assert builder.training_set.pk == data.pk
    assert sorted(builder.init_data.structures) == ["BaTiO3", "PbTiO3"]
    assert builder.init_data.perturbation["count"] == 3
    assert ConcurrentLearningWorkChain.spec().inputs.validate(builder._inputs(prune=True)) is None


def build_example(name: str):
    """The builder of an example campaign file with the unit-test codes; the WorkChain's validation passes."""
    from aiida_perovskite.workflows.concurrent_learning import ConcurrentLearningWorkChain

    data = yaml.safe_load((EXAMPLES / name).read_text())
    for section in ("training", "exploration"):
        data[section]["code"] = VALID[section]["code"]
    data["labeling"]["code"] = "teacher-unit@localhost"
    builder = build_campaign(parse_campaign(data, base_dir=EXAMPLES))
    assert ConcurrentLearningWorkChain.spec().inputs.validate(builder._inputs(prune=True)) is None
    return builder


def test_demo_campaign_builds_a_valid_builder(unit_codes):
    builder = build_example("demo-batio3.yaml")
    assert builder.structures["BaTiO3"].get_formula() == "Ba8O24Ti8"
    assert builder.init_data.perturbation.get_dict()["count"] == 20
    assert builder.train.num_models.value == 2 and builder.final_training["numb_steps"] == 10000
    assert [stage["steps"] for stage in builder.schedule.get_dict()["BaTiO3"]] == [400]
    assert builder.label.engine_inputs["teacher"]["modal"] == "R2SCAN"
    assert builder.phase_diagram.repeats.get_list() == [3, 3, 3] and builder.polarization_temperatures.get_list() == [
        20
    ]


def test_distillation_campaign_builds_and_a_partial_sanity_filter_keeps_the_other_defaults(unit_codes):
    from aiida_perovskite.analysis.model_deviation import SANITY_DEFAULTS

    builder = build_example("distill-batio3.yaml")
    assert sorted(builder.structures) == ["cubic", "orthorhombic", "rhombohedral", "tetragonal"]
    assert builder.explore.sanity.get_dict() == {**SANITY_DEFAULTS, "max_volume_change": 0.1}
    assert builder.final_training.get_dict() == {"numb_steps": 100000, "compress": True}


def test_refinement_campaign_starts_from_the_shipped_student_and_adds_perturbations(unit_codes):
    builder = build_example("refine-batio3.yaml")
    assert builder.training_set.nframes == 213 and builder.validation_set.nframes == 32  # exported folders read back
    assert sorted(builder.init_data.structures) == ["cubic", "orthorhombic", "rhombohedral", "tetragonal"]
    assert builder.init_data.perturbation["atom_displacement"] == 0.03
    assert builder.train.train.train.parameters["loss"]["limit_pref_e"] == 5


def test_a_labeling_code_of_another_plugin_is_refused(unit_codes, tmp_path):
    campaign = parse_campaign(changed("labeling.code", VALID["training"]["code"]), base_dir=tmp_path)
    with pytest.raises(CampaignError) as info:
        build_campaign(campaign)
    assert info.value.key == "labeling.code"
    assert "engine 'cp2k' needs a code for 'cp2k'" in str(info.value)


def test_an_engine_without_its_potentials_in_the_database_is_refused(aiida_profile, tmp_path):
    data = changed("labeling.engine", "vasp")
    data["labeling"]["overrides"] = {"potential_family": "PBE.not-uploaded"}
    with pytest.raises(CampaignError) as info:
        parse_campaign(data, base_dir=tmp_path)
    assert info.value.key == "systems.BaTiO3.structure"
    assert "POTCAR family 'PBE.not-uploaded' is not in the database" in str(info.value)
