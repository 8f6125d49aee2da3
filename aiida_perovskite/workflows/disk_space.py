"""A job whose working directory filled up: pause its restart workchain instead of failing the campaign.

AiiDA pauses a job whose upload hits a full disk and resumes it on ``verdi process play``; a disk that fills
while the program runs gets the same treatment here, so the work done so far is kept and one command continues
once space is freed (a rerun before that would fail the same way)."""

from __future__ import annotations

from aiida.engine import BaseRestartWorkChain, ProcessHandlerReport

__all__ = ("pause_until_space_is_freed",)


def pause_until_space_is_freed(workchain: BaseRestartWorkChain, calculation) -> ProcessHandlerReport:
    """Report the full disk, pause ``workchain`` after this step and run the job again when it is played."""
    workchain.report(f"{calculation.process_label}<{calculation.pk}> failed: {calculation.exit_message}")
    workchain.pause(
        f"the working directory of {calculation.process_label}<{calculation.pk}> is full: free space on "
        f"{calculation.computer.label}, then `verdi process play {workchain.node.pk}` runs the job again"
    )
    return ProcessHandlerReport(do_break=True)
