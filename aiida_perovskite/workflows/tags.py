"""Extras that tag launched processes, so that one QueryBuilder filter finds them (e.g. every failed labeling
job of a campaign). A child inherits the campaign-level tags of the workflow that launches it."""

from __future__ import annotations

from typing import Any

from aiida import orm

__all__ = ("INHERITED_TAGS", "TagsSubmittedProcesses", "tag_child")

INHERITED_TAGS = ("campaign", "iteration", "stage", "system", "temperature")


def tag_child(parent: orm.ProcessNode, child: orm.ProcessNode, **tags: Any) -> None:
    """Set on ``child`` the inherited tags of ``parent`` updated by ``tags``."""
    inherited = {key: value for key, value in parent.base.extras.all.items() if key in INHERITED_TAGS}
    child.base.extras.set_many({**inherited, **tags})


class TagsSubmittedProcesses:
    """WorkChain mixin: every process it submits inherits its tags (for BaseRestartWorkChains, whose
    ``run_process`` submits the CalcJobs itself)."""

    def submit(self, process, inputs=None, **kwargs):
        node = super().submit(process, inputs, **kwargs)
        tag_child(self.node, node)
        return node
