"""The VASP labeling engine: aiida-vasp's VaspWorkChain with its error handlers (VASP itself is licensed;
install the plugin with ``pip install aiida-perovskite[vasp]`` and upload a POTCAR family once)."""

from __future__ import annotations

from collections.abc import Iterable

from aiida import orm

from aiida_perovskite.analysis.frames import LabeledFrames
from aiida_perovskite.engines.atom_order import species_grouped_order, ungrouped
from aiida_perovskite.engines.base import LabelingEngine, database_loaded, kpoints_from_spacing
from aiida_perovskite.engines.units import EV_PER_ANGSTROM3_IN_KBAR, virial_from_pressure
from aiida_perovskite.protocols import load_protocol

__all__ = ("VaspEngine",)

GGA_TAGS = {"PE": "PBE", "PS": "PBEsol", "RP": "RPBE", "91": "PW91", "AM": "AM05"}  # INCAR GGA -> name
ENERGY_TYPE = "energy_free"  # VASP's TOTEN: the energy whose derivatives are the printed forces and stress


class VaspEngine(LabelingEngine):
    name = "vasp"
    calc_job_plugin = "vasp.vasp"
    distribution = "aiida-vasp"
    extra = "vasp"

    @property
    def process_class(self):
        from aiida_perovskite.engines.vasp.workchain import VaspLabelWorkChain

        return VaspLabelWorkChain

    def check_elements(self, elements: Iterable[str], protocol=None, overrides=None, engine_inputs=None) -> str | None:
        inputs = load_protocol("vasp", protocol, overrides)
        mapping = inputs["potential_mapping"]
        unmapped = sorted(set(elements) - set(mapping))
        if unmapped:
            return (
                f"no POTCAR is mapped for {', '.join(unmapped)}: add them to overrides.potential_mapping "
                "(e.g. {'" + unmapped[0] + "': '" + unmapped[0] + "'})"
            )
        return _missing_potcars(inputs["potential_family"], {mapping[element] for element in elements})

    def get_builder(self, code, structure, protocol=None, overrides=None, options=None):
        inputs = load_protocol("vasp", protocol, overrides)
        atoms = structure.get_ase()
        grouped = atoms[species_grouped_order(atoms.get_chemical_symbols())]
        builder = self.process_class.get_builder()
        builder.code = code
        builder.structure = structure if grouped == atoms else orm.StructureData(ase=grouped)
        builder.kpoints = kpoints_from_spacing(atoms.cell[:], inputs["kpoint_spacing"])
        builder.parameters = orm.Dict({"incar": inputs["parameters"]})
        builder.potential_family = orm.Str(inputs["potential_family"])
        builder.potential_mapping = orm.Dict({s: inputs["potential_mapping"][s] for s in set(grouped.symbols)})
        builder.settings = orm.Dict({"parser_settings": {"energy_type": [ENERGY_TYPE]}})
        builder.max_iterations = orm.Int(inputs["max_iterations"])
        builder.calc.metadata.options = {**inputs["metadata"]["options"], **(options or {})}
        return builder

    def label_source(self, protocol=None, overrides=None, engine_inputs=None) -> dict[str, str]:
        inputs = load_protocol("vasp", protocol, overrides)
        parameters = inputs["parameters"]
        gga = str(parameters.get("gga", "PE")).upper()
        method = str(parameters["metagga"]).upper() if "metagga" in parameters else GGA_TAGS.get(gga, gga)
        return {"engine": self.name, "method": method, "details": f"PAW {inputs['potential_family']}"}

    def label_outputs(self, node: orm.ProcessNode) -> dict[str, orm.Data]:
        return {"misc": node.outputs.misc}

    def frame(self, structure: orm.StructureData, **outputs: orm.Data) -> LabeledFrames:
        misc = outputs["misc"].get_dict()
        atoms = structure.get_ase()
        forces = ungrouped(misc["forces"], atoms.get_chemical_symbols())  # POSCAR groups the species
        virial = virial_from_pressure(misc["stress"], atoms.get_volume(), EV_PER_ANGSTROM3_IN_KBAR)
        return LabeledFrames.single(atoms, misc["total_energies"][ENERGY_TYPE], forces, virial)


def _missing_potcars(family: str, symbols: set[str]) -> str | None:
    """Error if the stored POTCAR family lacks a symbol (checked only where a profile is loaded)."""
    from aiida.common.exceptions import NotExistent

    if not database_loaded():
        return None
    from aiida_vasp.data.potcar import PotcarGroup

    try:
        group = PotcarGroup.collection.get(label=family)
    except NotExistent:
        return (
            f"POTCAR family {family!r} is not in the database: upload it with "
            f"`aiida-vasp potcar uploadfamily --path <folder> --name {family}` or set overrides.potential_family"
        )
    missing = sorted(symbols - {node.symbol for node in group.nodes})
    if missing:
        return (
            f"POTCAR family {family!r} has no {', '.join(missing)}: upload them or change overrides.potential_mapping"
        )
    return None
