"""Every exit code of the project: one number, one label, one meaning.

A process declares the codes it can end with by label (:func:`declare`); the number and the message live only
here. Numbers follow AiiDA's ranges and never reuse a number that aiida-core (``BaseRestartWorkChain``: 301,
302, 401, 402) or the upstream plugins this project runs (aiida-quantumespresso, aiida-cp2k, aiida-abacus,
aiida-vasp) give another meaning, so ``exit_status == N`` selects one kind of failure in a whole database:

- 370-399: a job's outputs show that it failed (missing, unreadable, refused inputs);
- 420-429: a job stopped before its end (walltime, scheduler, unstable physics) and returned what it had;
- 430-439: a restart workchain gave up after its handlers; 450 for an SCF that never converged (aiida-cp2k's
  number for the same failure);
- 440-449: a downstream (physics) workflow failed;
- 470-479: a campaign step failed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["EXIT_CODES", "ExitCodeDefinition", "declare", "markdown_table"]


@dataclass(frozen=True)
class ExitCodeDefinition:
    status: int
    message: str
    invalidates_cache: bool = False


_OUTPUT = {"invalidates_cache": True}

EXIT_CODES: dict[str, ExitCodeDefinition] = {
    # 370-399: the outputs show the job failed
    "ERROR_MISSING_OUTPUT_FILE": ExitCodeDefinition(
        370, "{filename} is missing: the program did not start or stopped early; see {log}.", **_OUTPUT
    ),
    "ERROR_UNREADABLE_OUTPUT": ExitCodeDefinition(371, "{filename} cannot be parsed: {error}", **_OUTPUT),
    "ERROR_INCOMPLETE_OUTPUT": ExitCodeDefinition(
        372, "dp test evaluated {found} of {expected} frames; see test.log.", **_OUTPUT
    ),
    "ERROR_MISSING_LEARNING_CURVE": ExitCodeDefinition(
        373, "lcurve.out is missing: the training did not start; see {log}.", **_OUTPUT
    ),
    "ERROR_UNREADABLE_LEARNING_CURVE": ExitCodeDefinition(374, "lcurve.out cannot be parsed: {error}", **_OUTPUT),
    "ERROR_MISSING_MODEL": ExitCodeDefinition(
        375, "the frozen model {filename} is missing although the training finished; see {log}.", **_OUTPUT
    ),
    "ERROR_MISSING_COMPRESSED_MODEL": ExitCodeDefinition(
        376, "the compressed model {filename} is missing; see {log}.", **_OUTPUT
    ),
    "ERROR_INVALID_MODEL": ExitCodeDefinition(377, "the model file {filename} cannot be used: {error}", **_OUTPUT),
    "ERROR_EXECUTABLE_NOT_RUN": ExitCodeDefinition(
        378,
        "the job could not start {executable} ({reason}): fix the code's executable path on its computer "
        "(`verdi code show`, `verdi code test`).",
        **_OUTPUT,
    ),
    "ERROR_DISK_FULL": ExitCodeDefinition(
        379,
        "the job ran out of disk space in its working directory ({evidence}): free space there (`verdi calcjob "
        "cleanworkdir`) or give the computer a larger scratch, then run it again.",
        **_OUTPUT,
    ),
    "ERROR_TEACHER_NOT_INSTALLED": ExitCodeDefinition(
        380, "the teacher cannot run on this computer: {message}", **_OUTPUT
    ),
    "ERROR_CHECKPOINT_MISSING": ExitCodeDefinition(381, "the checkpoint is missing: {message}", **_OUTPUT),
    "ERROR_CHECKPOINT_MISMATCH": ExitCodeDefinition(
        382, "the checkpoint differs from the requested one: {message}", **_OUTPUT
    ),
    "ERROR_CHECKPOINT_CORRUPT": ExitCodeDefinition(383, "the checkpoint is unreadable: {message}", **_OUTPUT),
    "ERROR_MD_INTERRUPTED": ExitCodeDefinition(
        390,
        "the MD was stopped from outside at step {step} of {steps} (no LAMMPS error): run it again.",
        **_OUTPUT,
    ),
    # 420-429: the job stopped before its end and returned what it had
    "ERROR_OUT_OF_WALLTIME": ExitCodeDefinition(
        420, "the training stopped at step {step} of {total}; restart it from the checkpoint."
    ),
    "ERROR_STOPPED_BEFORE_CHECKPOINT": ExitCodeDefinition(
        421, "the training stopped at step {step} of {total} before it wrote a checkpoint; run it again."
    ),
    "ERROR_CANCELLED_BY_SCHEDULER": ExitCodeDefinition(
        422, "the scheduler cancelled the job (scancel or preemption) at step {step} of {total}."
    ),
    "ERROR_TRAINING_DIVERGED": ExitCodeDefinition(
        423, "the learning curve has NaN or infinite errors from step {step} on: training diverged."
    ),
    "ERROR_MD_UNSTABLE": ExitCodeDefinition(
        424, "the MD stopped at step {step} of {steps} ({reason}); the {frames} frames sampled before are returned."
    ),
    "ERROR_FRAMES_FAILED": ExitCodeDefinition(
        425, "{failed} of {total} frames were not labeled (see the failures output): {first}"
    ),
    # 430-450: a restart workchain gave up
    "ERROR_TRAINING_UNRECOVERABLE": ExitCodeDefinition(430, "the training failed and cannot be recovered."),
    "ERROR_WALLTIME_EXHAUSTED": ExitCodeDefinition(431, "the calculation ran out of walltime twice."),
    "ERROR_LABELS_MISSING": ExitCodeDefinition(
        432, "ABACUS finished without energy, forces and stress in eV, eV/Angstrom and KBAR."
    ),
    "ERROR_SCF_NOT_CONVERGED": ExitCodeDefinition(
        450, "the SCF did not converge after changing the mixing and the smearing."
    ),
    # 440-449: a downstream workflow failed
    "ERROR_MD_FAILED": ExitCodeDefinition(440, "the MD at {temperature} K failed: {message}"),
    "ERROR_PHASE_DIAGRAM_FAILED": ExitCodeDefinition(441, "the phase diagram of {labels} failed; see their reports"),
    # 470-479: a campaign step failed
    "ERROR_INIT_DATA_FAILED": ExitCodeDefinition(470, "the initial data could not be labeled: {message}"),
    "ERROR_TRAINING_FAILED": ExitCodeDefinition(471, "training failed: {message}"),
    "ERROR_EXPLORATION_FAILED": ExitCodeDefinition(472, "exploration failed in iteration {iteration}: {message}"),
    "ERROR_ALL_FRAMES_FAILED": ExitCodeDefinition(
        473,
        "every explored frame failed for {systems}: the models blow up there; lower the temperature of the first "
        "stage or add initial data near those conditions.",
    ),
    "ERROR_LABELING_FAILED": ExitCodeDefinition(
        474,
        "labeling failures above the tolerance in iteration {iteration}: {message}; the frames that were labeled "
        "are in the training_set output, `aiida-perovskite campaign relabel` re-runs the others.",
    ),
    "ERROR_TOO_MANY_FAILURES": ExitCodeDefinition(
        475, "{failed} of {total} frames failed, above the tolerated fraction {tolerated}."
    ),
    "ERROR_FINAL_TRAINING_FAILED": ExitCodeDefinition(476, "the final training failed: {message}"),
    "ERROR_VALIDATION_FAILED": ExitCodeDefinition(
        477, "testing the models on the held-out data failed in iteration {iteration}: {message}"
    ),
    "ERROR_ANALYSIS_FAILED": ExitCodeDefinition(478, "the campaign converged but its analysis failed: {message}"),
    "ERROR_NOT_CONVERGED": ExitCodeDefinition(
        479, "not converged within {iterations} iteration(s); the outputs hold the last models and data."
    ),
}


def declare(spec: Any, *labels: str) -> None:
    """Declare the project's exit codes ``labels`` on a process ``spec``."""
    for label in labels:
        code = EXIT_CODES[label]
        spec.exit_code(code.status, label, message=code.message, invalidates_cache=code.invalidates_cache)


def markdown_table() -> str:
    """The table of docs/exit-codes.md, in number order."""
    rows = ["| exit status | label | message |", "|---|---|---|"]
    for label, code in sorted(EXIT_CODES.items(), key=lambda item: item[1].status):
        message = code.message.replace("|", "\\|")
        rows.append(f"| {code.status} | `{label}` | {message} |")
    return "\n".join(rows)
