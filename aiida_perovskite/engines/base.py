"""The interface of a labeling engine and the registry of the available ones."""

from __future__ import annotations

import abc
from collections.abc import Iterable, Mapping
from typing import Any

from aiida import orm

from aiida_perovskite.analysis.frames import LabeledFrames

__all__ = ("LabelingEngine", "get_engine", "registered_engines")


class LabelingEngine(abc.ABC):
    """Adapter between the labeling WorkChain and one engine's AiiDA plugin."""

    name: str

    @property
    @abc.abstractmethod
    def process_class(self) -> type:
        """The process launched for one structure (usually the plugin's restart WorkChain)."""

    @abc.abstractmethod
    def check_elements(self, elements: Iterable[str]) -> str | None:
        """Error message if the engine cannot label these elements (no basis, no pseudopotential)."""

    @abc.abstractmethod
    def get_builder(
        self,
        code: orm.AbstractCode,
        structure: orm.StructureData,
        protocol: str | None,
        overrides: Mapping[str, Any] | None,
        options: Mapping[str, Any] | None,
    ):
        """The builder that labels ``structure``."""

    @abc.abstractmethod
    def label_outputs(self, node: orm.ProcessNode) -> dict[str, orm.Data]:
        """The outputs of a finished process that hold the labels (passed on to ``frame``)."""

    @abc.abstractmethod
    def frame(self, structure: orm.StructureData, **outputs: orm.Data) -> LabeledFrames:
        """One labeled frame from ``label_outputs`` of the process that labeled ``structure``."""


def registered_engines() -> dict[str, LabelingEngine]:
    from aiida_perovskite.engines.cp2k import Cp2kEngine

    engines = [Cp2kEngine()]
    return {engine.name: engine for engine in engines}


def get_engine(name: str) -> LabelingEngine:
    engines = registered_engines()
    if name not in engines:
        raise ValueError(f"unknown labeling engine {name!r}; choose one of {', '.join(engines)}")
    return engines[name]
