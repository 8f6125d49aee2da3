"""Stand-ins for DFT codes that cannot run here (VASP, ABACUS, Quantum ESPRESSO).

Each one reads the input files the real plugin wrote, labels the structure with a known analytic model
(``reference.py``) and writes the outputs in the code's own formats, so the real plugin parsers run on them
and the labels can be checked against the model to the printed precision.
"""

from __future__ import annotations

import pathlib
import stat
import sys

REPOSITORY = pathlib.Path(__file__).resolve().parents[2]


PLUGINS = {"vasp": "vasp.vasp", "abacus": "abacus.abacus"}


def mock_code(computer, directory: pathlib.Path, engine: str, prelude: str = "", label: str | None = None):
    """A stored InstalledCode of the engine's plugin that runs the mock, after the bash lines ``prelude``
    (e.g. an environment variable that makes the run fail)."""
    from aiida import orm

    mock = mock_executable(directory, engine)
    script = directory / (label or f"mock-{engine}-code")
    script.write_text(f'#!/bin/bash\n{prelude}\nexec {mock} "$@"\n')
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    return orm.InstalledCode(
        label=label or f"mock-{engine}",
        computer=computer,
        filepath_executable=str(script),
        default_calc_job_plugin=PLUGINS[engine],
    ).store()


def mock_executable(directory: pathlib.Path, engine: str) -> pathlib.Path:
    """A shell script that runs ``tests/mock_engines/<engine>.py`` in the calculation's folder."""
    script = directory / f"mock-{engine}"
    script.write_text(
        f'#!/bin/bash\nPYTHONPATH={REPOSITORY} exec {sys.executable} -m tests.mock_engines.{engine} "$@"\n'
    )
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    return script
