"""The interface of a labeling engine and the registry of the available ones."""

from __future__ import annotations

import abc
import importlib.metadata
from collections.abc import Iterable, Mapping
from typing import Any

from aiida import orm

from aiida_perovskite.analysis.frames import LabeledFrames

__all__ = ("LabelingEngine", "database_loaded", "get_engine", "kpoints_from_spacing", "registered_engines")


class LabelingEngine(abc.ABC):
    """Adapter between the labeling WorkChain and one engine's AiiDA plugin."""

    name: str
    calc_job_plugin: str  # entry point of the plugin's CalcJob, which the engine's code must run
    distribution: str  # the pip distribution of the plugin
    extra: str | None = None  # the optional extra of aiida-perovskite that installs it

    def missing_plugin(self) -> str | None:
        """Error message if the engine's AiiDA plugin is not installed."""
        try:
            importlib.metadata.distribution(self.distribution)
        except importlib.metadata.PackageNotFoundError:
            return (
                f"engine {self.name!r} needs the {self.distribution} plugin: "
                f"pip install 'aiida-perovskite[{self.extra}]'"
            )
        return None

    def check_code(self, code: orm.AbstractCode) -> str | None:
        """Error message if ``code`` is set up for another plugin than this engine's."""
        plugin = code.default_calc_job_plugin
        if plugin and plugin != self.calc_job_plugin:
            return (
                f"code {code.full_label!r} runs the {plugin!r} plugin, but engine {self.name!r} needs a code "
                f"for {self.calc_job_plugin!r}"
            )
        return None

    @property
    @abc.abstractmethod
    def process_class(self) -> type:
        """The process launched for one structure (usually the plugin's restart WorkChain)."""

    @abc.abstractmethod
    def check_elements(
        self,
        elements: Iterable[str],
        protocol: str | None = None,
        overrides: Mapping[str, Any] | None = None,
    ) -> str | None:
        """Error message if the engine, with this protocol and overrides, cannot label these elements (no basis
        set, no pseudopotential)."""

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


def kpoints_from_spacing(cell, spacing: float) -> orm.KpointsData:
    """The Gamma-centred mesh of ``kpoint_mesh`` (1/Å, 2π included) as the plugins' KpointsData input."""
    from aiida_perovskite.engines.kpoints import kpoint_mesh

    kpoints = orm.KpointsData()
    kpoints.set_kpoints_mesh(kpoint_mesh(cell, spacing))
    return kpoints


def database_loaded() -> bool:
    """Whether an AiiDA profile is loaded, so that families of potentials can be looked up."""
    from aiida.manage import get_manager

    return get_manager().get_profile() is not None


def registered_engines() -> dict[str, LabelingEngine]:
    from aiida_perovskite.engines.abacus import AbacusEngine
    from aiida_perovskite.engines.cp2k import Cp2kEngine
    from aiida_perovskite.engines.quantumespresso import QuantumEspressoEngine
    from aiida_perovskite.engines.vasp import VaspEngine

    engines = [Cp2kEngine(), VaspEngine(), AbacusEngine(), QuantumEspressoEngine()]
    return {engine.name: engine for engine in engines}


def get_engine(name: str) -> LabelingEngine:
    engines = registered_engines()
    if name not in engines:
        raise ValueError(f"unknown labeling engine {name!r}; choose one of {', '.join(engines)}")
    return engines[name]
