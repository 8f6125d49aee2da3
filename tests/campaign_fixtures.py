"""The small teacher campaign that several test modules look at, run once per session as a user runs it
(`aiida-perovskite campaign run FILE --report DIR`: submit to the daemon, watch, report): a 2x2x2 polar BaTiO3
cell labeled by SevenNet-MF-0, short MD at 50 K, a phase diagram and a polarization analysis of its final
model."""

from __future__ import annotations

import copy
import dataclasses
import pathlib
import re
import traceback

import pytest
import yaml
from aiida import orm
from aiida.engine import submit
from click.testing import CliRunner

from aiida_perovskite.campaign.builder import build_campaign
from aiida_perovskite.campaign.spec import parse_campaign
from aiida_perovskite.cli import cli
from tests.conftest import executable

# A 2x2x2 polar tetragonal cell near the teacher's minimum, labeled by SevenNet-MF-0 (r2SCAN); short MD at 50 K.
CAMPAIGN = {
    "name": "cl-test",
    "protocol": "fast",
    "seed": 42,
    "systems": {
        "BaTiO3": {
            "structure": {
                "perovskite": "BaTiO3",
                "phase": "tetragonal",
                "lattice_constant": 3.99,
                "c_over_a": 1.025,
                "displacement": 0.12,
            },
            "repeat": [2, 2, 2],
        }
    },
    "stages": [
        {
            "temperatures": [50],
            "pressures": [1.0],
            "ensemble": "npt-tri",
            "steps": 150,
            "sampling_interval": 5,
            "max_iterations": 5,
        }
    ],
    "max_labels": 12,
    "convergence": {"accurate_fraction": 0.9, "max_iterations": 5},
    "initial_data": {"perturbation": {"count": 12, "cell_strain": 0.02, "atom_displacement": 0.08}},
    "validation": {"held_out_fraction": 0.25},
    "training": {
        "code": "dp-cl@localhost-session",
        "protocol": "fast",
        "num_models": 2,
        "overrides": {"parameters": {"training": {"numb_steps": 1500, "disp_freq": 100, "save_freq": 500}}},
        "reuse": {"numb_steps": 600},
    },
    "exploration": {"code": "lmp-cl@localhost-session"},
    "labeling": {"engine": "teacher", "code": "teacher-cl@localhost-session", "protocol": "fast"},
    "analysis": {
        "phase_diagram": {
            "structure": {"perovskite": "BaTiO3", "phase": "tetragonal", "displacement": 0.1},
            "repeat": [2, 2, 2],
            "temperatures": [50, 300],
            "mode": "heating",
            "md": {"equilibration_steps": 100, "production_steps": 200, "sampling_interval": 20, "blocks": 4},
        },
        "polarization": {"temperatures": [50], "settings": {"born_charges": "BaTiO3"}},
    },
}


@pytest.fixture(scope="session")
def codes(session_computer):
    for label, name, plugin in (
        ("dp-cl", "dp", "perovskite.deepmd.train"),
        ("lmp-cl", "lmp", "perovskite.lammps.explore"),
        ("teacher-cl", "perovskite-teacher", "perovskite.teacher.label"),
    ):
        orm.InstalledCode(
            label=label,
            computer=session_computer,
            filepath_executable=str(executable(name)),
            default_calc_job_plugin=plugin,
        ).store()


def submit_campaign(campaign: dict | None = None, **changes) -> orm.WorkChainNode:
    return submit(build_campaign(parse_campaign({**copy.deepcopy(campaign or CAMPAIGN), **changes})))


def write_campaign(path: pathlib.Path, **changes) -> pathlib.Path:
    """CAMPAIGN as a campaign file, with ``changes`` ("a.b" sets a nested key)."""
    data = copy.deepcopy(CAMPAIGN)
    for key, value in changes.items():
        *parents, last = key.split(".")
        target = data
        for parent in parents:
            target = target[parent]
        target[last] = value
    path.write_text(yaml.safe_dump(data))
    return path


@dataclasses.dataclass(frozen=True)
class CampaignRun:
    """What `campaign run` printed and wrote, and the campaign it ran."""

    node: orm.WorkChainNode
    file: pathlib.Path
    output: str
    exit_code: int
    report: pathlib.Path


@pytest.fixture(scope="session")
def converged_run(daemon, codes, tmp_path_factory) -> CampaignRun:
    directory = tmp_path_factory.mktemp("campaign-run")
    path = write_campaign(directory / "cl-test.yaml")
    result = CliRunner().invoke(cli, ["campaign", "run", str(path), "--report", str(directory / "report")])
    found = re.search(r"submitted campaign 'cl-test': ConcurrentLearningWorkChain<(\d+)>", result.output)
    assert found, result.output
    node = orm.load_node(int(found.group(1)))
    assert node.is_terminated, f"`campaign run` returned before the campaign ended:\n{result.output}\n" + "".join(
        traceback.format_exception(*result.exc_info) if result.exc_info else []
    )
    return CampaignRun(node, path, result.output, result.exit_code, directory / "report")


@pytest.fixture(scope="session")
def converged(converged_run) -> orm.WorkChainNode:
    return converged_run.node
