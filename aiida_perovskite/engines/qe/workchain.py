"""``perovskite.qe.base``: aiida-quantumespresso's PwBaseWorkChain (and its error handlers), whose CalcJobs
carry the campaign tags like every other labeling job."""

from __future__ import annotations

from aiida_quantumespresso.workflows.pw.base import PwBaseWorkChain

from aiida_perovskite.tags import TagsSubmittedProcesses

__all__ = ("PwLabelWorkChain",)


class PwLabelWorkChain(TagsSubmittedProcesses, PwBaseWorkChain):
    """PwBaseWorkChain whose calculations inherit the tags (campaign, iteration, stage, system) of the workflow."""
