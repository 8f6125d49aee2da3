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


def mock_executable(directory: pathlib.Path, engine: str) -> pathlib.Path:
    """A shell script that runs ``tests/mock_engines/<engine>.py`` in the calculation's folder."""
    script = directory / f"mock-{engine}"
    script.write_text(
        f'#!/bin/bash\nPYTHONPATH={REPOSITORY} exec {sys.executable} -m tests.mock_engines.{engine} "$@"\n'
    )
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    return script
