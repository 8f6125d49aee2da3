"""``perovskite.lammps.explore``: MD with model 0 of an ensemble while LAMMPS evaluates all models on
sampled frames (``pair_style deepmd m0 ... mN out_freq K out_file model_devi.out``)."""

from __future__ import annotations

import io

from aiida import orm
from aiida.common import CalcInfo
from aiida.engine import CalcJob

from aiida_perovskite.analysis.lammps_io import ENSEMBLES, MdSettings, exploration_script, write_data_file
from aiida_perovskite.calculations.deepmd_common import structure_elements_missing
from aiida_perovskite.calculations.defaults import LAMMPS_STDOUT, lammps_codeinfo, set_serial_defaults
from aiida_perovskite.data import DeepPotentialData
from aiida_perovskite.exit_codes import declare

__all__ = ("LammpsExploreCalculation", "validate_models", "validate_settings")


def validate_models(models, _) -> str | None:
    if len(models) < 2:
        return f"model deviation needs at least 2 models, got {len(models)}"
    type_maps = {key: tuple(model.type_map) for key, model in models.items()}
    if len(set(type_maps.values())) > 1:
        return f"the models have different type_maps {type_maps}: train the ensemble on one type_map"
    suffixes = {model.filename.rsplit(".", 1)[-1] for model in models.values()}
    if len(suffixes) > 1:
        return f"the models mix backends ({sorted(suffixes)}): the LAMMPS plugin needs one backend per run"
    return None


def validate_settings(parameters: orm.Dict, _) -> str | None:
    try:
        MdSettings.from_dict(parameters.get_dict())
    except (TypeError, ValueError) as exc:
        return str(exc)
    return None


def validate_inputs(inputs, _) -> str | None:
    models, structure = inputs.get("models"), inputs.get("structure")
    if not models or structure is None:
        return None
    return structure_elements_missing(structure, next(iter(models.values())).type_map, owner="the models'")


class LammpsExploreCalculation(CalcJob):
    """Explore configuration space with an ensemble; output the deviation table and the sampled frames."""

    DATA_FILE = "structure.data"
    INPUT_FILE = "in.lammps"
    DEVI_FILE = "model_devi.out"
    DUMP_FILE = "traj.dump"
    LOG_FILE = "log.lammps"

    @classmethod
    def define(cls, spec):
        super().define(spec)
        spec.input_namespace(
            "models",
            valid_type=DeepPotentialData,
            dynamic=True,
            validator=validate_models,
            help="The ensemble; model_0 drives the dynamics.",
        )
        spec.input("structure", valid_type=orm.StructureData, help="Starting configuration.")
        spec.input(
            "parameters",
            valid_type=orm.Dict,
            validator=validate_settings,
            help=f"MD settings: ensemble ({', '.join(ENSEMBLES)}), temperature (K), pressure (bar), "
            "steps, timestep (ps), tdamp, pdamp (ps), sampling_interval (steps).",
        )
        spec.input("velocity_seed", valid_type=orm.Int, help="Seed of the initial Maxwell-Boltzmann velocities.")
        spec.inputs.validator = validate_inputs
        set_serial_defaults(spec, "perovskite.lammps.explore")

        spec.output(
            "deviations",
            valid_type=orm.ArrayData,
            help="One row per sampled frame: step, max/min/avg force and virial deviation.",
        )
        spec.output("trajectory", valid_type=orm.TrajectoryData, help="Sampled frames, one per deviation row.")
        spec.output("thermo", valid_type=orm.ArrayData, help="Thermo columns; their means as attribute 'mean'.")
        declare(
            spec,
            "ERROR_EXECUTABLE_NOT_RUN",
            "ERROR_DISK_FULL",
            "ERROR_MISSING_OUTPUT_FILE",
            "ERROR_UNREADABLE_OUTPUT",
            "ERROR_MD_UNSTABLE",
        )

    def prepare_for_submission(self, folder):
        settings = MdSettings.from_dict(self.inputs.parameters.get_dict())
        models = [self.inputs.models[key] for key in sorted(self.inputs.models, key=_model_order)]
        type_map = models[0].type_map
        names = [f"model_{index}{_suffix(model)}" for index, model in enumerate(models)]

        with folder.open(self.DATA_FILE, "w") as handle:
            write_data_file(handle, self.inputs.structure.get_ase(), type_map)
        script = exploration_script(
            settings, names, type_map, self.inputs.velocity_seed.value, self.DATA_FILE, self.DEVI_FILE, self.DUMP_FILE
        )
        folder.create_file_from_filelike(io.StringIO(script), self.INPUT_FILE, mode="w")

        calcinfo = CalcInfo()
        calcinfo.codes_info = [lammps_codeinfo(self.inputs.code, self.INPUT_FILE, self.LOG_FILE)]
        calcinfo.local_copy_list = [
            (model.uuid, model.filename, name) for model, name in zip(models, names, strict=True)
        ]
        calcinfo.retrieve_list = [self.DEVI_FILE, self.DUMP_FILE, self.LOG_FILE, LAMMPS_STDOUT, self.INPUT_FILE]
        return calcinfo


def _model_order(key: str) -> tuple[int, str]:
    """model_10 after model_9: numeric suffixes sort as numbers."""
    head, _, tail = key.rpartition("_")
    return (int(tail), head) if tail.isdigit() else (10**9, key)


def _suffix(model: DeepPotentialData) -> str:
    return "." + model.filename.rsplit(".", 1)[-1]
