"""The ``aiida-perovskite`` command line."""

from aiida_perovskite.cli import campaign as _campaign  # noqa: F401  (registers the sub-commands)
from aiida_perovskite.cli import phase_diagram as _phase_diagram  # noqa: F401
from aiida_perovskite.cli import setup as _setup  # noqa: F401
from aiida_perovskite.cli.root import cli

__all__ = ("cli",)
