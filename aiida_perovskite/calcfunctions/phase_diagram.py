"""``summarise_phases``: lattice, angles, polar vector and phase per temperature, transitions and the figure."""

from __future__ import annotations

import pathlib
import tempfile

import numpy as np
from aiida import orm
from aiida.engine import calcfunction

from aiida_perovskite.analysis.cages import CageError
from aiida_perovskite.analysis.phases import UNCERTAIN, PhaseCriteria, classify_lattice, classify_polar, transitions
from aiida_perovskite.analysis.polarization import LocalAnalysis

__all__ = ("summarise_phase_map", "summarise_phases")

PHASE_COLOURS = {"R": "#f4cccc", "O": "#d9ead3", "T": "#cfe2f3", "C": "#eeeeee", "uncertain": "#ffffff"}


def _production(values: np.ndarray, steps: np.ndarray, start: int) -> np.ndarray:
    return values[steps >= start]


@calcfunction
def summarise_phases(settings: orm.Dict, **runs: orm.Data) -> dict:
    """One row per temperature from ``thermo__<i>`` (ArrayData) and ``trajectory__<i>`` (TrajectoryData) of the
    MD runs, whose temperatures are ``settings["temperatures"][i]``; ``settings``: ``repeats`` (cells along
    a, b, c), ``equilibration_steps`` (discarded), ``blocks``, optional ``a_elements``/``b_elements``."""
    values = settings.get_dict()
    repeats = np.array(values["repeats"], dtype=float)
    criteria = PhaseCriteria()
    rows = []
    for index, temperature in enumerate(values["temperatures"]):
        thermo, trajectory = runs[f"thermo__{index}"], runs[f"trajectory__{index}"]
        steps = thermo.get_array("step")
        start = steps[0] + values["equilibration_steps"]
        lx, ly, lz = (_production(thermo.get_array(k), steps, start) for k in ("lx", "ly", "lz"))
        xy, xz, yz = (_production(thermo.get_array(k), steps, start) for k in ("xy", "xz", "yz"))
        a_vectors = np.stack([lx, np.zeros_like(lx), np.zeros_like(lx)], axis=1)
        b_vectors = np.stack([xy, ly, np.zeros_like(ly)], axis=1)
        c_vectors = np.stack([xz, yz, lz], axis=1)
        lengths = np.stack([np.linalg.norm(v, axis=1) for v in (a_vectors, b_vectors, c_vectors)], axis=1) / repeats
        angles = np.degrees(
            np.stack([_angle(b_vectors, c_vectors), _angle(a_vectors, c_vectors), _angle(a_vectors, b_vectors)], axis=1)
        )
        lattice = classify_lattice(lengths, angles, criteria, values.get("blocks", 5))

        frame_steps = trajectory.get_stepids()
        chosen = np.flatnonzero(frame_steps >= start)
        cells, positions = trajectory.get_cells()[chosen], trajectory.get_positions()[chosen]
        row = {
            "temperature": temperature,
            "phase_from_lattice": lattice["label"],
            "lattice": lattice["lengths"],
            "lattice_error": lattice["length_errors"],
            "angles": lattice["angles"],
            "angles_error": lattice["angle_errors"],
        }
        try:
            analysis = LocalAnalysis.from_reference(
                cells[0], positions[0], trajectory.symbols, values.get("a_elements"), values.get("b_elements")
            )
        except CageError as exc:  # the model destroyed the perovskite: say so instead of guessing a phase
            row.update(phase=UNCERTAIN, note=f"no perovskite cages in the production frames: {exc}")
            rows.append(row)
            continue
        polar = np.array(
            [analysis.displacements(c, p)["B"].mean(axis=0) for c, p in zip(cells, positions, strict=True)]
        )
        polar_result = classify_polar(polar, criteria, min(values.get("blocks", 5), len(polar)))
        row.update(
            phase=polar_result["label"],
            polar_vector=polar_result["mean"],
            polar_vector_error=polar_result["error"],
            polar_magnitudes=polar_result["magnitudes"],
            polar_magnitude_errors=polar_result["magnitude_errors"],
        )
        rows.append(row)
    found = transitions([row["temperature"] for row in rows], [row["phase"] for row in rows])
    return {"table": orm.Dict({"rows": rows, "transitions": found}), "plot": _plot(rows)}


def _angle(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    cosine = (u * v).sum(axis=1) / (np.linalg.norm(u, axis=1) * np.linalg.norm(v, axis=1))
    return np.arccos(np.clip(cosine, -1, 1))


def _plot(rows: list[dict]) -> orm.SinglefileData:
    """Pseudocubic a, b, c and the cell angles against temperature, with the phases as background bands."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    temperatures = np.array([row["temperature"] for row in rows])
    figure, (top, bottom) = plt.subplots(2, 1, figsize=(6, 6), sharex=True, constrained_layout=True)
    edges = np.concatenate([[temperatures[0]], (temperatures[1:] + temperatures[:-1]) / 2, [temperatures[-1]]])
    for axes in (top, bottom):
        for row, low, high in zip(rows, edges[:-1], edges[1:], strict=True):
            axes.axvspan(low, high, color=PHASE_COLOURS[row["phase"]], zorder=0)
    for axis, name in enumerate("abc"):
        values = np.array([row["lattice"][axis] for row in rows])
        errors = np.array([row["lattice_error"][axis] for row in rows])
        top.errorbar(temperatures, values, yerr=errors, marker="o", label=name)
    for axis, name in enumerate(("alpha", "beta", "gamma")):
        values = np.array([row["angles"][axis] for row in rows])
        errors = np.array([row["angles_error"][axis] for row in rows])
        bottom.errorbar(temperatures, values, yerr=errors, marker="s", label=name)
    for row, low, high in zip(rows, edges[:-1], edges[1:], strict=True):
        label = "?" if row["phase"] == UNCERTAIN else row["phase"]  # a long word would overlap its neighbours
        top.text((low + high) / 2, 1.0, label, transform=top.get_xaxis_transform(), ha="center", va="bottom")
    top.set_ylabel("pseudocubic lattice constant (Å)")
    bottom.set_ylabel("cell angle (°)")
    bottom.set_xlabel("temperature (K);  ? = phase not resolved within the statistical errors")
    top.legend(fontsize="small")
    bottom.legend(fontsize="small")
    with tempfile.TemporaryDirectory() as tmp:
        path = pathlib.Path(tmp) / "phase_diagram.png"
        figure.savefig(path, dpi=120)
        plt.close(figure)
        return orm.SinglefileData(path)


@calcfunction
def summarise_phase_map(settings: orm.Dict, **tables: orm.Dict) -> dict:
    """The phase map of a composition scan: ``tables`` are the ``table`` outputs of the phase diagrams
    (``table_<label>``); ``settings``: ``labels`` (composition labels in axis order) and optional ``values``
    (a number per label for the composition axis, e.g. x in BaTi(1-x)Sn(x)O3) and ``axis`` (its name).

    Outputs ``map`` (Dict: labels, values, temperatures, phases[composition][temperature], transitions per
    composition) and ``plot`` (PNG: composition against temperature, one coloured cell per run).
    """
    values = settings.get_dict()
    labels = values["labels"]
    phases, transitions_by_label, temperatures = [], {}, None
    for label in labels:
        table = tables[f"table_{label}"].get_dict()
        rows = sorted(table["rows"], key=lambda row: row["temperature"])
        row_temperatures = [row["temperature"] for row in rows]
        if temperatures is not None and row_temperatures != temperatures:
            raise ValueError(f"composition {label} was run at {row_temperatures} K, the others at {temperatures} K")
        temperatures = row_temperatures
        phases.append([row["phase"] for row in rows])
        transitions_by_label[label] = table["transitions"]
    axis_values = values.get("values") or list(range(len(labels)))
    result = {
        "labels": labels,
        "values": axis_values,
        "temperatures": temperatures,
        "phases": phases,
        "transitions": transitions_by_label,
    }
    return {"map": orm.Dict(result), "plot": _plot_map(result, values.get("axis", "composition"))}


def _plot_map(result: dict, axis_name: str) -> orm.SinglefileData:
    """Composition on x, temperature on y; each (composition, temperature) run a cell coloured by its phase,
    with the transition estimates as black markers, as in the BCTS paper's phase diagram."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    xs, temperatures = np.asarray(result["values"], dtype=float), np.asarray(result["temperatures"], dtype=float)
    x_edges, t_edges = _edges(xs), _edges(temperatures)
    figure, axes = plt.subplots(figsize=(6, 4.5), constrained_layout=True)
    for i, column in enumerate(result["phases"]):
        for j, phase in enumerate(column):
            axes.fill_between(
                [x_edges[i], x_edges[i + 1]], t_edges[j], t_edges[j + 1], color=PHASE_COLOURS[phase], linewidth=0
            )
            axes.text(xs[i], temperatures[j], phase, ha="center", va="center", fontsize="small")
    for i, label in enumerate(result["labels"]):
        estimates = [found["estimate"] for found in result["transitions"][label]]
        axes.plot([xs[i]] * len(estimates), estimates, "k_", markersize=14)
    if not result.get("values") or list(xs) == list(range(len(xs))):
        axes.set_xticks(xs, result["labels"], rotation=30, ha="right")
    axes.set(xlabel=axis_name, ylabel="temperature (K)", xlim=(x_edges[0], x_edges[-1]), ylim=(t_edges[0], t_edges[-1]))
    handles = [Patch(color=colour, label=phase) for phase, colour in PHASE_COLOURS.items() if phase != "uncertain"]
    axes.legend(handles=handles, fontsize="small", loc="upper right")
    with tempfile.TemporaryDirectory() as tmp:
        path = pathlib.Path(tmp) / "phase_map.png"
        figure.savefig(path, dpi=120)
        plt.close(figure)
        return orm.SinglefileData(path)


def _edges(centres: np.ndarray) -> np.ndarray:
    """Cell edges halfway between sorted centres (one spacing beyond the ends; 1 around a single centre)."""
    if centres.size == 1:
        return np.array([centres[0] - 0.5, centres[0] + 0.5])
    middle = (centres[1:] + centres[:-1]) / 2
    return np.concatenate([[2 * centres[0] - middle[0]], middle, [2 * centres[-1] - middle[-1]]])
