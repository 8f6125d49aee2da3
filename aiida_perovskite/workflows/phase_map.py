"""``perovskite.phase_map``: the composition scan of the phase diagram -- a solid solution per composition
(seeded random placement), one phase diagram each, and the composition-temperature phase map."""

from __future__ import annotations

from aiida import orm
from aiida.common import AttributeDict
from aiida.engine import ToContext, WorkChain

from aiida_perovskite.calcfunctions.phase_diagram import summarise_phase_map
from aiida_perovskite.calcfunctions.seeds import derive_seeds
from aiida_perovskite.calcfunctions.structures import build_solid_solution
from aiida_perovskite.calculations.deepmd_common import validate_type_map_covers
from aiida_perovskite.exit_codes import declare
from aiida_perovskite.structures import parse_composition
from aiida_perovskite.structures.composition import CompositionError
from aiida_perovskite.tags import tag_child
from aiida_perovskite.workflows.phase_diagram import PhaseDiagramWorkChain, ladder_error, protocol_error

__all__ = ("PhaseMapWorkChain",)


def validate_compositions(compositions: orm.Dict, _) -> str | None:
    values = compositions.get_dict()
    if not values:
        return "give at least one composition, e.g. {'x0': 'BaTiO3', 'x10': 'BaTi0.9Sn0.1O3'}"
    for label, spec in values.items():
        if not label.replace("_", "").isalnum():
            return f"composition label {label!r}: use letters, digits and '_'"
        try:
            parse_composition(spec)
        except CompositionError as exc:
            return f"compositions.{label}: {exc}"
    return None


def validate_inputs(inputs, _) -> str | None:
    compositions = inputs["compositions"].get_dict()
    values = inputs.get("composition_values")
    if values is not None and sorted(values.get_dict()) != sorted(compositions):
        return f"composition_values must give a number for each of {sorted(compositions)}"
    md = inputs["md"]
    error = ladder_error(md["temperatures"].get_list(), md["mode"].value)
    if error:
        return f"md: {error}"
    error = protocol_error(md["protocol"].get_dict(), md["temperatures"].get_list(), md["pressure"].value)
    if error:
        return f"md: {error}"
    repeats = inputs["repeats"].get_list()
    if len(repeats) != 3 or any(not isinstance(n, int) or n < 1 for n in repeats):
        return f"repeats must be three positive integers, got {repeats}"
    for label, spec in compositions.items():
        parsed = parse_composition(spec)
        elements = [*parsed.a_site, *parsed.b_site, parsed.anion]
        error = validate_type_map_covers(md["model"].type_map, elements, f"composition {label!r}")
        if error:
            return error
    return None


class PhaseMapWorkChain(WorkChain):
    """A PhaseDiagramWorkChain per composition (all at the same temperatures), then summarise_phase_map."""

    @classmethod
    def define(cls, spec):
        super().define(spec)
        spec.input(
            "compositions",
            valid_type=orm.Dict,
            validator=validate_compositions,
            help="Label -> composition (formula such as 'Ba0.925Ca0.075Ti0.9Sn0.1O3' or {A: {...}, B: {...}}).",
        )
        spec.input(
            "composition_values",
            valid_type=orm.Dict,
            required=False,
            help="Label -> the number on the map's composition axis (default: the labels in order).",
        )
        spec.input("axis", valid_type=orm.Str, default=lambda: orm.Str("composition"), help="Axis title.")
        spec.input("repeats", valid_type=orm.List, help="The supercell of 5-atom cells, e.g. [10, 10, 10].")
        spec.input("lattice_constant", valid_type=orm.Float, required=False, help="Å; default from Vegard's law.")
        spec.input("seed", valid_type=orm.Int, help="Cation placement and MD velocities derive from it.")
        spec.expose_inputs(PhaseDiagramWorkChain, namespace="md", exclude=("structure", "repeats", "seed"))
        spec.inputs.validator = validate_inputs
        spec.outline(cls.build_structures, cls.run_phase_diagrams, cls.summarise)
        spec.output_namespace("structures", valid_type=orm.StructureData, dynamic=True)
        spec.output_namespace("tables", valid_type=orm.Dict, dynamic=True)
        spec.output("map", valid_type=orm.Dict)
        spec.output("plot", valid_type=orm.SinglefileData)
        declare(spec, "ERROR_PHASE_DIAGRAM_FAILED")

    def _labels(self) -> list[str]:
        compositions = list(self.inputs.compositions.get_dict())
        if "composition_values" not in self.inputs:
            return compositions
        values = self.inputs.composition_values.get_dict()
        return sorted(compositions, key=lambda label: values[label])

    def build_structures(self):
        labels = self._labels()
        seeds = derive_seeds(self.inputs.seed, orm.Int(2 * len(labels)))
        self.ctx.md_seeds = {label: seeds[f"seed_{2 * i + 1}"] for i, label in enumerate(labels)}
        extra = {"lattice_constant": self.inputs.lattice_constant} if "lattice_constant" in self.inputs else {}
        self.ctx.structures = {}
        for index, label in enumerate(labels):
            spec = self.inputs.compositions[label]
            composition = orm.Dict(spec) if isinstance(spec, dict) else orm.Str(spec)
            built = build_solid_solution(
                composition, self.inputs.repeats, seeds[f"seed_{2 * index}"], orm.Int(1), **extra
            )
            self.ctx.structures[label] = built["configuration_0"]
            self.out(f"structures.{label}", built["configuration_0"])
            if not built["realised"]["exact"]:
                self.report(f"{label}: {spec} realised as {built['realised'].get_dict()} in this supercell")

    def run_phase_diagrams(self):
        calls = {}
        for label in self._labels():
            inputs = AttributeDict(self.exposed_inputs(PhaseDiagramWorkChain, "md"))
            inputs.structure = self.ctx.structures[label]
            inputs.repeats = self.inputs.repeats
            inputs.seed = self.ctx.md_seeds[label]
            inputs.metadata = {"call_link_label": f"phase_diagram_{label}"}
            node = self.submit(PhaseDiagramWorkChain, **inputs)
            tag_child(self.node, node, stage="phase_map", composition=label)
            calls[f"diagram_{label}"] = node
        self.report(f"launched {len(calls)} phase diagram(s)")
        return ToContext(**calls)

    def summarise(self):
        labels = self._labels()
        failed = [label for label in labels if not self.ctx[f"diagram_{label}"].is_finished_ok]
        if failed:
            return self.exit_codes.ERROR_PHASE_DIAGRAM_FAILED.format(labels=", ".join(failed))
        tables = {f"table_{label}": self.ctx[f"diagram_{label}"].outputs.table for label in labels}
        for label in labels:
            self.out(f"tables.{label}", tables[f"table_{label}"])
        settings = {"labels": labels, "axis": self.inputs.axis.value}
        if "composition_values" in self.inputs:
            values = self.inputs.composition_values.get_dict()
            settings["values"] = [values[label] for label in labels]
        result = summarise_phase_map(orm.Dict(settings), **tables)
        self.out("map", result["map"])
        self.out("plot", result["plot"])
        return None
