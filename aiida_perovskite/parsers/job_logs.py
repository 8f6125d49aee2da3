"""What a job's logs say when its program never ran, so a wrong executable path is named as such."""

from __future__ import annotations

import re

from aiida.engine import ExitCode
from aiida.parsers import Parser

__all__ = ("executable_not_run",)

# bash, running the job script, when the code's executable is missing or not executable on the computer
_NOT_RUN = re.compile(
    r"_aiidasubmit\.sh: line \d+: (.+?): (No such file or directory|Permission denied|command not found)"
)


def executable_not_run(parser: Parser, log: str) -> ExitCode | None:
    """ERROR_EXECUTABLE_NOT_RUN if the job script could not start the program (read from ``log``, where the
    program's output goes, and the scheduler's stderr), else None."""
    retrieved = parser.retrieved
    names = set(retrieved.base.repository.list_object_names())
    for name in (log, parser.node.get_option("scheduler_stderr")):
        if name in names:
            found = _NOT_RUN.search(retrieved.base.repository.get_object_content(name)[-20000:])
            if found:
                return parser.exit_codes.ERROR_EXECUTABLE_NOT_RUN.format(
                    executable=found.group(1), reason=found.group(2)
                )
    return None
