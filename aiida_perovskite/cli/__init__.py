"""The ``aiida-perovskite`` command line."""

from aiida_perovskite.cli import setup as _setup  # noqa: F401  (registers the sub-command)
from aiida_perovskite.cli.root import cli

__all__ = ("cli",)
