"""The BaTiO3 student shipped in examples/batio3-student (docs/validation.md): the files are what its campaign
produced (model sha256 and training-set content hash as in provenance.json), the model reproduces the campaign's
own held-out error, and model and data import into AiiDA, where one query finds them by campaign."""

from __future__ import annotations

import hashlib
import json
import pathlib

import numpy as np
import pytest
from aiida import orm

STUDENT = pathlib.Path(__file__).resolve().parents[1] / "examples" / "batio3-student"


@pytest.fixture(scope="module")
def provenance() -> dict:
    return json.loads((STUDENT / "provenance.json").read_text())


def test_the_files_are_the_campaigns_outputs(provenance, aiida_profile):
    from aiida_perovskite.data import TrainingSetData

    model = STUDENT / "models" / "model_0.pb"
    assert hashlib.sha256(model.read_bytes()).hexdigest() == provenance["outputs"]["models"]["model_0"]["sha256"]
    for name in ("training_set", "held_out_set"):
        data = TrainingSetData.from_deepmd_npy(*sorted((STUDENT / name).iterdir()))
        assert data.nframes == provenance["outputs"][name]["frames"]
        assert data.content_hash() == provenance["outputs"][name]["content_hash"]
    teacher = provenance["labels"]["engine_inputs"]["teacher"]
    assert (teacher["model"], teacher["modal"]) == ("7net-mf-0", "R2SCAN")
    assert provenance["campaign"]["exit_status"] == 0


def test_the_model_reproduces_the_campaigns_held_out_error(provenance):
    from deepmd.infer import DeepPot

    from aiida_perovskite.analysis.frames import LabeledFrames

    potential = DeepPot(str(STUDENT / "models" / "model_0.pb"))
    type_map = potential.get_type_map()
    reference, predicted = [], []
    for folder in sorted((STUDENT / "held_out_set").iterdir()):
        frames = LabeledFrames.read_deepmd_npy(folder, type_map)
        forces = potential.eval(
            frames.coords.reshape(len(frames.cells), -1), frames.cells.reshape(len(frames.cells), -1), frames.atom_types
        )[1]
        reference.append(frames.forces.ravel())
        predicted.append(np.asarray(forces).ravel())
    rmse = float(np.sqrt(np.mean((np.concatenate(predicted) - np.concatenate(reference)) ** 2)))
    final = provenance["learning_curve"]["points"][-1]
    assert final["ensemble"] == "final"
    assert rmse == pytest.approx(final["force_rmse_by_model"]["model_0"], rel=1e-4)


def test_model_and_data_import_into_aiida_and_one_query_finds_them(provenance, aiida_profile):
    from aiida_perovskite.data import DeepPotentialData, TrainingSetData

    campaign = provenance["campaign"]["uuid"]
    model = DeepPotentialData(STUDENT / "models" / "model_0.pb").store()
    sources = provenance["outputs"]["training_set"]["label_sources"]
    data = TrainingSetData.from_deepmd_npy(*sorted((STUDENT / "training_set").iterdir()), label_sources=sources).store()
    for node in (model, data):
        node.base.extras.set_many({"campaign": campaign, "shipped": "batio3-student"})
    found = orm.QueryBuilder().append(orm.Data, filters={"extras.campaign": campaign}, project="uuid").all(flat=True)
    assert sorted(found) == sorted([model.uuid, data.uuid])
    assert model.type_map == ["Ba", "Ti", "O"] and model.descriptor == "se_e2_a"
    assert data.label_sources == provenance["outputs"]["training_set"]["label_sources"]
