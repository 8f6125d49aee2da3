"""The interface of a labeling engine and the registry of the available ones.

A labeling process labels a *batch* of structures: one for a DFT engine (one job per frame), many for a
teacher (one job labels a batch). The LabelWorkChain only talks to this interface: which process to launch
for a batch, which of its frames were labeled (and with which outputs), which failed and why, and where the
labels come from (engine and level of theory), so that sets of different levels are never merged silently.
"""

from __future__ import annotations

import abc
import functools
import importlib.metadata
import pathlib
from collections.abc import Iterable, Mapping
from typing import Any

from aiida import orm

from aiida_perovskite.analysis.frames import LabeledFrames

__all__ = (
    "ENTRY_POINT_GROUP",
    "FrameFailure",
    "LabelingEngine",
    "database_loaded",
    "get_engine",
    "kpoints_from_spacing",
    "registered_engines",
)

ENTRY_POINT_GROUP = "perovskite.engines"

FrameFailure = dict  # {"exit_status": int, "message": str}


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
        engine_inputs: Mapping[str, orm.Data] | None = None,
    ) -> str | None:
        """Error message if the engine, with this protocol and overrides, cannot label these elements (no basis
        set, no pseudopotential, an element the teacher does not know)."""

    def check_engine_inputs(self, engine_inputs: Mapping[str, orm.Data]) -> str | None:
        """Error message if the engine-specific input nodes are wrong (an engine without any refuses all)."""
        if engine_inputs:
            return f"engine {self.name!r} takes no engine_inputs, got {sorted(engine_inputs)}"
        return None

    #: keys of a campaign file's ``labeling`` section that only this engine takes
    section_keys: tuple[str, ...] = ()

    def check_section(self, section: Mapping[str, Any], base_dir: pathlib.Path) -> tuple[str, str] | None:
        """(key, message) of a problem with this engine's own keys of a campaign's labeling section, checked
        without a database."""
        return None

    def engine_inputs_from_section(self, section: Mapping[str, Any], base_dir: pathlib.Path) -> dict[str, orm.Data]:
        """The ``engine_inputs`` nodes a campaign's labeling section asks for (none for DFT engines)."""
        return {}

    def batch_size(self, protocol: str | None = None, overrides: Mapping[str, Any] | None = None) -> int:
        """Structures labeled by one process (DFT: 1)."""
        return 1

    @abc.abstractmethod
    def label_source(
        self,
        protocol: str | None = None,
        overrides: Mapping[str, Any] | None = None,
        engine_inputs: Mapping[str, orm.Data] | None = None,
    ) -> dict[str, str]:
        """Where the labels come from: ``engine``, ``method`` (functional or level of theory) and ``details``
        (pseudopotentials, basis, teacher checkpoint); labels from different sources are not comparable."""

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

    def get_batch_builder(
        self,
        code: orm.AbstractCode,
        structures: Mapping[str, orm.StructureData],
        protocol: str | None,
        overrides: Mapping[str, Any] | None,
        options: Mapping[str, Any] | None,
        engine_inputs: Mapping[str, orm.Data] | None = None,
    ):
        """The builder of the process that labels ``structures`` (at most ``batch_size`` of them)."""
        (structure,) = structures.values()
        return self.get_builder(code, structure, protocol, overrides, options)

    def outcomes(
        self, node: orm.ProcessNode, names: list[str]
    ) -> tuple[dict[str, dict[str, orm.Data]], dict[str, FrameFailure]]:
        """For the finished process ``node`` that labeled ``names``: the label outputs of each labeled frame
        (passed on to ``frame``) and the failure of each other frame."""
        if node.is_finished_ok:
            return {name: self.label_outputs(node) for name in names}, {}
        message = node.exit_message or ("excepted" if node.is_excepted else "killed" if node.is_killed else "")
        return {}, {name: {"exit_status": node.exit_status, "message": message} for name in names}

    def restart_builder(self, node: orm.ProcessNode, names: list[str]):
        """A builder that labels again the frames ``names`` of the failed process ``node``."""
        return node.get_builder_restart()

    def label_outputs(self, node: orm.ProcessNode) -> dict[str, orm.Data]:
        """The outputs of a finished one-structure process that hold the labels (passed on to ``frame``)."""
        raise NotImplementedError

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


@functools.cache
def registered_engines() -> dict[str, LabelingEngine]:
    """The engines of the ``perovskite.engines`` entry points, by name (a package adds one there)."""
    engines = [entry.load()() for entry in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP)]
    order = {"cp2k": 0, "vasp": 1, "abacus": 2, "qe": 3, "teacher": 4}  # the order users read them in
    return {engine.name: engine for engine in sorted(engines, key=lambda engine: order.get(engine.name, 99))}


def get_engine(name: str) -> LabelingEngine:
    engines = registered_engines()
    if name not in engines:
        raise ValueError(f"unknown labeling engine {name!r}; choose one of {', '.join(engines)}")
    return engines[name]
