"""Parser of ``perovskite.lammps.explore``: deviation table and sampled frames, aligned row for row."""

from __future__ import annotations

import numpy as np
from aiida import orm
from aiida.parsers import Parser

from aiida_perovskite.analysis.lammps_io import MdSettings, last_error, parse_dump, parse_thermo
from aiida_perovskite.analysis.model_deviation import parse_model_devi
from aiida_perovskite.calculations.defaults import LAMMPS_STDOUT
from aiida_perovskite.parsers.job_logs import disk_full, failure_in_logs

__all__ = ("LammpsExploreParser",)


class LammpsExploreParser(Parser):
    """Keep the rows whose step has both a deviation and a frame; report a run that stopped early."""

    def parse(self, **kwargs):
        calc = self.node.process_class
        names = set(self.retrieved.base.repository.list_object_names())
        for required in (calc.DEVI_FILE, calc.DUMP_FILE, calc.LOG_FILE):
            if required not in names:
                log = f"{calc.LOG_FILE} and the scheduler output"
                return failure_in_logs(self, LAMMPS_STDOUT) or self.exit_codes.ERROR_MISSING_OUTPUT_FILE.format(
                    filename=required, log=log
                )
        content = self.retrieved.base.repository.get_object_content
        type_map = next(iter(self.node.inputs.models.values())).type_map
        try:
            deviations = parse_model_devi(content(calc.DEVI_FILE))
        except ValueError as exc:
            return disk_full(self, LAMMPS_STDOUT) or self.exit_codes.ERROR_UNREADABLE_OUTPUT.format(
                filename=calc.DEVI_FILE, error=str(exc)
            )
        frames = parse_dump(content(calc.DUMP_FILE), type_map)
        thermo = parse_thermo(content(calc.LOG_FILE))

        steps = np.intersect1d(deviations["step"], frames["steps"])
        rows = np.searchsorted(deviations["step"], steps)
        picks = np.searchsorted(frames["steps"], steps)

        table = orm.ArrayData()
        for name, values in deviations.items():
            table.set_array(name, values[rows])
        self.out("deviations", table)
        if steps.size:
            trajectory = orm.TrajectoryData()
            trajectory.set_trajectory(
                symbols=frames["symbols"],
                positions=frames["positions"][picks],
                stepids=steps,
                cells=frames["cells"][picks],
                pbc=(True, True, True),
            )
            self.out("trajectory", trajectory)
        thermo_node = orm.ArrayData()
        for name, values in thermo.items():
            thermo_node.set_array(name, values)
        thermo_node.base.attributes.set(
            "mean", {name: float(np.mean(values)) for name, values in thermo.items() if values.size}
        )
        self.out("thermo", thermo_node)

        settings = MdSettings.from_dict(self.node.inputs.parameters.get_dict())
        last_step = int(thermo["step"][-1]) if thermo.get("step", np.zeros(0)).size else 0
        nan_thermo = any(not np.all(np.isfinite(values)) for values in thermo.values())
        if last_step < settings.steps or nan_thermo or steps.size < settings.expected_frames:
            reason = "non-finite energies or coordinates" if nan_thermo else last_error(content(LAMMPS_STDOUT))
            return self.exit_codes.ERROR_MD_UNSTABLE.format(
                step=last_step, steps=settings.steps, reason=reason, frames=int(steps.size)
            )
        return None
