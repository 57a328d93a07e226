#!/usr/bin/env python
"""Batch background removal: python bin/car_segmentation.py IN OUT MODEL [options] (see --help)."""
from carseg.background_removal import main

if __name__ == "__main__":
    raise SystemExit(main())
