"""Matrix products whose sums do not depend on how many threads compute them.

MKL splits some small products (a 10 x 64 weight gradient over 32 rows, say) between two
threads and adds the halves, so on one thread the same product ends in other bits. A
job's numbers would then depend on the worker's thread count, and a fused run, whose
batched products MKL computes one job per thread, could never equal a job alone on more
than one thread. MKL's strict conditional numerical reproducibility makes ``?gemm`` give
the same bits on any number of threads (at about the speed of the default mode here).

MKL reads ``MKL_CBWR`` at its first call, so a process that trains sets it before torch
computes anything. A value set by the user wins; other BLAS libraries ignore it (the
fused probe still checks every mode against a job alone).
"""

from __future__ import annotations

import os

STRICT = "AUTO,STRICT"


def reproducible_products() -> None:
    os.environ.setdefault("MKL_CBWR", STRICT)
