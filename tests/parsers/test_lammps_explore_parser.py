"""The exploration parser on recorded outputs: a run that blew up keeps its sampled frames."""

from __future__ import annotations

import pytest
from aiida import orm
from aiida.plugins import CalculationFactory, ParserFactory

from aiida_perovskite.data import DeepPotentialData

LammpsExplore = CalculationFactory("perovskite.lammps.explore")

DEVI = """#  step  max_devi_v  min_devi_v  avg_devi_v  max_devi_f  min_devi_f  avg_devi_f
           0       1.0e-03       1.0e-04       5.0e-04       2.0e-02       1.0e-03       5.0e-03
          10       1.0e-03       1.0e-04       5.0e-04       9.0e-02       1.0e-03       5.0e-03
          20       1.0e-01       1.0e-04       5.0e-04       4.0e+00       1.0e-03       5.0e-03
"""


def dump_frame(step: int) -> str:
    return (
        f"ITEM: TIMESTEP\n{step}\nITEM: NUMBER OF ATOMS\n2\nITEM: BOX BOUNDS pp pp pp\n0 4\n0 4\n0 4\n"
        "ITEM: ATOMS id type x y z\n1 1 0 0 0\n2 2 2 2 2\n"
    )


LOG = """Step Temp PotEng KinEng TotEng Press Volume Lx Ly Lz Xy Xz Yz
         0   300   -10   0.1   -9.9   1   64   4   4   4   0   0   0
        10   900   -9   0.3   -8.7   1   64   4   4   4   0   0   0
"""


@pytest.fixture
def parse(calcjob_node_with_retrieved, tiny_pytorch_model):
    def run(files):
        model = DeepPotentialData(tiny_pytorch_model)
        inputs = {
            "models__model_0": model,
            "parameters": orm.Dict({"ensemble": "nvt", "temperature": 300.0, "steps": 100, "sampling_interval": 10}),
        }
        node = calcjob_node_with_retrieved("perovskite.lammps.explore", inputs, files)
        return ParserFactory("perovskite.lammps.explore").parse_from_node(node, store_provenance=False)

    return run


def test_blown_up_run_returns_sampled_frames_and_an_exit_code(parse):
    files = {
        "model_devi.out": DEVI,
        "traj.dump": dump_frame(0) + dump_frame(10) + "ITEM: TIMESTEP\n20\nITEM: NUMBER",
        "log.lammps": LOG,
        "lammps.out": "ERROR: Lost atoms: original 2 current 1 (src/thermo.cpp:494)\n",
    }
    results, calc = parse(files)
    assert calc.exit_status == LammpsExplore.exit_codes.ERROR_MD_UNSTABLE.status
    assert "stopped at step 10 of 100 (ERROR: Lost atoms" in calc.exit_message
    assert results["deviations"].get_array("step").tolist() == [0, 10]
    assert results["trajectory"].numsteps == 2


def test_missing_model_devi_file(parse):
    _, calc = parse({"traj.dump": dump_frame(0), "log.lammps": LOG})
    assert calc.exit_status == LammpsExplore.exit_codes.ERROR_MISSING_OUTPUT_FILE.status
    assert "model_devi.out" in calc.exit_message
