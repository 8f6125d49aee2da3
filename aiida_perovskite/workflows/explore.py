"""``perovskite.explore``: exploration MD over systems x temperatures x pressures, then the selection."""

from __future__ import annotations

from aiida import orm
from aiida.engine import ToContext, WorkChain

from aiida_perovskite.analysis.lammps_io import MdSettings
from aiida_perovskite.analysis.model_deviation import SANITY_DEFAULTS, SELECTION_MODES, selector
from aiida_perovskite.calcfunctions.seeds import derive_seeds
from aiida_perovskite.calcfunctions.select_candidates import select_candidates
from aiida_perovskite.calculations.deepmd_common import structure_elements_missing
from aiida_perovskite.calculations.lammps_explore import LammpsExploreCalculation, validate_models
from aiida_perovskite.data import DeepPotentialData, TrainingSetData
from aiida_perovskite.exit_codes import declare
from aiida_perovskite.loop.settings import StageConditions, names_problem, protocol_default, trust_problem
from aiida_perovskite.schema import port_validator
from aiida_perovskite.tags import tag_child

__all__ = ("ExploreWorkChain",)


def validate_structures(structures, _) -> str | None:
    if not structures:
        return "give at least one structure to explore"
    return names_problem(structures)


validate_conditions = port_validator(StageConditions, "conditions")


def validate_trust(trust: orm.Dict, _) -> str | None:
    found = trust_problem(trust.get_dict())
    return f"{found[0]}: {found[1]}" if found else None


def validate_inputs(inputs, _) -> str | None:
    models, structures = inputs.get("models"), inputs.get("structures")
    if models and structures:
        type_map = next(iter(models.values())).type_map
        for name, structure in structures.items():
            error = structure_elements_missing(structure, type_map, f"structure {name!r}", "the models'")
            if error:
                return error
    mode = inputs.get("selection_mode")
    if mode is not None and mode.value not in SELECTION_MODES:
        return f"unknown selection_mode {mode.value!r}; choose one of {', '.join(SELECTION_MODES)}"
    if "max_labels" in inputs and inputs["max_labels"].value < 0:
        return f"max_labels must not be negative, got {inputs['max_labels'].value}"
    return None


class ExploreWorkChain(WorkChain):
    """Run one exploration per (system, temperature, pressure) and select the frames to label."""

    @classmethod
    def define(cls, spec):
        super().define(spec)
        spec.input("code", valid_type=orm.AbstractCode, help="LAMMPS with the DeePMD plugin.")
        spec.input_namespace("models", valid_type=DeepPotentialData, dynamic=True, validator=validate_models)
        spec.input_namespace(
            "structures",
            valid_type=orm.StructureData,
            dynamic=True,
            validator=validate_structures,
            help="Starting structures by system name.",
        )
        spec.input(
            "conditions",
            valid_type=orm.Dict,
            validator=validate_conditions,
            help="temperatures (K), pressures (bar), and the MD settings shared by all runs: ensemble, "
            "steps, sampling_interval, timestep, tdamp, pdamp.",
        )
        spec.input(
            "trust",
            valid_type=orm.Dict,
            validator=validate_trust,
            help="force_lo, force_hi (eV/Å), optional virial_lo/hi, optional per_system overrides.",
        )
        spec.input("max_labels", valid_type=orm.Int, default=lambda: orm.Int(10), help="Per system.")
        spec.input(
            "selection_mode",
            valid_type=orm.Str,
            default=lambda: orm.Str(protocol_default("exploration", "selection_mode")),
        )
        spec.input("seed", valid_type=orm.Int, help="Velocity seeds and the random selection derive from it.")
        spec.input("skip_frames", valid_type=orm.Int, default=lambda: orm.Int(0), help="Per trajectory start.")
        spec.input(
            "sanity",
            valid_type=orm.Dict,
            default=lambda: orm.Dict(SANITY_DEFAULTS),
            help="Candidate filter: min_distance (Å) between atoms, max_skew (tilt / length), max_volume_change "
            "(relative to the run's starting cell).",
        )
        spec.input(
            "reference",
            valid_type=TrainingSetData,
            required=False,
            help="The frames already labeled, which the diverse selection picks away from.",
        )
        spec.input("options", valid_type=dict, non_db=True, default=lambda: {}, help="metadata.options of the MD.")
        spec.inputs.validator = validate_inputs
        spec.outline(cls.run_explorations, cls.select)
        spec.output_namespace("candidates", valid_type=orm.TrajectoryData, dynamic=True)
        spec.output_namespace("indices", valid_type=orm.ArrayData, dynamic=True)
        spec.output("statistics", valid_type=orm.Dict)
        spec.output_namespace("deviations", valid_type=orm.ArrayData, dynamic=True)
        declare(spec, "ERROR_ALL_FRAMES_FAILED")

    def run_explorations(self):
        conditions = self.inputs.conditions.get_dict()
        temperatures = conditions.pop("temperatures")
        pressures = conditions.pop("pressures", [1.0])
        runs = [
            (system, temperature, pressure)
            for system in sorted(self.inputs.structures)
            for temperature in temperatures
            for pressure in (pressures if conditions["ensemble"] != "nvt" else pressures[:1])
        ]
        seeds = derive_seeds(self.inputs.seed, orm.Int(len(runs)))
        calls = {}
        for index, (system, temperature, pressure) in enumerate(runs):
            job = f"{system}__T{temperature:g}_P{pressure:g}".replace(".", "p").replace("-", "m")
            builder = LammpsExploreCalculation.get_builder()
            builder.code = self.inputs.code
            builder.models = dict(self.inputs.models)
            builder.structure = self.inputs.structures[system]
            builder.parameters = orm.Dict({**conditions, "temperature": temperature, "pressure": pressure})
            builder.velocity_seed = seeds[f"seed_{index}"]
            for option, value in self.inputs.options.items():
                builder.metadata.options[option] = value
            builder.metadata.call_link_label = f"explore_{index}"
            node = self.submit(builder)
            tag_child(self.node, node, stage="explore", system=system, temperature=temperature, pressure=pressure)
            calls[job] = node
        self.ctx.jobs = list(calls)
        self.report(f"launched {len(calls)} exploration(s)")
        return ToContext(**{f"job__{job}": node for job, node in calls.items()})

    def select(self):
        explorations = {}
        for job in self.ctx.jobs:
            node = self.ctx[f"job__{job}"]
            if "deviations" not in node.outputs:
                self.report(f"exploration {job} <{node.pk}> sampled nothing (exit {node.exit_status}): all failed")
            else:
                explorations[f"devi__{job}"] = node.outputs.deviations
                self.out(f"deviations.{job}", node.outputs.deviations)
            if "trajectory" in node.outputs:
                explorations[f"traj__{job}"] = node.outputs.trajectory
            expected = MdSettings.from_dict(node.inputs.parameters.get_dict()).expected_frames
            explorations[f"expected__{job}"] = orm.Int(expected)
        uses_reference = "reference" in self.inputs and selector(self.inputs.selection_mode.value).uses_fingerprints
        result = select_candidates(
            trust=self.inputs.trust,
            max_labels=self.inputs.max_labels,
            mode=self.inputs.selection_mode,
            seed=self.inputs.seed,
            skip_frames=self.inputs.skip_frames,
            sanity=self.inputs.sanity,
            **({"reference": self.inputs.reference} if uses_reference else {}),
            **explorations,
        )
        for namespace in ("candidates", "indices"):
            for system, node in result.get(namespace, {}).items():
                self.out(f"{namespace}.{system}", node)
        self.out("statistics", result["statistics"])
        statistics = result["statistics"].get_dict()
        blown = [
            system for system, stats in statistics.items() if stats["explored"] and stats["failed"] == stats["explored"]
        ]
        for system, stats in statistics.items():
            self.report(f"{system}: {stats}")
        if blown:
            return self.exit_codes.ERROR_ALL_FRAMES_FAILED.format(systems=", ".join(blown))
        return None
