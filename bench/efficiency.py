"""Held-out error against labels, per selection strategy: mean and spread over seeds, the labels each strategy
needs to reach a target, the table and the plot (shared by the label-efficiency benchmarks)."""

from __future__ import annotations

import json
import pathlib

import numpy as np


def report(
    results: dict,
    strategies: tuple[str, ...],
    baseline: str,
    target: float | None,
    out: pathlib.Path,
    name: str,
    title: str,
) -> dict:
    """Summarise ``results``, write ``<out>/<name>.json`` (runs and summary) and ``<out>/<name>.png``, print."""
    summary = summarise(results, target, strategies, baseline)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{name}.json").write_text(json.dumps({"runs": results, "summary": summary}, indent=1))
    plot(summary, out / f"{name}.png", title)
    print_summary(summary, len(results))
    return summary


def labels_to_reach(labels: np.ndarray, rmse: np.ndarray, target: float) -> float:
    """Labels from which the curve stays at or below ``target`` (linear between rounds); inf if its last point is
    above. "Stays": a warm-started ensemble can be worse for a round than the one before it, so the first crossing
    alone would credit a strategy with an accuracy it then loses."""
    above = np.flatnonzero(rmse > target)
    if above.size == 0:
        return float(labels[0])
    last = above[-1]
    if last == len(rmse) - 1:
        return float("inf")
    x0, x1, y0, y1 = labels[last], labels[last + 1], rmse[last], rmse[last + 1]
    return float(x0 + (y0 - target) * (x1 - x0) / (y0 - y1))


def summarise(results: dict, target: float | None, strategies: tuple[str, ...], baseline: str) -> dict:
    """``results[seed][strategy]``: rows with ``labels``, ``force_rmse``, ``energy_rmse`` per round. Mean and spread
    over seeds per strategy and round (curves cut to the shortest run), and the labels each strategy needs for
    ``target`` (default: the worst strategy's final mean force RMSE), with the ratio to ``baseline``."""
    summary: dict = {"strategies": list(strategies), "baseline": baseline}
    for strategy in strategies:
        runs = [results[seed][strategy] for seed in results]
        rounds = min(len(run) for run in runs)
        table = {key: np.array([[row[key] for row in run[:rounds]] for run in runs]) for key in runs[0][0]}
        summary[strategy] = {
            key: {"mean": values.mean(axis=0).tolist(), "std": values.std(axis=0).tolist()}
            for key, values in table.items()
        }
    if target is None:
        target = max(summary[s]["force_rmse"]["mean"][-1] for s in strategies)
    for strategy in strategies:
        curve = summary[strategy]
        curve["labels_to_target"] = labels_to_reach(
            np.array(curve["labels"]["mean"]), np.array(curve["force_rmse"]["mean"]), target
        )
    for strategy in strategies:
        summary[strategy]["ratio_to_baseline"] = (
            summary[strategy]["labels_to_target"] / summary[baseline]["labels_to_target"]
        )
    summary["target_force_rmse"] = target
    summary["per_seed"] = {str(seed): _per_seed(results[seed], strategies, baseline) for seed in results}
    return summary


def _per_seed(runs: dict, strategies: tuple[str, ...], baseline: str) -> dict:
    """One seed's ratios, its target being the worst final force RMSE of its strategies."""
    target = max(runs[s][-1]["force_rmse"] for s in strategies)
    needed = {
        s: labels_to_reach(
            np.array([row["labels"] for row in runs[s]]), np.array([row["force_rmse"] for row in runs[s]]), target
        )
        for s in strategies
    }
    return {"target": target, **{s: {"labels": needed[s], "ratio": needed[s] / needed[baseline]} for s in strategies}}


def print_summary(summary: dict, seeds: int) -> None:
    strategies = summary["strategies"]
    print(f"\nheld-out force RMSE (eV/Å) at the mean number of labels, mean ± spread over {seeds} seed(s)")
    print("round   " + "  ".join(f"{strategy:>20}" for strategy in strategies))
    for index in range(min(len(summary[s]["labels"]["mean"]) for s in strategies)):
        cells = [
            f"{summary[s]['labels']['mean'][index]:5.1f}: {summary[s]['force_rmse']['mean'][index]:.4f}"
            f"±{summary[s]['force_rmse']['std'][index]:.4f}"
            for s in strategies
        ]
        print(f"{index:>6}  " + "  ".join(f"{cell:>20}" for cell in cells))
    print(
        f"\nlabels to reach a held-out force RMSE of {summary['target_force_rmse']:.4f} eV/Å "
        f"(ratio to {summary['baseline']}):"
    )
    for strategy in strategies:
        curve = summary[strategy]
        print(f"  {strategy:>15}: {curve['labels_to_target']:6.1f}  ({curve['ratio_to_baseline']:.2f}x)")
    print(
        "per seed (target: the seed's worst final force RMSE): "
        + "; ".join(
            f"seed {seed} ({values['target']:.3f}): "
            + ", ".join(f"{s} {values[s]['labels']:.0f} ({values[s]['ratio']:.2f}x)" for s in strategies)
            for seed, values in summary["per_seed"].items()
        )
    )


def plot(summary: dict, path: pathlib.Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, 2, figsize=(10, 4))
    for strategy in summary["strategies"]:
        curve = summary[strategy]
        labels = np.array(curve["labels"]["mean"])
        for axis, key, unit in ((axes[0], "force_rmse", "eV/Å"), (axes[1], "energy_rmse", "meV/atom")):
            mean, std = np.array(curve[key]["mean"]), np.array(curve[key]["std"])
            axis.errorbar(labels, mean, yerr=std, marker="o", capsize=3, label=strategy.replace("_", " "))
            axis.set_xlabel("labeled frames")
            axis.set_ylabel(f"held-out {key.split('_')[0]} RMSE ({unit})")
    axes[0].axhline(summary["target_force_rmse"], color="grey", linestyle=":", label="target")
    axes[0].legend()
    figure.suptitle(title)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
