"""Parse the text files DeePMD-kit writes (``lcurve.out``, ``dp test`` detail files) and score models.

Pure functions on strings and arrays, so that parsers and tests share them without AiiDA.
"""

from __future__ import annotations

import dataclasses
import re

import numpy as np

__all__ = (
    "LearningCurve",
    "PredictionBlock",
    "errors_of_predictions",
    "parse_learning_curve",
    "parse_step_table",
    "parse_test_details",
    "pooled_errors",
)


@dataclasses.dataclass
class LearningCurve:
    """Columns of ``lcurve.out`` by name (``step``, ``rmse_e_trn``, ``rmse_f_val``, ``lr``, ...)."""

    columns: dict[str, np.ndarray]

    @property
    def steps(self) -> np.ndarray:
        return self.columns["step"]

    @property
    def last_step(self) -> int:
        return int(self.steps[-1]) if self.steps.size else 0

    def final(self) -> dict[str, float]:
        """The last row's RMSE values (NaN columns, e.g. validation without data, are left out)."""
        return {
            name: float(values[-1])
            for name, values in self.columns.items()
            if name.startswith("rmse") and values.size and np.isfinite(values[-1])
        }

    def divergence_step(self) -> int | None:
        """First step at which a training error became NaN or infinite after being finite, else None.

        Columns that are NaN from the first row on carry no data (DeePMD prints NaN for missing labels,
        e.g. without a validation set) and are not a divergence.
        """
        first_bad_rows = []
        for name, values in self.columns.items():
            if not name.startswith("rmse") or values.size == 0:
                continue
            finite = np.isfinite(values)
            if not finite.any():
                continue
            after_start = ~finite[np.argmax(finite) :]
            if after_start.any():
                first_bad_rows.append(int(np.argmax(finite)) + int(np.argmax(after_start)))
        return int(self.steps[min(first_bad_rows)]) if first_bad_rows else None


def parse_step_table(text: str, what: str) -> dict[str, np.ndarray]:
    """Columns of a DeePMD text table by name: a ``# step ...`` header line, then whitespace-separated numbers.

    Other ``#`` lines are comments; a row with the wrong number of fields (cut by a killed job) is dropped.
    """
    header: list[str] | None = None
    rows: list[list[float]] = []
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith("#"):
            names = stripped.lstrip("#").split()
            if names and names[0] == "step":
                header = names
            continue
        values = stripped.split()
        if values and header is not None and len(values) == len(header):
            rows.append([float(value) for value in values])
    if header is None:
        raise ValueError(f"{what} has no '# step ...' header")
    table = np.array(rows, dtype=float).reshape(-1, len(header))
    return {name: table[:, index] for index, name in enumerate(header)}


def parse_learning_curve(text: str) -> LearningCurve:
    """Read ``lcurve.out`` (columns step, rmse_*_trn/val, lr)."""
    return LearningCurve(parse_step_table(text, "lcurve.out"))


@dataclasses.dataclass
class PredictionBlock:
    """Reference and predicted values of one quantity for one system, from a ``dp test -d`` file."""

    system: str
    reference: np.ndarray  # (n, k)
    predicted: np.ndarray  # (n, k)


_HEADER = re.compile(r"^#\s*(?P<system>\S+?)(?:\s*\([^)]*\))?:\s*(?P<columns>.*)$")


def parse_test_details(text: str) -> list[PredictionBlock]:
    """Split a ``dp test`` detail file (``*.e.out``, ``*.f.out``, ...) into one block per system."""
    blocks: list[PredictionBlock] = []
    system, rows = None, []

    def close():
        if system is not None and rows:
            table = np.array(rows, dtype=float)
            half = table.shape[1] // 2
            blocks.append(PredictionBlock(system, table[:, :half], table[:, half:]))

    for line in text.splitlines():
        match = _HEADER.match(line.strip())
        if match:
            close()
            system, rows = match.group("system"), []
        elif line.strip():
            rows.append([float(value) for value in line.split()])
    close()
    return blocks


def errors_of_predictions(reference: np.ndarray, predicted: np.ndarray) -> dict[str, float]:
    difference = np.asarray(predicted, dtype=float) - np.asarray(reference, dtype=float)
    return {
        "mae": float(np.mean(np.abs(difference))),
        "rmse": float(np.sqrt(np.mean(difference**2))),
        "count": int(difference.size),
    }


def pooled_errors(blocks: list[PredictionBlock]) -> dict[str, float]:
    """MAE and RMSE over all values of all systems (what ``dp test`` calls the weighted average)."""
    reference = np.concatenate([block.reference.ravel() for block in blocks])
    predicted = np.concatenate([block.predicted.ravel() for block in blocks])
    return errors_of_predictions(reference, predicted)
