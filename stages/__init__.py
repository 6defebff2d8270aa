"""Pipeline stages: each module with a ``main`` is a thin command-line shell over pure functions.

Imports `domain` (schemas, model classes, drift binning); never the server (`bento_service`) or the
offline tools (`monitoring`). DVC runs one Python process per stage: keep imports lazy where they are heavy.
"""

import os
import platform

# OpenBLAS chooses its kernels by CPU (Haswell or Zen kernels on AVX2, SkylakeX on AVX-512), and they round
# differently: the same data then gives models (and feature matrices, whose rotations are matrix products) that
# differ in the last bits, so dvc.lock would depend on the machine. Every stage process imports this package
# before numpy loads OpenBLAS, and pins the AVX2 kernels, which every x86-64 CPU since 2013 runs. Measured
# (linear candidate): Haswell and Zen give the same bytes, SkylakeX/SapphireRapids others. OPENBLAS_CORETYPE
# set by the caller wins.
if platform.machine().lower() in ("x86_64", "amd64"):
    os.environ.setdefault("OPENBLAS_CORETYPE", "Haswell")
