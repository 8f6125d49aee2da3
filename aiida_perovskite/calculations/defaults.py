"""Defaults shared by the project's CalcJobs."""

from __future__ import annotations

from aiida.common import CodeInfo

__all__ = ("LAMMPS_STDOUT", "SERIAL_ENVIRONMENT", "lammps_codeinfo", "set_serial_defaults")

LAMMPS_STDOUT = "lammps.out"

# One thread per job: the same inputs and seeds then give the same numbers bit for bit (threaded TensorFlow
# reductions do not), and the daemon runs several jobs side by side on the cores. Raise through the options.
SERIAL_ENVIRONMENT = {
    "OMP_NUM_THREADS": "1",
    "DP_INTRA_OP_PARALLELISM_THREADS": "1",
    "DP_INTER_OP_PARALLELISM_THREADS": "1",
    "TF_CPP_MIN_LOG_LEVEL": "2",
}


def set_serial_defaults(spec, parser_name: str) -> None:
    """One single-threaded process without an MPI launcher, parsed by ``parser_name``."""
    options = spec.inputs["metadata"]["options"]
    options["resources"].default = {"num_machines": 1, "num_mpiprocs_per_machine": 1}
    options["parser_name"].default = parser_name
    options["withmpi"].default = False
    options["environment_variables"].default = lambda: dict(SERIAL_ENVIRONMENT)


def lammps_codeinfo(code, input_file: str, log_file: str) -> CodeInfo:
    """``lmp -in <input> -log <log> -screen none`` with stdout and stderr in ``lammps.out``."""
    codeinfo = CodeInfo()
    codeinfo.code_uuid = code.uuid
    codeinfo.cmdline_params = ["-in", input_file, "-log", log_file, "-screen", "none"]
    codeinfo.stdout_name = LAMMPS_STDOUT
    codeinfo.join_files = True
    return codeinfo
