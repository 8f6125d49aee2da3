"""Seeds derived from one campaign seed, as a provenance-tracked step."""

from __future__ import annotations

import numpy as np
from aiida import orm
from aiida.engine import calcfunction

__all__ = ("derive_seeds", "spawn_seeds")


def spawn_seeds(seed: int, count: int) -> list[int]:
    """``count`` independent seeds in [0, 2**31) from ``seed`` (numpy SeedSequence: stable across versions)."""
    children = np.random.SeedSequence(seed).spawn(count)
    return [int(child.generate_state(1, dtype=np.uint32)[0] >> 1) for child in children]


@calcfunction
def derive_seeds(seed: orm.Int, count: orm.Int) -> dict[str, orm.Data]:
    """Outputs ``seed_0`` ... ``seed_{count-1}`` (Int, one per consumer) and ``seeds`` (the same as a List)."""
    values = spawn_seeds(seed.value, count.value)
    return {"seeds": orm.List(values), **{f"seed_{index}": orm.Int(value) for index, value in enumerate(values)}}
