"""Stage `fetch`: put each task's raw data at data/raw/<task>.csv, checksum-verified.

Housing comes from the public URL in params.yaml, or from the local file named by env
HOUSING_CSV (machines without internet). Iris is scikit-learn's bundled copy written out as
a CSV. Either way the md5 in params.yaml must match, so dvc.lock always records the same data.

    python -m stages.fetch housing
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import sys
import urllib.error
import urllib.request
from pathlib import Path

from stages.atomic import atomic_path
from stages.config import TASKS, load_params, raw_csv


class FetchError(RuntimeError):
    """The raw data could not be obtained or is not the expected file."""


def md5sum(path: Path) -> str:
    digest = hashlib.md5()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def download(url: str, destination: Path, timeout: float = 60) -> None:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response, open(destination, "wb") as out:
            shutil.copyfileobj(response, out)
    except (urllib.error.URLError, OSError, TimeoutError) as exc:
        raise FetchError(
            f"could not download {url}: {getattr(exc, 'reason', exc)}. Without internet, set HOUSING_CSV to a local "
            "copy of housing.csv (e.g. HOUSING_CSV=../shared/data/california_housing/housing.csv make run)"
        ) from None


def write_iris_csv(destination: Path) -> None:
    from sklearn.datasets import load_iris

    bunch = load_iris(as_frame=True)
    frame = bunch.frame.rename(columns=lambda c: c.replace(" (cm)", "").replace(" ", "_"))
    frame["species"] = [bunch.target_names[i] for i in frame.pop("target")]
    frame.to_csv(destination, index=False)


def fetch(task: str, destination: Path, expected_md5: str, source: str | None = None) -> str:
    """Write the task's raw CSV to `destination` atomically and return where it came from.

    Raises FetchError when the source is unreachable or its checksum is not `expected_md5`;
    `destination` is then left untouched.
    """
    with atomic_path(destination) as tmp:
        if task == "iris":
            origin = "scikit-learn's bundled iris data"
            write_iris_csv(tmp)
        elif source and "://" not in source:
            origin = source
            if not Path(source).is_file():
                raise FetchError(f"HOUSING_CSV={source} does not exist or is not a file")
            shutil.copyfile(source, tmp)
        else:
            origin = source
            download(source, tmp)
        actual = md5sum(tmp)
        if actual != expected_md5:
            raise FetchError(
                f"checksum mismatch for {origin}: md5 {actual}, expected {expected_md5} (params.yaml data.{task}.md5). "
                "The file is not the expected dataset: point HOUSING_CSV at the original housing.csv, "
                "or update the md5 in params.yaml if you changed the data on purpose"
            )
    return origin


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("task", choices=TASKS)
    args = parser.parse_args(argv)
    spec = load_params()["data"][args.task]
    source = None
    if args.task == "housing":
        source = os.environ.get("HOUSING_CSV") or spec["url"]
    try:
        origin = fetch(args.task, raw_csv(args.task), spec["md5"], source)
    except FetchError as exc:
        sys.exit(f"fetch {args.task}: {exc}")
    print(f"fetch {args.task}: {raw_csv(args.task)} from {origin} (md5 {spec['md5']})")


if __name__ == "__main__":
    main()
