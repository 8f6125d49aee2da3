"""The campaign report: learning curves, deviation histograms with the trust levels, accurate / candidate /
failed fractions per iteration, and a markdown summary whose numbers come from the same history rows as
``aiida-perovskite campaign status``."""

from __future__ import annotations

import json
import math
import pathlib

import numpy as np
from aiida import orm

from aiida_perovskite.analysis.plots import _figure, _save
from aiida_perovskite.campaign.queries import (
    deviations_by_iteration,
    iteration_records,
    learning_curves_by_iteration,
    status_rows,
    test_errors,
)
from aiida_perovskite.loop.schedule import labels_behind

__all__ = ("STATUS_COLUMNS", "format_table", "write_report")

STATUS_COLUMNS = (
    "iteration",
    "system",
    "stage",
    "frames",
    "labels",
    "explored",
    "accurate",
    "candidate",
    "failed",
    "selected",
    "labeled",
    "failed_labels",
    "accurate_fraction",
    "rmse_f",
    "rmse_e_test",
    "rmse_f_test",
)


def _cell(value) -> str:
    if isinstance(value, float):
        return "nan" if math.isnan(value) else f"{value:.3f}"
    return str(value)


def format_table(rows: list[dict]) -> list[list[str]]:
    """The status rows as text cells in STATUS_COLUMNS order."""
    return [[_cell(row[column]) for column in STATUS_COLUMNS] for row in rows]


def plot_learning_curves(curves: dict[int, dict[str, orm.ArrayData]], path: pathlib.Path) -> pathlib.Path:
    """Training force RMSE against step, one line per model, one colour per iteration."""
    figure, axes = _figure(6.0, 4.0)
    colours = _colours(len(curves))
    for colour, (iteration, models) in zip(colours, sorted(curves.items()), strict=True):
        for index, (_, curve) in enumerate(sorted(models.items())):
            names = curve.get_arraynames()
            column = "rmse_f_trn" if "rmse_f_trn" in names else next(n for n in names if n.startswith("rmse"))
            axes.plot(
                curve.get_array("step"),
                curve.get_array(column),
                color=colour,
                alpha=0.8,
                label=f"iteration {iteration}" if index == 0 else None,
            )
    axes.set(xlabel="training step", ylabel="force RMSE, training batch (eV/Å)", yscale="log")
    axes.legend(fontsize="small")
    return _save(figure, path)


def plot_deviation_histograms(
    deviations: dict[int, dict[str, np.ndarray]], trust: dict, path: pathlib.Path
) -> pathlib.Path:
    """Histogram of max_devi_f per iteration (all systems) with the trust levels drawn."""
    iterations = sorted(deviations)
    figure, axes = _figure(6.0, 4.0)
    finite = [values[np.isfinite(values)] for it in iterations for values in deviations[it].values()]
    # logarithmic: the first iteration's deviations reach tens of eV/Å, the converged ones sit near the trust levels
    upper = max([trust["force_hi"] * 2, *[float(v.max()) for v in finite if v.size]])
    lower = min([trust["force_lo"] / 4, *[float(v[v > 0].min()) for v in finite if (v > 0).any()]])
    bins = np.geomspace(lower, upper, 50)
    for colour, iteration in zip(_colours(len(iterations)), iterations, strict=True):
        values = np.concatenate(list(deviations[iteration].values()))
        axes.hist(
            np.clip(values[np.isfinite(values)], lower, upper),
            bins=bins,
            histtype="step",
            color=colour,
            label=f"iteration {iteration}",
        )
    for level, style in (("force_lo", "--"), ("force_hi", ":")):
        axes.axvline(trust[level], color="black", linestyle=style, label=f"{level} = {trust[level]:g} eV/Å")
    axes.set(xlabel="max force deviation (eV/Å)", ylabel="frames", xscale="log")
    axes.legend(fontsize="small")
    return _save(figure, path)


def plot_fractions(records: list[dict], path: pathlib.Path) -> pathlib.Path:
    """Accurate, candidate and failed fractions of the explored frames per iteration (all systems)."""
    figure, axes = _figure(6.0, 4.0)
    iterations = [record["iteration"] for record in records]
    for kind, colour in (("accurate", "tab:green"), ("candidate", "tab:orange"), ("failed", "tab:red")):
        fractions = []
        for record in records:
            explored = sum(values["explored"] for values in record["systems"].values())
            fractions.append(sum(values[kind] for values in record["systems"].values()) / max(explored, 1))
        axes.plot(iterations, fractions, "o-", color=colour, label=kind)
    axes.set(xlabel="iteration", ylabel="fraction of explored frames", ylim=(-0.02, 1.02))
    axes.set_xticks(iterations)
    axes.legend(fontsize="small")
    return _save(figure, path)


def plot_test_errors(records: list[dict], curve: dict | None, path: pathlib.Path) -> pathlib.Path | None:
    """Force and energy RMSE of the ensembles against the number of labels behind them -- on one fixed set
    (every iteration's models tested at the end on all the frames held out during the campaign) and as measured
    during the campaign (the validation set, else the frames held out so far) -- beside the accurate fraction
    of the explored frames. None when the campaign measured no test error."""
    live = [(labels_behind(r), test_errors(r), r) for r in records if test_errors(r)]
    points = (curve or {}).get("points", [])
    if not live and not points:
        return None
    figure, (forces, energies, fraction) = _figure(13.5, 4.0, columns=3, sharey=False)
    xlabel = "labels behind the models (trained on + held out)"
    kind = "validation set" if live and "validation" in live[0][2] else "held out so far"
    if points:
        labels = [point["labels"] for point in points]
        fixed = f"final held-out set ({points[0]['nframes']} frames)"
        forces.plot(labels, [p["force_rmse"] for p in points], "o-", color="tab:blue", label=fixed)
        energies.plot(labels, [1000 * p["energy_rmse_per_atom"] for p in points], "o-", color="tab:blue", label=fixed)
    if live:
        labels = [count for count, _, _ in live]
        forces.plot(labels, [e["force_rmse"] for _, e, _ in live], "s--", color="tab:gray", label=kind)
        energies.plot(
            labels, [1000 * e["energy_rmse_per_atom"] for _, e, _ in live], "s--", color="tab:gray", label=kind
        )
    forces.set(xlabel=xlabel, ylabel="force RMSE (eV/Å)", ylim=(0, None))
    energies.set(xlabel=xlabel, ylabel="energy RMSE (meV/atom)", ylim=(0, None))
    for axes in (forces, energies):
        axes.legend(fontsize="small")
    explored = np.array([sum(v["explored"] for v in r["systems"].values()) for r in records])
    accurate = np.array([sum(v["accurate"] for v in r["systems"].values()) for r in records])
    fraction.plot([labels_behind(r) for r in records], accurate / np.maximum(explored, 1), "o-", color="tab:green")
    fraction.set(xlabel=xlabel, ylabel="accurate fraction of explored frames", ylim=(0, 1.02))
    return _save(figure, path)


def _colours(count: int) -> list:
    import matplotlib

    return [matplotlib.colormaps["viridis"](x) for x in np.linspace(0.0, 0.9, max(count, 1))][:count]


def _learning_curve_section(campaign: orm.WorkChainNode) -> list[str]:
    """Every iteration's ensemble on the same frames (all those held out during the campaign)."""
    if "learning_curve" not in campaign.outputs:
        return []
    points = campaign.outputs.learning_curve["points"]
    lines = [
        "## Learning curve on one held-out set",
        "",
        f"Each iteration's ensemble (and the final training's) tested at the end on the same {points[0]['nframes']} "
        "frames, all those held out of training during the campaign (`dp test`, mean over the models).",
        "",
        "| ensemble | labels | force RMSE (eV/Å) | force MAE (eV/Å) | energy RMSE (meV/atom) | energy MAE (meV/atom) |",
        "|---|---|---|---|---|---|",
    ]
    for point in points:
        lines.append(
            f"| {point['ensemble']} | {point['labels']} | {point['force_rmse']:.3f} | {point['force_mae']:.3f} | "
            f"{1000 * point['energy_rmse_per_atom']:.2f} | {1000 * point['energy_mae_per_atom']:.2f} |"
        )
    return [*lines, ""]


def _copy_figure(node: orm.SinglefileData, path: pathlib.Path) -> pathlib.Path:
    with node.open(mode="rb") as handle:
        path.write_bytes(handle.read())
    return path


def _vector(values, digits: int = 3) -> str:
    return "(" + ", ".join(f"{value:.{digits}f}" for value in values) + ")"


def describe_transitions(transitions: list[dict]) -> str:
    """One line for the transitions found by ``analysis.phases.transitions``."""
    if not transitions:
        return "none found on this ladder"
    return "; ".join(
        f"{t['from']} → {t['to']} between {t['between'][0]:g} and {t['between'][1]:g} K (~{t['estimate']:g} K)"
        for t in transitions
    )


def _analysis_section(campaign: orm.WorkChainNode, directory: pathlib.Path) -> list[str]:
    """The phase diagram and the polarization analysis of the final model (when the campaign ran them)."""
    outputs = campaign.outputs
    if "phase_diagram" not in outputs:
        return []
    diagram = outputs.phase_diagram
    table = diagram.table.get_dict()
    structure = campaign.inputs.phase_diagram.structure
    repeats = campaign.inputs.phase_diagram.repeats.get_list()
    lines = [
        "## Phase diagram of the final model",
        "",
        f"NPT MD ({campaign.inputs.phase_diagram.mode.value}) of a {'x'.join(map(str, repeats))} supercell "
        f"({len(structure.sites)} atoms) with the final model; pseudocubic lattice constants (Å) and cell angles "
        "(°) averaged over the production part, the mean B-cation displacement (Å), the averages of its magnitudes "
        "sorted frame by frame, and the phase the project's classifier gives from them (`analysis/phases.py`).",
        "",
        "| T (K) | phase | from the lattice | a, b, c (Å) | angles (°) | polar vector (Å) | sorted \\|p\\| (Å) |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in table["rows"]:
        polar = _vector(row["polar_vector"]) if "polar_vector" in row else "-"
        magnitudes = _vector(row["polar_magnitudes"]) if "polar_magnitudes" in row else "-"
        lines.append(
            f"| {row['temperature']:g} | {row['phase']} | {row['phase_from_lattice']} | {_vector(row['lattice'])} | "
            f"{_vector(row['angles'], 2)} | {polar} | {magnitudes} |"
        )
    lines += [
        "",
        f"Transitions: {describe_transitions(table['transitions'])}",
        "",
        f"![phase diagram]({_copy_figure(diagram.plot, directory / 'phase_diagram.png').name})",
        "",
    ]
    for key, statistics in sorted(getattr(outputs, "polarization", {}).items()):
        values = statistics.get_dict()
        temperature = key.removeprefix("T").removesuffix("K").replace("p", ".")
        lines += [
            f"## Local polarization at {temperature} K",
            "",
            f"{values['frames']} frames; per-cell phase fractions "
            + ", ".join(f"{label} {fraction:.2f}" for label, fraction in values["cell_phase_fractions"].items())
            + (
                f"; spontaneous polarization |P| = {values['polarization_magnitude']:.3f} C/m²"
                if "polarization_magnitude" in values
                else ""
            ),
            "",
            "| element | mean displacement (Å) | TAID (Å) | mean magnitude (Å) |",
            "|---|---|---|---|",
        ]
        for element, stats in values["elements"].items():
            lines.append(
                f"| {element} | {_vector(stats['mean_vector'])} | {stats['taid']:.3f} | {stats['mean_magnitude']:.3f} |"
            )
        plots = _polarization_plots(statistics)
        lines.append("")
        for name, figure in plots.items():
            path = _copy_figure(figure, directory / f"polarization_{key}_{name}.png")
            lines += [f"![{name} at {temperature} K]({path.name})", ""]
    return lines


def _polarization_plots(statistics: orm.Dict) -> dict[str, orm.SinglefileData]:
    """The figures made together with ``statistics`` (by the same analyse_polarization call)."""
    calculation = statistics.creator
    return {
        link.link_label.removeprefix("plots__"): link.node
        for link in calculation.base.links.get_outgoing(node_class=orm.SinglefileData).all()
        if link.link_label.startswith("plots__")
    }


def write_report(campaign: orm.WorkChainNode, directory: str | pathlib.Path) -> pathlib.Path:
    """Figures, ``history.json`` and ``report.md`` in ``directory``; returns the markdown path."""
    directory = pathlib.Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    records = iteration_records(campaign)
    rows = status_rows(records)
    trust = campaign.inputs.trust.get_dict()
    figures = []
    curves = learning_curves_by_iteration(campaign)
    if curves:
        figures.append(("Learning curves", plot_learning_curves(curves, directory / "learning_curves.png")))
    deviations = deviations_by_iteration(campaign)
    if deviations:
        figures.append(("Model deviation", plot_deviation_histograms(deviations, trust, directory / "deviations.png")))
    if records:
        figures.append(("Frame classes", plot_fractions(records, directory / "fractions.png")))
        curve = campaign.outputs.learning_curve.get_dict() if "learning_curve" in campaign.outputs else None
        errors = plot_test_errors(records, curve, directory / "test_errors.png")
        if errors is not None:
            figures.append(("Held-out error against labels", errors))
    (directory / "history.json").write_text(json.dumps(records, indent=1))

    state = "running" if not campaign.is_terminated else f"exit {campaign.exit_status}"
    lines = [
        f"# Campaign {campaign.label or campaign.pk}",
        "",
        f"- ConcurrentLearningWorkChain<{campaign.pk}> (uuid {campaign.uuid}), {state}"
        + (f": {campaign.exit_message}" if campaign.exit_message else ""),
        f"- trust levels: force_lo {trust['force_lo']:g}, force_hi {trust['force_hi']:g} eV/Å; "
        f"converged at accurate fraction >= {campaign.inputs.accurate_fraction.value:g}",
        f"- iterations: {len(records)} of at most {campaign.inputs.max_iterations.value}",
    ]
    if "training_set" in campaign.outputs:
        data = campaign.outputs.training_set
        lines.append(
            f"- final training set: TrainingSetData<{data.pk}>, {data.nframes} frames, "
            f"{len(data.system_names)} system(s)"
        )
    models = getattr(campaign.outputs, "models", {})
    if models:
        lines.append(f"- final models: {', '.join(f'{name}<{node.pk}>' for name, node in sorted(models.items()))}")
    lines += ["", "## Iterations", "", "| " + " | ".join(STATUS_COLUMNS) + " |", "|" + "---|" * len(STATUS_COLUMNS)]
    lines += ["| " + " | ".join(cells) + " |" for cells in format_table(rows)]
    lines += [
        "",
        "`labels`: frames labeled behind the iteration's models (trained on + held out). `rmse_f`: mean over the "
        "ensemble of the last training-batch force RMSE (eV/Å). `rmse_e_test` (meV/atom), `rmse_f_test` (eV/Å): "
        "the ensemble's mean `dp test` errors on the validation set, else on the frames held out of training.",
        "",
    ]
    lines += _learning_curve_section(campaign)
    for title, path in figures:
        lines += [f"## {title}", "", f"![{title}]({path.name})", ""]
    lines += _analysis_section(campaign, directory)
    report = directory / "report.md"
    report.write_text("\n".join(lines))
    return report
