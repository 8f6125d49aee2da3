"""``perovskite.phase_diagram``: NPT MD along a temperature ladder, then lattice, angles, polar vector, phase
and transition temperatures per temperature, and the figure."""

from __future__ import annotations

import dataclasses
import itertools

from aiida import orm
from aiida.engine import ToContext, WorkChain, if_, while_

from aiida_perovskite.analysis.lammps_io import MdSettings
from aiida_perovskite.calcfunctions.phase_diagram import summarise_phases
from aiida_perovskite.calcfunctions.seeds import derive_seeds
from aiida_perovskite.calculations.deepmd_common import structure_elements_missing
from aiida_perovskite.data import DeepPotentialData
from aiida_perovskite.exit_codes import declare
from aiida_perovskite.tags import tag_child
from aiida_perovskite.workflows.lammps_md_base import LammpsMdBaseWorkChain

__all__ = ("MODES", "PhaseDiagramWorkChain", "ladder_error", "protocol_error", "runs_by_temperature")

MODES = ("heating", "cooling", "independent")
PROTOCOL_KEYS = {
    "ensemble",
    "equilibration_steps",
    "production_steps",
    "timestep",
    "tdamp",
    "pdamp",
    "sampling_interval",
    "thermo_interval",
    "blocks",
}


def ladder_error(temperatures: list, mode: str) -> str | None:
    """Why a temperature ladder cannot be run in ``mode``, or None."""
    if mode not in MODES:
        return f"unknown mode {mode!r}; choose one of {', '.join(MODES)}"
    if not temperatures:
        return "the temperature ladder is empty"
    if any(not isinstance(t, int | float) or t <= 0 for t in temperatures):
        return f"temperatures must be positive (K), got {temperatures}"
    increasing = all(b > a for a, b in itertools.pairwise(temperatures))
    decreasing = all(b < a for a, b in itertools.pairwise(temperatures))
    if mode == "heating" and not increasing:
        return f"heating mode needs strictly increasing temperatures, got {temperatures}"
    if mode == "cooling" and not decreasing:
        return f"cooling mode needs strictly decreasing temperatures, got {temperatures}"
    return None


def protocol_error(protocol: dict, temperature: float, pressure: float) -> str | None:
    """Why an MD protocol is invalid, or None."""
    extra = sorted(set(protocol) - PROTOCOL_KEYS)
    if extra:
        return f"unknown protocol key(s) {extra}; known: {sorted(PROTOCOL_KEYS)}"
    for key, minimum in (("equilibration_steps", 0), ("production_steps", 1)):
        value = protocol.get(key)
        if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
            return f"{key} must be an integer >= {minimum}, got {value!r}"
    try:
        _md_settings(protocol, temperature, pressure)
    except (TypeError, ValueError, KeyError) as exc:
        return f"protocol: {exc}"
    return None


def runs_by_temperature(phase_diagram: orm.WorkflowNode) -> dict[float, orm.ProcessNode]:
    """The finished MD runs (with ``thermo`` and ``trajectory`` outputs) of a phase diagram by temperature."""
    return {
        run.base.extras.get("temperature"): run
        for run in phase_diagram.called
        if run.process_label == LammpsMdBaseWorkChain.__name__ and run.is_finished_ok
    }


def validate_inputs(inputs, _) -> str | None:
    required = ("temperatures", "mode", "structure", "model", "protocol", "pressure", "repeats")
    if any(key not in inputs for key in required):
        return None  # the ports say what is missing (or a wrapper provides and checks them)
    temperatures = inputs["temperatures"].get_list()
    error = ladder_error(temperatures, inputs["mode"].value)
    error = error or structure_elements_missing(inputs["structure"], inputs["model"].type_map)
    error = error or protocol_error(inputs["protocol"].get_dict(), temperatures[0], inputs["pressure"].value)
    if error:
        return error
    if len(inputs["repeats"].get_list()) != 3:
        return "repeats must list the number of cells along a, b and c"
    return None


def _md_settings(protocol: dict, temperature: float, pressure: float) -> MdSettings:
    return MdSettings(
        ensemble=protocol.get("ensemble", "npt-tri"),
        temperature=temperature,
        pressure=pressure,
        steps=protocol["equilibration_steps"] + protocol["production_steps"],
        sampling_interval=protocol.get("sampling_interval", 100),
        timestep=protocol.get("timestep", 0.002),
        tdamp=protocol.get("tdamp", 0.1),
        pdamp=protocol.get("pdamp", 0.5),
    )


class PhaseDiagramWorkChain(WorkChain):
    """Heating or cooling (each temperature continues from the previous final state) or independent runs."""

    @classmethod
    def define(cls, spec):
        super().define(spec)
        spec.input("code", valid_type=orm.AbstractCode, help="LAMMPS with the DeePMD plugin.")
        spec.input("model", valid_type=DeepPotentialData)
        spec.input("structure", valid_type=orm.StructureData, help="e.g. a 10x10x10 BaTiO3 supercell.")
        spec.input("repeats", valid_type=orm.List, help="Cells along a, b, c (pseudocubic lattice constants).")
        spec.input("temperatures", valid_type=orm.List, help="The ladder (K).")
        spec.input("pressure", valid_type=orm.Float, default=lambda: orm.Float(1.0), help="bar")
        spec.input("mode", valid_type=orm.Str, default=lambda: orm.Str("heating"))
        spec.input(
            "protocol",
            valid_type=orm.Dict,
            help="equilibration_steps, production_steps, ensemble (npt-tri), timestep, tdamp, pdamp, "
            "sampling_interval (frames), thermo_interval, blocks (for the errors).",
        )
        spec.input("seed", valid_type=orm.Int)
        spec.input("options", valid_type=dict, non_db=True, default=lambda: {})
        spec.inputs.validator = validate_inputs
        spec.outline(
            cls.setup,
            if_(cls.independent)(cls.run_all).else_(while_(cls.more_temperatures)(cls.run_next)),
            cls.summarise,
        )
        spec.output("table", valid_type=orm.Dict, help="Per temperature: lattice, angles, polar vector, phase.")
        spec.output("plot", valid_type=orm.SinglefileData)
        declare(spec, "ERROR_MD_FAILED")

    def setup(self):
        temperatures = self.inputs.temperatures.get_list()
        seeds = derive_seeds(self.inputs.seed, orm.Int(len(temperatures)))
        self.ctx.seeds = [seeds[f"seed_{index}"] for index in range(len(temperatures))]
        self.ctx.index = 0
        model = self.inputs.model
        if model.dp_backend != "tensorflow" or (model.descriptor == "se_e2_a" and not model.compressed):
            self.report(
                f"the model is a {'compressed ' if model.compressed else ''}{model.dp_backend} {model.descriptor} "
                "model: a compressed TensorFlow se_e2_a model runs this MD up to 11x faster (docs/benchmarks.md)"
            )

    def independent(self):
        return self.inputs.mode.value == "independent"

    def more_temperatures(self):
        if self.ctx.index and not self.ctx[f"md_{self.ctx.index - 1}"].is_finished_ok:
            return False
        return self.ctx.index < len(self.inputs.temperatures.get_list())

    def _submit(self, index: int, parent=None):
        protocol = self.inputs.protocol.get_dict()
        temperature = self.inputs.temperatures.get_list()[index]
        settings = _md_settings(protocol, temperature, self.inputs.pressure.value)
        builder = LammpsMdBaseWorkChain.get_builder()
        builder.md.code = self.inputs.code
        builder.md.model = self.inputs.model
        builder.md.parameters = orm.Dict(dataclasses.asdict(settings))
        builder.md.thermo_interval = orm.Int(protocol.get("thermo_interval", 10))
        if parent is None:
            builder.md.structure = self.inputs.structure
            builder.md.velocity_seed = self.ctx.seeds[index]
        else:
            builder.md.parent_folder = parent.outputs.remote_folder
        for option, value in self.inputs.options.items():
            builder.md.metadata.options[option] = value
        builder.metadata.call_link_label = f"md_{index}"
        node = self.submit(builder)
        tag_child(self.node, node, stage="phase_diagram", temperature=temperature)
        return node

    def run_all(self):
        return ToContext(**{f"md_{i}": self._submit(i) for i in range(len(self.inputs.temperatures.get_list()))})

    def run_next(self):
        parent = self.ctx[f"md_{self.ctx.index - 1}"] if self.ctx.index else None
        node = self._submit(self.ctx.index, parent)
        self.ctx.index += 1
        return ToContext(**{f"md_{self.ctx.index - 1}": node})

    def summarise(self):
        temperatures = self.inputs.temperatures.get_list()
        runs = {}
        for index, temperature in enumerate(temperatures):
            node = self.ctx.get(f"md_{index}")
            if node is None or not node.is_finished_ok:
                message = node.exit_message if node is not None else "not run after an earlier failure"
                return self.exit_codes.ERROR_MD_FAILED.format(temperature=temperature, message=message)
            runs[f"thermo__{index}"] = node.outputs.thermo
            runs[f"trajectory__{index}"] = node.outputs.trajectory
        protocol = self.inputs.protocol.get_dict()
        settings = orm.Dict(
            {
                "temperatures": temperatures,
                "repeats": self.inputs.repeats.get_list(),
                "equilibration_steps": protocol["equilibration_steps"],
                "blocks": protocol.get("blocks", 5),
            }
        )
        results = summarise_phases(settings, **runs)
        self.out("table", results["table"])
        self.out("plot", results["plot"])
        for row in results["table"]["rows"]:
            self.report(f"{row['temperature']} K: {row['phase']} (lattice: {row['phase_from_lattice']})")
        return None
