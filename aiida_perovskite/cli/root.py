"""The root command group."""

import click

from aiida_perovskite import __version__
from aiida_perovskite.stack import put_venv_on_path


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="aiida-perovskite")
def cli() -> None:
    """Build and use Deep Potential models for perovskite oxides with AiiDA."""
    put_venv_on_path()


def load_aiida_profile() -> None:
    """The default AiiDA profile, loaded when a command needs the database (not for --help)."""
    from aiida import load_profile

    load_profile()
