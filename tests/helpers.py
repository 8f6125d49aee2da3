"""Small, physically labeled data made on the fly, so that the core suite needs no shared data."""

from __future__ import annotations

import json
import os
import pathlib
import subprocess

import numpy as np
from ase import Atoms
from ase.calculators.lj import LennardJones

from aiida_perovskite.analysis.frames import LabeledFrames

TYPE_MAP = ["Ba", "Ti", "O"]


def cubic_batio3(a: float = 4.0, repeat: int = 1) -> Atoms:
    cell = Atoms(
        "BaTiO3",
        scaled_positions=[[0, 0, 0], [0.5, 0.5, 0.5], [0.5, 0.5, 0], [0.5, 0, 0.5], [0, 0.5, 0.5]],
        cell=np.eye(3) * a,
        pbc=True,
    )
    return cell.repeat(repeat)


def lj_frames(nframes: int = 6, seed: int = 0, repeat: int = 1, amplitude: float = 0.1) -> LabeledFrames:
    """Randomly displaced and strained BaTiO3 cells labeled by a Lennard-Jones potential (eV, eV/Å)."""
    rng = np.random.default_rng(seed)
    reference = cubic_batio3(repeat=repeat)
    cells, coords, energies, forces, virials = [], [], [], [], []
    for _ in range(nframes):
        atoms = reference.copy()
        strain = np.eye(3) + rng.uniform(-0.02, 0.02, (3, 3))
        atoms.set_cell(reference.cell[:] @ strain, scale_atoms=True)
        atoms.positions += rng.normal(0, amplitude, atoms.positions.shape)
        atoms.calc = LennardJones(sigma=1.8, epsilon=0.02, rc=3.5, smooth=True)
        cells.append(atoms.cell[:])
        coords.append(atoms.positions)
        energies.append(atoms.get_potential_energy())
        forces.append(atoms.get_forces())
        virials.append(-atoms.get_stress(voigt=False) * atoms.get_volume())
    types = np.array([TYPE_MAP.index(s) for s in reference.get_chemical_symbols()])
    return LabeledFrames(TYPE_MAP, types, *map(np.array, (cells, coords, energies, forces, virials)))


TINY_INPUT = {
    "model": {
        "type_map": TYPE_MAP,
        "descriptor": {
            "type": "se_e2_a",
            "sel": [8, 8, 24],
            "rcut_smth": 0.5,
            "rcut": 4.0,
            "neuron": [4, 8],
            "axis_neuron": 2,
            "seed": 1,
        },
        "fitting_net": {"neuron": [8], "seed": 1},
    },
    "learning_rate": {"type": "exp", "start_lr": 1e-3, "stop_lr": 1e-4, "decay_steps": 10},
    "loss": {"type": "ener", "start_pref_e": 1, "limit_pref_e": 1, "start_pref_f": 1, "limit_pref_f": 1},
    "training": {"numb_steps": 10, "seed": 1, "disp_freq": 5, "save_freq": 10},
}


def train_tiny_model(
    workdir: pathlib.Path,
    dp: pathlib.Path,
    backend: str = "pt",
    compress: bool = False,
    type_map: list[str] | None = None,
    seed: int = 1,
) -> pathlib.Path:
    """Train a few steps with the real ``dp`` on LJ frames and freeze; return the model file."""
    workdir.mkdir(parents=True, exist_ok=True)
    lj_frames().write_deepmd_npy(workdir / "data")
    config = json.loads(json.dumps(TINY_INPUT))
    config["model"]["type_map"] = type_map or TYPE_MAP
    for section in (config["model"]["descriptor"], config["model"]["fitting_net"], config["training"]):
        section["seed"] = seed
    config["model"]["descriptor"]["sel"] = [24 if element == "O" else 8 for element in config["model"]["type_map"]]
    config["training"]["training_data"] = {"systems": [str(workdir / "data")], "batch_size": 1}
    (workdir / "input.json").write_text(json.dumps(config))
    suffix = ".pth" if backend == "pt" else ".pb"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TF_CPP_MIN_LOG_LEVEL": "3"}

    def dp_run(*args):
        subprocess.run([str(dp), f"--{backend}", *args], cwd=workdir, env=env, check=True, capture_output=True)

    dp_run("train", "input.json")
    dp_run("freeze", "-o", f"model{suffix}")
    if not compress:
        return workdir / f"model{suffix}"
    dp_run("compress", "-i", f"model{suffix}", "-o", f"compressed{suffix}", "-t", "input.json")
    return workdir / f"compressed{suffix}"


def failed_calcjob(computer, entry_point: str, exit_code, remote_path: str | None = None):
    """A stored, finished CalcJobNode of ``entry_point`` that failed with ``exit_code`` (for handler tests),
    with a remote folder if ``remote_path`` is given."""
    from aiida import orm
    from aiida.common.links import LinkType

    node = orm.CalcJobNode(computer=computer, process_type=f"aiida.calculations:{entry_point}")
    node.set_process_state("finished")
    node.set_exit_status(exit_code.status)
    node.set_exit_message(exit_code.message)
    node.store()
    if remote_path is not None:
        remote = orm.RemoteData(computer=computer, remote_path=remote_path)
        remote.base.links.add_incoming(node, link_type=LinkType.CREATE, link_label="remote_folder")
        remote.store()
    return node


def script_code(computer, label: str, path: pathlib.Path, script: str, plugin: str = "perovskite.teacher.label"):
    """A stored InstalledCode running ``script`` (written to ``path`` and made executable): a wrapper that makes a
    real program slow, flaky or missing on purpose."""
    from aiida import orm

    path.write_text(script)
    path.chmod(0o755)
    return orm.InstalledCode(
        label=label, computer=computer, filepath_executable=str(path), default_calc_job_plugin=plugin
    ).store()
