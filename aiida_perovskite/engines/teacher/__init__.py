"""The teacher labeling engine: a pretrained potential labels batches of frames in one job each
(distillation, as DPGEN2's ``fp.type: deepmd``), with the teacher's identity as an input node of every job.

Client side, :func:`teacher_inputs` turns a request such as ``{"kind": "sevenn", "model": "7net-mf-0",
"modal": "R2SCAN"}`` into the ``engine_inputs`` of the LabelWorkChain: the identity Dict (and, for a DeePMD
teacher, its model node). A teacher that is not on disk or would need a download is refused there.
"""

from __future__ import annotations

import pathlib
import tempfile
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
from aiida import orm

from aiida_perovskite.analysis.frames import LabeledFrames
from aiida_perovskite.engines.base import LabelingEngine
from aiida_perovskite.protocols import load_protocol

__all__ = ("TeacherEngine", "teacher_inputs")

PROTOCOL = "teacher"


def teacher_inputs(
    request: Mapping[str, Any] | None = None, protocol: str | None = None, model: Any = None
) -> dict[str, orm.Data]:
    """The engine inputs of the teacher ``request`` (default: the protocol's teacher).

    ``model`` (deepmd teachers): a DeepPotentialData, its PK, or the path of a frozen ``.pth``/``.pb`` file;
    ``request["model"]`` may give the same. Raises :class:`aiida_perovskite.teachers.TeacherError`.
    """
    from aiida_perovskite.data import DeepPotentialData
    from aiida_perovskite.teachers import TeacherError, describe_teacher

    request = dict(request or load_protocol(PROTOCOL, protocol)["teacher"])
    if request.get("kind") != "deepmd":
        return {"teacher": orm.Dict(describe_teacher(request))}
    source = model if model is not None else request.get("model")
    if isinstance(source, DeepPotentialData):
        node = source
    elif isinstance(source, int):
        node = orm.load_node(source)
        if not isinstance(node, DeepPotentialData):
            raise TeacherError(f"node {source} is a {type(node).__name__}, not a DeepPotentialData")
    elif source is not None and pathlib.Path(str(source)).is_file():
        node = DeepPotentialData(pathlib.Path(str(source)))
    else:
        raise TeacherError(
            f"a deepmd teacher needs model: a frozen model file (.pth/.pb), a DeepPotentialData or its PK; got "
            f"{source!r}",
            reason="checkpoint_missing",
        )
    with tempfile.TemporaryDirectory() as tmp:
        identity = describe_teacher({**request, "model": node.filename}, node.write(tmp))
    return {"teacher": orm.Dict(identity), "model": node}


def _model_path(model: Any, base_dir: pathlib.Path) -> pathlib.Path | None:
    """A deepmd teacher's model file named in a campaign file (relative to it)."""
    return None if model is None else (base_dir / str(model)).resolve()


class TeacherEngine(LabelingEngine):
    name = "teacher"
    calc_job_plugin = "perovskite.teacher.label"
    distribution = "aiida-perovskite"

    section_keys = ("teacher",)

    def check_section(self, section, base_dir):
        from aiida_perovskite.teachers import TeacherError, describe_teacher

        request = dict(section.get("teacher") or load_protocol(PROTOCOL, section.get("protocol"))["teacher"])
        model = request.get("model")
        try:
            if request.get("kind") != "deepmd":
                describe_teacher(request)
            elif not isinstance(model, int):  # a node PK is looked up when the campaign is built
                describe_teacher(request, _model_path(model, base_dir))
        except TeacherError as exc:
            return "labeling.teacher", str(exc)
        return None

    def engine_inputs_from_section(self, section, base_dir):
        request = dict(section.get("teacher") or load_protocol(PROTOCOL, section.get("protocol"))["teacher"])
        model = request.get("model")
        if request.get("kind") == "deepmd" and not isinstance(model, int):
            model = _model_path(model, base_dir)
        return teacher_inputs(request, section.get("protocol"), model=model)

    @property
    def process_class(self):
        from aiida_perovskite.calculations.teacher_label import TeacherLabelCalculation

        return TeacherLabelCalculation

    def check_engine_inputs(self, engine_inputs: Mapping[str, orm.Data]) -> str | None:
        from aiida_perovskite.calculations.teacher_label import validate_teacher

        unknown = sorted(set(engine_inputs) - {"teacher", "model"})
        if unknown:
            return f"the teacher engine takes engine_inputs teacher and model, not {unknown}"
        if not isinstance(engine_inputs.get("teacher"), orm.Dict):
            return (
                "the teacher engine needs engine_inputs.teacher, the teacher's identity: "
                "aiida_perovskite.engines.teacher.teacher_inputs({'kind': 'sevenn', 'model': '7net-mf-0', ...})"
            )
        return validate_teacher(engine_inputs["teacher"], None)

    def check_elements(self, elements: Iterable[str], protocol=None, overrides=None, engine_inputs=None) -> str | None:
        load_protocol(PROTOCOL, protocol, overrides)  # an unknown protocol is reported here
        teacher = (engine_inputs or {}).get("teacher")
        known = set(teacher["elements"]) if teacher is not None else set()
        unknown = sorted(set(elements) - known)
        if teacher is not None and known and unknown:
            return f"the teacher {teacher['model']} was not trained on {', '.join(unknown)}"
        return None

    def batch_size(self, protocol=None, overrides=None) -> int:
        return int(load_protocol(PROTOCOL, protocol, overrides)["batch_size"])

    def label_source(self, protocol=None, overrides=None, engine_inputs=None) -> dict[str, str]:
        identity = engine_inputs["teacher"].get_dict()
        modal = identity.get("modal") or identity.get("head")
        model = identity["model"] if identity.get("shipped", True) else identity["file"]
        details = f"{identity['kind']} {model}" + (f" [{modal}]" if modal else "") + f" sha256:{identity['sha256']}"
        return {"engine": self.name, "method": identity["level_of_theory"], "details": details}

    def get_builder(self, code, structure, protocol=None, overrides=None, options=None):
        raise TypeError("the teacher engine labels batches: use get_batch_builder")

    def get_batch_builder(self, code, structures, protocol=None, overrides=None, options=None, engine_inputs=None):
        inputs = load_protocol(PROTOCOL, protocol, overrides)
        builder = self.process_class.get_builder()
        builder.code = code
        builder.structures = dict(structures)
        builder.teacher = engine_inputs["teacher"]
        if "model" in engine_inputs:
            builder.model = engine_inputs["model"]
        builder.settings = orm.Dict(
            {key: inputs[key] for key in ("checks", "device", "threads", "checkpoint_seconds") if key in inputs}
        )
        builder.metadata.options = {**inputs["metadata"]["options"], **(options or {})}
        return builder

    def outcomes(self, node: orm.ProcessNode, names: list[str]):
        calculation = self.process_class
        partial = node.exit_status in (0, calculation.exit_codes.ERROR_FRAMES_FAILED.status)
        if not partial:
            return super().outcomes(node, names)
        labeled = set(node.outputs.labels.get_array("names")) if "labels" in node.outputs else set()
        failures = node.outputs.failures.get_dict()
        status = calculation.exit_codes.ERROR_FRAMES_FAILED.status
        return (
            {name: {"labels": node.outputs.labels} for name in names if name in labeled},
            {name: {"exit_status": status, "message": failures[name]} for name in names if name in failures},
        )

    def restart_builder(self, node: orm.ProcessNode, names: list[str]):
        builder = node.get_builder_restart()
        builder.structures = {name: node.inputs.structures[name] for name in names}
        return builder

    def frame(self, structure: orm.StructureData, **outputs: orm.Data) -> LabeledFrames:
        arrays = _label_arrays(outputs["labels"])
        row = int(np.flatnonzero(arrays["uuids"] == structure.uuid)[0]) if "uuids" in arrays else 0
        offsets = (
            np.concatenate([[0], np.cumsum(arrays["natoms"])]) if "natoms" in arrays else [0, len(structure.sites)]
        )
        forces = arrays["forces"][offsets[row] : offsets[row + 1]]
        return LabeledFrames.single(structure.get_ase(), arrays["energies"][row], forces, arrays["virials"][row])


_LABEL_ARRAYS: dict[str, dict[str, np.ndarray]] = {}  # of the last labels nodes read, by uuid


def _label_arrays(labels: orm.ArrayData) -> dict[str, np.ndarray]:
    """The arrays of one labels node (stored, so immutable), read once for all the frames of its batch. Each
    array is a repository read (~10-20 ms in a large repository); a one-frame batch needs no frame lookup, so
    it reads 3 arrays instead of 5 (assembling 1,000 one-frame jobs took 108 s, nearly all of it reads)."""
    if labels.uuid not in _LABEL_ARRAYS:
        single = labels.get_shape("energies")[0] == 1
        names = ("energies", "forces", "virials") if single else ("uuids", "natoms", "energies", "forces", "virials")
        if len(_LABEL_ARRAYS) >= 8:
            _LABEL_ARRAYS.pop(next(iter(_LABEL_ARRAYS)))
        _LABEL_ARRAYS[labels.uuid] = {name: labels.get_array(name) for name in names}
    return _LABEL_ARRAYS[labels.uuid]
