"""The CP2K labeling engine (runnable here; the default): aiida-cp2k + our restart WorkChain."""

from __future__ import annotations

import pathlib
import tempfile
from collections.abc import Iterable

from aiida import orm

from aiida_perovskite.analysis.frames import LabeledFrames
from aiida_perovskite.engines.base import LabelingEngine
from aiida_perovskite.engines.cp2k.inputs import BasisLookupError, basis_and_potential, read_labeled_frame
from aiida_perovskite.protocols import load_protocol

__all__ = ("Cp2kEngine",)

OUTPUT_FILE = "aiida.out"


class Cp2kEngine(LabelingEngine):
    name = "cp2k"
    calc_job_plugin = "cp2k"
    distribution = "aiida-cp2k"

    @property
    def process_class(self):
        from aiida_perovskite.engines.cp2k.workchain import Cp2kLabelBaseWorkChain

        return Cp2kLabelBaseWorkChain

    def check_elements(self, elements: Iterable[str], protocol=None, overrides=None, engine_inputs=None) -> str | None:
        problems = []
        for element in sorted(set(elements)):
            try:
                basis_and_potential(element)
            except BasisLookupError as exc:
                problems.append(str(exc))
        return "; ".join(problems) or None

    def get_builder(self, code, structure, protocol=None, overrides=None, options=None):
        overrides = dict(overrides or {})
        if options:
            overrides.setdefault("metadata", {}).setdefault("options", {}).update(options)
        return self.process_class.get_builder_from_protocol(code, structure, protocol, overrides)

    def label_source(self, protocol=None, overrides=None, engine_inputs=None) -> dict[str, str]:
        settings = load_protocol("cp2k", protocol, overrides)["settings"]
        return {"engine": self.name, "method": settings["functional"], "details": "GTH-PBE, DZVP-MOLOPT-SR-GTH"}

    def label_outputs(self, node: orm.ProcessNode) -> dict[str, orm.Data]:
        return {"retrieved": node.outputs.retrieved}

    def frame(self, structure: orm.StructureData, **outputs: orm.Data) -> LabeledFrames:
        retrieved = outputs["retrieved"]
        with tempfile.TemporaryDirectory() as tmp:
            path = pathlib.Path(tmp) / OUTPUT_FILE
            path.write_bytes(retrieved.base.repository.get_object_content(OUTPUT_FILE, mode="rb"))
            return read_labeled_frame(path, structure.get_ase())
