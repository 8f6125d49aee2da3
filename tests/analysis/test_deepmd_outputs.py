"""Pure parsing of DeePMD-kit text outputs and seed derivation."""

from __future__ import annotations

import numpy as np
import pytest

from aiida_perovskite.analysis.deepmd_outputs import (
    errors_of_predictions,
    parse_learning_curve,
    parse_test_details,
    pooled_errors,
)
from aiida_perovskite.calcfunctions.seeds import spawn_seeds

LCURVE = """\
# step       rmse_trn    rmse_e_trn    rmse_f_trn    rmse_v_trn   lr
# If there is no available reference data, rmse_*_{val,trn} will print nan
      0      1.46e+01      6.59e-01      4.61e-01      4.00e-02    1.0e-03
     50      1.55e+01      5.81e-01      4.91e-01      6.32e-02    1.0e-03
    100      3.60e+00      4.72e-01      3.81e-01      1.60e-01    2.5e-05
"""

LCURVE_VAL = """\
# step  rmse_val  rmse_trn  rmse_e_val  rmse_e_trn  rmse_f_val  rmse_f_trn  lr
      0   nan   2.0   nan   0.5   nan   0.3   1e-3
     10   nan   1.0   nan   0.4   nan   0.2   1e-3
"""


def test_learning_curve_columns_and_final_errors():
    curve = parse_learning_curve(LCURVE)
    assert list(curve.columns) == ["step", "rmse_trn", "rmse_e_trn", "rmse_f_trn", "rmse_v_trn", "lr"]
    np.testing.assert_array_equal(curve.steps, [0, 50, 100])
    assert curve.last_step == 100
    assert curve.final() == {"rmse_trn": 3.6, "rmse_e_trn": 0.472, "rmse_f_trn": 0.381, "rmse_v_trn": 0.16}
    assert curve.divergence_step() is None


def test_all_nan_validation_columns_are_not_divergence():
    curve = parse_learning_curve(LCURVE_VAL)
    assert curve.divergence_step() is None
    assert "rmse_f_val" not in curve.final()


def test_nan_after_finite_values_is_divergence_at_its_step():
    text = LCURVE.replace("     50      1.55e+01", "     50      nan").replace(
        "    100      3.60e+00", "    100      inf"
    )
    assert parse_learning_curve(text).divergence_step() == 50


def test_line_cut_by_a_killed_job_is_ignored():
    curve = parse_learning_curve(LCURVE + "    150      3.1e+00   4.0")
    assert curve.last_step == 100


def test_missing_header_is_an_error():
    with pytest.raises(ValueError, match="no '# step"):
        parse_learning_curve("1 2 3\n")


DETAILS = """\
# data/A: data_fx data_fy data_fz pred_fx pred_fy pred_fz
1.0 0.0 0.0 1.5 0.0 0.0
0.0 1.0 0.0 0.0 1.0 0.0
# data/B.1 (eV/Å³): data_fx data_fy data_fz pred_fx pred_fy pred_fz
0.0 0.0 2.0 0.0 0.0 1.0
"""


def test_test_details_split_per_system_and_pooled_errors():
    blocks = parse_test_details(DETAILS)
    assert [b.system for b in blocks] == ["data/A", "data/B.1"]
    assert blocks[0].reference.shape == (2, 3)
    assert errors_of_predictions(blocks[0].reference, blocks[0].predicted)["mae"] == pytest.approx(0.5 / 6)
    pooled = pooled_errors(blocks)
    assert pooled["mae"] == pytest.approx(1.5 / 9)
    assert pooled["rmse"] == pytest.approx(np.sqrt(1.25 / 9))


def test_seeds_are_deterministic_distinct_and_in_range():
    first = spawn_seeds(2026, 4)
    assert first == spawn_seeds(2026, 4)
    assert len(set(first)) == 4
    assert all(0 <= s < 2**31 for s in first)
    assert spawn_seeds(2027, 4) != first
    assert spawn_seeds(2026, 5)[:4] == first
