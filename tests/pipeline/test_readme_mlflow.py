"""The README's MLflow example works as written: its Python block, run verbatim in a reproduced repository.

The block builds its DataFrame from a record with integer fields (`housing_median_age: 41`), which a signature
typing numbers as `double` refused ("Can not safely convert int64 to float64"). The block runs in a Python that
sees only the repository's working directory files MLflow reads (`mlflow.db`, `mlartifacts/`), not its code.
"""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys

import joblib
import mlflow
import pandas as pd
import pytest

from tests.support import PROJECT_ROOT
from tests.support.dvc_repo import PipelineRepo


def readme_mlflow_example() -> str:
    """The first Python block of the docs' "MLflow" section (docs/experiments.md), as written."""
    page = (PROJECT_ROOT / "docs" / "experiments.md").read_text()
    section = page[page.index("## MLflow\n"):]
    return re.search(r"```python\n(.*?)```", section, re.DOTALL).group(1)


def test_the_readme_mlflow_example_predicts_from_integer_fields(repo: PipelineRepo) -> None:
    example = readme_mlflow_example()
    assert '"housing_median_age": 41' in example and "pd.DataFrame([record])" in example
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "PYTHON"))}
    result = subprocess.run([sys.executable, "-I", "-c", example], cwd=repo.path, env=env, capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    printed = [float(x) for x in re.findall(r"[-+]?\d+(?:\.\d*)?(?:e[-+]?\d+)?", result.stdout.splitlines()[-1])]
    record = ast.literal_eval(re.search(r"record = (\{.*?\})", example, re.DOTALL).group(1))
    expected = joblib.load(repo.path / "models/housing/champion.joblib").predict(pd.DataFrame([record]))
    assert printed == pytest.approx(list(expected), rel=1e-6)


def test_a_value_that_is_not_a_number_is_refused(repo: PipelineRepo, mlflow_tracking_uri) -> None:
    """Numeric columns are typed Any in the signature: the model itself must still refuse a non-number."""
    mlflow_tracking_uri(f"sqlite:///{repo.path / 'mlflow.db'}")
    model = mlflow.pyfunc.load_model("models:/iris-classifier@champion")
    good = {"sepal_length": 5, "sepal_width": 3.5, "petal_length": 1, "petal_width": 0.2}  # ints and floats
    assert list(model.predict(pd.DataFrame([good]))) == ["setosa"]
    with pytest.raises(ValueError, match="could not convert string to float"):
        model.predict(pd.DataFrame([{**good, "petal_length": "long"}]))
