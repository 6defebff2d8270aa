"""Stage `compile@<task>`: a served tree ensemble as one ONNX graph for ONNX Runtime (domain/compiled.py).

What compiles: a pipeline whose first step has `transform_arrays` (a declared feature transformer) and whose last step
is a ClippedRegressor around a tree regressor: HistGradientBoosting (sums its trees onto a baseline; identity link,
no categorical splits), a random forest, extra trees or one decision tree (average their trees), or a
VotingRegressor of HistGradientBoosting models (the 3-seed champion). The graph is one `TreeEnsemble` node
(ai.onnx.ml opset 5, double precision: thresholds and leaves exactly as scikit-learn holds them) whose leaves
carry each tree's weight, then the baseline is added and the result clipped. scikit-learn's forests compare
float32 features, so for them the graph rounds its input to float32 first. Anything else (classifiers, a
linear regression) is written down as not compiled, with the reason, and the service serves it with scikit-learn.

Why a converter of our own for the graph, not skl2onnx 1.20: on this stack its HistGradientBoosting converter
fails (a bool in an int attribute, rejected by protobuf), it only emits float32 thresholds (up to $5,691 off on
the test split) and its VotingRegressor mixes float and double; bench/NOTES.md has the measurements. The node
arrays are scikit-learn's own (`TreePredictor.nodes`, `tree_`), copied one to one.

Outputs (deterministic: only the model's numbers, no names, versions or times): `models/<task>/compiled/` for the
served champion and `models/<task>/compiled-challenger/` for the served challenger (stage `promote`), each
with `compiled.json` always and `model.onnx` when compiled. Before writing the graph the stage checks it
against scikit-learn on training rows (`CHECK_ROWS`): a graph that disagrees by TOLERANCE_USD is not shipped.

    python -m stages.compile <task>
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Any

import numpy as np

from domain.compiled import FORMAT, INPUT, OUTPUT, TOLERANCE_USD, CompiledModel, disagreement_usd
from stages import failures
from stages.config import ROLES, compiled_dir, declared_tasks, load_params, served_model
from stages.files import atomic_dir, md5sum, write_json
from stages.models import load_model
from stages.rawdata import read_split

CHECK_ROWS = 2000
ONNX_IR_VERSION = 10  # what ONNX Runtime 1.31 reads (the onnx package would write a newer one)
OPSETS = {"": 21, "ai.onnx.ml": 5}


class NotCompilable(ValueError):
    """The model has a part the graph cannot express; the message says which."""


@dataclass
class Tree:
    """One tree as flat node arrays (node 0 is the root; a leaf has left = right = -1)."""

    feature: np.ndarray
    threshold: np.ndarray  # x <= threshold goes left
    left: np.ndarray
    right: np.ndarray
    value: np.ndarray  # a leaf's prediction (unused at interior nodes)
    missing_left: np.ndarray  # where NaN goes at each test

    @classmethod
    def of_hist_predictor(cls, predictor: Any) -> Tree:
        """A HistGradientBoosting TreePredictor: its `nodes` record array, copied one to one."""
        nodes = predictor.nodes
        if nodes["is_categorical"].any():
            raise NotCompilable("categorical splits are not compiled")
        leaf = nodes["is_leaf"].astype(bool)
        left, right = nodes["left"].astype(np.int64), nodes["right"].astype(np.int64)
        left[leaf] = right[leaf] = -1
        return cls(nodes["feature_idx"].astype(np.int64), nodes["num_threshold"].astype(np.float64), left, right,
                   nodes["value"].astype(np.float64), nodes["missing_go_to_left"].astype(bool))

    @classmethod
    def of_sklearn_tree(cls, tree: Any) -> Tree:
        """A fitted `DecisionTreeRegressor.tree_` (also each tree of a forest); its leaves hold the mean target."""
        return cls(tree.feature.astype(np.int64), tree.threshold.astype(np.float64),
                   tree.children_left.astype(np.int64), tree.children_right.astype(np.int64),
                   tree.value[:, 0, 0].astype(np.float64), tree.missing_go_to_left.astype(bool))


@dataclass
class Ensemble:
    """The trees to sum, each tree's weight, the weighted baseline and the clipping range.

    `float32_input`: scikit-learn's DecisionTree and forests compare float32 features with float64
    thresholds, so the graph rounds its input to float32 (and back) before the trees to take the same branches.
    """

    trees: list[tuple[float, Tree]]
    baseline: float
    clip: tuple[float, float] | None
    float32_input: bool = False


def member_trees(member: Any) -> tuple[list[Tree], float, bool]:
    """(trees, baseline, float32 input) of one regressor whose prediction is baseline + mean or sum of trees.

    HistGradientBoosting sums its trees onto a baseline; a forest averages its trees, so their weights
    carry 1/n_trees; a lone decision tree is a forest of one.
    """
    from sklearn.ensemble import ExtraTreesRegressor, HistGradientBoostingRegressor, RandomForestRegressor
    from sklearn.tree import DecisionTreeRegressor, ExtraTreeRegressor

    if isinstance(member, HistGradientBoostingRegressor):
        if type(member._loss.link).__name__ != "IdentityLink":
            raise NotCompilable(f"loss {member.loss!r} has a non-identity link")
        trees = [Tree.of_hist_predictor(predictor) for (predictor,) in member._predictors]
        return trees, float(np.ravel(member._baseline_prediction)[0]), False
    if isinstance(member, RandomForestRegressor | ExtraTreesRegressor | DecisionTreeRegressor | ExtraTreeRegressor):
        estimators = getattr(member, "estimators_", [member])
        if getattr(member, "n_outputs_", 1) != 1:
            raise NotCompilable("multi-output trees are not compiled")
        return [Tree.of_sklearn_tree(tree.tree_) for tree in estimators], 0.0, True
    raise NotCompilable(f"{type(member).__name__} is not a tree ensemble the graph expresses")


def ensemble_of(pipeline: Any) -> Ensemble:
    """The pipeline's regressor as weighted trees, or NotCompilable naming what is in the way."""
    from sklearn.ensemble import HistGradientBoostingRegressor, VotingRegressor

    steps = getattr(pipeline, "steps", None)
    if not steps or len(steps) != 2 or not hasattr(steps[0][1], "transform_arrays"):
        raise NotCompilable("only a (features, regressor) pipeline with an array feature path compiles")
    regressor, clip = steps[-1][1], None
    if hasattr(regressor, "regressor_") and hasattr(regressor, "target_min_"):  # domain.estimators.ClippedRegressor
        clip = (float(regressor.target_min_), float(regressor.target_max_))
        regressor = regressor.regressor_
    if isinstance(regressor, VotingRegressor):
        members = list(regressor.estimators_)
        weights = np.ones(len(members)) if regressor.weights is None else np.asarray(regressor.weights, float)
    else:
        members, weights = [regressor], np.ones(1)
    weights = weights / weights.sum()
    trees, baseline, precisions = [], 0.0, set()
    for weight, member in zip(weights, members, strict=True):
        member_tree_list, member_baseline, float32_input = member_trees(member)
        summed = isinstance(member, HistGradientBoostingRegressor)  # boosting sums its trees, a forest averages
        tree_weight = float(weight) if summed else float(weight) / len(member_tree_list)
        trees += [(tree_weight, tree) for tree in member_tree_list]
        baseline += float(weight) * member_baseline
        precisions.add(float32_input)
    if len(precisions) != 1:
        raise NotCompilable("a vote of boosted trees and forests compares features at two precisions")
    return Ensemble(trees, baseline, clip, precisions.pop())


def tree_ensemble_attributes(ensemble: Ensemble) -> dict[str, list]:
    """TreeEnsemble's node arrays: interior nodes and leaves numbered separately, tree after tree."""
    out: dict[str, list] = {key: [] for key in ("tree_roots", "featureids", "splits", "missing", "trueids",
                                                 "trueleafs", "falseids", "falseleafs", "weights")}
    for weight, tree in ensemble.trees:
        leaf = tree.left < 0
        interior, leaves = np.flatnonzero(~leaf), np.flatnonzero(leaf)
        first_interior, first_leaf = len(out["featureids"]), len(out["weights"])
        number = np.empty(len(leaf), dtype=np.int64)
        number[interior] = first_interior + np.arange(len(interior))
        number[leaves] = first_leaf + np.arange(len(leaves))
        out["weights"] += (tree.value[leaves] * weight).tolist()
        if leaf[0]:  # a tree that never split: one test whose both branches reach the single leaf
            out["tree_roots"].append(first_interior)
            out["featureids"].append(0)
            out["splits"].append(0.0)
            out["missing"].append(0)
            for ids, leafs in (("trueids", "trueleafs"), ("falseids", "falseleafs")):
                out[ids].append(first_leaf)
                out[leafs].append(1)
            continue
        out["tree_roots"].append(int(number[0]))
        out["featureids"] += tree.feature[interior].tolist()
        out["splits"] += tree.threshold[interior].tolist()
        # scikit-learn: NaN goes left when missing_go_to_left; x <= threshold goes left ("true")
        out["missing"] += tree.missing_left[interior].astype(int).tolist()
        for children, ids, leafs in ((tree.left, "trueids", "trueleafs"), (tree.right, "falseids", "falseleafs")):
            child = children[interior]
            out[ids] += number[child].tolist()
            out[leafs] += leaf[child].astype(int).tolist()
    return out


def build_graph(pipeline: Any) -> bytes:
    """The ONNX bytes of the pipeline's regressor: features (double, [rows, n]) in, dollars ([rows, 1]) out."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    ensemble = ensemble_of(pipeline)
    a = tree_ensemble_attributes(ensemble)
    n_features = len(pipeline.steps[0][1].get_feature_names_out())
    nodes, trees_input = [], INPUT
    if ensemble.float32_input:  # round like scikit-learn's trees do, then compare with the double thresholds
        nodes += [helper.make_node("Cast", [INPUT], ["features32"], to=TensorProto.FLOAT),
                  helper.make_node("Cast", ["features32"], ["features64"], to=TensorProto.DOUBLE)]
        trees_input = "features64"
    nodes.append(helper.make_node(
        "TreeEnsemble", [trees_input], ["sum"], domain="ai.onnx.ml", n_targets=1, aggregate_function=1,  # 1 = SUM
        post_transform=0, tree_roots=a["tree_roots"], nodes_featureids=a["featureids"],
        nodes_modes=numpy_helper.from_array(np.zeros(len(a["featureids"]), np.uint8), "modes"),  # 0 = BRANCH_LEQ
        nodes_splits=numpy_helper.from_array(np.asarray(a["splits"], np.float64), "splits"),
        nodes_missing_value_tracks_true=a["missing"], nodes_truenodeids=a["trueids"],
        nodes_trueleafs=a["trueleafs"], nodes_falsenodeids=a["falseids"], nodes_falseleafs=a["falseleafs"],
        leaf_weights=numpy_helper.from_array(np.asarray(a["weights"], np.float64), "weights"),
        leaf_targetids=[0] * len(a["weights"])))
    initializers = [numpy_helper.from_array(np.asarray([ensemble.baseline]), "baseline")]
    nodes.append(helper.make_node("Add", ["sum", "baseline"], ["raw" if ensemble.clip else OUTPUT]))
    if ensemble.clip:
        initializers += [numpy_helper.from_array(np.asarray(bound, np.float64), name)
                         for bound, name in zip(ensemble.clip, ("low", "high"), strict=True)]
        nodes.append(helper.make_node("Clip", ["raw", "low", "high"], [OUTPUT]))
    graph = helper.make_graph(
        nodes, "champion", [helper.make_tensor_value_info(INPUT, TensorProto.DOUBLE, [None, n_features])],
        [helper.make_tensor_value_info(OUTPUT, TensorProto.DOUBLE, [None, 1])], initializer=initializers)
    opsets = [helper.make_opsetid(domain, version) for domain, version in OPSETS.items()]
    model = helper.make_model(graph, ir_version=ONNX_IR_VERSION, opset_imports=opsets)
    onnx.checker.check_model(model)
    return model.SerializeToString()


def compile_model(pipeline: Any, check_rows: Any) -> tuple[bytes | None, dict[str, Any]]:
    """(graph or None, the compiled.json record). A graph is returned only if it agrees with scikit-learn."""
    try:
        graph = build_graph(pipeline)
    except NotCompilable as exc:
        return None, {"compiled": False, "reason": str(exc)}
    compiled = CompiledModel(pipeline.steps[0][1], graph)
    worst = disagreement_usd(compiled, pipeline, check_rows)
    if not worst <= TOLERANCE_USD:
        return None, {"compiled": False, "reason": f"the graph disagrees with scikit-learn by ${worst:,.2f} "
                                                   f"on the training split (tolerance ${TOLERANCE_USD:g})"}
    return graph, {"compiled": True, "format": FORMAT, "runtime": "onnxruntime",
                   "trees": len(ensemble_of(pipeline).trees), "checked_rows": len(check_rows),
                   "tolerance_usd": TOLERANCE_USD}


def main(argv: list[str]) -> None:
    failures.install()
    load_params()  # the whole params.yaml first (this stage reads none of it): a typo stops it here
    if len(argv) != 1 or argv[0] not in declared_tasks():
        sys.exit(f"usage: python -m stages.compile {{{','.join(declared_tasks())}}}")
    task = argv[0]
    rows = read_split(task, "train")[0].head(CHECK_ROWS)
    for role in ROLES:  # the served champion and challenger (stage `promote`): each travels with its own graph
        graph, record = compile_model(load_model(served_model(task, role)), rows)
        record = {"task": task, **record, "source_md5": md5sum(served_model(task, role))}
        with atomic_dir(compiled_dir(task, role)) as tmp:
            if graph is not None:
                (tmp / "model.onnx").write_bytes(graph)
            write_json(tmp / "compiled.json", record)
        print(f"compile {task} {role}: " + ("compiled, " + f"{record['trees']} trees" if graph else record["reason"]))


if __name__ == "__main__":
    main(sys.argv[1:])
