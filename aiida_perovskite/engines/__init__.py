"""Labeling engines: one adapter per DFT (or teacher) code, all with the same small interface.

An adapter builds the process that labels one structure (from a protocol and user overrides), says which
outputs of that process carry the labels, and turns those outputs into one labeled frame (eV, eV/Å, eV).
"""

from __future__ import annotations

from aiida_perovskite.engines.base import LabelingEngine, get_engine, registered_engines

__all__ = ("LabelingEngine", "get_engine", "registered_engines")
