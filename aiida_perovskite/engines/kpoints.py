"""K-point meshes from a spacing, the same convention for every engine (no AiiDA)."""

from __future__ import annotations

import math

import numpy as np

__all__ = ("kpoint_mesh",)


def kpoint_mesh(cell: np.ndarray, spacing: float) -> list[int]:
    """Mesh with at most ``spacing`` (1/Å, 2π included, as VASP's KSPACING) between k-points."""
    reciprocal = 2 * math.pi * np.linalg.inv(np.asarray(cell, dtype=float)).T
    return [max(1, math.ceil(np.linalg.norm(vector) / spacing - 1e-8)) for vector in reciprocal]
