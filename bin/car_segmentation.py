#!/usr/bin/env python
"""Batch background removal: python bin/car_segmentation.py IN OUT [MODEL] [options] (see --help; no MODEL: the built-in one)."""
import os

# Before torch loads OpenMP: idle OpenMP threads sleep instead of spinning, leaving the cores to the
# loader workers and writer threads between forward passes (measured: benchmarks/README.md).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from carseg.commands.car_segmentation import main  # noqa: E402

if __name__ == "__main__":
    raise SystemExit(main())
