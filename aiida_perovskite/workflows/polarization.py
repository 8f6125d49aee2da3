"""``perovskite.polarization``: local-polarization analysis of an MD trajectory (validated, then one
calcfunction)."""

from __future__ import annotations

from aiida import orm
from aiida.engine import WorkChain

from aiida_perovskite.analysis.polarization import BORN_CHARGES
from aiida_perovskite.calcfunctions.polarization import DEFAULT_SETTINGS, analyse_polarization, frame_indices

__all__ = ("PolarizationWorkChain",)

KNOWN_SETTINGS = {"a_elements", "b_elements", "born_charges", "frames", "repeats", *DEFAULT_SETTINGS}


def validate_inputs(inputs, _) -> str | None:
    trajectory, settings = inputs.get("trajectory"), inputs.get("settings")
    if trajectory is None or settings is None:
        return None
    values = settings.get_dict()
    unknown = sorted(set(values) - KNOWN_SETTINGS)
    if unknown:
        return f"unknown setting(s) {unknown}; known: {sorted(KNOWN_SETTINGS)}"
    born = values.get("born_charges")
    if isinstance(born, str) and born not in BORN_CHARGES:
        return f"no built-in Born charges for {born!r}; give one of {sorted(BORN_CHARGES)} or a dict A/B/O_par/O_perp"
    if isinstance(born, dict) and set(born) != {"A", "B", "O_par", "O_perp"}:
        return f"born_charges needs the keys A, B, O_par, O_perp; got {sorted(born)}"
    if "O" not in trajectory.symbols:
        return "the trajectory has no oxygen: oxygen cages cannot be built"
    if frame_indices(values, trajectory.numsteps).size == 0:
        return f"settings.frames {values.get('frames')} select none of the {trajectory.numsteps} frames"
    return None


class PolarizationWorkChain(WorkChain):
    """Displacements, TAID, per-cell phases, Born-charge polarization, RDFs, bond lengths and plots."""

    @classmethod
    def define(cls, spec):
        super().define(spec)
        spec.input("trajectory", valid_type=orm.TrajectoryData, help="MD frames (e.g. an MD CalcJob's output).")
        spec.input(
            "settings",
            valid_type=orm.Dict,
            default=lambda: orm.Dict({}),
            help="a_elements, b_elements, born_charges, frames {start, stop, step}, threshold (Å), bins, "
            "rdf_r_max, layer, repeats.",
        )
        spec.inputs.validator = validate_inputs
        spec.outline(cls.analyse)
        spec.output("statistics", valid_type=orm.Dict)
        spec.output("per_cell", valid_type=orm.ArrayData)
        spec.output("distributions", valid_type=orm.ArrayData)
        spec.output("rdf", valid_type=orm.ArrayData)
        spec.output_namespace("plots", valid_type=orm.SinglefileData, dynamic=True)

    def analyse(self):
        results = analyse_polarization(self.inputs.trajectory, self.inputs.settings)
        for name, node in results.items():
            if name == "plots":
                for plot, file in node.items():
                    self.out(f"plots.{plot}", file)
            else:
                self.out(name, node)
