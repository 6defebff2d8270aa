"""What the stages print: no warning. A warning the project could avoid (a deprecated parameter it sets, a
library call it makes the wrong way) buries the lines a user has to read, and becomes an error one upgrade
later. Counted in the session pipeline's first `dvc repro`: every stage of both tasks, from nothing."""

from __future__ import annotations

from tests.support.dvc_repo import PipelineRepo, ran_stages, warnings_in


def test_no_stage_prints_a_warning(built_repo: PipelineRepo) -> None:
    output = built_repo.first_repro_output  # type: ignore[attr-defined]
    assert ran_stages(output) == set(built_repo.stage_names())
    assert warnings_in(output) == []


def test_the_count_sees_python_warnings_and_logged_ones() -> None:
    output = "\n".join([
        "Running stage 'train@iris-logreg':", "> python -m stages.train iris iris-logreg",
        "/venv/sklearn/linear_model/_logistic.py:1435: FutureWarning: 'n_jobs' has no effect since 1.8",
        "  warnings.warn(msg, category=FutureWarning)", "train iris-logreg: CV accuracy 0.9667",
        "2026/12/06 03:57:24 WARNING mlflow.models: a note", "WARNING: a message of DVC's own",
        "evaluate iris: champion lda (no warnings here)"])
    assert len(warnings_in(output)) == 3
