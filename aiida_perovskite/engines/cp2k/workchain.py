"""``perovskite.cp2k.base``: one CP2K single point with recovery from unconverged SCF and walltime."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from aiida import orm
from aiida.common import AttributeDict
from aiida.engine import BaseRestartWorkChain, ProcessHandlerReport, process_handler, while_
from aiida.plugins import CalculationFactory

from aiida_perovskite.engines.cp2k.inputs import label_parameters
from aiida_perovskite.engines.kpoints import kpoint_mesh
from aiida_perovskite.exit_codes import declare
from aiida_perovskite.protocols import ProtocolMixin
from aiida_perovskite.tags import TagsSubmittedProcesses

__all__ = ("Cp2kLabelBaseWorkChain",)

Cp2kCalculation = CalculationFactory("cp2k")

# Escalation for an unconverged SCF: gentler mixing and more steps, then more smearing; then give up.
SCF_REMEDIES = (
    {"alpha": 0.1, "max_scf_factor": 2, "smearing_factor": 1},
    {"alpha": 0.05, "max_scf_factor": 3, "smearing_factor": 5},
)


class Cp2kLabelBaseWorkChain(ProtocolMixin, TagsSubmittedProcesses, BaseRestartWorkChain):
    """Run a Cp2kCalculation; on an unconverged SCF change mixing, then smearing; on walltime run again with
    twice the time."""

    _protocol_file = "cp2k"

    _process_class = Cp2kCalculation

    @classmethod
    def define(cls, spec):
        super().define(spec)
        spec.expose_inputs(Cp2kCalculation, namespace="cp2k")
        spec.expose_outputs(Cp2kCalculation)
        spec.outline(
            cls.setup,
            while_(cls.should_run_process)(cls.run_process, cls.inspect_process),
            cls.results,
        )
        declare(spec, "ERROR_SCF_NOT_CONVERGED", "ERROR_WALLTIME_EXHAUSTED")

    @classmethod
    def get_builder_from_protocol(
        cls,
        code: orm.AbstractCode,
        structure: orm.StructureData,
        protocol: str | None = None,
        overrides: Mapping[str, Any] | None = None,
        **_,
    ):
        """A single-point builder: PBEsol, GTH/DZVP-MOLOPT-SR, stress on; ``overrides`` may change
        ``settings`` (cutoff, kpoint_spacing, ...), ``parameters`` (merged into the CP2K input) and
        ``metadata``."""
        from aiida_perovskite.protocols import recursive_merge

        inputs = cls.get_protocol_inputs(protocol, overrides)
        settings = inputs["settings"]
        atoms = structure.get_ase()
        parameters = label_parameters(atoms.get_chemical_symbols(), len(atoms), settings)
        parameters = recursive_merge(parameters, inputs.get("parameters"))
        mesh = kpoint_mesh(atoms.cell[:], settings["kpoint_spacing"])

        builder = cls.get_builder()
        builder.cp2k.code = code
        builder.cp2k.structure = structure
        builder.cp2k.parameters = orm.Dict(parameters)
        if mesh != [1, 1, 1]:  # a single k-point: CP2K's faster Gamma-only code, not its k-point code
            kpoints = orm.KpointsData()
            kpoints.set_kpoints_mesh(mesh)
            builder.cp2k.kpoints = kpoints
        builder.cp2k.metadata = inputs["metadata"]
        return builder

    def setup(self):
        super().setup()
        self.ctx.inputs = AttributeDict(self.exposed_inputs(Cp2kCalculation, "cp2k"))
        self.ctx.scf_remedies_applied = 0
        self.ctx.walltime_restarts = 0

    def _report(self, calculation, action: str) -> None:
        self.report(
            f"{calculation.process_label}<{calculation.pk}> failed with exit status {calculation.exit_status}; {action}"
        )

    @process_handler(priority=500, exit_codes=[Cp2kCalculation.exit_codes.ERROR_SCF_NOT_CONVERGED])
    def handle_scf_not_converged(self, calculation):
        """Gentler mixing and more SCF steps; then stronger smearing; then give up."""
        if self.ctx.scf_remedies_applied >= len(SCF_REMEDIES):
            self._report(calculation, "no SCF remedy left: giving up")
            return ProcessHandlerReport(do_break=True, exit_code=self.exit_codes.ERROR_SCF_NOT_CONVERGED)
        remedy = SCF_REMEDIES[self.ctx.scf_remedies_applied]
        parameters = copy.deepcopy(self.ctx.inputs.parameters.get_dict())
        scf = parameters["FORCE_EVAL"]["DFT"]["SCF"]
        first = self.inputs.cp2k.parameters.get_dict()["FORCE_EVAL"]["DFT"]["SCF"]
        scf["MIXING"]["ALPHA"] = remedy["alpha"]
        scf["MAX_SCF"] = first["MAX_SCF"] * remedy["max_scf_factor"]
        if "SMEAR" in first:
            scf["SMEAR"]["ELECTRONIC_TEMPERATURE"] = (
                first["SMEAR"]["ELECTRONIC_TEMPERATURE"] * remedy["smearing_factor"]
            )
        self.ctx.inputs.parameters = orm.Dict(parameters)
        self.ctx.scf_remedies_applied += 1
        self._report(
            calculation,
            f"SCF remedy {self.ctx.scf_remedies_applied}: mixing alpha {remedy['alpha']}, "
            f"MAX_SCF {scf['MAX_SCF']}, smearing x{remedy['smearing_factor']}",
        )
        return ProcessHandlerReport(do_break=True)

    @process_handler(
        priority=400,
        exit_codes=[
            Cp2kCalculation.exit_codes.ERROR_OUT_OF_WALLTIME,
            Cp2kCalculation.exit_codes.ERROR_SCHEDULER_OUT_OF_WALLTIME,
        ],
    )
    def handle_out_of_walltime(self, calculation):
        """A single point has nothing to continue from but its wavefunction: run again with twice the time."""
        if self.ctx.walltime_restarts >= 1:
            self._report(calculation, "out of walltime again: giving up")
            return ProcessHandlerReport(do_break=True, exit_code=self.exit_codes.ERROR_WALLTIME_EXHAUSTED)
        metadata = copy.deepcopy(dict(self.ctx.inputs.metadata))
        options = dict(metadata.get("options", {}))
        options["max_wallclock_seconds"] = 2 * int(options.get("max_wallclock_seconds", 3600))
        metadata["options"] = options
        self.ctx.inputs.metadata = metadata
        self.ctx.walltime_restarts += 1
        self._report(calculation, f"run again with max_wallclock_seconds {options['max_wallclock_seconds']}")
        return ProcessHandlerReport(do_break=True)
