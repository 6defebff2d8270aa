"""Leakage: no row's own target feeds its own feature, and training never reads the test split."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.model_selection import KFold

from domain.features import LONGITUDE_SCALE, HousingFeatures, encode_frame, encode_records
from tests.support.data_factory import housing_frame
from tests.support.dvc_repo import project_fast_params
from tests.support.tasks import HOUSING

COUNTS = (1, 5, 20)


def housing_data(rows: int, seed: int) -> tuple[pd.DataFrame, np.ndarray]:
    frame = housing_frame(rows, seed, exact=True)
    return frame[HOUSING.feature_names], frame[HOUSING.target.name].to_numpy()


def neighbour_columns(features: HousingFeatures, matrix: np.ndarray) -> np.ndarray:
    return matrix[:, -len(features.neighbor_counts):]


@pytest.fixture
def data() -> tuple[pd.DataFrame, np.ndarray]:
    return housing_data(rows=400, seed=3)


def test_changing_a_rows_target_leaves_its_own_out_of_fold_feature_unchanged(data):
    X, y = data
    features = HousingFeatures(neighbor_counts=COUNTS, neighbor_folds=5, random_state=0)
    before = neighbour_columns(features, features.fit_transform(X, y))
    rows = [0, 57, 311]
    poisoned = y.copy()
    poisoned[rows] += 10_000_000  # far outside the data: any use of it would show
    after = neighbour_columns(features, features.fit_transform(X, poisoned))

    np.testing.assert_array_equal(after[rows], before[rows])
    # ...while the poisoned targets do feed other rows' features (the test would see a leak):
    changed = np.any(after != before, axis=1)
    assert changed.sum() >= len(rows) * COUNTS[-1] // 2
    assert np.all(after >= before)  # the poisoned targets only ever raise a mean


def test_out_of_fold_means_are_the_nearest_rows_of_the_other_folds(data):
    X, y = data
    features = HousingFeatures(neighbor_counts=(5,), neighbor_folds=4, random_state=7)
    got = neighbour_columns(features, features.fit_transform(X, y))[:, 0]

    where = np.column_stack([X["longitude"] * LONGITUDE_SCALE, X["latitude"]])
    expected = np.empty(len(y))
    for fit_rows, held_rows in KFold(4, shuffle=True, random_state=7).split(X):
        for row in held_rows:
            distance = np.linalg.norm(where[fit_rows] - where[row], axis=1)
            expected[row] = y[fit_rows][np.argsort(distance)[:5]].mean()
    np.testing.assert_allclose(got, expected)


def test_transform_uses_every_training_row_including_its_own(data):
    X, y = data
    features = HousingFeatures(neighbor_counts=(1,), neighbor_folds=5, random_state=0).fit(X, y)
    # k = 1 at serving time: a training row's nearest block group is itself (all coordinates differ)
    np.testing.assert_allclose(neighbour_columns(features, features.transform(X))[:, 0], y)
    # and out of fold, in training, it never is
    out_of_fold = neighbour_columns(features, features.fit_transform(X, y))[:, 0]
    assert not np.any(np.isclose(out_of_fold, y))


def test_fit_transform_and_transform_agree_except_for_neighbour_means(data):
    X, y = data
    features = HousingFeatures(neighbor_counts=COUNTS, random_state=0)
    fitted = features.fit_transform(X, y)
    served = features.transform(X)
    k = len(COUNTS)
    np.testing.assert_array_equal(fitted[:, :-k], served[:, :-k])
    assert fitted.shape == served.shape == (len(X), len(features.get_feature_names_out()))


# -- the test split is not read before evaluation ------------------------------------------------------

@pytest.fixture
def opened_files():
    """Paths opened by this process while the test runs (audit hooks see every open, even a caught one)."""
    opened: list[str] = []
    recording = [True]

    def hook(event: str, args: tuple) -> None:
        if recording[0] and event == "open" and isinstance(args[0], (str, os.PathLike)):
            opened.append(os.fspath(args[0]))

    sys.addaudithook(hook)  # hooks cannot be removed: stop recording instead
    yield opened
    recording[0] = False


def test_train_candidate_with_a_search_never_opens_the_test_split(train_only_workdir, opened_files):
    from stages.train import train_candidate

    params = project_fast_params()
    _, summary = train_candidate("housing", "housing-hgb", params)

    assert not any(Path(path).name == "test.csv" for path in opened_files)
    assert any(path.endswith(os.path.join("housing", "train.csv")) for path in opened_files)
    search = params["candidates"]["housing-hgb"]["search"]
    assert summary["train_rows"] == 300 and 2 <= len(summary["search"]["trials"]) <= 1 + search["n_iter"]
    assert 0 < summary["cv"]["r2"]["mean"] <= 1




# -- the serving path: records straight to arrays, the same features as the DataFrame path ------------------

def _records(frame: pd.DataFrame) -> list[dict]:
    """Rows as the service receives them: a missing value is None, an absent optional field is left out."""
    out = []
    for row in frame.to_dict(orient="records"):
        record = {k: (None if isinstance(v, float) and np.isnan(v) else v) for k, v in row.items()}
        if record.get("ocean_proximity") is None:
            record.pop("ocean_proximity", None)
        out.append(record)
    return out


def test_the_record_path_gives_exactly_the_transformers_features(data):
    X, y = data
    features = HousingFeatures(neighbor_counts=COUNTS, random_state=0).fit(X, y)
    odd = X.head(6).copy()
    odd.loc[odd.index[0], "total_bedrooms"] = np.nan        # imputed from rooms
    odd.loc[odd.index[1], "ocean_proximity"] = "ISLAND"     # the rare category
    odd.loc[odd.index[2], "ocean_proximity"] = None         # absent: every one-hot column 0
    odd.loc[odd.index[3], ["total_rooms", "total_bedrooms"]] = 0.0  # ratios over 0 rooms are 0
    frame = pd.concat([odd, X.iloc[6:40]])
    expected = features.transform(frame)

    for rows in (1, 16, len(frame)):  # one row, a typical micro-batch, everything
        got = features.transform_arrays(*encode_records(_records(frame.head(rows))))
        np.testing.assert_array_equal(got, expected[:rows])
    assert np.all(expected[2, -len(COUNTS) - 5:-len(COUNTS)] == 0)
    np.testing.assert_array_equal(features.transform_arrays(*encode_frame(frame)), expected)


def test_an_unknown_category_counts_as_absent(data):
    X, y = data
    features = HousingFeatures(neighbor_counts=COUNTS, random_state=0).fit(X, y)
    record = _records(X.head(1))[0]
    unknown = features.transform_arrays(*encode_records([{**record, "ocean_proximity": "ON THE MOON"}]))
    absent = features.transform(X.head(1).drop(columns="ocean_proximity"))
    np.testing.assert_array_equal(unknown, absent)


def test_block_features_equal_one_column_at_a_time(data):
    """The block-wise numpy code against the plain per-column formulas it replaced."""
    X, y = data
    features = HousingFeatures(neighbor_counts=(), random_state=0).fit(X, y)
    got = pd.DataFrame(features.transform(X), columns=features.get_feature_names_out())
    lon, lat = X["longitude"].to_numpy(), X["latitude"].to_numpy()
    angle = np.radians(30.0)
    np.testing.assert_array_equal(got["rotated_30_x"], lon * np.cos(angle) + lat * np.sin(angle))
    np.testing.assert_array_equal(got["rotated_30_y"], lat * np.cos(angle) - lon * np.sin(angle))
    np.testing.assert_array_equal(got["occupants_per_household"], X["population"] / X["households"])
    la, lo, la0, lo0 = map(np.radians, (lat, lon, 34.052, -118.244))
    a = np.sin((la - la0) / 2) ** 2 + np.cos(la) * np.cos(la0) * np.sin((lo - lo0) / 2) ** 2
    np.testing.assert_array_equal(got["km_to_los_angeles"], 2 * 6371.0 * np.arcsin(np.sqrt(a)))
    for category in ("INLAND", "NEAR BAY"):
        np.testing.assert_array_equal(got[f"ocean_proximity_{category}"], X["ocean_proximity"] == category)


def test_the_transformer_reads_the_fields_housing_declares() -> None:
    """The field names and categories written out in domain/features.py are those of tasks/housing.yaml."""
    from domain.features import NUMERIC, OCEAN_PROXIMITY

    assert HOUSING.numeric_features == NUMERIC
    assert [*NUMERIC, "ocean_proximity"] == HOUSING.feature_names
    assert next(spec.categories for spec in HOUSING.features if spec.name == "ocean_proximity") == OCEAN_PROXIMITY
