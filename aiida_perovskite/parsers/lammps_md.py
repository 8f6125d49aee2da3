"""Parser of ``perovskite.lammps.md``: thermo series and the frames of the binary dump."""

from __future__ import annotations

import pathlib
import tempfile

import numpy as np
from aiida import orm
from aiida.parsers import Parser

from aiida_perovskite.analysis.lammps_io import NO_ERROR, MdSettings, last_error, parse_thermo
from aiida_perovskite.analysis.trajectory_io import read_binary_dump
from aiida_perovskite.calculations.defaults import LAMMPS_STDOUT
from aiida_perovskite.parsers.job_logs import disk_full, failure_in_logs

__all__ = ("LammpsMdParser",)


class LammpsMdParser(Parser):
    def parse(self, **kwargs):
        calc = self.node.process_class
        names = set(self.retrieved.base.repository.list_object_names())
        for required in (calc.LOG_FILE, calc.DUMP_FILE):
            if required not in names:
                return failure_in_logs(self, LAMMPS_STDOUT) or self.exit_codes.ERROR_MISSING_OUTPUT_FILE.format(
                    filename=required, log=LAMMPS_STDOUT
                )
        content = self.retrieved.base.repository.get_object_content
        thermo = parse_thermo(content(calc.LOG_FILE))
        table = orm.ArrayData()
        for name, values in thermo.items():
            table.set_array(name, values)
        self.out("thermo", table)

        type_map = self.node.inputs.model.type_map
        with tempfile.TemporaryDirectory() as tmp:
            path = pathlib.Path(tmp) / calc.DUMP_FILE
            path.write_bytes(content(calc.DUMP_FILE, mode="rb"))
            frames = list(read_binary_dump(path))
        if frames:
            trajectory = orm.TrajectoryData()
            trajectory.set_trajectory(
                symbols=[type_map[t - 1] for t in frames[0].types],
                positions=np.array([frame.positions for frame in frames]),
                cells=np.array([frame.cell for frame in frames]),
                stepids=np.array([frame.step for frame in frames]),
                pbc=(True, True, True),
            )
            self.out("trajectory", trajectory)

        settings = MdSettings.from_dict(self.node.inputs.parameters.get_dict())
        steps = thermo.get("step", np.zeros(0))
        done = int(steps[-1] - steps[0]) if steps.size else 0
        finite = all(np.all(np.isfinite(values)) for values in thermo.values())
        if done < settings.steps or not finite or not frames:
            full = disk_full(self, LAMMPS_STDOUT)
            if full:
                return full
            error = last_error(content(LAMMPS_STDOUT))
            if finite and error == NO_ERROR:  # killed from outside (machine stop, scheduler), not by the physics
                return self.exit_codes.ERROR_MD_INTERRUPTED.format(step=done, steps=settings.steps)
            reason = "non-finite energies or coordinates" if not finite else error
            return self.exit_codes.ERROR_MD_UNSTABLE.format(
                step=done, steps=settings.steps, reason=reason, frames=len(frames)
            )
        return None
