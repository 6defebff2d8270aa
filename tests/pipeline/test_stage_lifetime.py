"""A stage dies with `dvc repro`: after `kill -9` of dvc during a train stage, neither the stage nor its CV
worker processes run on to overwrite the output the user restores (`dvc checkout`; `dvc status` stays clean),
and the raw-data errors DVC shows name the file and the line."""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path

import psutil
import pytest

from tests.support.data_factory import housing_frame
from tests.support.dvc_repo import PipelineRepo, ran_stages, venv_env


def _processes(dvc: psutil.Process, marker: str) -> list[psutil.Process]:
    found = []
    for child in dvc.children(recursive=True):
        try:
            if marker in " ".join(child.cmdline()):
                found.append(child)
        except psutil.NoSuchProcess:
            continue
    return found


def test_kill_9_of_dvc_repro_takes_the_stage_and_its_workers_with_it(repo: PipelineRepo) -> None:
    params = repo.params()
    hgb = params["candidates"]["housing-hgb"]
    hgb["hyperparams"]["max_iter"] = 400  # long enough to be killed in the middle of its CV
    repo.write_params(params)
    environment = venv_env(HOUSING_CSV=str(repo.housing_csv), BENTOML_HOME=str(repo.path.parent / "bentoml-home"))
    dvc = subprocess.Popen(["dvc", "repro", "train@housing-hgb"], cwd=repo.path, env=environment,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    survivors: list[psutil.Process] = []
    try:
        parent = psutil.Process(dvc.pid)
        deadline = time.monotonic() + 120
        while not (_processes(parent, "stages.train") and len(_processes(parent, "LokyProcess")) >= 2):
            assert dvc.poll() is None and time.monotonic() < deadline, "the train stage never got to its CV"
            time.sleep(0.2)
        time.sleep(1)  # in the middle of the cross-validation
        tree = parent.children(recursive=True)
        dvc.send_signal(signal.SIGKILL)
        dvc.wait(timeout=10)
        _, survivors = psutil.wait_procs(tree, timeout=10)
        assert not survivors, f"still running after kill -9 of dvc: {[p.cmdline() for p in survivors]}"
    finally:
        for process in survivors:
            process.kill()
        if dvc.poll() is None:
            dvc.kill()
    repo.git("checkout", "--", "params.yaml")
    repo.run("dvc", "checkout", check=True)  # DVC removed the stage's output before running it: restore it
    # check-params had validated the edited params.yaml before the kill: re-checking the restored file takes its
    # lock entry back from the run-cache, without running anything
    assert "check-params" not in ran_stages(repo.repro("check-params").output)
    status = repo.run("dvc", "status", check=True)
    assert "up to date" in status.stdout, status.output
    leftovers = [p for p in (repo.path / "models/housing/candidates").iterdir() if p.name.startswith(".")]
    assert all(p.stat().st_mode & 0o077 for p in leftovers), "a private (0700) temporary was left behind"


def _fresh_repo(tmp_path: Path, raw: bytes) -> PipelineRepo:
    csv = tmp_path / "housing.csv"
    csv.write_bytes(raw)
    return PipelineRepo.create(tmp_path / "repo", csv, bentoml_home=tmp_path / "bentoml-home")


@pytest.mark.parametrize(("line", "replace", "expected"), [
    (300, (b",", b",\xe9"), "not UTF-8 text (byte b'\\xe9' at line 301"),
    (40, (b"\n", b",7\n"), "cannot be parsed as CSV"),
], ids=["non-utf8", "field-count"])
def test_unreadable_raw_csv_fails_preprocess_naming_file_and_line(tmp_path: Path, line: int,
                                                                  replace: tuple[bytes, bytes], expected: str) -> None:
    lines = housing_frame(400, seed=2).to_csv(index=False).encode().splitlines(keepends=True)
    lines[line] = lines[line].replace(*replace, 1)  # CSV line `line + 1` (the header is line 1)
    repo = _fresh_repo(tmp_path, b"".join(lines))
    result = repo.repro("preprocess@housing", check=False)
    assert result.returncode != 0
    assert f"preprocess housing: data/raw/housing.csv: {expected}" in result.stderr, result.output[-2000:]
    assert "line 41" in result.stderr or "line 301" in result.stderr
    assert "Traceback" not in result.output
