"""The ABACUS labeling engine: aiida-abacus with our restart WorkChain (ABACUS is not installable here; the
plugin is the optional extra ``pip install aiida-perovskite[abacus]``, which pins aiida-pseudo 1.7)."""

from __future__ import annotations

from collections.abc import Iterable

from aiida import orm

from aiida_perovskite.analysis.frames import LabeledFrames
from aiida_perovskite.engines.atom_order import ungrouped
from aiida_perovskite.engines.base import LabelingEngine, database_loaded, kpoints_from_spacing
from aiida_perovskite.engines.units import EV_PER_ANGSTROM3_IN_KBAR, virial_from_pressure
from aiida_perovskite.protocols import load_protocol

__all__ = ("AbacusEngine",)


class AbacusEngine(LabelingEngine):
    name = "abacus"
    calc_job_plugin = "abacus.abacus"
    distribution = "aiida-abacus"
    extra = "abacus"

    @property
    def process_class(self):
        from aiida_perovskite.engines.abacus.workchain import AbacusLabelWorkChain

        return AbacusLabelWorkChain

    def check_elements(self, elements: Iterable[str], protocol=None, overrides=None, engine_inputs=None) -> str | None:
        if not database_loaded():
            return None
        family_label = load_protocol("abacus", protocol, overrides)["orbital_family"]
        try:
            family = _orbital_family(family_label)
        except ValueError as exc:
            return str(exc)
        missing = sorted(set(elements) - set(family.elements))
        if missing:
            return (
                f"orbital family {family_label!r} has no pseudopotential/orbital pair for {', '.join(missing)}: "
                "import them or set overrides.orbital_family"
            )
        return None

    def get_builder(self, code, structure, protocol=None, overrides=None, options=None):
        inputs = load_protocol("abacus", protocol, overrides)
        builder = self.process_class.get_builder()
        builder.abacus.code = code
        builder.abacus.structure = structure
        builder.abacus.pseudos = _orbital_family(inputs["orbital_family"]).get_pseudos(structure=structure)
        builder.abacus.parameters = orm.Dict(inputs["parameters"])
        builder.abacus.metadata.options = {**inputs["metadata"]["options"], **(options or {})}
        builder.kpoints = kpoints_from_spacing(structure.cell, inputs["kpoint_spacing"])
        builder.max_iterations = orm.Int(inputs["max_iterations"])
        return builder

    def label_source(self, protocol=None, overrides=None, engine_inputs=None) -> dict[str, str]:
        inputs = load_protocol("abacus", protocol, overrides)
        method = inputs["parameters"]["input"]["dft_functional"].upper()
        return {"engine": self.name, "method": method, "details": f"LCAO {inputs['orbital_family']}"}

    def label_outputs(self, node: orm.ProcessNode) -> dict[str, orm.Data]:
        return {"misc": node.outputs.misc}

    def frame(self, structure: orm.StructureData, **outputs: orm.Data) -> LabeledFrames:
        misc = outputs["misc"].get_dict()
        atoms = structure.get_ase()
        forces = ungrouped(misc["final_forces"], structure.get_site_kindnames())  # STRU groups the kinds
        virial = virial_from_pressure(misc["final_stress"], atoms.get_volume(), EV_PER_ANGSTROM3_IN_KBAR)
        return LabeledFrames.single(atoms, float(misc["total_energy"]), forces, virial)


def _orbital_family(label: str):
    from aiida.common.exceptions import NotExistent
    from aiida_abacus.group.orb_group import AtomicOrbitalFamily

    try:
        return AtomicOrbitalFamily.collection.get(label=label)
    except NotExistent as exc:
        raise ValueError(
            f"orbital family {label!r} is not in the database: import the UPF + .orb pairs as an "
            "abacus.orbital_family group (docs/labeling.md) or set overrides.orbital_family"
        ) from exc
