"""``perovskite.lammps.md.base``: one production MD run, run again when something outside stopped it."""

from __future__ import annotations

from aiida.common import AttributeDict
from aiida.engine import BaseRestartWorkChain, ProcessHandlerReport, process_handler, while_

from aiida_perovskite.calculations.lammps_md import LammpsMdCalculation
from aiida_perovskite.tags import TagsSubmittedProcesses
from aiida_perovskite.workflows.disk_space import pause_until_space_is_freed

__all__ = ("LammpsMdBaseWorkChain",)


class LammpsMdBaseWorkChain(TagsSubmittedProcesses, BaseRestartWorkChain):
    """Run a LammpsMdCalculation; a run killed from outside (the machine or the daemon stopped, the scheduler
    cancelled it or its walltime ran out) is run again from the same start, so a phase-diagram ladder of many
    hours survives an interruption and redoes one temperature, not the ladder. A run that the physics stopped
    (lost atoms, non-finite energies) is not repeated: its exit code stays."""

    _process_class = LammpsMdCalculation

    @classmethod
    def define(cls, spec):
        super().define(spec)
        spec.expose_inputs(LammpsMdCalculation, namespace="md")
        spec.expose_outputs(LammpsMdCalculation)
        spec.outline(
            cls.setup,
            while_(cls.should_run_process)(cls.run_process, cls.inspect_process),
            cls.results,
        )

    def setup(self):
        super().setup()
        self.ctx.inputs = AttributeDict(self.exposed_inputs(LammpsMdCalculation, "md"))

    @process_handler(priority=700, exit_codes=[LammpsMdCalculation.exit_codes.ERROR_DISK_FULL])
    def handle_disk_full(self, calculation):
        """Pause until the disk has space, then run the job again."""
        return pause_until_space_is_freed(self, calculation)

    @process_handler(
        priority=600,
        exit_codes=[
            LammpsMdCalculation.exit_codes.ERROR_MD_INTERRUPTED,
            LammpsMdCalculation.exit_codes.ERROR_SCHEDULER_OUT_OF_WALLTIME,
        ],
    )
    def handle_interrupted(self, calculation):
        """The same run again (same inputs, same velocity seed or parent state)."""
        self.report(
            f"{calculation.process_label}<{calculation.pk}> was stopped from outside "
            f"({calculation.exit_status}: {calculation.exit_message}); running it again"
        )
        return ProcessHandlerReport(do_break=True)
