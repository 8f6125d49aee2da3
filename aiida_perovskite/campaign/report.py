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
    labels_behind,
    learning_curves_by_iteration,
    status_rows,
    test_errors,
)

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
    upper = max([trust["force_hi"] * 2, *[float(v.max()) for v in finite if v.size]])
    bins = np.linspace(0.0, upper, 40)
    for colour, iteration in zip(_colours(len(iterations)), iterations, strict=True):
        values = np.concatenate(list(deviations[iteration].values()))
        axes.hist(
            np.clip(values[np.isfinite(values)], 0, upper),
            bins=bins,
            histtype="step",
            color=colour,
            label=f"iteration {iteration}",
        )
    for level, style in (("force_lo", "--"), ("force_hi", ":")):
        axes.axvline(trust[level], color="black", linestyle=style, label=f"{level} = {trust[level]:g} eV/Å")
    axes.set(xlabel="max force deviation (eV/Å)", ylabel="frames")
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


def plot_test_errors(records: list[dict], path: pathlib.Path) -> pathlib.Path | None:
    """Energy and force RMSE of the ensemble on the validation / held-out frames against the number of labels,
    beside the accurate fraction of the explored frames; None when the campaign measured no test error."""
    rows = [(labels_behind(r), test_errors(r), r) for r in records if test_errors(r)]
    if not rows:
        return None
    figure, (forces, energies, fraction) = _figure(13.0, 3.8, columns=3, sharey=False)
    labels = [count for count, _, _ in rows]
    kind = "validation set" if "validation" in rows[0][2] else "held-out frames"
    xlabel = "labels (trained on + held out)"
    forces.plot(labels, [errors["force_rmse"] for _, errors, _ in rows], "o-", color="tab:blue", label="ensemble")
    for index, model in enumerate(rows[0][1]["force_rmse_by_model"]):
        values = [errors["force_rmse_by_model"].get(model, np.nan) for _, errors, _ in rows]
        forces.plot(labels, values, "x", color="tab:blue", alpha=0.5, label="each model" if index == 0 else None)
    forces.set(xlabel=xlabel, ylabel=f"force RMSE, {kind} (eV/Å)", ylim=(0, None))
    forces.legend(fontsize="small")
    energies.plot(labels, [1000 * errors["energy_rmse_per_atom"] for _, errors, _ in rows], "o-", color="tab:purple")
    energies.set(xlabel=xlabel, ylabel=f"energy RMSE, {kind} (meV/atom)", ylim=(0, None))
    explored = np.array([sum(v["explored"] for v in r["systems"].values()) for _, _, r in rows])
    accurate = np.array([sum(v["accurate"] for v in r["systems"].values()) for _, _, r in rows])
    fraction.plot(labels, accurate / np.maximum(explored, 1), "o-", color="tab:green")
    fraction.set(xlabel=xlabel, ylabel="accurate fraction of explored frames", ylim=(0, 1.02))
    return _save(figure, path)


def _colours(count: int) -> list:
    import matplotlib

    return [matplotlib.colormaps["viridis"](x) for x in np.linspace(0.0, 0.9, max(count, 1))][:count]


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
        errors = plot_test_errors(records, directory / "test_errors.png")
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
    for title, path in figures:
        lines += [f"## {title}", "", f"![{title}]({path.name})", ""]
    report = directory / "report.md"
    report.write_text("\n".join(lines))
    return report
