"""Read the metadata of frozen DeePMD-kit models without importing PyTorch or TensorFlow.

Importing either framework costs seconds and gigabytes; the AiiDA daemon must not pay that to store a
model. A frozen PyTorch model (``.pth``) is a TorchScript zip archive whose pickled module holds the
training script as the ``model_def_script`` JSON string; a frozen TensorFlow model (``.pb``) is a GraphDef
protobuf whose constant nodes ``model_attr/tmap``, ``descrpt_attr/rcut`` and ``train_attr/training_script``
hold the same facts. Both are read with the standard library only.
"""

from __future__ import annotations

import json
import pathlib
import re
import struct
import zipfile
from typing import Any

from aiida_perovskite.protocols import load_protocol

__all__ = ("BACKENDS", "BACKEND_SUFFIXES", "DEFAULT_BACKEND", "ModelFileError", "inspect_model_file")

# The training protocol's backend (TensorFlow: 1.6x faster training, 7-11x faster LAMMPS MD on CPU).
DEFAULT_BACKEND = load_protocol("deepmd_train")["backend"]

# DeePMD-kit's backends: the `dp` flag, the frozen model's suffix, the checkpoint a restart reads and the line
# `dp train` logs once that checkpoint is complete. TensorFlow writes the pointer file `checkpoint` before the
# meta graph and the `model.ckpt.*` links the restart reads, and logs "saved checkpoint" after them; PyTorch
# writes the pointer last, so the pointer alone says its checkpoint is complete.
BACKENDS = {
    "tensorflow": {
        "name": "tensorflow",
        "flag": "--tf",
        "suffix": ".pb",
        "checkpoint": "model.ckpt",
        "checkpoint_logged": "saved checkpoint",
    },
    "pytorch": {
        "name": "pytorch",
        "flag": "--pt",
        "suffix": ".pth",
        "checkpoint": "model.ckpt.pt",
        "checkpoint_logged": None,
    },
}
BACKEND_SUFFIXES = {backend["suffix"]: name for name, backend in BACKENDS.items()}

_PICKLE_STRING = re.compile(rb"X(....)", re.DOTALL)
_PICKLED_COMPRESS_FLAG = re.compile(rb"X\x08\x00\x00\x00compress(?:q.|r....)?([\x88\x89])", re.DOTALL)


class ModelFileError(ValueError):
    """The file is not a frozen DeePMD-kit model this project can use."""


def inspect_model_file(path: str | pathlib.Path) -> dict[str, Any]:
    """Return ``backend``, ``type_map``, ``descriptor``, ``rcut`` and ``compressed`` of a frozen model.

    :raises ModelFileError: for an unsupported suffix, a missing or empty file, or a file that is not a
        frozen model of the backend its suffix names.
    """
    path = pathlib.Path(path)
    backend = BACKEND_SUFFIXES.get(path.suffix)
    if backend is None:
        raise ModelFileError(
            f"{path.name}: a frozen DeePMD model must end in .pth (PyTorch) or .pb (TensorFlow); "
            "checkpoints (.pt, model.ckpt*) must be frozen first with `dp freeze`"
        )
    if not path.is_file() or path.stat().st_size == 0:
        raise ModelFileError(f"{path}: the model file is missing or empty")
    info = _inspect_pytorch(path) if backend == "pytorch" else _inspect_tensorflow(path)
    return {"backend": backend, **info}


def _inspect_pytorch(path: pathlib.Path) -> dict[str, Any]:
    try:
        with zipfile.ZipFile(path) as archive:
            pickles = [name for name in archive.namelist() if name.endswith("/data.pkl") and name.count("/") == 1]
            if not pickles:
                raise ModelFileError(f"{path.name}: not a TorchScript archive (no data.pkl): is it a frozen model?")
            payload = archive.read(pickles[0])
    except zipfile.BadZipFile as exc:
        raise ModelFileError(f"{path.name}: not a frozen PyTorch model (broken or not a zip archive)") from exc

    script = _pickled_string_after(payload, b"model_def_script")
    if script is None:
        raise ModelFileError(f"{path.name}: TorchScript archive without a DeePMD model definition")
    try:
        definition = json.loads(script)
    except json.JSONDecodeError as exc:
        raise ModelFileError(f"{path.name}: unreadable DeePMD model definition ({exc})") from exc
    flag = _PICKLED_COMPRESS_FLAG.search(payload)
    return {**_summarise_definition(definition), "compressed": bool(flag and flag.group(1) == b"\x88")}


def _pickled_string_after(payload: bytes, key: bytes) -> str | None:
    """The pickle ``BINUNICODE`` string that follows the attribute name ``key``."""
    start = payload.find(key)
    if start < 0:
        return None
    match = _PICKLE_STRING.search(payload, start + len(key))
    if match is None:
        return None
    (length,) = struct.unpack("<I", match.group(1))
    return payload[match.end() : match.end() + length].decode("utf-8", errors="strict")


def _summarise_definition(definition: dict[str, Any]) -> dict[str, Any]:
    descriptor = definition.get("descriptor", {})
    return {
        "type_map": list(definition.get("type_map") or []),
        "descriptor": descriptor.get("type"),
        "rcut": float(descriptor["rcut"]) if "rcut" in descriptor else None,
    }


def _inspect_tensorflow(path: pathlib.Path) -> dict[str, Any]:
    constants = _graph_constants(path.read_bytes(), path.name)
    type_map = constants.get("model_attr/tmap")
    if type_map is None:
        raise ModelFileError(f"{path.name}: GraphDef without model_attr/tmap: not a frozen DeePMD model")
    info: dict[str, Any] = {"type_map": type_map.split(), "descriptor": None, "rcut": None}
    if "train_attr/training_script" in constants:
        info.update(_summarise_definition(json.loads(constants["train_attr/training_script"]).get("model", {})))
        info["type_map"] = type_map.split()
    if "descrpt_attr/rcut" in constants:
        info["rcut"] = constants["descrpt_attr/rcut"]
    info["compressed"] = any("/TabulateFusion" in name for name in constants["__ops__"])
    return info


def _graph_constants(data: bytes, name: str) -> dict[str, Any]:
    """Names of all GraphDef nodes (under ``__ops__``) and the values of DeePMD's attribute constants."""
    wanted = {"model_attr/tmap", "descrpt_attr/rcut", "train_attr/training_script"}
    constants: dict[str, Any] = {"__ops__": []}
    try:
        for field, _, node in _protobuf_fields(data):
            if field != 1:
                continue
            node_name, value = "", None
            for node_field, _, content in _protobuf_fields(node):
                if node_field == 1:
                    node_name = content.decode()
                elif node_field == 5:
                    value = _attr_tensor_value(content) if value is None else value
            constants["__ops__"].append(node_name)
            if node_name in wanted and value is not None:
                constants[node_name] = value
    except (IndexError, UnicodeDecodeError, struct.error, ValueError) as exc:
        raise ModelFileError(f"{name}: not a frozen TensorFlow model (unreadable GraphDef: {exc})") from exc
    if not constants["__ops__"]:
        raise ModelFileError(f"{name}: not a frozen TensorFlow model (no graph nodes)")
    return constants


def _attr_tensor_value(entry: bytes) -> Any:
    """The string or double held by a ``value`` attribute's TensorProto, if this map entry is one."""
    key, attr = "", b""
    for field, _, content in _protobuf_fields(entry):
        if field == 1:
            key = content.decode()
        elif field == 2:
            attr = content
    if key != "value":
        return None
    for field, _, tensor in _protobuf_fields(attr):
        if field != 8:
            continue
        for tensor_field, wire, content in _protobuf_fields(tensor):
            if tensor_field == 8:
                return content.decode()
            if tensor_field == 6:
                return struct.unpack("<d", content[:8] if wire == 2 else struct.pack("<Q", content))[0]
    return None


def _protobuf_fields(data: bytes):
    """Yield ``(field number, wire type, payload)`` of a protobuf message: the wire format, no schema."""
    position = 0
    while position < len(data):
        key, position = _varint(data, position)
        field, wire = key >> 3, key & 7
        if wire == 0:
            value, position = _varint(data, position)
            yield field, wire, value
        elif wire == 1:
            yield field, wire, struct.unpack_from("<Q", data, position)[0]
            position += 8
        elif wire == 2:
            length, position = _varint(data, position)
            if position + length > len(data):
                raise ValueError("truncated field")
            yield field, wire, data[position : position + length]
            position += length
        elif wire == 5:
            yield field, wire, data[position : position + 4]
            position += 4
        else:
            raise ValueError(f"unsupported wire type {wire}")


def _varint(data: bytes, position: int) -> tuple[int, int]:
    result, shift = 0, 0
    while True:
        byte = data[position]
        position += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, position
        shift += 7
        if shift > 63:
            raise ValueError("varint too long")
