"""TrainingSetData: round trips through dpdata and DeePMD folders, and rejection of corrupt data."""

from __future__ import annotations

import dataclasses

import dpdata
import numpy as np
import pytest
from aiida.orm import QueryBuilder, load_node

from aiida_perovskite.analysis.frames import LabeledFrames
from aiida_perovskite.data import TrainingSetData, TrainingSetValidationError
from tests.helpers import lj_frames

ARRAYS = ("cells", "coords", "energies", "forces", "virials")


def assert_same_system(a: dpdata.LabeledSystem, b: dpdata.LabeledSystem) -> None:
    assert list(a["atom_names"]) == list(b["atom_names"])
    np.testing.assert_array_equal(a["atom_types"], b["atom_types"])
    for key in ARRAYS:
        np.testing.assert_array_equal(a[key], b[key], err_msg=key)


def count_training_sets() -> int:
    return QueryBuilder().append(TrainingSetData).count()


def test_round_trip_unipero_bt300k(unipero_dir, tmp_path):
    source = dpdata.LabeledSystem(str(unipero_dir / "BT-300K"), fmt="deepmd/npy")
    node = TrainingSetData.from_dpdata(source).store()

    loaded = load_node(node.pk)
    assert loaded.nframes == 290
    assert loaded.type_map == ["Ba", "Ti", "O"]
    assert loaded.base.attributes.get("systems") == [
        {"name": "Ba8Ti8O24", "formula": "Ba8Ti8O24", "natoms": 40, "nframes": 290, "has_virial": True}
    ]
    (system,) = loaded.to_dpdata().systems.values()
    assert_same_system(system, source)

    (folder,) = loaded.write_deepmd_npy(tmp_path / "npy")
    assert (folder / "type_map.raw").read_text().split() == ["Ba", "Ti", "O"]
    assert_same_system(dpdata.LabeledSystem(str(folder), fmt="deepmd/npy"), source)


def test_several_systems_share_one_type_map(tmp_path):
    batio3 = lj_frames(nframes=3, seed=1)
    only_ti_o = dataclasses.replace(
        lj_frames(nframes=2, seed=2), type_map=["Ti", "O", "Ba"], atom_types=np.array([2, 0, 1, 1, 1])
    )
    node = TrainingSetData.from_dpdata([batio3.to_dpdata(), only_ti_o.to_dpdata()]).store()
    assert node.type_map == ["Ba", "Ti", "O"]
    assert node.nframes == 5
    assert node.system_names == ["Ba1Ti1O3", "Ba1Ti1O3.1"]
    second = node.get_frames("Ba1Ti1O3.1")
    assert second.symbols() == only_ti_o.symbols()
    np.testing.assert_array_equal(second.forces, only_ti_o.forces)


@pytest.mark.parametrize("fmt", ["deepmd/npy", "deepmd/hdf5", "extxyz"])
def test_export_formats_read_back(tmp_path, fmt):
    frames = lj_frames(nframes=4)
    node = TrainingSetData([frames]).store()
    target = node.export(tmp_path / "out", fmt=fmt)
    if fmt == "deepmd/npy":
        back = dpdata.LabeledSystem(str(target / "Ba1Ti1O3"), fmt="deepmd/npy")
    elif fmt == "deepmd/hdf5":
        back = dpdata.MultiSystems().from_deepmd_hdf5(str(target))[0]
    else:
        from ase.io import read

        images = read(str(target), index=":")
        # extxyz is text with 8 significant digits
        np.testing.assert_allclose([a.get_potential_energy() for a in images], frames.energies, rtol=1e-7)
        np.testing.assert_allclose(images[2].get_forces(), frames.forces[2], rtol=1e-6, atol=1e-8)
        return
    np.testing.assert_allclose(back["energies"], frames.energies)
    np.testing.assert_allclose(back["forces"], frames.forces)


def test_unknown_export_format_is_named(tmp_path):
    node = TrainingSetData([lj_frames(nframes=1)])
    with pytest.raises(ValueError, match="unknown export format 'xyz'"):
        node.export(tmp_path / "x", fmt="xyz")


def corrupt(frames: LabeledFrames, **changes) -> LabeledFrames:
    return dataclasses.replace(frames, **changes)


def nan_forces(frames):
    forces = frames.forces.copy()
    forces[1, 2, 0] = np.nan
    return corrupt(frames, forces=forces)


CORRUPTIONS = {
    "NaN force": (nan_forces, r"forces contains NaN or infinite values \(first in frame 1\)"),
    "infinite energy": (
        lambda f: corrupt(f, energies=np.where(np.arange(f.nframes) == 0, np.inf, f.energies)),
        "energies contains NaN",
    ),
    "force shape": (
        lambda f: corrupt(f, forces=f.forces[:, :-1]),
        r"forces has shape \(3, 4, 3\), expected \(3, 5, 3\)",
    ),
    "virial shape": (lambda f: corrupt(f, virials=f.virials[:2]), r"virials has shape \(2, 3, 3\)"),
    "unknown element": (lambda f: corrupt(f, type_map=["Ba", "Ti", "Xx"]), r"unknown element\(s\) \['Xx'\]"),
    "type out of range": (lambda f: corrupt(f, atom_types=np.array([0, 1, 2, 2, 3])), "atom types must be integers"),
    "zero cell": (lambda f: corrupt(f, cells=np.zeros_like(f.cells)), "zero volume"),
    "no frames": (
        lambda f: corrupt(
            f, cells=f.cells[:0], coords=f.coords[:0], energies=f.energies[:0], forces=f.forces[:0], virials=None
        ),
        "no frames",
    ),
}


@pytest.mark.parametrize("name", list(CORRUPTIONS))
def test_corrupt_frames_are_rejected_and_nothing_is_stored(name):
    make_bad, message = CORRUPTIONS[name]
    before = count_training_sets()
    with pytest.raises(TrainingSetValidationError, match=message):
        TrainingSetData([lj_frames(nframes=3), make_bad(lj_frames(nframes=3, seed=5))])
    assert count_training_sets() == before


def test_empty_training_set_is_rejected():
    with pytest.raises(TrainingSetValidationError, match="at least one system"):
        TrainingSetData([])


def test_element_missing_from_given_type_map_is_named():
    with pytest.raises(Exception, match=r"element\(s\) \['Ba'\] of the frames are not in type_map"):
        TrainingSetData.from_dpdata(lj_frames(nframes=2).to_dpdata(), type_map=["Ti", "O"])


def test_a_seeded_split_holds_out_frames_and_keeps_the_label_source(aiida_profile):
    from aiida import orm

    from aiida_perovskite.calcfunctions.training_sets import split_training_set

    source = {"engine": "teacher", "method": "r2SCAN", "details": "x"}
    data = TrainingSetData([lj_frames(nframes=20, seed=3)], label_sources=[source]).store()
    first = split_training_set(data, orm.Float(0.3), orm.Int(7))
    again = split_training_set(data, orm.Float(0.3), orm.Int(7))
    held, kept = first["held_out"], first["training"]
    assert held.nframes + kept.nframes == 20 and 2 <= held.nframes <= 12
    assert (
        held.get_frames(held.system_names[0]).energies.tolist()
        == again["held_out"].get_frames(again["held_out"].system_names[0]).energies.tolist()
    )  # the same seed holds out the same frames
    all_energies = set(data.get_frames(data.system_names[0]).energies.tolist())
    held_energies = set(held.get_frames(held.system_names[0]).energies.tolist())
    kept_energies = set(kept.get_frames(kept.system_names[0]).energies.tolist())
    assert held_energies | kept_energies == all_energies and not held_energies & kept_energies
    assert held.label_sources == kept.label_sources == [source]
    single = TrainingSetData([lj_frames(nframes=1)]).store()
    assert "held_out" not in split_training_set(single, orm.Float(0.99), orm.Int(1))  # never everything


def test_sets_labeled_at_different_levels_of_theory_are_merged_only_when_allowed(aiida_profile):
    from aiida import orm

    from aiida_perovskite.calcfunctions.training_sets import merge_training_sets

    teacher = {"engine": "teacher", "method": "r2SCAN (MP r2SCAN)", "details": "sevenn 7net-mf-0"}
    dft = {"engine": "cp2k", "method": "PBESOL", "details": "GTH-PBE, DZVP-MOLOPT-SR-GTH"}
    first = TrainingSetData([lj_frames(nframes=2)], label_sources=[teacher]).store()
    second = TrainingSetData([lj_frames(nframes=2, seed=1)], label_sources=[dft]).store()
    unknown = TrainingSetData([lj_frames(nframes=2, seed=2)]).store()
    with pytest.raises(ValueError, match=r"2 different levels of theory .*cp2k PBESOL .*teacher r2SCAN"):
        merge_training_sets(first=first, second=second)
    merged = merge_training_sets(first=first, second=second, allow_mixed_levels=orm.Bool(True))
    assert merged.nframes == 4 and merged.label_sources == [dft, teacher]
    assert merge_training_sets(first=first, unknown=unknown).label_sources == [teacher]  # unknown: not checked
