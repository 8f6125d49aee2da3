"""The Quantum ESPRESSO labeling engine: aiida-quantumespresso's PwBaseWorkChain (optional extra
``pip install aiida-perovskite[qe]``; pw.x is Debian's ``quantum-espresso``)."""

from __future__ import annotations

import copy
from collections.abc import Iterable

from aiida import orm

from aiida_perovskite.analysis.frames import LabeledFrames
from aiida_perovskite.engines.base import LabelingEngine, database_loaded, kpoints_from_spacing
from aiida_perovskite.engines.units import EV_PER_ANGSTROM3_IN_GPA, virial_from_pressure
from aiida_perovskite.protocols import load_protocol

__all__ = ("QuantumEspressoEngine",)


class QuantumEspressoEngine(LabelingEngine):
    name = "qe"
    calc_job_plugin = "quantumespresso.pw"
    distribution = "aiida-quantumespresso"
    extra = "qe"

    @property
    def process_class(self):
        from aiida_perovskite.engines.qe.workchain import PwLabelWorkChain

        return PwLabelWorkChain

    def check_elements(self, elements: Iterable[str], protocol=None, overrides=None, engine_inputs=None) -> str | None:
        if not database_loaded():
            return None
        inputs = load_protocol("qe", protocol, overrides)
        elements = sorted(set(elements))
        try:
            family = _pseudo_family(inputs["pseudo_family"])
            family.get_pseudos(elements=elements)
            _cutoffs(family, elements, inputs)
        except ValueError as exc:
            return str(exc)
        return None

    def get_builder(self, code, structure, protocol=None, overrides=None, options=None):
        inputs = load_protocol("qe", protocol, overrides)
        family = _pseudo_family(inputs["pseudo_family"])
        ecutwfc, ecutrho = _cutoffs(family, sorted(structure.get_symbols_set()), inputs)
        parameters = copy.deepcopy(inputs["parameters"])
        parameters["SYSTEM"].update(ecutwfc=ecutwfc, ecutrho=ecutrho)
        parameters["ELECTRONS"]["conv_thr"] = inputs["conv_thr_per_atom"] * len(structure.sites)
        builder = self.process_class.get_builder()
        builder.pw.code = code
        builder.pw.structure = structure
        builder.pw.parameters = orm.Dict(parameters)
        builder.pw.pseudos = family.get_pseudos(structure=structure)
        builder.pw.metadata.options = {**inputs["metadata"]["options"], **(options or {})}
        builder.kpoints = kpoints_from_spacing(structure.cell, inputs["kpoint_spacing"])
        builder.max_iterations = orm.Int(inputs["max_iterations"])
        builder.clean_workdir = orm.Bool(True)
        return builder

    def label_source(self, protocol=None, overrides=None, engine_inputs=None) -> dict[str, str]:
        inputs = load_protocol("qe", protocol, overrides)
        method = inputs["parameters"].get("SYSTEM", {}).get("input_dft", "of the pseudopotentials")
        return {"engine": self.name, "method": str(method), "details": f"pseudopotentials {inputs['pseudo_family']}"}

    def label_outputs(self, node: orm.ProcessNode) -> dict[str, orm.Data]:
        return {
            "output_parameters": node.outputs.output_parameters,
            "output_trajectory": node.outputs.output_trajectory,
        }

    def frame(self, structure: orm.StructureData, **outputs: orm.Data) -> LabeledFrames:
        trajectory = outputs["output_trajectory"]
        atoms = structure.get_ase()
        stress = trajectory.get_array("stress")[-1]  # GPa, QE's sign: positive = compressed
        virial = virial_from_pressure(stress, atoms.get_volume(), EV_PER_ANGSTROM3_IN_GPA)
        forces = trajectory.get_array("forces")[-1]  # eV/Å, in the structure's atom order
        return LabeledFrames.single(atoms, outputs["output_parameters"]["energy"], forces, virial)


def _pseudo_family(label: str):
    from aiida.common.exceptions import NotExistent
    from aiida_pseudo.groups.family import PseudoPotentialFamily

    try:
        family = orm.Group.collection.get(label=label)
    except NotExistent as exc:
        raise ValueError(
            f"pseudopotential family {label!r} is not in the database: install it with aiida-pseudo "
            "(e.g. `aiida-pseudo install sssp -x PBEsol -p efficiency`) or set overrides.pseudo_family"
        ) from exc
    if not isinstance(family, PseudoPotentialFamily):
        raise ValueError(f"group {label!r} is not an aiida-pseudo pseudopotential family")
    return family


def _cutoffs(family, elements: list[str], inputs: dict) -> tuple[float, float]:
    """(ecutwfc, ecutrho) in Ry: the protocol's, else the family's recommendation for these elements."""
    if inputs["ecutwfc"] is not None and inputs["ecutrho"] is not None:
        return float(inputs["ecutwfc"]), float(inputs["ecutrho"])
    if not hasattr(family, "get_recommended_cutoffs"):
        raise ValueError(
            f"family {family.label!r} recommends no cutoffs: set overrides.ecutwfc and overrides.ecutrho (Ry)"
        )
    return family.get_recommended_cutoffs(elements=elements, unit="Ry")
