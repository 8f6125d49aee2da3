"""``perovskite.lammps.md``: production MD with one Deep Potential (NPT ladders for phase diagrams)."""

from __future__ import annotations

import io
import pathlib

from aiida import orm
from aiida.common import CalcInfo
from aiida.engine import CalcJob

from aiida_perovskite.analysis.lammps_io import ENSEMBLES, production_script, write_data_file
from aiida_perovskite.calculations.deepmd_common import structure_elements_missing
from aiida_perovskite.calculations.defaults import LAMMPS_STDOUT, lammps_codeinfo, set_serial_defaults
from aiida_perovskite.calculations.lammps_explore import validate_settings
from aiida_perovskite.data import DeepPotentialData
from aiida_perovskite.exit_codes import declare
from aiida_perovskite.loop.settings import protocol_default

__all__ = ("LammpsMdCalculation",)


def validate_inputs(inputs, _) -> str | None:
    has_structure, has_parent = "structure" in inputs, "parent_folder" in inputs
    if has_structure == has_parent:
        return "give either a structure or a parent_folder (the remote folder of a previous MD run), not both"
    model, structure = inputs.get("model"), inputs.get("structure")
    if model is not None and structure is not None:
        error = structure_elements_missing(structure, model.type_map)
        if error:
            return error
    if has_structure and "velocity_seed" not in inputs:
        return "a run from a structure needs a velocity_seed"
    return None


class LammpsMdCalculation(CalcJob):
    """NVT/NPT MD; outputs the thermo time series (cell, volume, T, P, energy) and the sampled frames; its
    final state (with velocities) continues in the next run through ``parent_folder``."""

    DATA_FILE = "structure.data"
    FINAL_FILE = "final.data"
    INPUT_FILE = "in.lammps"
    DUMP_FILE = "frames.bin"
    LOG_FILE = "log.lammps"

    @classmethod
    def define(cls, spec):
        super().define(spec)
        spec.input("model", valid_type=DeepPotentialData, help="The potential (the fastest variant you have).")
        spec.input("structure", valid_type=orm.StructureData, required=False, help="Start from this structure.")
        spec.input(
            "parent_folder",
            valid_type=orm.RemoteData,
            required=False,
            help="Continue from the final state (positions, velocities, cell) of this MD run.",
        )
        spec.input(
            "parameters",
            valid_type=orm.Dict,
            validator=validate_settings,
            help=f"ensemble ({', '.join(ENSEMBLES)}), temperature (K), pressure (bar), steps, timestep, "
            "tdamp, pdamp (ps), sampling_interval (frames)",
        )
        spec.input(
            "thermo_interval",
            valid_type=orm.Int,
            default=lambda: orm.Int(protocol_default("thermo_interval", workflow="phase_diagram")),
        )
        spec.input("velocity_seed", valid_type=orm.Int, required=False)
        spec.inputs.validator = validate_inputs
        set_serial_defaults(spec, "perovskite.lammps.md")
        spec.output("thermo", valid_type=orm.ArrayData, help="step, temp, press, vol, lx..yz, pe, ... per row.")
        spec.output("trajectory", valid_type=orm.TrajectoryData, help="Frames every sampling_interval steps.")
        declare(
            spec,
            "ERROR_EXECUTABLE_NOT_RUN",
            "ERROR_DISK_FULL",
            "ERROR_MISSING_OUTPUT_FILE",
            "ERROR_MD_INTERRUPTED",
            "ERROR_MD_UNSTABLE",
        )

    def prepare_for_submission(self, folder):
        from aiida_perovskite.analysis.lammps_io import MdSettings

        settings = MdSettings.from_dict(self.inputs.parameters.get_dict())
        model: DeepPotentialData = self.inputs.model
        model_file = f"model{pathlib.PurePath(model.filename).suffix}"
        remote_copy_list = []
        if "structure" in self.inputs:
            with folder.open(self.DATA_FILE, "w") as handle:
                write_data_file(handle, self.inputs.structure.get_ase(), model.type_map)
            seed = self.inputs.velocity_seed.value
        else:
            parent = self.inputs.parent_folder
            source = str(pathlib.PurePosixPath(parent.get_remote_path()) / self.FINAL_FILE)
            remote_copy_list.append((parent.computer.uuid, source, self.DATA_FILE))
            seed = None
        script = production_script(
            settings,
            model_file,
            model.type_map,
            seed,
            self.DATA_FILE,
            self.DUMP_FILE,
            self.FINAL_FILE,
            self.inputs.thermo_interval.value,
        )
        folder.create_file_from_filelike(io.StringIO(script), self.INPUT_FILE, mode="w")

        calcinfo = CalcInfo()
        calcinfo.codes_info = [lammps_codeinfo(self.inputs.code, self.INPUT_FILE, self.LOG_FILE)]
        calcinfo.local_copy_list = [(model.uuid, model.filename, model_file)]
        calcinfo.remote_copy_list = remote_copy_list
        calcinfo.retrieve_list = [self.LOG_FILE, self.DUMP_FILE, LAMMPS_STDOUT, self.INPUT_FILE]
        return calcinfo
