"""``perovskite.phase_diagram``: NPT MD along a temperature ladder, then lattice, angles, polar vector, phase
and transition temperatures per temperature, and the figure."""

from __future__ import annotations

import dataclasses
import itertools
from typing import Any

from aiida import orm
from aiida.engine import ToContext, WorkChain, if_, while_

from aiida_perovskite.analysis.lammps_io import MdSettingError
from aiida_perovskite.calcfunctions.phase_diagram import summarise_phases
from aiida_perovskite.calcfunctions.seeds import derive_seeds
from aiida_perovskite.calculations.deepmd_common import structure_elements_missing
from aiida_perovskite.data import DeepPotentialData
from aiida_perovskite.exit_codes import declare
from aiida_perovskite.loop.settings import LADDER_MODES, PhaseDiagramMd
from aiida_perovskite.protocols import ProtocolMixin
from aiida_perovskite.schema import SettingError, raise_first_problem
from aiida_perovskite.tags import tag_child
from aiida_perovskite.workflows.lammps_md_base import LammpsMdBaseWorkChain

__all__ = ("MODES", "PhaseDiagramWorkChain", "ladder_error", "protocol_error", "runs_by_temperature")

MODES = LADDER_MODES


def ladder_error(temperatures: list, mode: str) -> str | None:
    """Why a temperature ladder cannot be run in ``mode``, or None."""
    if mode not in MODES:
        return f"unknown mode {mode!r}; choose one of {', '.join(MODES)}"
    if not temperatures:
        return "the temperature ladder is empty"
    if any(not isinstance(t, int | float) or isinstance(t, bool) for t in temperatures):
        return f"temperatures must be numbers (K), got {temperatures}"
    increasing = all(b > a for a, b in itertools.pairwise(temperatures))
    decreasing = all(b < a for a, b in itertools.pairwise(temperatures))
    if mode == "heating" and not increasing:
        return f"heating mode needs strictly increasing temperatures, got {temperatures}"
    if mode == "cooling" and not decreasing:
        return f"cooling mode needs strictly decreasing temperatures, got {temperatures}"
    return None


def protocol_error(protocol: dict, temperatures: list[float], pressure: float) -> str | None:
    """Why the MD settings of a ladder (``PhaseDiagramMd``) cannot run at each of ``temperatures`` and at
    ``pressure``, or None."""
    try:
        md = raise_first_problem(PhaseDiagramMd, protocol, "protocol")
        for temperature in temperatures:
            md.md_settings(temperature, pressure)
    except SettingError as error:
        return str(error)
    except MdSettingError as error:
        return f"protocol: {error}"
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
    error = error or protocol_error(inputs["protocol"].get_dict(), temperatures, inputs["pressure"].value)
    if error:
        return error
    if len(inputs["repeats"].get_list()) != 3:
        return "repeats must list the number of cells along a, b and c"
    return None


class PhaseDiagramWorkChain(ProtocolMixin, WorkChain):
    """Heating or cooling (each temperature continues from the previous final state) or independent runs."""

    _protocol_file = "phase_diagram"

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
            help="The MD of each rung (PhaseDiagramMd, protocols/phase_diagram.yaml): equilibration_steps, "
            "production_steps, ensemble, timestep, tdamp, pdamp, sampling_interval, thermo_interval, blocks.",
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

    @classmethod
    def get_builder_from_protocol(
        cls,
        code: orm.AbstractCode,
        model: DeepPotentialData,
        structure: orm.StructureData,
        temperatures: list[float],
        protocol: str | None = None,
        overrides: dict[str, Any] | None = None,
        *,
        mode: str = "heating",
        repeats: tuple[int, int, int] = (1, 1, 1),
        pressure: float = 1.0,
        seed: int = 1,
    ):
        """A ladder of ``structure`` (``repeats`` cells of the 5-atom perovskite) run with ``model``: the MD of
        ``protocol`` (fast, balanced, precise) with ``overrides`` of its keys, checked before anything is stored."""
        settings = cls.get_protocol_inputs(protocol, overrides)
        if error := ladder_error(list(temperatures), mode) or protocol_error(settings, temperatures, pressure):
            raise ValueError(error)
        builder = cls.get_builder()
        builder.code = code
        builder.model = model
        builder.structure = structure
        builder.repeats = orm.List(list(repeats))
        builder.temperatures = orm.List(list(temperatures))
        builder.mode = orm.Str(mode)
        builder.pressure = orm.Float(pressure)
        builder.protocol = orm.Dict(PhaseDiagramMd.model_validate(settings).model_dump(exclude_none=True))
        builder.seed = orm.Int(seed)
        return builder

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
        md = PhaseDiagramMd.model_validate(self.inputs.protocol.get_dict())
        temperature = self.inputs.temperatures.get_list()[index]
        settings = md.md_settings(temperature, self.inputs.pressure.value)
        builder = LammpsMdBaseWorkChain.get_builder()
        builder.md.code = self.inputs.code
        builder.md.model = self.inputs.model
        builder.md.parameters = orm.Dict(dataclasses.asdict(settings))
        builder.md.thermo_interval = orm.Int(md.thermo_interval)
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
        protocol = PhaseDiagramMd.model_validate(self.inputs.protocol.get_dict())
        settings = orm.Dict(
            {
                "temperatures": temperatures,
                "repeats": self.inputs.repeats.get_list(),
                "equilibration_steps": protocol.equilibration_steps,
                "blocks": protocol.blocks,
            }
        )
        results = summarise_phases(settings, **runs)
        self.out("table", results["table"])
        self.out("plot", results["plot"])
        for row in results["table"]["rows"]:
            self.report(f"{row['temperature']} K: {row['phase']} (lattice: {row['phase_from_lattice']})")
        return None
