"""Pipeline stages: each module with a ``main`` is a thin command-line shell over pure functions.

Imports `domain` (schemas, model classes, drift binning); never the server (`bento_service`) or the
offline tools (`monitoring`). DVC runs one Python process per stage: keep imports lazy where they are heavy.
"""

import os
import platform

# The same data must give the same bytes on every machine (CI compares its own run with the committed
# dvc.lock), but two libraries pick their code by CPU when they load, and the choices round differently.
# Every stage process imports this package before numpy, so it pins both on x86-64; a value set by the caller
# wins.
# - OpenBLAS's kernels (Haswell or Zen on AVX2, SkylakeX on AVX-512): pinned to the AVX2 ones, which every
#   x86-64 CPU since 2013 runs. Measured (linear candidate): Haswell and Zen give the same bytes, SkylakeX and
#   SapphireRapids others.
# - numpy's AVX-512 loops (X86_V4): float64 sin, cos and arcsin then use SVML, which rounds some values
#   differently from the AVX2 loops, which give libm's values (`numpy.lib.introspect.opt_func_info` lists the
#   loops). They are the feature step's only CPU-chosen code once OpenBLAS is pinned: the city distances and
#   rotations use them, and the linear and hgb candidates' bytes differed between the Xeon that wrote dvc.lock
#   on 2026-12-02 and an AVX2 EPYC (2026-12-03). Disabled, numpy runs its AVX2 loops on both.
if platform.machine().lower() in ("x86_64", "amd64"):
    os.environ.setdefault("OPENBLAS_CORETYPE", "Haswell")
    os.environ.setdefault("NPY_DISABLE_CPU_FEATURES", "X86_V4 AVX512_ICL AVX512_SPR")
