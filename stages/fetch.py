"""Stage `fetch`: put each task's raw data at data/raw/<task>.csv, checksum-verified.

Where the data comes from is the task's declaration, `source` in tasks/<task>.yaml: a public `url` (a local
copy named by env `<TASK>_CSV` in capitals wins: machines without internet), a `path` to a CSV file
(relative to the repository), or a `sklearn_dataset` bundled with scikit-learn, written out as a CSV. Either
way the declared md5 must match, so dvc.lock always records the same data.

    python -m stages.fetch <task>
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

from domain.schema import SCHEMAS, TaskSchema
from stages.config import raw_csv, task_argument
from stages.files import atomic_path, md5sum
from stages.lifetime import start_stage


class FetchError(RuntimeError):
    """The raw data could not be obtained or is not the expected file."""


def local_copy_variable(task: str) -> str:
    """The environment variable naming a local copy of a task's raw file: `<TASK>_CSV` (task `loans`: LOANS_CSV)."""
    return f"{task.upper()}_CSV"


def download(url: str, destination: Path, variable: str, timeout: float = 60) -> None:
    """Save `url` to `destination`; FetchError says which variable to set instead (no internet)."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response, open(destination, "wb") as out:
            shutil.copyfileobj(response, out)
    except (urllib.error.URLError, OSError, TimeoutError) as exc:
        raise FetchError(
            f"could not download {url}: {getattr(exc, 'reason', exc)}. Without internet, set {variable} to a local "
            f"copy of the file ({variable}=/path/to/{Path(urllib.parse.urlparse(url).path).name} make run)"
        ) from None


def write_sklearn_dataset(name: str, schema: TaskSchema, destination: Path) -> None:
    """One of scikit-learn's bundled datasets as a raw CSV in the schema's columns: feature names without
    their unit ("sepal length (cm)" -> sepal_length), class names instead of class numbers."""
    import sklearn.datasets

    bunch = getattr(sklearn.datasets, f"load_{name}")(as_frame=True)
    frame = bunch.frame.rename(columns=lambda c: c.split(" (")[0].replace(" ", "_"))
    frame[schema.target.name] = [bunch.target_names[i] for i in frame.pop("target")]
    frame[schema.columns].to_csv(destination, index=False)


def fetch(task: str, destination: Path, spec: dict[str, str], local_copy: str | None = None) -> str:
    """Write the task's raw CSV to `destination` atomically and return where it came from.

    `spec` is the declaration's `source`; `local_copy` a path that replaces its url or path. Raises FetchError when
    the source is unreachable or its checksum is not the spec's md5; `destination` is then left untouched.
    """
    expected_md5 = spec["md5"]
    variable = local_copy_variable(task)
    with atomic_path(destination) as tmp:
        if "sklearn_dataset" in spec:
            origin = f"scikit-learn's bundled {spec['sklearn_dataset']} data"
            write_sklearn_dataset(spec["sklearn_dataset"], SCHEMAS[task], tmp)
        elif local_copy or "path" in spec:
            origin = local_copy or spec["path"]
            if not Path(origin).is_file():
                named = f"{variable}={local_copy}" if local_copy else f"tasks/{task}.yaml source.path {origin}"
                raise FetchError(f"{named} does not exist or is not a file")
            shutil.copyfile(origin, tmp)
        else:
            origin = spec["url"]
            download(spec["url"], tmp, variable)
        actual = md5sum(tmp)
        if actual != expected_md5:
            raise FetchError(
                f"checksum mismatch for {origin}: md5 {actual}, expected {expected_md5} "
                f"(tasks/{task}.yaml source.md5). "
                f"The file is not the expected dataset: point {variable} at the original file, "
                "or update that md5 if you changed the data on purpose"
            )
    return origin


def main(argv: list[str] | None = None) -> None:
    start_stage()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("task", type=task_argument)
    args = parser.parse_args(argv)
    spec = SCHEMAS[args.task].source
    try:
        origin = fetch(args.task, raw_csv(args.task), spec, os.environ.get(local_copy_variable(args.task)))
    except FetchError as exc:
        sys.exit(f"fetch {args.task}: {exc}")
    print(f"fetch {args.task}: {raw_csv(args.task)} from {origin} (md5 {spec['md5']})")


if __name__ == "__main__":
    main()
