"""Stage processes pin the code numpy and OpenBLAS choose by CPU (stages/__init__.py), so that dvc.lock is the
same on an AVX-512 machine as on an AVX2 one. CI's reproducibility check compares with the committed lock on
whatever machine it gets; this test says which pin broke when that check fails."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys

import pytest

from tests.support import PROJECT_ROOT

PROBE = """
import json, os
import stages  # what every stage imports before numpy
from numpy.lib.introspect import opt_func_info
from threadpoolctl import threadpool_info
loops = {name: opt_func_info(func_name=name + "$", signature="float64")[name]["dd"]["current"]
         for name in ("sin", "cos", "arcsin")}
blas = [pool.get("architecture") for pool in threadpool_info() if pool["internal_api"] == "openblas"]
print(json.dumps({"loops": loops, "blas": blas,
                  "env": {k: os.environ.get(k) for k in ("OPENBLAS_CORETYPE", "NPY_DISABLE_CPU_FEATURES")}}))
"""


@pytest.mark.skipif(platform.machine().lower() not in ("x86_64", "amd64"), reason="the pins are for x86-64")
def test_a_stage_process_runs_the_avx2_loops_and_kernels_whatever_the_cpu() -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("OPENBLAS_CORETYPE", "NPY_DISABLE_CPU_FEATURES")}
    out = subprocess.run([sys.executable, "-c", PROBE], cwd=PROJECT_ROOT, env=env, capture_output=True, text=True,
                         check=True)
    probe = json.loads(out.stdout)
    assert probe["env"] == {"OPENBLAS_CORETYPE": "Haswell", "NPY_DISABLE_CPU_FEATURES": "X86_V4 AVX512_ICL AVX512_SPR"}
    for name, loop in probe["loops"].items():
        assert "X86_V4" not in loop, f"numpy's float64 {name} runs its AVX-512 loop ({loop}): SVML rounding"
    assert probe["blas"] and set(probe["blas"]) == {"Haswell"}, probe["blas"]
