"""``select_candidates``: the trust-level decision of one iteration, recorded in the provenance graph."""

from __future__ import annotations

import numpy as np
from aiida import orm
from aiida.engine import calcfunction

from aiida_perovskite.analysis.fingerprints import radial_fingerprints
from aiida_perovskite.analysis.model_deviation import (
    ACCURATE,
    CANDIDATE,
    FAILED,
    TrustLevels,
    choose,
    classify,
    sanity_mask,
    selector,
    summarise,
)
from aiida_perovskite.data.training_set import TrainingSetData

__all__ = ("parse_trust", "select_candidates")


def parse_trust(trust: dict, system: str) -> TrustLevels:
    """Trust levels of ``system``: the global ``force_lo/force_hi`` (and virial) updated by ``per_system``."""
    levels = {key: value for key, value in trust.items() if key != "per_system"}
    levels.update(trust.get("per_system", {}).get(system, {}))
    return TrustLevels(**levels)


@calcfunction
def select_candidates(
    trust: orm.Dict,
    max_labels: orm.Int,
    mode: orm.Str,
    seed: orm.Int,
    skip_frames: orm.Int,
    sanity: orm.Dict,
    reference: TrainingSetData | None = None,
    **explorations: orm.Data,
) -> dict:
    """Classify every explored frame and pick the candidates to label, per system.

    ``explorations`` holds, for each exploration job ``<system>__<job>``: ``expected__<system>__<job>`` (Int,
    the frames the run should have sampled; those it did not reach count as failed), and, unless the job
    sampled nothing, its deviation table ``devi__<system>__<job>`` (ArrayData) and its frames
    ``traj__<system>__<job>`` (TrajectoryData), aligned row for row. ``reference``: the frames already labeled,
    which a mode that compares structures (``diverse``) picks away from.

    Outputs: ``candidates.<system>`` (TrajectoryData of the picked frames), ``indices.<system>`` (ArrayData
    with ``(job, frame)`` pairs of each class), ``statistics`` (Dict per system: explored, accurate,
    candidate, failed, not_sampled, filtered_out, selected).
    """
    jobs: dict[str, list[str]] = {}
    for key in explorations:
        kind, _, job = key.partition("__")
        if kind == "expected":
            jobs.setdefault(job.split("__")[0], []).append(job)

    statistics: dict[str, dict] = {}
    outputs: dict[str, orm.Data] = {}
    rng_seeds = np.random.SeedSequence(seed.value).spawn(len(jobs))
    strategy = selector(mode.value)
    for (system, system_jobs), system_seed in zip(sorted(jobs.items()), rng_seeds, strict=True):
        levels = parse_trust(trust.get_dict(), system)
        pairs, classes, deviations, frames = [], [], [], []
        not_sampled = 0
        for job_index, job in enumerate(sorted(system_jobs)):
            table = explorations.get(f"devi__{job}")
            expected = explorations[f"expected__{job}"].value
            force = table.get_array("max_devi_f") if table is not None else np.zeros(0)
            virial = table.get_array("max_devi_v") if table is not None else np.zeros(0)
            keep = np.arange(force.size) >= skip_frames.value
            job_classes = classify(force, levels, virial)
            not_sampled += max(expected - force.size, 0)
            pairs += [(job_index, frame) for frame in np.flatnonzero(keep)]
            classes.append(job_classes[keep])
            deviations.append(force[keep])
            frames.append((explorations.get(f"traj__{job}"), np.flatnonzero(keep)))
        classes_all = np.concatenate(classes) if classes else np.zeros(0, dtype=int)
        deviation_all = np.concatenate(deviations) if deviations else np.zeros(0)
        pair_array = np.array(pairs, dtype=int).reshape(-1, 2)

        cells, positions, symbols, references = _gather_frames(frames, pair_array.shape[0])
        pool_rows = strategy.pool(classes_all, deviation_all)
        passing = sanity_mask(
            cells[pool_rows],
            positions[pool_rows],
            sanity.get("min_distance"),
            sanity.get("max_skew"),
            sanity.get("max_volume_change"),
            references[pool_rows],
        )
        filtered_rows = pool_rows[~passing]
        eligible = pool_rows[passing]
        fingerprints = (
            _fingerprints(eligible, cells, positions, symbols, reference)
            if strategy.uses_fingerprints and eligible.size > max_labels.value
            else (None, None)
        )
        chosen = choose(eligible, deviation_all, max_labels.value, mode.value, _child_seed(system_seed), *fingerprints)

        counts = summarise(classes_all)
        statistics[system] = {
            "explored": int(classes_all.size) + not_sampled,
            "accurate": counts["accurate"],
            "candidate": counts["candidate"],
            "failed": counts["failed"] + not_sampled,
            "not_sampled": not_sampled,
            "filtered_out": int(filtered_rows.size),
            "selected": int(chosen.size),
            "accurate_fraction": counts["accurate"] / max(int(classes_all.size) + not_sampled, 1),
        }
        indices = orm.ArrayData()
        for name, rows in (
            ("accurate", np.flatnonzero(classes_all == ACCURATE)),
            ("candidate", np.flatnonzero(classes_all == CANDIDATE)),
            ("failed", np.flatnonzero(classes_all == FAILED)),
            ("filtered_out", filtered_rows),
            ("selected", chosen),
        ):
            indices.set_array(name, pair_array[rows])
        indices.set_array("jobs", np.array(sorted(system_jobs)))
        outputs[f"indices__{system}"] = indices
        if chosen.size:
            picked = orm.TrajectoryData()
            picked.set_trajectory(
                symbols=symbols,
                positions=positions[chosen],
                cells=cells[chosen],
                stepids=np.arange(chosen.size),
                pbc=(True, True, True),
            )
            picked.set_array("source", pair_array[chosen])
            outputs[f"candidates__{system}"] = picked
    outputs["statistics"] = orm.Dict(statistics)
    return _nest(outputs)


def _gather_frames(frames, count: int):
    """Cells and positions of every kept frame, in the order of the (job, frame) pairs, with the volume of the
    first frame of each frame's run (its starting cell)."""
    cells, positions, symbols, references = [], [], [], []
    for trajectory, kept in frames:
        if trajectory is None or kept.size == 0:
            continue
        symbols = trajectory.symbols
        all_cells = trajectory.get_cells()
        cells.append(all_cells[kept])
        positions.append(trajectory.get_positions()[kept])
        references.append(np.full(kept.size, abs(np.linalg.det(all_cells[0]))))
    if not cells:
        return np.zeros((count, 3, 3)), np.zeros((count, 0, 3)), symbols, np.ones(count)
    return np.concatenate(cells), np.concatenate(positions), symbols, np.concatenate(references)


def _fingerprints(rows, cells, positions, symbols, reference: TrainingSetData | None):
    """Fingerprints of the frames ``rows`` (zero rows elsewhere) and of the ``reference`` frames, in one space."""
    labeled = list(reference.iter_frames()) if reference is not None else []
    elements = sorted(set(symbols).union(*(frames.type_map for _, frames in labeled)))
    picked = radial_fingerprints(cells[rows], positions[rows], symbols, elements)
    fingerprints = np.zeros((len(cells), picked.shape[1]))
    fingerprints[rows] = picked
    known = [radial_fingerprints(frames.cells, frames.coords, frames.symbols(), elements) for _, frames in labeled]
    return fingerprints, (np.concatenate(known) if known else None)


def _child_seed(sequence: np.random.SeedSequence) -> int:
    return int(sequence.generate_state(1, dtype=np.uint32)[0])


def _nest(outputs: dict[str, orm.Data]) -> dict:
    """``candidates__X`` -> ``{"candidates": {"X": ...}}`` (calcfunction outputs may be nested namespaces)."""
    nested: dict = {}
    for key, value in outputs.items():
        namespace, _, name = key.partition("__")
        if name:
            nested.setdefault(namespace, {})[name] = value
        else:
            nested[key] = value
    return nested
