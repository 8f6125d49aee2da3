"""A DP-GEN ``run`` input (``param.json``, optionally ``machine.json``) as a campaign file. What maps is mapped;
every key that does not is returned as a warning with the reason, so nothing is dropped silently.

DP-GEN runs its ``model_devi_jobs`` one per iteration; here consecutive jobs with the same conditions become one
stage whose ``max_iterations`` is their count (a stage may end earlier, when its accurate fraction is reached)."""

from __future__ import annotations

import glob
import pathlib
import re
import shlex
from collections.abc import Mapping
from typing import Any

from aiida_perovskite.loop.settings import protocol_default

__all__ = ("DPGEN_ENSEMBLES", "convert_dpgen")

DPGEN_ENSEMBLES = {
    "nvt": "nvt",
    "npt": "npt-iso",
    "npt-i": "npt-iso",
    "npt-iso": "npt-iso",
    "npt-a": "npt-aniso",
    "npt-aniso": "npt-aniso",
    "npt-t": "npt-tri",
    "npt-tri": "npt-tri",
}
JOB_KEYS = {"sys_idx", "temps", "press", "trj_freq", "nsteps", "ensemble", "taut", "taup", "_idx"}
ENGINES = {"vasp": "vasp", "abacus": "abacus", "cp2k": "cp2k", "pwscf": "qe"}
# DP-GEN keys with no counterpart, and why (anything else unknown is reported as "not recognised")
NOT_MAPPED = {
    "mass_map": "masses come from the elements",
    "use_ele_temp": "electronic temperature as a model input is not supported",
    "init_batch_size": "the training protocol sets the batch size",
    "sys_batch_size": "the training protocol sets the batch size",
    "training_iter0_model_path": "the first ensemble is trained from scratch",
    "training_init_model": "the first ensemble is trained from scratch",
    "training_reuse_iter": "reuse starts from the second iteration",
    "training_reuse_old_ratio": "every iteration trains on all labels",
    "training_reuse_start_pref_e": "the loss prefactors of default_training_param are used",
    "training_reuse_start_pref_f": "the loss prefactors of default_training_param are used",
    "model_devi_engine": "exploration is LAMMPS",
    "model_devi_adapt_trust_lo": "adaptive trust levels are not supported: fixed force_lo is used",
    "model_devi_numb_candi_f": "adaptive trust levels are not supported",
    "model_devi_perc_candi_f": "adaptive trust levels are not supported",
    "model_devi_f_avg_relative": "relative deviations are not supported",
    "model_devi_clean_traj": "trajectories are kept in the provenance graph",
    "model_devi_merge_traj": "trajectories are kept in the provenance graph",
    "model_devi_nopbc": "explorations are periodic",
    "model_devi_plumed": "PLUMED is not supported",
    "model_devi_activation_func": "the activation comes from the training protocol",
    "shuffle_poscar": "atom order is kept",
    "fp_task_min": "there is no minimum: an iteration labels what was selected",
    "fp_accurate_soft_threshold": "no soft threshold: selection stops when the accurate fraction is reached",
    "fp_cluster_vacuum": "cluster labeling is not supported",
    "detailed_report_make_fp": "`aiida-perovskite campaign frames` reports every labeled frame",
    "cvasp": "VASP restarts are aiida-vasp's error handlers",
    "fp_dpks_descriptor": "DeePKS is not supported",
    "dp_compress": "set training.overrides.compress",
}


def convert_dpgen(
    param: Mapping[str, Any], machine: Mapping[str, Any] | None = None, base_dir: pathlib.Path | None = None
) -> tuple[dict, list[str]]:
    """The campaign dict for DP-GEN's ``param`` (and ``machine``), and the warnings (``key: reason``).

    Paths in ``param`` are taken relative to ``base_dir`` (the folder of param.json) and written absolute.
    """
    base_dir = base_dir or pathlib.Path.cwd()
    warnings: list[str] = []
    used: set[str] = set()

    def take(key: str, default: Any = None) -> Any:
        used.add(key)
        return param.get(key, default)

    type_map = list(take("type_map", []))
    campaign: dict[str, Any] = {
        "name": "from-dpgen",
        "description": "converted from a DP-GEN param.json by aiida-perovskite campaign from-dpgen",
        "seed": 1,
    }
    warnings.append("seed: DP-GEN draws its seeds at random; the campaign needs one, set to 1 (change it freely)")

    systems = _systems(take("sys_configs", []), take("sys_configs_prefix", ""), base_dir, warnings)
    if str(take("sys_format", "vasp/poscar")).lower() not in ("vasp/poscar", "poscar", "vasp"):
        warnings.append(
            f"sys_format: {param['sys_format']!r} files are given as they are; structures are read with ASE: "
            "convert them to POSCAR first if ASE cannot read them (dpdata.System(path, fmt).to('vasp/poscar', ...))"
        )
    jobs = list(take("model_devi_jobs", []))
    dt = take("model_devi_dt")
    trust = {"force_lo": take("model_devi_f_trust_lo"), "force_hi": take("model_devi_f_trust_hi")}
    virial = {"virial_lo": take("model_devi_v_trust_lo"), "virial_hi": take("model_devi_v_trust_hi")}
    campaign["systems"], campaign["stages"] = _schedule(systems, jobs, dt, trust, virial, warnings)
    if not any(isinstance(value, list) for value in (*trust.values(), *virial.values())):
        campaign["trust"] = {key: value for key, value in {**trust, **virial}.items() if value is not None}
    if take("fp_task_max") is not None:
        campaign["max_labels"] = int(param["fp_task_max"])
    campaign["convergence"] = {"max_iterations": len(jobs), "accurate_fraction": take("fp_accurate_threshold", 1.0)}
    campaign["initial_data"] = _initial_data(take("init_data_sys", []), take("init_data_prefix", ""), base_dir)

    campaign["training"] = _training(param, type_map, take, warnings)
    campaign["exploration"] = {"code": protocol_default("exploration", "code")}
    if take("model_devi_skip"):
        campaign["exploration"]["skip_frames"] = int(param["model_devi_skip"])
    campaign["labeling"] = _labeling(param, type_map, base_dir, take, warnings)
    if take("ratio_failed") is not None:
        campaign["labeling"]["tolerated_failed_fraction"] = float(param["ratio_failed"])

    if machine:
        _machine(machine, campaign, warnings)
    for key in sorted(set(param) - used):
        reason = NOT_MAPPED.get(key, "not recognised by the converter")
        warnings.append(f"{key}: not converted ({reason})")
    return campaign, warnings


def _systems(configs: list, prefix: str, base_dir: pathlib.Path, warnings: list[str]) -> dict[int, list[str]]:
    """Per ``sys_configs`` index, the structure files its globs match (the pattern itself if none match)."""
    found = {}
    for index, patterns in enumerate(configs):
        patterns = [patterns] if isinstance(patterns, str) else list(patterns)
        files = []
        for pattern in patterns:
            full = str(base_dir / prefix / pattern)
            matches = sorted(glob.glob(full))
            if not matches:
                warnings.append(
                    f"sys_configs[{index}]: no file matches {full} here; the campaign names it as given: point "
                    "the system's structure.file at an existing structure before checking"
                )
            files.extend(matches or [full])
        found[index] = files
    return found


def _schedule(
    systems: dict[int, list[str]], jobs: list, dt, trust: dict, virial: dict, warnings: list[str]
) -> tuple[dict, list]:
    """Systems (one per structure file) with their stages, and the top-level stages (those of the first)."""
    per_index: dict[int, list[dict]] = {index: [] for index in systems}
    for number, job in enumerate(jobs):
        job = dict(job)
        for key in sorted(set(job) - JOB_KEYS):
            warnings.append(f"model_devi_jobs[{number}].{key}: not converted (LAMMPS templates, other per-job keys)")
        stage = _stage(job, dt, number, warnings)
        for index in job.get("sys_idx", []):
            if index not in per_index:
                warnings.append(f"model_devi_jobs[{number}].sys_idx: {index} is not a sys_configs index: skipped")
                continue
            runs = per_index[index]
            if runs and {k: v for k, v in runs[-1].items() if k != "max_iterations"} == stage:
                runs[-1]["max_iterations"] += 1
            else:
                runs.append({**stage, "max_iterations": 1})
    named: dict[str, Any] = {}
    first_stages: list | None = None
    for index, files in systems.items():
        stages = per_index[index]
        if not stages:
            warnings.append(f"sys_configs[{index}]: no model_devi_jobs entry explores it: left out")
            continue
        first_stages = first_stages if first_stages is not None else stages
        for number, path in enumerate(files):
            name = f"sys{index:02d}" if len(files) == 1 else f"sys{index:02d}_{number:03d}"
            entry: dict[str, Any] = {"structure": {"file": path}}
            if stages != first_stages:
                entry["stages"] = stages
            own_trust = {
                key: value[index]
                for key, value in {**trust, **virial}.items()
                if isinstance(value, list) and index < len(value)
            }
            if own_trust:
                entry["trust"] = own_trust
            named[name] = entry
    return named, first_stages or []


def _stage(job: dict, dt, number: int, warnings: list[str]) -> dict:
    ensemble = str(job.get("ensemble", "nvt")).lower()
    if ensemble not in DPGEN_ENSEMBLES:
        warnings.append(f"model_devi_jobs[{number}].ensemble: {ensemble!r} is not supported; nvt is used instead")
    stage: dict[str, Any] = {
        "temperatures": list(job.get("temps", [])),
        "pressures": list(job.get("press", [1.0])),
        "ensemble": DPGEN_ENSEMBLES.get(ensemble, "nvt"),
        "steps": int(job["nsteps"]),
        "sampling_interval": int(job["trj_freq"]),
    }
    if dt is not None:
        stage["timestep"] = float(dt)
    for source, target in (("taut", "tdamp"), ("taup", "pdamp")):
        if source in job:
            stage[target] = float(job[source])
    return stage


def _initial_data(paths: list, prefix: str, base_dir: pathlib.Path) -> dict:
    folders = [str(base_dir / prefix / path) for path in paths]
    return {"training_set": folders[0] if len(folders) == 1 else folders}


def _training(param: Mapping, type_map: list[str], take, warnings: list[str]) -> dict:
    training: dict[str, Any] = {
        "code": protocol_default("training", "code"),
        "num_models": int(take("numb_models", 4)),  # DP-GEN's default
    }
    parameters = _without_comments(dict(take("default_training_param", {})))
    if parameters:
        inner = dict(parameters.get("training", {}))
        if "stop_batch" in inner:  # DeePMD-kit 1.x name
            inner["numb_steps"] = inner.pop("stop_batch")
        for key in ("systems", "set_prefix", "training_data", "validation_data", "seed"):
            if key in inner:
                inner.pop(key)
                warnings.append(f"default_training_param.training.{key}: filled in by the campaign")
        parameters["training"] = inner
        model = dict(parameters.get("model", {}))
        model["type_map"] = type_map
        parameters["model"] = model
        training["overrides"] = {"parameters": parameters}
    reuse = {
        "numb_steps": take("training_reuse_numb_steps"),
        "start_lr": take("training_reuse_start_lr"),
    }
    if any(value is not None for value in reuse.values()):
        training["reuse"] = {key: value for key, value in reuse.items() if value is not None}
    return training


def _potcar_symbols(type_map: list[str], files: list[str], warnings: list[str]) -> dict[str, str]:
    """Element -> POTCAR symbol from paths such as ``Ba_sv/POTCAR``; a bare file name maps to the element."""
    mapping = {}
    for element, name in zip(type_map, files, strict=False):
        folder = pathlib.PurePath(name).parent.name
        if folder:
            mapping[element] = folder
        else:
            mapping[element] = element
            warnings.append(f"fp_pp_files: {name!r} does not name its POTCAR symbol; {element} -> {element} assumed")
    return mapping


def _without_comments(tree: Any) -> Any:
    """DP-GEN's convention: keys starting with ``_`` are comments."""
    if isinstance(tree, Mapping):
        return {k: _without_comments(v) for k, v in tree.items() if not str(k).startswith("_")}
    return tree


def _labeling(param: Mapping, type_map: list[str], base_dir: pathlib.Path, take, warnings: list[str]) -> dict:
    style = str(take("fp_style", "vasp"))
    engine = ENGINES.get(style)
    if engine is None:
        warnings.append(f"fp_style: {style!r} has no engine here; labeling set to the teacher model instead")
        return {"engine": "teacher", "code": "teacher@localhost"}
    labeling: dict[str, Any] = {"engine": engine, "code": f"{engine}@localhost"}
    pp_files = list(take("fp_pp_files", []))
    take("fp_pp_path")
    overrides: dict[str, Any] = {}
    if engine == "vasp":
        if take("fp_incar"):
            incar = _read_key_values(base_dir / param["fp_incar"], "=")
            if "kspacing" in incar:
                overrides["kpoint_spacing"] = float(incar.pop("kspacing"))
            overrides["parameters"] = incar
        if pp_files:
            overrides["potential_mapping"] = _potcar_symbols(type_map, pp_files, warnings)
            warnings.append(
                "fp_pp_path: POTCARs come from an uploaded family: `aiida-vasp potcar uploadfamily` and set "
                "labeling.overrides.potential_family"
            )
        if take("fp_aniso_kspacing") is not None:
            warnings.append("fp_aniso_kspacing: not converted (one k-point spacing in all directions)")
    elif engine == "abacus":
        if take("fp_incar"):
            overrides["parameters"] = {"input": _abacus_input(base_dir / param["fp_incar"], warnings)}
        elif take("user_fp_params"):
            overrides["parameters"] = {"input": _abacus_input_dict(dict(param["user_fp_params"]), warnings)}
        if pp_files or take("fp_orb_files"):
            warnings.append(
                "fp_pp_files/fp_orb_files: pseudopotentials and orbitals come from an aiida-abacus orbital family "
                "(docs/labeling.md): import them and set labeling.overrides.orbital_family"
            )
        for key in ("k_points", "fp_kpt_file"):
            if take(key) is not None:
                warnings.append(f"{key}: not converted (k-points come from labeling.overrides.kpoint_spacing)")
    elif engine == "cp2k":
        if take("user_fp_params"):
            overrides["settings"] = _cp2k_settings(dict(param["user_fp_params"]), warnings)
        if take("external_input_path"):
            warnings.append(
                "external_input_path: a raw CP2K input is not converted; give its settings in user_fp_params "
                "or labeling.overrides.settings"
            )
    else:  # qe: namelists upper case as aiida-quantumespresso wants them; cutoffs are keys of their own
        if take("user_fp_params"):
            namelists = {str(k).upper(): dict(v) for k, v in dict(param["user_fp_params"]).items()}
            for cutoff in ("ecutwfc", "ecutrho"):
                if cutoff in namelists.get("SYSTEM", {}):
                    overrides[cutoff] = namelists["SYSTEM"].pop(cutoff)
            overrides["parameters"] = namelists
        if pp_files:
            warnings.append("fp_pp_files: pseudopotentials come from an aiida-pseudo family (labeling.overrides)")
    if overrides:
        labeling["overrides"] = overrides
    return labeling


def _read_key_values(path: pathlib.Path, separator: str | None) -> dict[str, Any]:
    """``KEY = value`` lines (INCAR, ``separator="="``) or ``key value`` lines (ABACUS INPUT, ``None``), comments
    dropped, keys lower case."""
    values = {}
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].split("!", 1)[0].strip()
        if not line or line.upper() == "INPUT_PARAMETERS":
            continue
        key, value = [*line.split(separator, 1), ""][:2]
        if value.strip():
            values[key.strip().lower()] = _scalar(value.strip())
    return values


def _scalar(text: str) -> Any:
    words = shlex.split(text)
    values = [_number(word) for word in words]
    return values[0] if len(values) == 1 else values


def _number(word: str) -> Any:
    for kind in (int, float):
        try:
            return kind(word)
        except ValueError:
            pass
    return {".true.": True, ".false.": False}.get(word.lower(), word)


ABACUS_SET_HERE = ("ntype", "pseudo_dir", "orbital_dir", "stru_file", "kpoint_file", "calculation", "cal_force")


def _abacus_input(path: pathlib.Path, warnings: list[str]) -> dict:
    return _abacus_input_dict(_read_key_values(path, None), warnings)


def _abacus_input_dict(values: dict, warnings: list[str]) -> dict:
    for key in ABACUS_SET_HERE:
        if key in values:
            values.pop(key)
            warnings.append(f"fp_incar.{key}: set by the ABACUS engine (files, task) and not copied")
    return values


CP2K_SETTINGS = {
    ("FORCE_EVAL", "DFT", "MGRID", "CUTOFF"): "cutoff",
    ("FORCE_EVAL", "DFT", "MGRID", "REL_CUTOFF"): "rel_cutoff",
    ("FORCE_EVAL", "DFT", "SCF", "EPS_SCF"): "eps_scf",
    ("FORCE_EVAL", "DFT", "SCF", "MAX_SCF"): "max_scf",
    ("FORCE_EVAL", "DFT", "QS", "EPS_DEFAULT"): "eps_default",
}


def _cp2k_settings(params: dict, warnings: list[str]) -> dict:
    """The engine's settings from a CP2K input tree (upper-case section names); other keys are reported."""
    settings: dict[str, Any] = {}
    for path, value in _leaves(params):
        upper = tuple(part.upper() for part in path)
        if upper in CP2K_SETTINGS:
            settings[CP2K_SETTINGS[upper]] = value
        elif upper[:4] == ("FORCE_EVAL", "DFT", "XC", "XC_FUNCTIONAL"):
            settings["functional"] = str(value if len(upper) == 5 and upper[4] == "_" else upper[4]).upper()
        else:
            warnings.append(f"user_fp_params.{'.'.join(path)}: not converted (the CP2K engine writes it)")
    return settings


def _leaves(tree: Mapping, prefix: tuple = ()) -> list[tuple[tuple, Any]]:
    found = []
    for key, value in tree.items():
        if isinstance(value, Mapping) and value:
            found.extend(_leaves(value, (*prefix, key)))
        else:
            found.append(((*prefix, key), value))
    return found


def _machine(machine: Mapping, campaign: dict, warnings: list[str]) -> None:
    """Code labels on the machine's host and scheduler options from each task's resources."""
    for task, section in (("train", "training"), ("model_devi", "exploration"), ("fp", "labeling")):
        entry = machine.get(task)
        if isinstance(entry, list):
            if len(entry) > 1:
                warnings.append(f"machine.{task}: {len(entry)} machines; the first is used")
            entry = entry[0] if entry else None
        if not entry:
            continue
        host = _host(entry.get("machine", {}), f"machine.{task}.machine", warnings)
        code = campaign[section]["code"].split("@")[0]
        campaign[section]["code"] = f"{code}@{host}"
        command = str(entry.get("command", "")).strip()
        warnings.append(
            f"machine.{task}.command: create the code {code}@{host} running {command!r} "
            "(`verdi code create core.code.installed`, or profiles/codes/ with `aiida-perovskite setup`)"
        )
        options = _options(entry.get("resources", {}), command, f"machine.{task}", warnings)
        if options:
            campaign[section]["options"] = options
    if "api_version" not in machine:
        warnings.append("machine: no api_version; read as the 1.0 format (train/model_devi/fp with machine+resources)")


def _host(machine: Mapping, key: str, warnings: list[str]) -> str:
    """The AiiDA computer the task's code runs on: the SSH host, or localhost."""
    context = str(machine.get("context_type", "")).lower()
    hostname = (machine.get("remote_profile", {}) or {}).get("hostname")
    if context.startswith("local") or (not hostname and context.startswith("lazylocal")):
        return "localhost"
    if not hostname:
        warnings.append(
            f"{key}: context_type {machine.get('context_type')!r} has no AiiDA transport here; the code is named "
            "on localhost: set up a computer for that cluster and rename the code"
        )
        return "localhost"
    return str(hostname)


def _options(resources: Mapping, command: str, key: str, warnings: list[str]) -> dict:
    options: dict[str, Any] = {}
    machines = int(resources.get("number_node", 1))
    per_machine = int(resources.get("cpu_per_node", 1))
    options["resources"] = {"num_machines": machines, "num_mpiprocs_per_machine": per_machine}
    if resources.get("queue_name"):
        options["queue_name"] = str(resources["queue_name"])
    flags = [str(flag) for flag in resources.get("custom_flags", [])]
    if resources.get("gpu_per_node"):
        flags.append(f"#SBATCH --gres=gpu:{int(resources['gpu_per_node'])}")
        warnings.append(f"{key}.resources.gpu_per_node: written as a Slurm --gres line; adapt for other schedulers")
    if flags:
        options["custom_scheduler_commands"] = "\n".join(flags)
    prepend = [f"module load {module}" for module in resources.get("module_list", [])]
    prepend += [f"source {script}" for script in resources.get("source_list", [])]
    if prepend:
        options["prepend_text"] = "\n".join(prepend)
    if resources.get("envs"):
        options["environment_variables"] = {str(k): str(v) for k, v in dict(resources["envs"]).items()}
    if re.search(r"\b(mpirun|mpiexec|srun)\b", command):
        options["withmpi"] = True
        warnings.append(f"{key}.command: the MPI launcher comes from the computer's mpirun_command, not the command")
    if int(resources.get("group_size", 1)) > 1:
        warnings.append(f"{key}.resources.group_size: not converted (AiiDA submits one job per calculation)")
    return options
