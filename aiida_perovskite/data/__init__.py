"""AiiDA data types of the project."""

from aiida_perovskite.data.potential import DeepPotentialData
from aiida_perovskite.data.training_set import TrainingSetData, TrainingSetValidationError

__all__ = ("DeepPotentialData", "TrainingSetData", "TrainingSetValidationError")
