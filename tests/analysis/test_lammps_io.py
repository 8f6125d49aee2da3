"""LAMMPS input writing and output reading."""

from __future__ import annotations

import io

import numpy as np
import pytest

from aiida_perovskite.analysis.lammps_io import (
    MdSettings,
    exploration_script,
    parse_dump,
    parse_thermo,
    write_data_file,
)
from tests.helpers import cubic_batio3


def test_script_for_npt_tri_makes_the_box_triclinic():
    settings = MdSettings.from_dict(
        {"ensemble": "npt-tri", "temperature": 300, "pressure": 1000, "steps": 100, "sampling_interval": 10}
    )
    script = exploration_script(settings, ["m0.pb", "m1.pb"], ["Ba", "Ti", "O"], 7, "d", "devi.out", "t.dump")
    lines = script.splitlines()
    assert lines.index("change_box all triclinic") < lines.index(
        "fix integrate all npt temp 300 300 0.1 tri 1000 1000 0.5"
    )
    assert "pair_style deepmd m0.pb m1.pb out_freq 10 out_file devi.out" in lines
    assert "pair_coeff * * Ba Ti O" in lines
    assert "velocity all create 300 7 dist gaussian mom yes rot yes" in lines
    assert "timestep 0.002" in lines


def test_nvt_script_has_no_barostat():
    settings = MdSettings.from_dict({"ensemble": "nvt", "temperature": 50.5, "steps": 10, "sampling_interval": 5})
    script = exploration_script(settings, ["a.pth", "b.pth"], ["O"], 1, "d", "x", "y")
    assert "fix integrate all nvt temp 50.5 50.5 0.1" in script
    assert "change_box" not in script and "npt" not in script


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"ensemble": "npt-xyz"}, "unknown ensemble 'npt-xyz'"),
        ({"temperature": -10}, "temperature must be a positive number"),
        ({"temperature": 0}, "temperature must be a positive number"),
        ({"steps": -5}, "steps must be a positive integer"),
        ({"sampling_interval": 500}, "longer than the run"),
        ({"timestep": 0}, "timestep must be a positive number"),
        ({"thermostat": "nose"}, r"unknown MD setting\(s\) \['thermostat'\]"),
    ],
)
def test_invalid_settings(values, message):
    base = {"ensemble": "nvt", "temperature": 300, "steps": 100, "sampling_interval": 10}
    with pytest.raises(ValueError, match=message):
        MdSettings.from_dict({**base, **values})


def test_data_file_lists_every_type_of_the_type_map():
    handle = io.StringIO()
    write_data_file(handle, cubic_batio3(), ["Ca", "Ba", "Ti", "O"])
    text = handle.getvalue()
    assert "4 atom types" in text
    assert "# Ca" in text and "# O" in text


TRICLINIC_DUMP = """\
ITEM: TIMESTEP
20
ITEM: NUMBER OF ATOMS
2
ITEM: BOX BOUNDS xy xz yz pp pp pp
-0.5 4.2 0.2
0.0 4.0 -0.5
0.0 4.0 0.0
ITEM: ATOMS id type x y z
2 2 2.0 2.0 2.0
1 1 0.1 0.0 0.0
ITEM: TIMESTEP
30
ITEM: NUMBER OF ATOMS
2
ITEM: BOX BOUNDS xy xz yz pp pp pp
-0.5 4.2 0.2
0.0 4.0 -0.5
"""


def test_triclinic_dump_is_read_sorted_and_a_cut_frame_dropped():
    frames = parse_dump(TRICLINIC_DUMP, ["Ba", "Ti"])
    assert frames["steps"].tolist() == [20]
    assert frames["symbols"] == ["Ba", "Ti"]
    np.testing.assert_allclose(frames["positions"][0], [[0.1, 0, 0], [2, 2, 2]])
    # xlo = -0.5 - min(0, 0.2, -0.5, -0.3) = 0; xhi = 4.2 - max(0, 0.2, -0.5, -0.3) = 4.0
    np.testing.assert_allclose(frames["cells"][0], [[4.0, 0, 0], [0.2, 4.0, 0], [-0.5, 0.0, 4.0]])


def test_thermo_table_of_the_log():
    log = """LAMMPS (22 Jul 2025)
Step Temp PotEng Volume
         0   300   -10.5   64
        10   290   -10.4   64.1
WARNING: something harmless
        20   280   -10.3   64.2
Loop time of 1.0 on 1 procs for 20 steps with 5 atoms
"""
    thermo = parse_thermo(log)
    assert thermo["step"].tolist() == [0, 10, 20]
    assert thermo["poteng"][-1] == -10.3


DUMP_SCRIPT = """units metal
atom_style atomic
boundary p p p
read_data structure.data
change_box all triclinic
change_box all xy final 0.3 xz final -0.2 yz final 0.1 remap
pair_style zero 6.0
pair_coeff * *
velocity all create 3000 7
fix md all nve
timestep 0.002
dump text all custom 5 traj.dump id type x y z
dump_modify text format float %.17g
dump binary all custom 5 traj.bin id type x y z
run 10
"""


def test_text_and_binary_dumps_written_by_lammps_read_the_same(tmp_path):
    """Real LAMMPS dumps of a triclinic 2x2x2 BaTiO3 cell, written unsorted: the text reader, the binary reader and
    ``parse_dump`` return the same steps, cells, positions (sorted by id) and types; a cut last frame is dropped."""
    import subprocess
    import sys

    from aiida_perovskite.analysis.trajectory_io import read_binary_dump, read_text_dump, text_dump_frames

    with open(tmp_path / "structure.data", "w") as handle:
        write_data_file(handle, cubic_batio3(repeat=2), ["Ba", "Ti", "O"])
    (tmp_path / "in.lammps").write_text(DUMP_SCRIPT)
    lmp = f"{sys.executable.rsplit('/', 1)[0]}/lmp"
    subprocess.run([lmp, "-in", "in.lammps", "-screen", "none"], cwd=tmp_path, check=True, capture_output=True)

    text = list(read_text_dump(tmp_path / "traj.dump"))
    binary = list(read_binary_dump(tmp_path / "traj.bin"))
    arrays = parse_dump((tmp_path / "traj.dump").read_text(), ["Ba", "Ti", "O"])
    assert [frame.step for frame in text] == [frame.step for frame in binary] == arrays["steps"].tolist() == [0, 5, 10]
    for index, (a, b) in enumerate(zip(text, binary, strict=True)):
        np.testing.assert_array_equal(a.positions, b.positions)
        np.testing.assert_array_equal(a.cell, b.cell)
        np.testing.assert_array_equal(a.types, b.types)
        np.testing.assert_array_equal(arrays["positions"][index], b.positions)
    assert text[0].cell[1, 0] == pytest.approx(0.3) and text[0].cell[2, 0] == pytest.approx(-0.2)
    assert arrays["symbols"][:5] == ["Ba", "Ti", "O", "O", "O"]
    contents = (tmp_path / "traj.dump").read_bytes()
    assert [frame.step for frame in text_dump_frames(contents[: len(contents) - 30])] == [0, 5]
    (tmp_path / "empty.dump").touch()
    assert list(read_text_dump(tmp_path / "empty.dump")) == []
