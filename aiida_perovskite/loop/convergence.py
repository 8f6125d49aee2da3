"""Convergence criteria of a stage, as strategies (DPGEN2's exploration reports are the model).

A criterion names the stage/campaign key holding its target and the measurement it compares; a stage with a
target for it converges only when it is met. Every criterion with a target must be met. A new criterion is one
subclass and one entry in :data:`CRITERIA` (and a field of the ``Stage`` settings model for its stage key).
"""

from __future__ import annotations

import abc
from collections.abc import Mapping
from typing import ClassVar

__all__ = ("CRITERIA", "AccurateFraction", "Criterion", "ForceRmse", "stage_converged")


class Criterion(abc.ABC):
    """One convergence test: ``key`` holds its target (in a stage, else the campaign's), ``measured`` the value."""

    key: ClassVar[str]
    measured: ClassVar[str]

    @abc.abstractmethod
    def met(self, value: float | None, target: float) -> bool:
        """Whether the measured ``value`` (None: not measured this iteration) meets ``target``."""


class AccurateFraction(Criterion):
    """Enough of the explored frames are accurate (below the lower trust level): the models agree."""

    key = "accurate_fraction"
    measured = "accurate_fraction"

    def met(self, value: float | None, target: float) -> bool:
        return value is not None and value >= target


class ForceRmse(Criterion):
    """The ensemble's force RMSE on labeled data it was not trained on is at most the target: the models are
    right, not only in agreement. Unmeasured is not met."""

    key = "max_force_rmse"
    measured = "force_rmse"

    def met(self, value: float | None, target: float) -> bool:
        return value is not None and value <= target


CRITERIA: dict[str, Criterion] = {criterion.key: criterion for criterion in (AccurateFraction(), ForceRmse())}


def stage_converged(
    stage: Mapping[str, object], targets: Mapping[str, float | None], measured: Mapping[str, float | None]
) -> bool:
    """Every criterion with a target (the stage's own, else the campaign's ``targets``) is met by ``measured``."""
    for key, criterion in CRITERIA.items():
        target = stage.get(key, targets.get(key))
        if target is not None and not criterion.met(measured.get(criterion.measured), float(target)):
            return False
    return True
