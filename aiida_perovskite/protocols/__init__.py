"""YAML protocols: named sets of default inputs, overridable by the caller (as in aiida-quantumespresso)."""

from __future__ import annotations

import copy
import difflib
import pathlib
from collections.abc import Mapping
from typing import Any

import yaml

__all__ = ("ProtocolMixin", "available_protocols", "load_protocol", "protocol_path", "recursive_merge")

PROTOCOL_DIR = pathlib.Path(__file__).parent
# A labeling engine keeps its protocol in its own folder: engines/<engine>/protocol.yaml.
ENGINES_DIR = PROTOCOL_DIR.parent / "engines"


def protocol_path(name: str) -> pathlib.Path:
    """The protocol file of a workflow (``protocols/<name>.yaml``) or of a labeling engine."""
    path = PROTOCOL_DIR / f"{name}.yaml"
    return path if path.is_file() else ENGINES_DIR / name / "protocol.yaml"


def _read(name: str) -> dict[str, Any]:
    path = protocol_path(name)
    if not path.is_file():
        raise ValueError(f"no protocol file for {name!r} (protocols/{name}.yaml or engines/{name}/protocol.yaml)")
    with path.open() as handle:
        return yaml.safe_load(handle)


def available_protocols(name: str) -> dict[str, str]:
    """Protocol names of ``<name>.yaml`` with their descriptions."""
    return {key: value.get("description", "") for key, value in _read(name)["protocols"].items()}


def recursive_merge(base: Mapping[str, Any], update: Mapping[str, Any] | None) -> dict[str, Any]:
    """``base`` updated by ``update``, merging nested mappings key by key (lists and values are replaced)."""
    merged = copy.deepcopy(dict(base))
    for key, value in (update or {}).items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = recursive_merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def load_protocol(name: str, protocol: str | None = None, overrides: Mapping[str, Any] | None = None) -> dict:
    """Default inputs of ``<name>.yaml`` merged with ``protocol`` and then with ``overrides``, whose top-level keys
    must be keys of the protocol file (a misspelt override would otherwise be ignored silently)."""
    data = _read(name)
    protocol = protocol or data["default_protocol"]
    if protocol not in data["protocols"]:
        raise ValueError(f"unknown protocol {protocol!r} for {name}; choose one of {', '.join(data['protocols'])}")
    chosen = {key: value for key, value in data["protocols"][protocol].items() if key != "description"}
    known = set(data["default_inputs"]).union(*(set(p) - {"description"} for p in data["protocols"].values()))
    for key in sorted(set(overrides or {}) - known):
        close = difflib.get_close_matches(str(key), sorted(known), n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        raise ValueError(f"unknown override key {key!r} for {name}: {hint}the keys are {', '.join(sorted(known))}")
    return recursive_merge(recursive_merge(data["default_inputs"], chosen), overrides)


class ProtocolMixin:
    """aiida-quantumespresso's protocol interface for a WorkChain whose protocols are ``<_protocol_file>.yaml``:
    its ``get_builder_from_protocol`` reads its inputs with ``get_protocol_inputs``."""

    _protocol_file: str

    @classmethod
    def get_protocol_filepath(cls) -> pathlib.Path:
        return protocol_path(cls._protocol_file)

    @classmethod
    def get_default_protocol(cls) -> str:
        return _read(cls._protocol_file)["default_protocol"]

    @classmethod
    def get_available_protocols(cls) -> dict[str, str]:
        return available_protocols(cls._protocol_file)

    @classmethod
    def get_protocol_inputs(cls, protocol: str | None = None, overrides: Mapping[str, Any] | None = None) -> dict:
        """The protocol's inputs updated by ``overrides`` (unknown override keys are refused)."""
        return load_protocol(cls._protocol_file, protocol, overrides)
