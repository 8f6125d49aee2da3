"""Provenance-tracked steps that make and combine training sets."""

from __future__ import annotations

import numpy as np
from aiida import orm
from aiida.engine import calcfunction

from aiida_perovskite.analysis.frames import LabeledFrames, concatenate_frames
from aiida_perovskite.data import TrainingSetData
from aiida_perovskite.data.training_set import label_source_conflict

__all__ = ("assemble_training_set", "frames_to_structures", "merge_training_sets", "split_training_set")


@calcfunction
def frames_to_structures(
    trajectory: orm.TrajectoryData, indices: orm.List | None = None
) -> dict[str, orm.StructureData]:
    """One StructureData per frame (``frame_<index>``; all frames, or those of ``indices``), linked to the
    trajectory they come from."""
    chosen = indices.get_list() if indices is not None else range(trajectory.numsteps)
    return {f"frame_{index}": trajectory.get_step_structure(index) for index in chosen}


@calcfunction
def assemble_training_set(engine: orm.Str, label_source: orm.Dict, **labels: orm.Data) -> TrainingSetData:
    """The labeled frames as one TrainingSetData: ``structure__<name>`` with the outputs of the process that
    labeled it (``<output>__<name>``, as the engine's ``outcomes`` names them); frames with the same atoms in
    the same order form one system. ``label_source``: the engine and level of theory of the labels."""
    from aiida_perovskite.engines import get_engine

    adapter = get_engine(engine.value)
    per_frame: dict[str, dict[str, orm.Data]] = {}
    for key, node in labels.items():
        output, name = key.split("__", 1)
        per_frame.setdefault(name, {})[output] = node
    frames = []
    for name in sorted(per_frame):
        outputs = per_frame[name]
        structure = outputs.pop("structure")
        frames.append(adapter.frame(structure, **outputs))
    return TrainingSetData(
        _group_by_atoms(frames), type_map=_type_map_of(frames), label_sources=[label_source.get_dict()]
    )


@calcfunction
def merge_training_sets(
    allow_mixed_levels: orm.Bool | None = None, **training_sets: TrainingSetData
) -> TrainingSetData:
    """All frames of the inputs (in the order of their labels) as one TrainingSetData; systems with the same
    atoms are joined. Sets labeled at different levels of theory are refused unless ``allow_mixed_levels``."""
    sources = [source for data in training_sets.values() for source in data.label_sources]
    conflict = label_source_conflict(sources)
    if conflict and not (allow_mixed_levels is not None and allow_mixed_levels.value):
        raise ValueError(conflict)
    frames = [f for key in sorted(training_sets) for _, f in training_sets[key].iter_frames()]
    return TrainingSetData(_group_by_atoms(frames), type_map=_type_map_of(frames), label_sources=sources)


def _type_map_of(frames: list[LabeledFrames]) -> list[str]:
    type_map: list[str] = []
    for frame in frames:
        type_map.extend(element for element in frame.type_map if element not in type_map)
    return type_map


def _group_by_atoms(frames: list[LabeledFrames]) -> list[LabeledFrames]:
    groups: dict[tuple[str, ...], list[LabeledFrames]] = {}
    for frame in frames:
        groups.setdefault(tuple(frame.symbols()), []).append(frame)
    return [concatenate_frames(group) for group in groups.values()]


@calcfunction
def split_training_set(training_set: TrainingSetData, fraction: orm.Float, seed: orm.Int) -> dict:
    """Hold out a seeded random ``fraction`` of the frames (each frame independently; never all of them):
    outputs ``training`` (the rest) and, when any frame was held out, ``held_out`` (kept out of training, to
    measure the models on labels they never saw)."""
    frames = list(training_set.iter_frames())
    total = sum(block.nframes for _, block in frames)
    draws = np.random.default_rng(seed.value).random(total)
    held = draws < fraction.value
    if held.all():
        held[np.argmax(draws)] = False
    kept, out, start = [], [], 0
    for _, block in frames:
        mask = held[start : start + block.nframes]
        start += block.nframes
        if (~mask).any():
            kept.append(block.select(np.flatnonzero(~mask)))
        if mask.any():
            out.append(block.select(np.flatnonzero(mask)))
    type_map, sources = training_set.type_map, training_set.label_sources
    result = {"training": TrainingSetData(kept, type_map=type_map, label_sources=sources)}
    if out:
        result["held_out"] = TrainingSetData(out, type_map=type_map, label_sources=sources)
    return result
