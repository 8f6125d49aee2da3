"""What a job's logs say when it failed for a reason outside its program: the executable never ran, or the
working directory's disk filled up. Either is named as such instead of as a missing or truncated output."""

from __future__ import annotations

import re

from aiida.engine import ExitCode
from aiida.parsers import Parser

__all__ = ("disk_full", "failure_in_logs")

# bash, running the job script, when the code's executable is missing or not executable on the computer
_NOT_RUN = re.compile(
    r"_aiidasubmit\.sh: line \d+: (.+?): (No such file or directory|Permission denied|command not found)"
)
# ENOSPC / EDQUOT as the C library, Python and LAMMPS print them, and TensorFlow's file writer failing (its
# message is often cut short by the full disk itself: "...errors_impl.ResourceExhaustedEr")
_DISK_FULL = re.compile(
    r"No space left on device|\[Errno 28\]|Disk quota exceeded|\[Errno 122\]"
    r"|file_io\.py\S*, line \d+, in write\b[\s\S]{0,400}?errors_impl\.ResourceExhausted"
)
_TAIL = 20000  # the end of a log is where a program's last error is


def _logs(parser: Parser, log: str) -> list[tuple[str, str]]:
    """(name, tail) of ``log`` (where the program's output goes) and the scheduler's stderr, if retrieved."""
    retrieved = parser.retrieved
    names = set(retrieved.base.repository.list_object_names())
    return [
        (name, retrieved.base.repository.get_object_content(name)[-_TAIL:])
        for name in (log, parser.node.get_option("scheduler_stderr"))
        if name in names
    ]


def _not_run(parser: Parser, logs: list[tuple[str, str]]) -> ExitCode | None:
    for _, text in logs:
        found = _NOT_RUN.search(text)
        if found:
            return parser.exit_codes.ERROR_EXECUTABLE_NOT_RUN.format(executable=found.group(1), reason=found.group(2))
    return None


def _disk_full(parser: Parser, logs: list[tuple[str, str]]) -> ExitCode | None:
    for name, text in logs:
        found = _DISK_FULL.search(text)
        if found:
            start, end = text.rfind("\n", 0, found.end()) + 1, text.find("\n", found.end())
            evidence = text[start : end if end >= 0 else len(text)].strip()[:200]  # the line of the error
            return parser.exit_codes.ERROR_DISK_FULL.format(evidence=f"{evidence!r} in {name}")
    return None


def disk_full(parser: Parser, log: str) -> ExitCode | None:
    """ERROR_DISK_FULL if a write of the program failed for lack of space (or quota), else None."""
    return _disk_full(parser, _logs(parser, log))


def failure_in_logs(parser: Parser, log: str) -> ExitCode | None:
    """ERROR_EXECUTABLE_NOT_RUN if the job script could not start the program, else :func:`disk_full`'s answer
    (the logs read once)."""
    logs = _logs(parser, log)
    return _not_run(parser, logs) or _disk_full(parser, logs)
