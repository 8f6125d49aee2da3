"""DeepPotentialData: metadata read from real frozen models, and clear errors for bad files."""

from __future__ import annotations

import hashlib
import importlib.util

import pytest
from aiida.orm import load_node

from aiida_perovskite.analysis.model_files import ModelFileError, inspect_model_file
from aiida_perovskite.data import DeepPotentialData
from tests.conftest import executable
from tests.helpers import TYPE_MAP, train_tiny_model


@pytest.fixture(scope="session")
def pytorch_model(tiny_pytorch_model):
    return tiny_pytorch_model


def test_pytorch_model_metadata_and_storage(pytorch_model, tmp_path):
    node = DeepPotentialData(pytorch_model, metrics={"rmse_f_trn": 0.1}).store()
    loaded = load_node(node.pk)
    assert loaded.dp_backend == "pytorch"
    assert loaded.type_map == TYPE_MAP
    assert loaded.descriptor == "se_e2_a"
    assert loaded.rcut == pytest.approx(4.0)
    assert loaded.compressed is False
    assert loaded.metrics == {"rmse_f_trn": 0.1}
    assert loaded.sha256 == hashlib.sha256(pytorch_model.read_bytes()).hexdigest()
    copy = loaded.write(tmp_path)
    assert copy.name == "model.pth"
    assert copy.read_bytes() == pytorch_model.read_bytes()


@pytest.mark.slow
def test_compressed_pytorch_model_is_recognised(tmp_path):
    compressed = train_tiny_model(tmp_path, executable("dp"), backend="pt", compress=True)
    assert inspect_model_file(compressed)["compressed"] is True
    assert inspect_model_file(tmp_path / "model.pth")["compressed"] is False


@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("tensorflow") is None, reason="TensorFlow backend not installed")
def test_tensorflow_models_plain_and_compressed(tmp_path):
    compressed = train_tiny_model(tmp_path, executable("dp"), backend="tf", compress=True)
    plain = DeepPotentialData(tmp_path / "model.pb")
    assert (plain.dp_backend, plain.type_map, plain.descriptor, plain.rcut) == ("tensorflow", TYPE_MAP, "se_e2_a", 4.0)
    assert plain.compressed is False
    assert DeepPotentialData(compressed).compressed is True


def test_given_metadata_must_agree_with_the_file(pytorch_model):
    with pytest.raises(ValueError, match=r"type_map=\['Ti', 'Ba', 'O'\] was given but the model file"):
        DeepPotentialData(pytorch_model, type_map=["Ti", "Ba", "O"])
    assert DeepPotentialData(pytorch_model, type_map=TYPE_MAP, rcut=4.0).rcut == 4.0


@pytest.mark.parametrize("name", ["model.pt", "model.ckpt", "model.h5"])
def test_wrong_suffix_is_rejected(tmp_path, pytorch_model, name):
    path = tmp_path / name
    path.write_bytes(pytorch_model.read_bytes())
    with pytest.raises(ValueError, match=r"must end in \.pth \(PyTorch\) or \.pb \(TensorFlow\)"):
        DeepPotentialData(path)


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("empty.pth", b"", "missing or empty"),
        ("text.pth", b"not a model at all", "not a frozen PyTorch model"),
        ("garbage.pb", bytes(range(7, 250)) * 3, "not a frozen TensorFlow model"),
    ],
)
def test_broken_files_are_rejected(tmp_path, name, content, message):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(ValueError, match=message):
        DeepPotentialData(path)


def test_truncated_pytorch_model_is_rejected(tmp_path, pytorch_model):
    path = tmp_path / "truncated.pth"
    path.write_bytes(pytorch_model.read_bytes()[:5000])
    with pytest.raises(ModelFileError, match="not a frozen PyTorch model"):
        inspect_model_file(path)


def test_zip_that_is_not_a_model_is_rejected(tmp_path):
    import zipfile

    path = tmp_path / "archive.pth"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("readme.txt", "hello")
    with pytest.raises(ValueError, match="not a TorchScript archive"):
        DeepPotentialData(path)
