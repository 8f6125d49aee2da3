"""Extras that tag launched processes, so that one QueryBuilder filter finds them (e.g. every failed labeling
job of a campaign). A child inherits the campaign-level tags of the workflow that launches it."""

from __future__ import annotations

from typing import Any

from aiida import orm

__all__ = ("INHERITED_TAGS", "TagsSubmittedProcesses", "campaign_processes", "tag_child")

INHERITED_TAGS = ("campaign", "iteration", "stage", "system", "temperature")


def tag_child(parent: orm.ProcessNode, child: orm.ProcessNode, **tags: Any) -> None:
    """Set on ``child`` the inherited tags of ``parent`` updated by ``tags``."""
    inherited = {key: value for key, value in parent.base.extras.all.items() if key in INHERITED_TAGS}
    child.base.extras.set_many({**inherited, **tags})


def campaign_processes(campaign: orm.WorkChainNode, **extras: Any) -> list[orm.ProcessNode]:
    """Every process tagged with this campaign (and ``extras``), oldest first."""
    filters = {"extras.campaign": campaign.uuid, **{f"extras.{key}": value for key, value in extras.items()}}
    query = orm.QueryBuilder().append(orm.ProcessNode, filters=filters, project="*")
    return sorted(query.all(flat=True), key=lambda node: node.ctime)


class TagsSubmittedProcesses:
    """WorkChain mixin: every process it submits inherits its tags (for BaseRestartWorkChains, whose
    ``run_process`` submits the CalcJobs itself)."""

    def submit(self, process, inputs=None, **kwargs):
        node = super().submit(process, inputs, **kwargs)
        tag_child(self.node, node)
        return node
