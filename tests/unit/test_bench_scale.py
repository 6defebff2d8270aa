"""bench.scale: its generated data (the real rows first, then seeded copies jittered by at most 2 %, within bounds),
and the growth it reports between two sizes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from bench.scale import JITTER, candidate_cv_scores, growth_lines, scaled_csv
from tests.support.data_factory import housing_frame


def test_copies_are_jittered_by_at_most_two_percent_within_the_declared_bounds(tmp_path: Path) -> None:
    source = tmp_path / "housing.csv"
    housing_frame(rows=200, seed=3).to_csv(source, index=False)
    bounds = {"housing_median_age": (0.0, 52.0)}
    scaled = pd.read_csv(scaled_csv(source, 3, tmp_path / "3x.csv", bounds))
    original = pd.read_csv(source)
    assert len(scaled) == 3 * len(original)
    pd.testing.assert_frame_equal(scaled.iloc[:200].reset_index(drop=True), original)
    numeric = original.select_dtypes("number").columns
    for copy in (scaled.iloc[200:400], scaled.iloc[400:]):
        copy = copy.reset_index(drop=True)
        ratio = (copy[numeric] / original[numeric]).to_numpy(dtype=float)
        finite = ratio[np.isfinite(ratio)]
        assert np.all(np.abs(finite - 1) <= JITTER + 1e-9)
        assert (copy["housing_median_age"] <= 52).all()
        assert (copy["ocean_proximity"] == original["ocean_proximity"]).all()
    assert not scaled.iloc[200:400].reset_index(drop=True).equals(scaled.iloc[400:].reset_index(drop=True))
    again = pd.read_csv(scaled_csv(source, 3, tmp_path / "again.csv", bounds))
    pd.testing.assert_frame_equal(again, scaled)  # seeded


def test_growth_reports_each_train_stage_s_exponent_beside_its_cv_score_at_both_sizes(tmp_path: Path) -> None:
    metrics = tmp_path / "metrics" / "housing"
    metrics.mkdir(parents=True)
    (metrics / "housing-forest.json").write_text('{"cv": 0.8, "cv_std": 0.01, "test": 0.7}')

    def size(factor: int, seconds: float, model_mb: float) -> dict:
        run = {"wall_s": 10.0 * factor, "stages": [{"stage": "train@housing-forest", "seconds": seconds}],
               "candidate_model_mb": {"housing-forest": model_mb}, "candidate_cv": candidate_cv_scores(tmp_path)}
        return {"factor": factor, "local": run, "cluster": run}

    lines = growth_lines(size(4, 50.0, 10.0), size(16, 400.0, 20.0))
    row = next(line for line in lines if line.startswith("| train@housing-forest"))
    assert row == "| train@housing-forest | 50.0 -> 400.0 | 1.50 | 10.0 -> 20.0 | 0.50 | 0.8 ± 0.01 -> 0.8 ± 0.01 |"
    assert "whole run, local wall time: k = 1.00" in "\n".join(lines)
