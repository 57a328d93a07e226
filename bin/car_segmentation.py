#!/usr/bin/env python
"""Batch background removal: python bin/car_segmentation.py IN OUT [MODEL] [options] (see --help; no MODEL: the built-in one)."""
import os
import sys

# Before torch loads OpenMP: idle OpenMP threads sleep instead of spinning, leaving the cores to the
# loader workers and writer threads between forward passes (measured: benchmarks/README.md).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

try:
    from carseg.commands.car_segmentation import main  # noqa: E402
except KeyboardInterrupt:  # Ctrl-C while the libraries load: nothing has started
    print("car_segmentation.py: interrupted", file=sys.stderr)
    raise SystemExit(130) from None

if __name__ == "__main__":
    raise SystemExit(main())
