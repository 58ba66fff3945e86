"""The mimic: a fast steady-state model of Factorio's logistics (docs/MIMIC.md).

Public API: `simulate`, `sink_rates_batch`, `power_mean_score` (from `engine`),
`explain`, and the fixture checker (`python -m training.sim FILE.yaml ...`).
"""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import numba


def _use_versioned_kernel_cache() -> None:
    """Keep compiled kernels in a folder named after the kernels' source.

    numba's on-disk cache only notices edits to the file of the function it compiled,
    not to the kernels that function calls, so a stale `_run` could outlive a change in
    `solve.py`. Keying the folder by every kernel file's content makes that impossible.
    A cache folder the user chose (NUMBA_CACHE_DIR) is left alone."""
    if numba.config.CACHE_DIR:  # type: ignore[attr-defined]
        return
    here = Path(__file__).parent
    digest = hashlib.sha256()
    for name in ("graph.py", "solve.py", "engine.py"):
        digest.update((here / name).read_bytes())
    folder = here / "__pycache__" / f"kernels-{digest.hexdigest()[:16]}"
    for stale in folder.parent.glob("kernels-*"):  # caches of older kernel sources
        if stale != folder:
            shutil.rmtree(stale, ignore_errors=True)
    numba.config.CACHE_DIR = str(folder)  # type: ignore[attr-defined]


_use_versioned_kernel_cache()

from training.sim.engine import SimResult, SinkResult, power_mean_score, simulate, sink_rates_batch  # noqa: E402

__all__ = ["SimResult", "SinkResult", "power_mean_score", "simulate", "sink_rates_batch"]
