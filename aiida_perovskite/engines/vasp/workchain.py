"""``perovskite.vasp.base``: aiida-vasp's VaspWorkChain (and its ~20 error handlers), whose CalcJobs carry
the campaign tags like every other labeling job."""

from __future__ import annotations

from aiida_vasp.workchains.v2.vasp import VaspWorkChain

from aiida_perovskite.tags import TagsSubmittedProcesses

__all__ = ("VaspLabelWorkChain",)


class VaspLabelWorkChain(TagsSubmittedProcesses, VaspWorkChain):
    """VaspWorkChain whose calculations inherit the tags (campaign, iteration, stage, system) of the workflow."""
