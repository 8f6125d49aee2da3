"""`campaign from-dpgen` on DP-GEN `run` inputs written from DP-GEN's documented format (its CH4 VASP and CP2K
examples, its fcc-Al ABACUS example, a Slurm-over-SSH machine.json): what maps is in the campaign file, the
result passes the campaign parser, and every key that does not map is a warning with its reason."""

from __future__ import annotations

import json
import pathlib

import dpdata
import numpy as np
import pytest
import yaml
from ase import Atoms
from ase.calculators.singlepoint import SinglePointCalculator
from ase.io import write
from click.testing import CliRunner

from aiida_perovskite.campaign.dpgen import convert_dpgen
from aiida_perovskite.campaign.spec import CampaignError, parse_campaign
from aiida_perovskite.cli import cli

TRAINING = {
    "model": {
        "type_map": ["H", "C"],
        "descriptor": {"type": "se_a", "sel": [16, 4], "rcut_smth": 0.5, "rcut": 5.0, "neuron": [10, 20, 40]},
        "fitting_net": {"neuron": [25, 50, 100], "resnet_dt": False, "seed": 1},
    },
    "learning_rate": {"type": "exp", "start_lr": 0.001, "decay_steps": 100},
    "loss": {"start_pref_e": 0.02, "limit_pref_e": 2, "start_pref_f": 1000, "limit_pref_f": 1},
    "training": {
        "set_prefix": "set",
        "numb_steps": 2000,
        "disp_file": "lcurve.out",
        "disp_freq": 1000,
        "save_freq": 1000,
        "_comment2": "that's all",
    },
}

VASP = {
    "type_map": ["H", "C"],
    "mass_map": [1, 12],
    "init_data_prefix": "./",
    "init_data_sys": ["CH4.POSCAR.01x01x01/02.md/sys-0004-0001/deepmd"],
    "sys_configs_prefix": "./",
    "sys_configs": [
        ["CH4.POSCAR.01x01x01/01.scale_pert/sys-0004-0001/scale*/00000*/POSCAR"],
        ["CH4.POSCAR.01x01x01/01.scale_pert/sys-0004-0001/scale*/00001*/POSCAR"],
    ],
    "_comment1": " that's all ",
    "numb_models": 4,
    "default_training_param": TRAINING,
    "model_devi_dt": 0.002,
    "model_devi_skip": 0,
    "model_devi_f_trust_lo": 0.05,
    "model_devi_f_trust_hi": 0.15,
    "model_devi_clean_traj": True,
    "model_devi_jobs": [
        {
            "sys_idx": [0],
            "temps": [100],
            "press": [1.0],
            "trj_freq": 10,
            "nsteps": 300,
            "ensemble": "nvt",
            "_idx": "00",
        },
        {
            "sys_idx": [1],
            "temps": [100],
            "press": [1.0],
            "trj_freq": 10,
            "nsteps": 3000,
            "ensemble": "nvt",
            "_idx": "01",
        },
    ],
    "fp_style": "vasp",
    "shuffle_poscar": False,
    "fp_task_max": 20,
    "fp_task_min": 5,
    "fp_pp_path": "./",
    "fp_pp_files": ["POTCAR_H", "C/POTCAR"],
    "fp_incar": "./INCAR_methane",
}
INCAR = "PREC=A\nENCUT=400\nISYM=0\nALGO=fast\nEDIFF=1.000000e-06\nLREAL=A\nNPAR=1\nKPAR=1\nNELMIN=4\nISIF=2\n"
INCAR += "ISMEAR=1\nSIGMA=1.000000\nKSPACING=2.000000\nKGAMMA=.FALSE.\n# a comment\nLWAVE=.FALSE.\n"

CP2K = {
    "type_map": ["H", "C"],
    "init_data_prefix": "./data",
    "init_data_sys": ["deepmd"],
    "sys_configs": [
        ["./data/CH4.POSCAR.01x01x01/01.scale_pert/sys-0004-0001/scale-1.000/00000*/POSCAR"],
        ["./data/CH4.POSCAR.01x01x01/01.scale_pert/sys-0004-0001/scale-1.000/00001*/POSCAR"],
    ],
    "numb_models": 4,
    "default_training_param": {
        **TRAINING,
        "training": {"_set_prefix": "set", "stop_batch": 40000, "_batch_size": 1, "disp_freq": 1000},
    },
    "model_devi_dt": 0.002,
    "model_devi_skip": 0,
    "model_devi_f_trust_lo": 0.02,
    "model_devi_f_trust_hi": 0.15,
    "model_devi_jobs": [
        {"sys_idx": [0, 1], "temps": [100], "press": [1], "trj_freq": 10, "nsteps": 2000, "ensemble": "nvt"},
        {"sys_idx": [0, 1], "temps": [100], "press": [1], "trj_freq": 10, "nsteps": 2000, "ensemble": "nvt"},
        {"sys_idx": [0, 1], "temps": [300], "press": [1], "trj_freq": 10, "nsteps": 5000, "ensemble": "npt"},
    ],
    "ratio_failed": 0.2,
    "fp_style": "cp2k",
    "fp_task_max": 30,
    "fp_task_min": 1,
    "user_fp_params": {
        "FORCE_EVAL": {
            "DFT": {
                "BASIS_SET_FILE_NAME": "BASIS_MOLOPT",
                "MGRID": {"CUTOFF": 400, "REL_CUTOFF": 50},
                "SCF": {"EPS_SCF": 1e-6, "MAX_SCF": 50},
                "XC": {"XC_FUNCTIONAL": {"_": "PBE"}},
            },
            "SUBSYS": {"KIND": {"_": ["C", "H"], "POTENTIAL": ["GTH-PBE-q4", "GTH-PBE-q1"]}},
        }
    },
}

ABACUS = {
    "type_map": ["Al"],
    "mass_map": [26.9815],
    "init_data_prefix": "./",
    "init_data_sys": ["Al.STRU.02x01x01/02.md/sys-0008/deepmd"],
    "sys_format": "abacus/stru",
    "sys_configs_prefix": "./",
    "sys_configs": [["Al.STRU.02x01x01/01.scale_pert/sys-0008/scale*/00000*/STRU"]],
    "numb_models": 4,
    "default_training_param": {**TRAINING, "training": {"stop_batch": 20000, "disp_freq": 1000}},
    "model_devi_dt": 0.002,
    "model_devi_f_trust_lo": 0.05,
    "model_devi_f_trust_hi": 0.15,
    "model_devi_jobs": [
        {"sys_idx": [0], "temps": [100], "press": [1.0], "trj_freq": 10, "nsteps": 300, "ensemble": "nvt"},
        {"sys_idx": [0], "temps": [100, 300], "press": [1.0, 100.0], "trj_freq": 10, "nsteps": 300, "ensemble": "nvt"},
    ],
    "fp_style": "abacus",
    "fp_task_max": 20,
    "fp_pp_path": "./",
    "fp_pp_files": ["Al_ONCV_PBE-1.0.upf"],
    "fp_orb_files": ["Al_gga_9au_100Ry_4s4p1d.orb"],
    "k_points": [1, 1, 1, 0, 0, 0],
    "user_fp_params": {
        "ntype": 1,
        "symmetry": 0,
        "basis_type": "lcao",
        "ecutwfc": 100,
        "scf_thr": 1e-08,
        "scf_nmax": 100,
        "smearing_method": "gauss",
        "smearing_sigma": 0.002,
        "mixing_type": "pulay",
        "mixing_beta": 0.3,
        "cal_force": 1,
    },
}

SLURM_MACHINE = {
    "api_version": "1.0",
    "train": [
        {
            "command": "dp",
            "machine": {
                "batch_type": "Slurm",
                "context_type": "SSHContext",
                "remote_root": "/scratch/dpgen",
                "remote_profile": {"hostname": "cluster.example.org", "username": "me"},
            },
            "resources": {
                "number_node": 1,
                "cpu_per_node": 4,
                "gpu_per_node": 1,
                "queue_name": "gpu",
                "group_size": 1,
                "module_list": ["deepmd-kit/2.2"],
            },
        }
    ],
    "model_devi": [
        {
            "command": "lmp",
            "machine": {"batch_type": "Shell", "context_type": "LocalContext", "local_root": "./"},
            "resources": {"number_node": 1, "cpu_per_node": 1, "group_size": 50},
        }
    ],
    "fp": [
        {
            "command": "ulimit -s unlimited; mpirun -np 32 vasp_std",
            "machine": {
                "batch_type": "Slurm",
                "context_type": "SSHContext",
                "remote_profile": {"hostname": "cluster.example.org"},
            },
            "resources": {
                "number_node": 1,
                "cpu_per_node": 32,
                "queue_name": "cpu",
                "custom_flags": ["#SBATCH --mem=64G"],
                "source_list": ["/opt/intel/oneapi/setvars.sh"],
                "envs": {"OMP_NUM_THREADS": 1},
            },
        }
    ],
}


def _atoms(symbols: str) -> Atoms:
    atoms = Atoms(symbols, cell=[8, 8, 8], pbc=True)
    atoms.positions = np.random.default_rng(0).random((len(atoms), 3)) * 3
    return atoms


def _labeled_data(folder: pathlib.Path, symbols: str) -> None:
    atoms = _atoms(symbols)
    atoms.calc = SinglePointCalculator(atoms, energy=-1.0, forces=np.zeros((len(atoms), 3)))
    dpdata.LabeledSystem(atoms, fmt="ase/structure").to("deepmd/npy", str(folder))


def _structure(path: pathlib.Path, symbols: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    write(path, _atoms(symbols), format="vasp")


@pytest.fixture
def ch4_tree(tmp_path):
    """DP-GEN's init folder layout for CH4: the init data and two scaled-and-perturbed POSCARs per group."""
    _labeled_data(tmp_path / "CH4.POSCAR.01x01x01/02.md/sys-0004-0001/deepmd", "CH4")
    for group in ("00000", "00001"):
        _structure(tmp_path / f"CH4.POSCAR.01x01x01/01.scale_pert/sys-0004-0001/scale-1.000/{group}0/POSCAR", "CH4")
    (tmp_path / "INCAR_methane").write_text(INCAR)
    return tmp_path


def test_vasp_example_with_a_slurm_machine(ch4_tree, monkeypatch):
    campaign, warnings = convert_dpgen(VASP, SLURM_MACHINE, ch4_tree)
    scaled = ch4_tree / "CH4.POSCAR.01x01x01/01.scale_pert/sys-0004-0001/scale-1.000"
    assert campaign["systems"] == {
        "sys00": {"structure": {"file": str(scaled / "000000/POSCAR")}},
        "sys01": {
            "structure": {"file": str(scaled / "000010/POSCAR")},
            "stages": [
                {
                    "temperatures": [100],
                    "pressures": [1.0],
                    "ensemble": "nvt",
                    "steps": 3000,
                    "sampling_interval": 10,
                    "timestep": 0.002,
                    "max_iterations": 1,
                }
            ],
        },
    }
    assert campaign["stages"][0]["steps"] == 300 and campaign["stages"][0]["max_iterations"] == 1
    assert campaign["trust"] == {"force_lo": 0.05, "force_hi": 0.15}
    assert campaign["max_labels"] == 20 and campaign["convergence"]["max_iterations"] == 2
    assert campaign["initial_data"] == {
        "training_set": str(ch4_tree / "CH4.POSCAR.01x01x01/02.md/sys-0004-0001/deepmd")
    }
    parameters = campaign["training"]["overrides"]["parameters"]
    assert campaign["training"]["num_models"] == 4
    assert parameters["training"] == {
        "numb_steps": 2000,
        "disp_file": "lcurve.out",
        "disp_freq": 1000,
        "save_freq": 1000,
    }
    assert parameters["model"]["type_map"] == ["H", "C"]

    labeling = campaign["labeling"]
    assert labeling["engine"] == "vasp" and labeling["code"] == "vasp@cluster.example.org"
    incar = labeling["overrides"]["parameters"]
    assert incar["encut"] == 400 and incar["ediff"] == 1e-6 and incar["kgamma"] is False and incar["algo"] == "fast"
    assert labeling["overrides"]["kpoint_spacing"] == 2.0 and "kspacing" not in incar
    assert labeling["overrides"]["potential_mapping"] == {"H": "H", "C": "C"}
    assert labeling["options"] == {
        "resources": {"num_machines": 1, "num_mpiprocs_per_machine": 32},
        "queue_name": "cpu",
        "custom_scheduler_commands": "#SBATCH --mem=64G",
        "prepend_text": "source /opt/intel/oneapi/setvars.sh",
        "environment_variables": {"OMP_NUM_THREADS": "1"},
        "withmpi": True,
    }
    training = campaign["training"]
    assert training["code"] == "dp@cluster.example.org"
    assert training["options"]["custom_scheduler_commands"] == "#SBATCH --gres=gpu:1"
    assert training["options"]["prepend_text"] == "module load deepmd-kit/2.2"
    assert campaign["exploration"]["code"] == "lmp@localhost"

    text = "\n".join(warnings)
    for expected in (
        "mass_map: not converted (masses come from the elements)",
        "fp_task_min: not converted",
        "shuffle_poscar: not converted",
        "model_devi_clean_traj: not converted",
        "fp_pp_files: 'POTCAR_H' does not name its POTCAR symbol",
        "machine.fp.command: the MPI launcher comes from the computer's mpirun_command",
        "machine.model_devi.resources.group_size: not converted",
        "machine.train.resources.gpu_per_node: written as a Slurm --gres line",
        "create the code vasp@cluster.example.org running 'ulimit -s unlimited; mpirun -np 32 vasp_std'",
        "_comment1: not converted (not recognised by the converter)",
    ):
        assert expected in text, expected
    with pytest.raises(CampaignError, match=r"POTCAR family 'PBE\.54' is not in the database: upload it"):
        parse_campaign(campaign, base_dir=ch4_tree)  # the next step the warnings name
    monkeypatch.setattr("aiida_perovskite.engines.vasp._missing_potcars", lambda *_: None)  # as if uploaded
    parsed = parse_campaign(campaign, base_dir=ch4_tree)
    assert set(parsed.systems) == {"sys00", "sys01"}


def test_cp2k_example_merges_repeated_jobs_into_stages(ch4_tree):
    data = ch4_tree / "data"
    data.mkdir()
    (ch4_tree / "CH4.POSCAR.01x01x01").rename(data / "CH4.POSCAR.01x01x01")
    _labeled_data(data / "deepmd", "CH4")
    campaign, warnings = convert_dpgen(CP2K, None, ch4_tree)
    assert [stage["max_iterations"] for stage in campaign["stages"]] == [2, 1]
    assert campaign["stages"][1]["ensemble"] == "npt-iso" and campaign["stages"][1]["temperatures"] == [300]
    assert all("stages" not in system for system in campaign["systems"].values())  # both explored alike
    assert campaign["training"]["overrides"]["parameters"]["training"] == {"numb_steps": 40000, "disp_freq": 1000}
    assert campaign["labeling"]["tolerated_failed_fraction"] == 0.2
    assert campaign["labeling"]["overrides"]["settings"] == {
        "cutoff": 400,
        "rel_cutoff": 50,
        "eps_scf": 1e-6,
        "max_scf": 50,
        "functional": "PBE",
    }
    text = "\n".join(warnings)
    assert "user_fp_params.FORCE_EVAL.DFT.BASIS_SET_FILE_NAME: not converted" in text
    assert "user_fp_params.FORCE_EVAL.SUBSYS.KIND.POTENTIAL: not converted" in text
    parse_campaign(campaign, base_dir=ch4_tree)


def test_abacus_example(tmp_path):
    _labeled_data(tmp_path / "Al.STRU.02x01x01/02.md/sys-0008/deepmd", "Al4")
    _structure(tmp_path / "Al.STRU.02x01x01/01.scale_pert/sys-0008/scale-1.000/000000/STRU", "Al4")
    campaign, warnings = convert_dpgen(ABACUS, None, tmp_path)
    assert [stage["temperatures"] for stage in campaign["stages"]] == [[100], [100, 300]]
    assert campaign["stages"][1]["pressures"] == [1.0, 100.0]
    assert campaign["labeling"]["engine"] == "abacus"
    assert campaign["labeling"]["overrides"]["parameters"]["input"] == {
        "symmetry": 0,
        "basis_type": "lcao",
        "ecutwfc": 100,
        "scf_thr": 1e-08,
        "scf_nmax": 100,
        "smearing_method": "gauss",
        "smearing_sigma": 0.002,
        "mixing_type": "pulay",
        "mixing_beta": 0.3,
    }
    text = "\n".join(warnings)
    for expected in (
        "fp_incar.ntype: set by the ABACUS engine",
        "fp_incar.cal_force: set by the ABACUS engine",
        "k_points: not converted",
        "fp_pp_files/fp_orb_files: pseudopotentials and orbitals come from an aiida-abacus orbital family",
        "sys_format: 'abacus/stru' files are given as they are",
    ):
        assert expected in text, expected
    with pytest.raises(CampaignError, match=r"systems\.sys00\.structure\.file: ASE cannot read it"):
        parse_campaign(campaign, base_dir=tmp_path)  # as the sys_format warning says: convert STRU first


def test_a_glob_matching_several_structures_gives_a_system_each_and_unknown_keys_are_reported(ch4_tree):
    param = {
        **VASP,
        "sys_configs": [["CH4.POSCAR.01x01x01/01.scale_pert/sys-0004-0001/scale*/0000*/POSCAR"], ["missing/*/POSCAR"]],
        "model_devi_jobs": [{**VASP["model_devi_jobs"][0], "sys_idx": [0], "ensemble": "nve", "template": "x"}],
        "training_init_model": True,
    }
    campaign, warnings = convert_dpgen(param, None, ch4_tree)
    assert sorted(campaign["systems"]) == ["sys00_000", "sys00_001"]
    assert campaign["stages"][0]["ensemble"] == "nvt"
    text = "\n".join(warnings)
    assert "model_devi_jobs[0].ensemble: 'nve' is not supported; nvt is used instead" in text
    assert "model_devi_jobs[0].template: not converted" in text
    assert "sys_configs[1]: no file matches" in text and "sys_configs[1]: no model_devi_jobs entry explores it" in text
    assert "training_init_model: not converted (the first ensemble is trained from scratch)" in text


def test_cli_writes_the_file_with_the_warnings_in_its_header(ch4_tree):
    (ch4_tree / "param.json").write_text(json.dumps(VASP))
    (ch4_tree / "machine.json").write_text(json.dumps(SLURM_MACHINE))
    out = ch4_tree / "ch4.yaml"
    runner = CliRunner()
    result = runner.invoke(
        cli, ["campaign", "from-dpgen", str(ch4_tree / "param.json"), str(ch4_tree / "machine.json"), str(out)]
    )
    assert result.exit_code == 0, result.output
    campaign, warnings = convert_dpgen(VASP, SLURM_MACHINE, ch4_tree)
    assert yaml.safe_load(out.read_text()) == campaign
    assert f"campaign file: {out} (2 system(s), {len(warnings)} warning(s))" in result.output
    header = [line for line in out.read_text().splitlines() if line.startswith("# not converted: ")]
    assert len(header) == len(warnings)
    assert "warning: mass_map: not converted" in result.output  # also told on the terminal

    result = runner.invoke(cli, ["campaign", "from-dpgen", str(out)])
    assert result.exit_code == 2 and "give param.json, optionally machine.json, and the output file" in result.output
    result = runner.invoke(cli, ["campaign", "from-dpgen", str(ch4_tree / "nope.json"), str(out)])
    assert result.exit_code == 2 and "no file" in result.output
