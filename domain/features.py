"""Feature engineering for California Housing, as one scikit-learn transformer.

The transformer is the first step of every saved housing model, so the service sends the
raw census fields a client posted and the model derives everything itself: no feature is
recomputed by hand at serving time, and training and serving cannot drift apart.

Features, all learned on the training split only:
- the raw numeric fields, with a missing ``total_bedrooms`` imputed from ``total_rooms``
  by the training split's median bedrooms-per-room ratio;
- ratios: rooms, bedrooms and occupants per household, bedrooms per room;
- the coordinates rotated by several angles (lets trees cut along the coast's diagonal);
- great-circle distances to the five largest cities;
- ``ocean_proximity`` one-hot (absent or unknown values give all zeros);
- neighbour target means: the mean target of the k nearest training block groups by location.
  ``fit_transform`` computes them out of fold (a row's own target never feeds its own feature,
  as in scikit-learn's TargetEncoder); ``transform`` uses every training row.

Two ways in, one implementation: `transform(DataFrame)` for training and scikit-learn, and
`transform_arrays(*encode_records(records))` for serving, where pandas would cost more than the features
(the compiled model in `domain.compiled`); both compute the same columns with the same numpy calls.

Every class of ours that a saved model holds lives in this package (`domain.estimators` has the
others), so loading a model in the service, the Bento or MLflow needs `domain` and scikit-learn only.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.model_selection import KFold
from sklearn.neighbors import KDTree
from sklearn.utils.validation import check_is_fitted

# The raw fields this transformer reads, as tasks/housing.yaml declares them. Written out here, not read from the
# declaration, so that a saved model needs this package only (MLflow ships `domain/` as the model's code, without
# tasks/); tests/unit/test_features.py checks that the two agree.
NUMERIC = ["longitude", "latitude", "housing_median_age", "total_rooms", "total_bedrooms", "population",
           "households", "median_income"]
OCEAN_PROXIMITY = ("<1H OCEAN", "INLAND", "NEAR OCEAN", "NEAR BAY", "ISLAND")
CITIES = {  # (latitude, longitude)
    "los_angeles": (34.052, -118.244),
    "san_francisco": (37.775, -122.419),
    "san_diego": (32.716, -117.161),
    "san_jose": (37.339, -121.895),
    "sacramento": (38.582, -121.494),
}
EARTH_RADIUS_KM = 6371.0
# Degrees of longitude are shorter than degrees of latitude at California's latitude; scale
# longitude so that Euclidean nearest neighbours approximate nearest on the ground.
LONGITUDE_SCALE = float(np.cos(np.radians(36.5)))


def _haversine_km(lat: np.ndarray, lon: np.ndarray, lat0: np.ndarray, lon0: np.ndarray) -> np.ndarray:
    """Great-circle km from each row (n, 1) to each place (k,): (n, k). cos(lat0) comes in precomputed per place
    (`_CITY_COS`) so the values are bit-identical to computing one city at a time."""
    lat, lon = np.radians(lat), np.radians(lon)
    a = np.sin((lat - lat0) / 2) ** 2 + np.cos(lat) * _CITY_COS * np.sin((lon - lon0) / 2) ** 2
    return 2 * EARTH_RADIUS_KM * np.arcsin(np.sqrt(a))


_CITY_LAT = np.array([np.radians(lat) for lat, _ in CITIES.values()])
_CITY_LON = np.array([np.radians(lon) for _, lon in CITIES.values()])
_CITY_COS = np.array([np.cos(lat) for lat in _CITY_LAT])
_CATEGORY_CODES = np.arange(len(OCEAN_PROXIMITY))
UNKNOWN_CATEGORY = -1  # an absent or unknown ocean_proximity: every one-hot column 0
_RATIOS = (("total_rooms", "households"), ("total_bedrooms", "households"), ("population", "households"),
           ("total_bedrooms", "total_rooms"))


def encode_frame(X: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """A raw-field DataFrame as the two arrays the features are computed from: the numeric fields (n, 8) in
    schema order, NaN where missing, and ocean_proximity as category codes (UNKNOWN_CATEGORY if absent)."""
    missing = [c for c in NUMERIC if c not in X.columns]
    if missing:
        raise ValueError(f"missing input column(s): {', '.join(missing)}")
    numeric = X[NUMERIC].to_numpy(dtype=float)
    codes = np.full(len(X), UNKNOWN_CATEGORY)
    if "ocean_proximity" in X.columns:
        ocean = X["ocean_proximity"].to_numpy(dtype=object)
        for code, category in enumerate(OCEAN_PROXIMITY):
            codes[ocean == category] = code
    return numeric, codes


_CODE_OF = dict(zip(OCEAN_PROXIMITY, _CATEGORY_CODES.tolist(), strict=True))


def encode_records(records: Sequence[Mapping[str, Any]]) -> tuple[np.ndarray, np.ndarray]:
    """The same two arrays straight from request records (dicts of raw fields; None or absent = missing):
    the serving path, where building a DataFrame costs more than the features themselves."""
    numeric = np.array([[record.get(name) for name in NUMERIC] for record in records], dtype=float)
    codes = np.array([_CODE_OF.get(record.get("ocean_proximity"), UNKNOWN_CATEGORY) for record in records])
    return numeric.reshape(len(records), len(NUMERIC)), codes


class HousingFeatures(TransformerMixin, BaseEstimator):
    """Raw census block-group fields -> model features (see the module docstring).

    Parameters
    ----------
    rotations : angles in degrees by which (longitude, latitude) are rotated.
    city_distances : add distances to the largest cities.
    neighbor_counts : k values for neighbour target means; empty disables them.
    neighbor_folds : folds for the out-of-fold neighbour means in ``fit_transform``.
    random_state : seed of the fold shuffle.
    """

    def __init__(
        self,
        rotations: Sequence[float] = (15, 30, 45, 60),
        city_distances: bool = True,
        neighbor_counts: Sequence[int] = (5, 20, 50),
        neighbor_folds: int = 5,
        random_state: int = 0,
    ) -> None:
        self.rotations = rotations
        self.city_distances = city_distances
        self.neighbor_counts = neighbor_counts
        self.neighbor_folds = neighbor_folds
        self.random_state = random_state

    # -- fitting -------------------------------------------------------------------------
    def fit(self, X: pd.DataFrame, y: np.ndarray | None = None) -> HousingFeatures:
        self._fit(encode_frame(X)[0], y)
        return self

    def fit_transform(self, X: pd.DataFrame, y: np.ndarray | None = None, **fit_params) -> np.ndarray:
        """Fit, then transform with out-of-fold neighbour means (no row sees its own target)."""
        numeric, ocean = encode_frame(X)
        self._fit(numeric, y)
        base = self._base_features(numeric, ocean)
        if not self.neighbor_counts:
            return base
        return np.hstack([base, self._out_of_fold_means(self._coordinates(numeric), np.asarray(y, float))])

    def _fit(self, numeric: np.ndarray, y: np.ndarray | None) -> None:
        rooms, bedrooms = numeric[:, NUMERIC.index("total_rooms")], numeric[:, NUMERIC.index("total_bedrooms")]
        known = ~np.isnan(bedrooms) & (rooms > 0)
        self.bedrooms_per_room_ = float(np.median(bedrooms[known] / rooms[known])) if known.any() else 0.2
        if self.neighbor_counts:
            if y is None:
                raise ValueError("HousingFeatures needs the target y to fit neighbour target means")
            self.neighbor_tree_ = KDTree(self._coordinates(numeric))
            self.neighbor_targets_ = np.asarray(y, dtype=float)
        self.feature_names_out_ = self._feature_names()
        self.n_features_in_ = len(NUMERIC) + 1  # and ocean_proximity

    # -- transforming --------------------------------------------------------------------
    def transform(self, X: pd.DataFrame) -> np.ndarray:
        check_is_fitted(self, "feature_names_out_")
        return self.transform_arrays(*encode_frame(X))

    def transform_arrays(self, numeric: np.ndarray, ocean: np.ndarray) -> np.ndarray:
        """The features of `encode_frame`/`encode_records` arrays: what `transform` computes, without pandas.

        The one implementation: `transform` (training, evaluation, the scikit-learn model) and the compiled
        model's fast path (serving) both end here. Needs a fitted transformer (`transform` checks)."""
        base = self._base_features(numeric, ocean)
        if not self.neighbor_counts:
            return base
        coordinates = self._coordinates(numeric)
        k = min(max(self.neighbor_counts), len(self.neighbor_targets_))
        _, index = self.neighbor_tree_.query(coordinates, k=k)
        return np.hstack([base, self._means_of_nearest(self.neighbor_targets_[index])])

    def get_feature_names_out(self, input_features=None) -> np.ndarray:
        check_is_fitted(self, "feature_names_out_")
        return np.asarray(self.feature_names_out_, dtype=object)

    # -- helpers -------------------------------------------------------------------------
    @staticmethod
    def _coordinates(numeric: np.ndarray) -> np.ndarray:
        lon = numeric[:, NUMERIC.index("longitude")] * LONGITUDE_SCALE
        lat = numeric[:, NUMERIC.index("latitude")]
        return np.column_stack([lon, lat])

    def _base_features(self, numeric: np.ndarray, ocean: np.ndarray) -> np.ndarray:
        """Every feature but the neighbour means, written into one array a block of columns at a time: at
        serving time the cost is the number of numpy calls, not the rows."""
        rows, fields = numeric.shape
        angles = np.radians(np.asarray(self.rotations, dtype=float))
        cities = len(CITIES) if self.city_distances else 0
        out = np.empty((rows, fields + len(_RATIOS) + 2 * len(angles) + cities + len(OCEAN_PROXIMITY)))
        out[:, :fields] = numeric
        rooms, bedrooms = NUMERIC.index("total_rooms"), NUMERIC.index("total_bedrooms")
        missing = np.isnan(numeric[:, bedrooms])
        out[missing, bedrooms] = numeric[missing, rooms] * self.bedrooms_per_room_
        numerators = out[:, [NUMERIC.index(a) for a, _ in _RATIOS]]
        denominators = out[:, [NUMERIC.index(b) for _, b in _RATIOS]]
        at = fields + len(_RATIOS)
        # 0 where the denominator is 0 (an empty block group)
        np.divide(numerators, denominators, out=out[:, fields:at], where=denominators > 0)
        out[:, fields:at][~(denominators > 0)] = 0.0
        lon, lat = numeric[:, [NUMERIC.index("longitude")]], numeric[:, [NUMERIC.index("latitude")]]
        # scalar cos/sin per angle, as a loop over angles computes them: the columns stay bit-identical
        cos = np.array([np.cos(a) for a in angles])
        sin = np.array([np.sin(a) for a in angles])
        out[:, at:at + 2 * len(angles):2] = lon * cos + lat * sin
        out[:, at + 1:at + 2 * len(angles):2] = lat * cos - lon * sin
        at += 2 * len(angles)
        if cities:
            out[:, at:at + cities] = _haversine_km(lat, lon, _CITY_LAT, _CITY_LON)
            at += cities
        out[:, at:] = ocean[:, None] == _CATEGORY_CODES
        return out

    def _means_of_nearest(self, targets: np.ndarray) -> np.ndarray:
        """targets: (rows, k_max) sorted nearest first -> (rows, len(neighbor_counts)) means."""
        cumulative = np.cumsum(targets, axis=1)
        return np.column_stack([cumulative[:, min(k, targets.shape[1]) - 1] / min(k, targets.shape[1])
                                for k in self.neighbor_counts])

    def _out_of_fold_means(self, coordinates: np.ndarray, y: np.ndarray) -> np.ndarray:
        folds = KFold(self.neighbor_folds, shuffle=True, random_state=self.random_state)
        out = np.empty((len(y), len(self.neighbor_counts)))
        for fit_rows, held_rows in folds.split(coordinates):
            tree = KDTree(coordinates[fit_rows])
            k = min(max(self.neighbor_counts), len(fit_rows))
            _, index = tree.query(coordinates[held_rows], k=k)
            out[held_rows] = self._means_of_nearest(y[fit_rows][index])
        return out

    def _feature_names(self) -> list[str]:
        names = [*NUMERIC, "rooms_per_household", "bedrooms_per_household", "occupants_per_household",
                 "bedrooms_per_room"]
        for angle in self.rotations:
            names += [f"rotated_{angle:g}_x", f"rotated_{angle:g}_y"]
        if self.city_distances:
            names += [f"km_to_{city}" for city in CITIES]
        names += [f"ocean_proximity_{c}" for c in OCEAN_PROXIMITY]
        names += [f"neighbor_mean_target_{k}" for k in self.neighbor_counts]
        return names

