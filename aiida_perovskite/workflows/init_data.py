"""``perovskite.init_data``: parent or solid-solution structures -> perturbed copies -> DFT labels: the
training set of iteration 0 (DP-GEN's init_bulk)."""

from __future__ import annotations

from aiida import orm
from aiida.engine import ToContext, WorkChain

from aiida_perovskite.calcfunctions.seeds import derive_seeds
from aiida_perovskite.calcfunctions.structures import perturb_structures
from aiida_perovskite.data import TrainingSetData
from aiida_perovskite.exit_codes import declare
from aiida_perovskite.loop.settings import Perturbation
from aiida_perovskite.schema import port_validator
from aiida_perovskite.tags import tag_child
from aiida_perovskite.workflows.label import LabelWorkChain, check_engine_inputs

__all__ = ("InitDataWorkChain",)


def validate_inputs(inputs, _) -> str | None:
    structures = inputs.get("structures", {})
    if not structures:
        return "give at least one structure to perturb and label"
    elements = {symbol for structure in structures.values() for symbol in structure.get_symbols_set()}
    return check_engine_inputs(inputs.get("label", {}), elements)


class InitDataWorkChain(WorkChain):
    """Perturb each structure ``count`` times (seeded) and label all copies with the labeling WorkChain."""

    @classmethod
    def define(cls, spec):
        super().define(spec)
        spec.input_namespace(
            "structures",
            valid_type=orm.StructureData,
            dynamic=True,
            help="Relaxed parents or solid-solution configurations, by system name.",
        )
        spec.input(
            "perturbation",
            valid_type=orm.Dict,
            validator=port_validator(Perturbation, "perturbation"),
            help="count, cell_strain (fraction), atom_displacement (Å), volume_scale.",
        )
        spec.input("seed", valid_type=orm.Int)
        spec.expose_inputs(LabelWorkChain, namespace="label", exclude=("structures", "trajectories"))
        spec.inputs.validator = validate_inputs
        spec.outline(cls.perturb, cls.label, cls.results)
        spec.output("training_set", valid_type=TrainingSetData)
        spec.output("failures", valid_type=orm.Dict)
        declare(spec, "ERROR_INIT_DATA_FAILED")

    def perturb(self):
        names = sorted(self.inputs.structures)
        seeds = derive_seeds(self.inputs.seed, orm.Int(len(names)))
        self.ctx.perturbed = {
            name: perturb_structures(self.inputs.structures[name], self.inputs.perturbation, seeds[f"seed_{index}"])
            for index, name in enumerate(names)
        }

    def label(self):
        inputs = self.exposed_inputs(LabelWorkChain, "label")
        inputs["trajectories"] = self.ctx.perturbed  # frames <system>_<i>, labeled with their system
        inputs["metadata"] = {"call_link_label": "label"}
        node = self.submit(LabelWorkChain, **inputs)
        tag_child(self.node, node, stage="init_data", iteration=0)
        return ToContext(labeling=node)

    def results(self):
        node = self.ctx.labeling
        if "failures" in node.outputs:
            self.out("failures", node.outputs.failures)
        if "training_set" in node.outputs:
            self.out("training_set", node.outputs.training_set)
        if not node.is_finished_ok:
            return self.exit_codes.ERROR_INIT_DATA_FAILED.format(message=node.exit_message or node.exit_status)
        return None
