"""``analyse_polarization``: the local-polarization analysis of a trajectory as one provenance-tracked step."""

from __future__ import annotations

import pathlib
import tempfile

import numpy as np
from aiida import orm
from aiida.engine import calcfunction

from aiida_perovskite.analysis.local_structure import (
    bond_lengths,
    displacement_histograms,
    normalised_lattice,
    oxygen_centred_rdf,
    stereographic,
)
from aiida_perovskite.analysis.plots import plot_distributions, plot_layer_map, plot_rdfs, plot_stereographic
from aiida_perovskite.analysis.polarization import LocalAnalysis, cell_phase_labels, element_statistics

__all__ = ("DEFAULT_SETTINGS", "analyse_polarization", "frame_indices")

DEFAULT_SETTINGS = {
    "threshold": 0.1,  # Å, below it a cell is non-polar
    "bins": [-0.5, 0.5, 101],  # Å: min, max, edges of the d_x/d_y/d_z histograms
    "rdf_r_max": 6.0,
    "layer": 0,  # index of the B-cation layer (along c) drawn in the map
}


def frame_indices(settings: dict, count: int) -> np.ndarray:
    frames = settings.get("frames", {})
    return np.arange(count)[slice(frames.get("start"), frames.get("stop"), frames.get("step"))]


@calcfunction
def analyse_polarization(trajectory: orm.TrajectoryData, settings: orm.Dict) -> dict:
    """Displacements of every cation against its oxygen cage in the chosen frames, their per-element
    statistics, per-cell phase labels and (with Born charges) unit-cell polarization, RDFs, bond lengths and
    the figures.

    ``settings``: ``a_elements``/``b_elements`` (else inferred), ``born_charges`` (a compound of the built-in
    table, a dict A/B/O_par/O_perp, or absent: displacements only), ``frames`` {start, stop, step},
    ``threshold`` (Å), ``bins``, ``rdf_r_max``, ``layer``, ``repeats`` (for normalised lattice constants).
    """
    values = {**DEFAULT_SETTINGS, **settings.get_dict()}
    symbols = np.array(trajectory.symbols)
    cells, positions = trajectory.get_cells(), trajectory.get_positions()
    chosen = frame_indices(values, len(cells))
    analysis = LocalAnalysis.from_reference(
        cells[chosen[0]], positions[chosen[0]], symbols, values.get("a_elements"), values.get("b_elements")
    )
    edges = np.linspace(*values["bins"][:2], int(values["bins"][2]))
    sums = {site: np.zeros((len(analysis.cages[site].cations), 3)) for site in "AB"}
    histograms: dict[str, np.ndarray] = {}
    polarization_sum = np.zeros((len(analysis.cages["B"].cations), 3))
    bonds = {key: 0.0 for key in ("short", "medium", "long", "mean")}
    rebuilds = 0
    born = values.get("born_charges")
    for index in chosen:
        cell, frame = cells[index], positions[index]
        result = analysis.frame(cell, frame, born)
        if result.implausible:
            analysis = LocalAnalysis.from_reference(cell, frame, symbols, analysis.sites["A"], analysis.sites["B"])
            rebuilds += 1
            result = analysis.frame(cell, frame, born)
        for site in "AB":
            sums[site] += result.displacements[site]
            elements = symbols[analysis.cages[site].cations]
            for element in dict.fromkeys(elements):
                counts = displacement_histograms(result.displacements[site][elements == element], edges)
                histograms[element] = histograms.get(element, 0) + counts
        if born is not None:
            polarization_sum += result.polarization
        for key, lengths in bond_lengths(result.b_oxygen_vectors).items():
            bonds[key] += float(lengths.mean())
    mean = {site: sums[site] / len(chosen) for site in "AB"}
    labels = cell_phase_labels(mean["B"], values["threshold"])
    statistics = {
        "frames": len(chosen),
        "neighbour_list_rebuilds": rebuilds,
        "sites": analysis.sites,
        "elements": element_statistics(mean, symbols, analysis.cages),
        "cell_phase_fractions": {label: float(np.mean(labels == label)) for label in ("T", "O", "R", "N")},
        "b_o_bond_lengths": {key: value / len(chosen) for key, value in bonds.items()},
    }
    per_cell = orm.ArrayData()
    per_cell.set_array("b_cation_indices", analysis.cages["B"].cations)
    per_cell.set_array("b_displacements", mean["B"])
    per_cell.set_array("a_displacements", mean["A"])
    per_cell.set_array("phase_labels", labels.astype("U1"))
    if "born_charges" in values:
        cell_p = polarization_sum / len(chosen)
        per_cell.set_array("polarization", cell_p)
        statistics["polarization_mean"] = cell_p.mean(axis=0).tolist()
        statistics["polarization_magnitude"] = float(np.linalg.norm(cell_p.mean(axis=0)))
    if "repeats" in values:
        statistics["lattice"] = normalised_lattice(cells[chosen].mean(axis=0), values["repeats"])

    distributions = orm.ArrayData()
    distributions.set_array("bin_edges", edges)
    for element, counts in histograms.items():
        distributions.set_array(f"counts_{element}", counts)

    last = chosen[-1]
    rdfs = {
        str(cation): oxygen_centred_rdf(cells[last], positions[last], symbols, cation, values["rdf_r_max"])
        for cation in analysis.sites["A"] + analysis.sites["B"]
    }
    rdf = orm.ArrayData()
    rdf.set_array("r", next(iter(rdfs.values()))[0])
    for cation, (_, g) in rdfs.items():
        rdf.set_array(f"g_O_{cation}", g)

    plots = _plots(analysis, cells[last], positions[last], mean, labels, histograms, edges, rdfs, values["layer"])
    return {
        "statistics": orm.Dict(statistics),
        "per_cell": per_cell,
        "distributions": distributions,
        "rdf": rdf,
        "plots": plots,
    }


def _plots(analysis, cell, positions, mean, labels, histograms, edges, rdfs, layer) -> dict[str, orm.SinglefileData]:
    b_positions = positions[analysis.cages["B"].cations]
    # layers by the reference heights, so that displaced cations stay in their layer
    heights = np.round(analysis.reference_fractional[analysis.cages["B"].cations, 2] % 1.0, 3)
    layers = np.unique(heights)
    in_layer = heights == layers[layer % len(layers)]
    elements = analysis.symbols[analysis.cages["B"].cations]
    directions = {str(e): stereographic(mean["B"][elements == e]) for e in dict.fromkeys(elements)}
    with tempfile.TemporaryDirectory() as tmp:
        root = pathlib.Path(tmp)
        files = {
            "layer_map": plot_layer_map(
                b_positions[in_layer],
                mean["B"][in_layer],
                labels[in_layer],
                root / "layer_map.png",
                f"B-cation layer {layer % len(layers)}",
            ),
            "distributions": plot_distributions(histograms, edges, root / "distributions.png"),
            "rdf": plot_rdfs(rdfs, root / "rdf.png"),
            "stereographic": plot_stereographic(directions, root / "stereographic.png"),
        }
        return {name: orm.SinglefileData(path) for name, path in files.items()}
