"""The pipeline's scale curve: the real housing rows at 1x, 4x, 16x..., locally and with its fits on a Dask cluster.

For each size, generated from the real rows (copy 0 as it is, each further copy with every numeric value jittered by
up to 2 %, seeded, within the declared bounds), a full `dvc repro` runs in a scratch copy of the project twice:
locally, then with DASK_SCHEDULER_ADDRESS pointing at a cluster of `--workers` single-threaded workers this
command starts on loopback. Per stage: wall time, CPU time and peak RSS of the stage's process tree (bench/pipeline.py);
for the cluster run, from the scheduler's task stream, the independent fits (scikit-learn's `_fit_and_score`)
each stage sent: how many, their median and longest duration, and the stage's time outside them (the final fit,
reading, writing). With N workers a train stage takes about outside + max(longest fit, fits x median / N): its
critical path is outside + longest fit. The two runs' dvc.lock files must be equal (the cluster changes no byte).

    python -m bench.scale --housing-csv /path/to/housing.csv --sizes 1,4 --workers 2 --out bench/scale

The machine is shared: every number is read against its peer measured in the same run (cluster vs local, one
size vs the one before), with the load average beside it.
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from bench.pipeline import dvc_env, scratch_copy, timed_repro
from scripts.dask_cluster import local_cluster
from stages.files import md5sum

TASK = "housing"
FIT_TASK = "_fit_and_score"
JITTER = 0.02


def scaled_csv(source: Path, factor: int, dest: Path, bounds: dict[str, tuple[float, float]], seed: int = 0) -> Path:
    """`factor` copies of the rows: the first as it is, the others jittered by up to 2 % (seeded), clipped to
    `bounds` (field -> (minimum, maximum))."""
    frame = pd.read_csv(source)
    rng = np.random.default_rng(seed)
    numeric = frame.select_dtypes("number").columns
    copies = [frame]
    for _ in range(1, factor):
        copy = frame.copy()
        for column in numeric:
            jittered = copy[column] * (1 + rng.uniform(-JITTER, JITTER, len(copy)))
            low, high = bounds.get(column, (-math.inf, math.inf))
            copy[column] = jittered.clip(low, high)
        copy["total_bedrooms"] = copy["total_bedrooms"].clip(upper=copy["total_rooms"])  # a declared rule
        copies.append(copy)
    pd.concat(copies, ignore_index=True).to_csv(dest, index=False)
    return dest


def field_bounds(code_root: Path) -> dict[str, tuple[float, float]]:
    fields = yaml.safe_load((code_root / "tasks" / f"{TASK}.yaml").read_text())["fields"]
    return {name: (spec.get("minimum", -math.inf), spec.get("maximum", math.inf)) for name, spec in fields.items()}


def declare_source(work: Path, csv: Path) -> None:
    """The scratch copy's task declaration names the generated file's md5 (fetch checks it); committed."""
    declaration = work / "tasks" / f"{TASK}.yaml"
    text = declaration.read_text()
    declaration.write_text(text.replace(yaml.safe_load(text)["source"]["md5"], md5sum(csv)))
    env = dvc_env(None, None)
    subprocess.run(["git", "commit", "-q", "--allow-empty", "-am", "generated data"], cwd=work, env=env, check=True,
                   capture_output=True)


def worker_env(code_root: Path) -> dict[str, str]:
    """The workers' environment (docs/cluster.md): the stages' CPU-dispatch pins, the code's `domain` importable."""
    import stages  # noqa: F401  (sets the pins in this process's environment)

    return {**os.environ, "PYTHONPATH": str(code_root)}


def fits_by_stage(address: str, started: float, run: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The cluster's fits during one timed repro, by the stage running when each started."""
    from distributed import Client

    with Client(address, timeout=30) as client:
        stream = client.get_task_stream(start=started)
    windows, at = [], started + run["before_first_stage_s"]
    for stage in run["stages"]:
        windows.append((stage["stage"], at, at + stage["seconds"]))
        at += stage["seconds"]
    fits: dict[str, list[tuple[float, float]]] = {}
    for task in stream:
        if FIT_TASK not in task["key"]:
            continue
        compute = next(s for s in task["startstops"] if s["action"] == "compute")
        stage = next((name for name, begin, end in windows if begin <= compute["start"] < end), "(none)")
        fits.setdefault(stage, []).append((compute["start"], compute["stop"]))
    out = {}
    for name, seconds in ((stage["stage"], stage["seconds"]) for stage in run["stages"]):
        spans = fits.get(name, [])
        if not spans:
            continue
        durations = [stop - start for start, stop in spans]
        span = max(stop for _, stop in spans) - min(start for start, _ in spans)
        outside = max(seconds - span, 0.0)
        out[name] = {"fits": len(spans), "median_fit_s": round(statistics.median(durations), 2),
                     "longest_fit_s": round(max(durations), 2), "fits_total_s": round(sum(durations), 2),
                     "outside_fits_s": round(outside, 2), "critical_path_s": round(outside + max(durations), 2)}
    return out


def measure_size(code_root: Path, scratch: Path, source: Path, factor: int, workers: int,
                 log: Any = print) -> dict[str, Any]:
    csv = scaled_csv(source, factor, scratch / f"housing-{factor}x.csv", field_bounds(code_root))
    rows = sum(1 for _ in csv.open()) - 1
    result: dict[str, Any] = {"factor": factor, "rows": rows}
    locks = {}
    for mode in ("local", "cluster"):
        work = scratch_copy(code_root, scratch / f"{mode}-{factor}x")
        declare_source(work, csv)
        env = dvc_env(scratch / f"bentoml-{mode}-{factor}x", csv)
        env.pop("DASK_SCHEDULER_ADDRESS", None)
        if mode == "local":
            result[mode] = timed_repro(work, env)
        else:
            with local_cluster(workers, scratch, worker_env(code_root)) as address:
                env["DASK_SCHEDULER_ADDRESS"] = address
                started = time.time()
                run = timed_repro(work, env)
                run["fits"] = fits_by_stage(address, started, run)
                result[mode] = run
        result[mode]["models_mb"] = round(sum(p.stat().st_size for p in (work / "models").rglob("*")
                                              if p.is_file()) / 2**20, 1)
        result[mode]["candidate_model_mb"] = candidate_model_sizes(work)
        result[mode]["candidate_cv"] = candidate_cv_scores(work)
        locks[mode] = (work / "dvc.lock").read_text()
        log(f"  {factor}x {mode}: {result[mode]['wall_s']:.1f} s wall, {result[mode]['cpu_s']:.1f} s CPU")
    result["same_dvc_lock"] = locks["local"] == locks["cluster"]
    return result


def candidate_model_sizes(work: Path) -> dict[str, float]:
    """Each candidate's fitted model file in MB, by candidate name."""
    models = (work / "models" / TASK / "candidates").glob("*/model.joblib")
    return {path.parent.name: round(path.stat().st_size / 2**20, 2) for path in sorted(models)}


def candidate_cv_scores(work: Path) -> dict[str, list[float]]:
    """Each candidate's cross-validated score on the training split, [mean, std], from its git-tracked metrics."""
    scores = {}
    for path in sorted((work / "metrics" / TASK).glob(f"{TASK}-*.json")):
        metrics = json.loads(path.read_text())
        scores[path.stem] = [metrics["cv"], metrics["cv_std"]]
    return scores


def growth(before: float, after: float, ratio: float) -> str:
    """The exponent k of after/before = ratio**k: 1 is linear in the data."""
    return f"{math.log(after / before) / math.log(ratio):.2f}" if before > 0 and after > 0 else "n/a"


def growth_lines(before: dict[str, Any], after: dict[str, Any]) -> list[str]:
    """How the local run's wall time, each train stage's wall time and each candidate's model file grew between
    two sizes, as exponents of the data's growth, beside the candidate's CV score at both sizes (a bound that
    holds the cost down must not hide a lost score)."""
    ratio = after["factor"] / before["factor"]
    lines = [f"### {before['factor']}x -> {after['factor']}x (exponent k: x{ratio:g} rows costs x{ratio:g}^k; "
             "1 is linear)", "",
             f"- whole run, local wall time: k = {growth(before['local']['wall_s'], after['local']['wall_s'], ratio)}",
             f"- whole run, cluster wall time: k = "
             f"{growth(before['cluster']['wall_s'], after['cluster']['wall_s'], ratio)}", "",
             "| train stage | local wall s | k | model MB | k | CV score (mean ± std) |", "|---|---|---|---|---|---|"]
    seconds = [{stage["stage"]: stage["seconds"] for stage in size["local"]["stages"]} for size in (before, after)]
    sizes = [size["local"].get("candidate_model_mb", {}) for size in (before, after)]
    scores = [size["local"].get("candidate_cv", {}) for size in (before, after)]
    for stage in (name for name in seconds[1] if name.startswith(f"train@{TASK}-")):
        candidate = stage.removeprefix("train@")
        first, last = seconds[0].get(stage, 0.0), seconds[1][stage]
        mb = [size.get(candidate) for size in sizes]
        model = f"{mb[0]} -> {mb[1]} | {growth(mb[0], mb[1], ratio)}" if None not in mb else " | "
        cv = [score.get(candidate) for score in scores]
        quality = f"{cv[0][0]} ± {cv[0][1]} -> {cv[1][0]} ± {cv[1][1]}" if None not in cv else ""
        lines.append(f"| {stage} | {first} -> {last} | {growth(first, last, ratio)} | {model} | {quality} |")
    return [*lines, ""]


def report(results: list[dict[str, Any]], command: str, workers: int) -> str:
    lines = [f"# Scale curve: local against a {workers}-worker Dask cluster", "",
             *sorted({f"`{size.get('command', command)}`" for size in results}), "",
             "Generated by bench/scale.py. The machine was shared with other jobs (load average before each run "
             "beside it): read each number against its peer in the same run.", ""]
    for size in results:
        local, cluster = size["local"], size["cluster"]
        lines += [f"## {size['factor']}x ({size['rows']:,} rows)", "",
                  f"- whole run: local {local['wall_s']} s wall / {local['cpu_s']} s CPU "
                  f"(load {local['load_average_before']}), "
                  f"cluster {cluster['wall_s']} s wall / {cluster['cpu_s']} s CPU in the stages' processes "
                  f"(load {cluster['load_average_before']}); ratio {cluster['wall_s'] / local['wall_s']:.2f}",
                  f"- models/: {local['models_mb']} MB; dvc.lock identical between the two runs: "
                  f"{size['same_dvc_lock']}", "",
                  "| stage | local wall s | local CPU s | local peak RSS MB | cluster wall s | fits | median fit s "
                  "| longest fit s | outside fits s | critical path s |", "|---|---|---|---|---|---|---|---|---|---|"]
        remote = {stage["stage"]: stage for stage in cluster["stages"]}
        for stage in local["stages"]:
            fits = cluster["fits"].get(stage["stage"], {})
            other = remote.get(stage["stage"], {})
            lines.append(f"| {stage['stage']} | {stage['seconds']} | {stage.get('cpu_s', '')} "
                         f"| {stage['peak_rss_mb']} "
                         f"| {other.get('seconds', '')} | {fits.get('fits', '')} | {fits.get('median_fit_s', '')} "
                         f"| {fits.get('longest_fit_s', '')} | {fits.get('outside_fits_s', '')} "
                         f"| {fits.get('critical_path_s', '')} |")
        lines.append("")
    if len(results) > 1:
        lines += ["## Growth", ""]
    for before, after in itertools.pairwise(results):
        lines += growth_lines(before, after)
    return "\n".join(lines).rstrip("\n") + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--housing-csv", type=Path, required=True, help="the real rows")
    parser.add_argument("--sizes", default="1,4,16", help="copies of the rows, comma-separated")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--out", type=Path, default=Path("bench/scale"))
    parser.add_argument("--scratch", type=Path, default=None, help="where the copies run (default: a temp dir)")
    args = parser.parse_args(argv)
    code_root = Path(__file__).resolve().parent.parent
    command = "python -m bench.scale " + " ".join(argv if argv is not None else sys.argv[1:])
    scratch = args.scratch or Path(tempfile.mkdtemp(prefix="bench-scale-"))
    scratch.mkdir(parents=True, exist_ok=True)
    args.out.mkdir(parents=True, exist_ok=True)
    sizes = [int(size) for size in args.sizes.split(",")]
    earlier = args.out / "results.json"  # sizes measured by an earlier command are kept, with their command
    results = [size for size in (json.loads(earlier.read_text())["sizes"] if earlier.exists() else [])
               if size["factor"] not in sizes]
    for factor in sizes:
        results.append(measure_size(code_root, scratch, args.housing_csv, factor, args.workers) | {"command": command})
        results.sort(key=lambda size: size["factor"])
        (args.out / "results.json").write_text(json.dumps({"sizes": results}, indent=1) + "\n")
        (args.out / "RESULTS.md").write_text(report(results, command, args.workers))


if __name__ == "__main__":
    main()
