"""Figures of the local-polarization analysis (matplotlib, written as PNG files)."""

from __future__ import annotations

import pathlib
from collections.abc import Mapping

import numpy as np

__all__ = ("plot_bond_lengths", "plot_distributions", "plot_layer_map", "plot_rdfs", "plot_stereographic")

PHASE_COLOURS = {"T": "tab:blue", "O": "tab:green", "R": "tab:red", "N": "lightgrey"}


def _figure(width: float = 5.0, height: float = 4.0, columns: int = 1, sharey: bool | None = None):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sharey = columns > 1 if sharey is None else sharey
    return plt.subplots(1, columns, figsize=(width, height), sharey=sharey, constrained_layout=True)


def _save(figure, path: str | pathlib.Path) -> pathlib.Path:
    import matplotlib.pyplot as plt

    path = pathlib.Path(path)
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return path


def plot_layer_map(xy: np.ndarray, vectors: np.ndarray, labels: np.ndarray, path, title: str = "") -> pathlib.Path:
    """Arrows of the in-plane displacement of each cation of one atomic layer, coloured by cell phase
    (T, O, R; non-polar cells as grey dots), as in the BCTS paper's Fig. 4."""
    figure, axes = _figure(5.5, 5.0)
    for label, colour in PHASE_COLOURS.items():
        mask = labels == label
        if not mask.any():
            continue
        if label == "N":
            axes.scatter(xy[mask, 0], xy[mask, 1], s=12, color=colour, label="non-polar")
        else:
            axes.quiver(
                xy[mask, 0],
                xy[mask, 1],
                vectors[mask, 0],
                vectors[mask, 1],
                color=colour,
                angles="xy",
                scale_units="xy",
                scale=0.1,
                width=0.004,
                label=label,
            )
    axes.set_aspect("equal")
    axes.set_xlabel("x (Å)")
    axes.set_ylabel("y (Å)")
    axes.set_title(title or "local displacements (arrow 0.1 Å = 1 Å)")
    axes.legend(loc="upper right", fontsize="small")
    return _save(figure, path)


def plot_distributions(histograms: Mapping[str, np.ndarray], bins: np.ndarray, path) -> pathlib.Path:
    """d_x, d_y, d_z distributions per element (histograms from ``displacement_histograms``)."""
    figure, axes = _figure(11, 3.5, columns=3)
    centres = (bins[1:] + bins[:-1]) / 2
    for element, counts in histograms.items():
        for axis, ax in enumerate(axes):
            total = counts[axis].sum()
            ax.plot(centres, counts[axis] / (total * np.diff(bins)) if total else counts[axis], label=element)
    for axis, ax in zip("xyz", axes, strict=True):
        ax.set_xlabel(f"d_{axis} (Å)")
    axes[0].set_ylabel("probability density (1/Å)")
    axes[-1].legend(fontsize="small")
    return _save(figure, path)


def plot_rdfs(rdfs: Mapping[str, tuple[np.ndarray, np.ndarray]], path) -> pathlib.Path:
    """O-centred radial distribution functions, one curve per cation."""
    figure, axes = _figure()
    for cation, (r, g) in rdfs.items():
        axes.plot(r, g, label=f"O-{cation}")
    axes.set_xlabel("r (Å)")
    axes.set_ylabel("g(r)")
    axes.legend(fontsize="small")
    return _save(figure, path)


def plot_bond_lengths(compositions: list[str], bonds: Mapping[str, list[float]], path) -> pathlib.Path:
    """Short, medium, long and mean cation-O bond lengths against composition."""
    figure, axes = _figure()
    positions = np.arange(len(compositions))
    for name, values in bonds.items():
        axes.plot(positions, values, marker="o", label=name)
    axes.set_xticks(positions, compositions, rotation=30, ha="right", fontsize="small")
    axes.set_ylabel("bond length (Å)")
    axes.legend(fontsize="small")
    return _save(figure, path)


def plot_stereographic(projections: Mapping[str, np.ndarray], path) -> pathlib.Path:
    """Stereographic projections of displacement directions (from ``stereographic``), one colour per element."""
    figure, axes = _figure(5.0, 5.0)
    from matplotlib.patches import Circle

    axes.add_patch(Circle((0, 0), 1, fill=False))
    for element, points in projections.items():
        axes.scatter(points[:, 0], points[:, 1], s=4, alpha=0.5, label=element)
    # the pseudocubic poles, where T (<100>), O (<110>) and R (<111>) displacements land
    corner = 1 / (np.sqrt(3) + 1)
    poles = {
        "[100]": (1, 0),
        "[010]": (0, 1),
        "[001]": (0, 0),
        "[110]": (np.sqrt(0.5), np.sqrt(0.5)),
        "[111]": (corner, corner),
    }
    for name, (x, y) in poles.items():
        axes.plot(x, y, "+", color="black", zorder=3)
        axes.annotate(
            name,
            (x, y),
            xytext=(4, 4),
            textcoords="offset points",
            fontsize="x-small",
            zorder=3,
            bbox={"facecolor": "white", "edgecolor": "none", "alpha": 0.7, "pad": 1},
        )
    axes.set_xlim(-1.1, 1.1)
    axes.set_ylim(-1.1, 1.1)
    axes.set_aspect("equal")
    axes.set_axis_off()
    axes.set_title("displacement directions (stereographic, onto (001))", fontsize="medium")
    axes.legend(fontsize="small", loc="upper left")
    return _save(figure, path)
