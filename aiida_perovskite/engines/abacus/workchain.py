"""``perovskite.abacus.base``: aiida-abacus's AbacusBaseWorkChain with the error handling it lacks.

aiida-abacus has no process handlers and its parser returns exit status 0 even when ABACUS stopped its SCF
loop unconverged (ABACUS itself exits 0 and still prints forces). Here an unconverged SCF is read from the
retrieved log and the run is restarted with gentler mixing and more steps, then more smearing; a finished run
without energy, forces or stress ends with its own exit code instead of yielding a frame without labels.
"""

from __future__ import annotations

import copy

from aiida import orm
from aiida.engine import ProcessHandlerReport, process_handler
from aiida_abacus.calculations import AbacusCalculation
from aiida_abacus.workflows.base import AbacusBaseWorkChain

from aiida_perovskite.exit_codes import declare
from aiida_perovskite.tags import TagsSubmittedProcesses

__all__ = ("SCF_REMEDIES", "AbacusLabelWorkChain", "scf_converged")

SCF_UNCONVERGED = "convergence has not been achieved"
LABEL_UNITS = ("eV/Angstrom", "KBAR")  # the units the engine adapter converts from
SCF_REMEDIES = (
    {"mixing_beta": 0.3, "scf_nmax_factor": 2, "smearing_factor": 1},
    {"mixing_beta": 0.1, "scf_nmax_factor": 3, "smearing_factor": 5},
)


def scf_converged(calculation: orm.CalcJobNode) -> bool | None:
    """Whether the SCF of a finished AbacusCalculation converged (None: no log retrieved)."""
    kind = calculation.inputs.parameters["input"].get("calculation", "scf")
    path = f"OUT.{AbacusCalculation._OUTPUT_SUFFIX}/running_{kind}.log"
    try:
        log = calculation.outputs.retrieved.base.repository.get_object_content(path)
    except (AttributeError, FileNotFoundError, KeyError):
        return None
    return SCF_UNCONVERGED not in log.lower()


class AbacusLabelWorkChain(TagsSubmittedProcesses, AbacusBaseWorkChain):
    """AbacusBaseWorkChain with an SCF handler and a check that the labels were printed."""

    @classmethod
    def define(cls, spec):
        super().define(spec)
        declare(spec, "ERROR_SCF_NOT_CONVERGED", "ERROR_LABELS_MISSING")

    def setup(self):
        super().setup()
        self.ctx.scf_remedies_applied = 0

    @process_handler(priority=600)
    def handle_scf_not_converged(self, calculation):
        """Gentler Pulay mixing and more steps; then stronger smearing; then give up."""
        if scf_converged(calculation) is not False:
            return None
        if self.ctx.scf_remedies_applied >= len(SCF_REMEDIES):
            self.report_error_handled(calculation, "the SCF did not converge and no remedy is left: giving up")
            return ProcessHandlerReport(do_break=True, exit_code=self.exit_codes.ERROR_SCF_NOT_CONVERGED)
        remedy = SCF_REMEDIES[self.ctx.scf_remedies_applied]
        first = self.inputs.abacus.parameters.get_dict()["input"]
        parameters = copy.deepcopy(self.ctx.inputs.parameters)
        parameters["input"]["mixing_beta"] = remedy["mixing_beta"]
        parameters["input"]["scf_nmax"] = int(first.get("scf_nmax", 100)) * remedy["scf_nmax_factor"]
        if "smearing_sigma" in first:
            parameters["input"]["smearing_sigma"] = float(first["smearing_sigma"]) * remedy["smearing_factor"]
        self.ctx.inputs.parameters = parameters
        self.ctx.scf_remedies_applied += 1
        self.report_error_handled(
            calculation,
            f"the SCF did not converge; remedy {self.ctx.scf_remedies_applied}: mixing_beta {remedy['mixing_beta']}, "
            f"scf_nmax {parameters['input']['scf_nmax']}, smearing x{remedy['smearing_factor']}",
        )
        return ProcessHandlerReport(do_break=True)

    @process_handler(priority=500)
    def handle_missing_labels(self, calculation):
        """A run that ended without energy, forces or stress cannot label a frame."""
        if not calculation.is_finished_ok:
            return None
        misc = calculation.outputs.misc.get_dict()
        if misc.get("total_energy") is None or not misc.get("final_forces") or not misc.get("final_stress"):
            self.report_error_handled(calculation, "no energy, forces or stress in the output: giving up")
            return ProcessHandlerReport(do_break=True, exit_code=self.exit_codes.ERROR_LABELS_MISSING)
        if (misc.get("force_unit"), misc.get("stress_unit")) != LABEL_UNITS:
            self.report_error_handled(
                calculation, f"forces in {misc.get('force_unit')} and stress in {misc.get('stress_unit')}: giving up"
            )
            return ProcessHandlerReport(do_break=True, exit_code=self.exit_codes.ERROR_LABELS_MISSING)
        return None
