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

Every class of ours that a saved model holds lives in this package (`domain.estimators` has the
others), so loading a model in the service, the Bento or MLflow needs `domain` and scikit-learn only.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.model_selection import KFold
from sklearn.neighbors import KDTree
from sklearn.utils.validation import check_is_fitted

from domain.schema import HOUSING, OCEAN_PROXIMITY

NUMERIC = HOUSING.numeric_features
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


def _haversine_km(lat: np.ndarray, lon: np.ndarray, lat0: float, lon0: float) -> np.ndarray:
    lat, lon, lat0, lon0 = map(np.radians, (lat, lon, lat0, lon0))
    a = np.sin((lat - lat0) / 2) ** 2 + np.cos(lat) * np.cos(lat0) * np.sin((lon - lon0) / 2) ** 2
    return 2 * EARTH_RADIUS_KM * np.arcsin(np.sqrt(a))


def _ratio(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    """numerator / denominator, 0 where the denominator is 0 (an empty block group)."""
    return np.divide(numerator, denominator, out=np.zeros_like(numerator), where=denominator > 0)


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
        self._fit(X, y)
        return self

    def fit_transform(self, X: pd.DataFrame, y: np.ndarray | None = None, **fit_params) -> np.ndarray:
        """Fit, then transform with out-of-fold neighbour means (no row sees its own target)."""
        numeric = self._fit(X, y)
        base = self._base_features(numeric, X)
        if not self.neighbor_counts:
            return base
        return np.hstack([base, self._out_of_fold_means(self._coordinates(numeric), np.asarray(y, float))])

    def _fit(self, X: pd.DataFrame, y: np.ndarray | None) -> np.ndarray:
        numeric = self._numeric(X)
        rooms, bedrooms = numeric[:, NUMERIC.index("total_rooms")], numeric[:, NUMERIC.index("total_bedrooms")]
        known = ~np.isnan(bedrooms) & (rooms > 0)
        self.bedrooms_per_room_ = float(np.median(bedrooms[known] / rooms[known])) if known.any() else 0.2
        if self.neighbor_counts:
            if y is None:
                raise ValueError("HousingFeatures needs the target y to fit neighbour target means")
            self.neighbor_tree_ = KDTree(self._coordinates(numeric))
            self.neighbor_targets_ = np.asarray(y, dtype=float)
        self.feature_names_out_ = self._feature_names()
        self.n_features_in_ = len(HOUSING.feature_names)
        return numeric

    # -- transforming --------------------------------------------------------------------
    def transform(self, X: pd.DataFrame) -> np.ndarray:
        check_is_fitted(self, "feature_names_out_")
        numeric = self._numeric(X)
        base = self._base_features(numeric, X)
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
    def _numeric(X: pd.DataFrame) -> np.ndarray:
        missing = [c for c in NUMERIC if c not in X.columns]
        if missing:
            raise ValueError(f"missing input column(s): {', '.join(missing)}")
        return X[NUMERIC].to_numpy(dtype=float)

    @staticmethod
    def _coordinates(numeric: np.ndarray) -> np.ndarray:
        lon = numeric[:, NUMERIC.index("longitude")] * LONGITUDE_SCALE
        lat = numeric[:, NUMERIC.index("latitude")]
        return np.column_stack([lon, lat])

    def _base_features(self, numeric: np.ndarray, X: pd.DataFrame) -> np.ndarray:
        col = {name: numeric[:, i] for i, name in enumerate(NUMERIC)}
        bedrooms = np.where(np.isnan(col["total_bedrooms"]), col["total_rooms"] * self.bedrooms_per_room_,
                            col["total_bedrooms"])
        households = col["households"]
        columns = [numeric[:, i] for i in range(len(NUMERIC))]
        columns[NUMERIC.index("total_bedrooms")] = bedrooms
        columns += [
            _ratio(col["total_rooms"], households),
            _ratio(bedrooms, households),
            _ratio(col["population"], households),
            _ratio(bedrooms, col["total_rooms"]),
        ]
        lon, lat = col["longitude"], col["latitude"]
        for angle in np.radians(np.asarray(self.rotations, dtype=float)):
            columns.append(lon * np.cos(angle) + lat * np.sin(angle))
            columns.append(lat * np.cos(angle) - lon * np.sin(angle))
        if self.city_distances:
            columns += [_haversine_km(lat, lon, *where) for where in CITIES.values()]
        ocean = X["ocean_proximity"].to_numpy(dtype=object) if "ocean_proximity" in X.columns else None
        for category in OCEAN_PROXIMITY:
            columns.append(np.zeros(len(numeric)) if ocean is None else (ocean == category).astype(float))
        return np.column_stack(columns)

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

